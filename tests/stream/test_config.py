"""Settings (README, Configuration): defaults, environment, the KPI_CONFIG file, one-line errors, hidden secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.config import PACKAGE_DIR, REPO_ROOT, ConfigError, Settings, load_settings

# The contract's settings: variable -> default (None = unset).
CONTRACT_DEFAULTS = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "KPI_TOPIC_PREFIX": "sales.",
    "KPI_APP_ID": "kpi-monitor",
    "KPI_WEB_PORT": 6066,
    "KPI_WEB_HOST": "127.0.0.1",
    "KPI_CLOCK": "wall",
    "KPI_TIMEZONE": "UTC",
    "KPI_SLA_SECONDS": 300,
    "SLACK_WEBHOOK_URL": None,
    "SLACK_BOT_TOKEN": None,
    "SLACK_CHANNEL": None,
    "ALERTMANAGER_URL": None,
    "KPI_ALERT_WEBHOOK_URL": None,
    "KPI_ALERT_WEBHOOK_SECRET": None,
    "KPI_GRAFANA_URL": "http://127.0.0.1:3000",
}
SECRETS = {
    "REDIS_URL": "redis://:hunter2-redis-pw@cache.internal:6379/3",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/sEcReTwEbHoOk",
    "SLACK_BOT_TOKEN": "xoxb-0000-sEcReTtOkEn",
    "KPI_ALERT_WEBHOOK_URL": "https://alerts.example.com/hook?token=sEcReTqUeRy",
    "KPI_ALERT_WEBHOOK_SECRET": "sEcReThMaC",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No setting leaks in from the developer's shell or CI."""
    for name in [*(n.upper() for n in Settings.model_fields), "KPI_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def _value(settings: Settings, variable: str):
    value = getattr(settings, variable.lower())
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


@pytest.mark.parametrize("variable, default", CONTRACT_DEFAULTS.items())
def test_defaults_are_spec_section_5(variable, default):
    assert _value(load_settings(), variable) == default


def test_bundled_defaults():
    s = load_settings()
    assert s.redis_url.get_secret_value() == "redis://127.0.0.1:6379/0"
    assert s.kpi_roster == PACKAGE_DIR / "roster.example.yaml" and s.kpi_roster.is_file()
    assert s.kpi_alert_rules == REPO_ROOT / "alerts" / "rules.yaml"
    assert [s.topic(x) for x in ("leads", "calls", "deals", "deadletter")] == [
        "sales.leads", "sales.calls", "sales.deals", "sales.deadletter"]
    assert s.web_url == "http://127.0.0.1:6066"
    assert str(s.tz) == "UTC"


@pytest.mark.parametrize(
    "variable, text, expected",
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092", "k1:9092,k2:9092"),
        ("KPI_TOPIC_PREFIX", "test-42.", "test-42."),
        ("KPI_APP_ID", "kpi-test_1.a", "kpi-test_1.a"),
        ("KPI_WEB_PORT", "7077", 7077),
        ("KPI_WEB_HOST", "0.0.0.0", "0.0.0.0"),
        ("KPI_CLOCK", "event", "event"),
        ("KPI_TIMEZONE", "Asia/Kathmandu", "Asia/Kathmandu"),
        ("KPI_SLA_SECONDS", "90.5", 90.5),
        ("KPI_ROSTER", "/tmp/roster.yaml", Path("/tmp/roster.yaml")),
        ("REDIS_URL", "redis://r:6380/1", "redis://r:6380/1"),
        ("KPI_ALERT_RULES", "/tmp/rules.yaml", Path("/tmp/rules.yaml")),
        ("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/hook", "http://127.0.0.1:9/hook"),
        ("SLACK_CHANNEL", "#sales", "#sales"),
        ("ALERTMANAGER_URL", "http://127.0.0.1:9093", "http://127.0.0.1:9093"),
        ("KPI_GRAFANA_URL", "http://grafana:3000", "http://grafana:3000"),
        ("KPI_STAGES", "new, demo ,won_pending", ("new", "demo", "won_pending")),
    ],
)
def test_environment_overrides(clean_env, variable, text, expected):
    clean_env.setenv(variable, text)
    assert _value(load_settings(), variable) == expected


def test_config_file_sets_keys_and_environment_wins(clean_env, tmp_path):
    cfg = tmp_path / "kpi.yaml"
    cfg.write_text(
        "KPI_SLA_SECONDS: 120\n"
        "kpi_timezone: Europe/Berlin\n"
        "KPI_TOPIC_PREFIX: file.\n"
        "KPI_WEB_PORT: 7000\n"
        "unrelated_key: ignored\n"
    )
    clean_env.setenv("KPI_CONFIG", str(cfg))
    s = load_settings()
    got = (s.kpi_sla_seconds, s.kpi_timezone, s.kpi_topic_prefix, s.kpi_web_port)
    assert got == (120, "Europe/Berlin", "file.", 7000)
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"  # not in the file: default
    clean_env.setenv("KPI_SLA_SECONDS", "60")
    clean_env.setenv("KPI_TOPIC_PREFIX", "env.")
    s = load_settings()
    assert (s.kpi_sla_seconds, s.kpi_topic_prefix, s.kpi_timezone) == (60, "env.", "Europe/Berlin")
    assert load_settings(kpi_sla_seconds=30).kpi_sla_seconds == 30  # explicit overrides win over both


def test_config_file_may_be_json(clean_env, tmp_path):
    cfg = tmp_path / "kpi.json"
    cfg.write_text('{"KPI_CLOCK": "event", "KPI_APP_ID": "from-json"}')
    clean_env.setenv("KPI_CONFIG", str(cfg))
    assert (load_settings().kpi_clock, load_settings().kpi_app_id) == ("event", "from-json")


def _one_line_error(**overrides) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(**overrides)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    assert "Traceback" not in message
    return message


@pytest.mark.parametrize(
    "variable, text",
    [
        ("KPI_WEB_PORT", "http"),
        ("KPI_WEB_PORT", "70000"),
        ("KPI_WEB_PORT", "60\n66"),
        ("KPI_CLOCK", "fast"),
        ("KPI_TIMEZONE", "Mars/Olympus_Mons"),
        ("KPI_TIMEZONE", "Europe/Berlin\nUTC"),
        ("KPI_SLA_SECONDS", "-5"),
        ("KPI_SLA_SECONDS", "soon"),
        ("KPI_APP_ID", "has space"),
        ("KPI_APP_ID", ""),
        ("KPI_TOPIC_PREFIX", "sales/"),
        ("KPI_STAGES", " , "),
        ("KPI_CURRENCY", "dollars"),
        ("KPI_PARTITIONS", "0"),
    ],
)
def test_bad_value_is_one_line_naming_the_variable(clean_env, variable, text):
    clean_env.setenv(variable, text)
    message = _one_line_error()
    assert message.startswith(f"{variable}: "), message


def test_bad_config_file_is_one_line(clean_env, tmp_path):
    missing = tmp_path / "nope.yaml"
    clean_env.setenv("KPI_CONFIG", str(missing))
    assert _one_line_error().startswith("KPI_CONFIG: ")
    broken = tmp_path / "broken.yaml"
    broken.write_text("KPI_CLOCK: [event\nKPI_WEB_PORT: : :\n")
    clean_env.setenv("KPI_CONFIG", str(broken))
    assert _one_line_error().startswith("KPI_CONFIG: ")
    listing = tmp_path / "list.yaml"
    listing.write_text("- KPI_CLOCK\n- event\n")
    clean_env.setenv("KPI_CONFIG", str(listing))
    assert _one_line_error().startswith("KPI_CONFIG: ")
    bad_value = tmp_path / "bad-value.yaml"
    bad_value.write_text("KPI_WEB_PORT: many\n")
    clean_env.setenv("KPI_CONFIG", str(bad_value))
    assert _one_line_error().startswith("KPI_WEB_PORT: ")


def test_secrets_never_in_repr(clean_env):
    for name, value in SECRETS.items():
        clean_env.setenv(name, value)
    s = load_settings()
    assert s.redis_dsn == SECRETS["REDIS_URL"]
    assert s.slack_webhook_url.get_secret_value() == SECRETS["SLACK_WEBHOOK_URL"]
    shown = repr(s) + str(s) + repr(s.model_dump()) + str(s.__dict__)
    for value in SECRETS.values():
        assert value not in shown
    assert "hunter2" not in shown and "sEcReT" not in shown


def test_secrets_never_in_config_errors(clean_env, tmp_path):
    for name, value in SECRETS.items():
        clean_env.setenv(name, value)
    clean_env.setenv("KPI_WEB_PORT", "not-a-port")  # an unrelated bad value next to real secrets
    message = _one_line_error()
    assert all(v not in message for v in SECRETS.values())
    # A secret with a value of the wrong type (possible from a YAML file) names the variable, not the value.
    cfg = tmp_path / "kpi.yaml"
    for name in ("REDIS_URL", "SLACK_WEBHOOK_URL"):
        clean_env.delenv(name)
        clean_env.delenv("KPI_WEB_PORT", raising=False)
        cfg.write_text(f"{name}:\n  password: hunter2-{name}\n")
        clean_env.setenv("KPI_CONFIG", str(cfg))
        message = _one_line_error()
        assert message.startswith(f"{name}: ") and "hunter2" not in message, message
        clean_env.setenv(name, SECRETS[name])


def test_bot_token_never_in_config_errors(clean_env, tmp_path):
    cfg = tmp_path / "kpi.yaml"
    cfg.write_text("SLACK_BOT_TOKEN: 7310016425\n")  # an all-digit token: YAML reads an int
    clean_env.setenv("KPI_CONFIG", str(cfg))
    message = _one_line_error()
    assert message.startswith("SLACK_BOT_TOKEN: ")
    assert "7310016425" not in message, message


@pytest.mark.parametrize("variable", ["KPI_INGEST_TOKEN", "KPI_WEB_TOKEN", "HUBSPOT_CLIENT_SECRET",
                                      "KPI_ALERT_WEBHOOK_SECRET"])
@pytest.mark.parametrize("blank", ["", "  ", "\t\n"])
def test_an_empty_or_blank_auth_secret_is_refused(clean_env, variable, blank):
    # `${VAR}` of an unset VAR in a compose file is "": it must not mean "no authentication".
    clean_env.setenv(variable, blank)
    assert _one_line_error() == f"{variable}: is empty or blank; set a real secret or leave the variable unset"
    clean_env.setenv(variable, "a-real-secret")
    assert getattr(load_settings(), variable.lower()).get_secret_value() == "a-real-secret"
