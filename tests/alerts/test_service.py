"""The worker glue without a broker: start-up errors, rules reload (file change and SIGHUP), metrics."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from alerts.rules import load_rules
from alerts.service import AlertCollector, AlertsStartupError, watch_rules, attach_alerts
from stream.config import Settings

GOOD = "rules:\n  - {name: sla, type: lead_sla, deadline: 5m}\n"


def fake_ctx(rules_file, **settings):
    return SimpleNamespace(settings=Settings(kpi_alert_rules=rules_file, **settings))


def test_a_bad_rules_file_stops_the_worker_with_the_line(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - name: sla\n    type: lead_sla\n    deadline: soon\n")
    with pytest.raises(AlertsStartupError) as exc:
        attach_alerts(fake_ctx(bad))
    assert f"{bad}:4: rules[0].deadline: 'soon' is not a duration" in exc.value.message


def test_a_missing_rules_file_and_a_bad_setting(tmp_path, monkeypatch):
    with pytest.raises(AlertsStartupError, match="cannot read"):
        attach_alerts(fake_ctx(tmp_path / "nope.yaml"))
    monkeypatch.setenv("KPI_ALERT_EVAL_SECONDS", "often")
    with pytest.raises(AlertsStartupError, match="KPI_ALERT_EVAL_SECONDS: must be a number"):
        attach_alerts(fake_ctx(tmp_path / "nope.yaml"))


def test_alerts_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("KPI_ALERTS", "off")
    assert attach_alerts(fake_ctx(tmp_path / "whatever.yaml")) is None


def test_rules_reload_on_change_and_sighup_keeps_the_last_good(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    watcher = watch_rules(path, Settings(), load_rules(path))
    assert watcher.poll() is None  # unchanged
    path.write_text(GOOD.replace("5m", "7m"))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    watcher._checked = float("-inf")  # a second later
    assert watcher.poll().by_name["sla"].deadline == 420
    path.write_text("rules: [{name: sla, type: lead_sla, deadline: never}]")
    watcher.reload_now()  # SIGHUP: reload now, even without a new mtime
    assert watcher.poll() is None and watcher.failures == 1
    assert watcher.value.by_name["sla"].deadline == 420  # the previous rules stay


def test_collector_exports_gauges_at_scrape_time():
    from alerts.sinks.base import new_stats

    stats = new_stats()
    stats["held_back"], stats["redis_ok"] = True, False
    stats["dropped"]["slack"] = 3
    sink = SimpleNamespace(name="slack", queue=SimpleNamespace(qsize=lambda: 2))
    service = SimpleNamespace(
        stats=stats, dispatcher=SimpleNamespace(sinks=[sink]), watcher=SimpleNamespace(failures=1),
        runtime=SimpleNamespace(firing_counts=lambda: {("lead-sla", "warning"): 4}),
    )
    registry = CollectorRegistry()
    registry.register(AlertCollector(service))
    assert registry.get_sample_value("kpi_alerts_held_back") == 1
    assert registry.get_sample_value("kpi_alert_state_redis_up") == 0
    assert registry.get_sample_value("kpi_alerts_firing", {"rule": "lead-sla", "severity": "warning"}) == 4
    assert registry.get_sample_value("kpi_alerts_dropped_total", {"sink": "slack"}) == 3
    assert registry.get_sample_value("kpi_alerts_queue_depth", {"sink": "slack"}) == 2
    assert registry.get_sample_value("kpi_alert_rules_reload_failures_total") == 1


def test_secrets_from_files_and_never_in_repr(tmp_path):
    from alerts.config import AlertConfig

    secret = tmp_path / "token"
    secret.write_text("xoxb-from-a-file\n")
    config = AlertConfig.from_settings(Settings(slack_channel="#x"), env={"SLACK_BOT_TOKEN_FILE": str(secret)})
    assert config.slack_bot_token == "xoxb-from-a-file" and config.sink_names() == ["slack"]
    assert "xoxb" not in repr(config)


@pytest.mark.parametrize("name", ["KPI_ALERT_WEBHOOK_SECRET_FILE", "SLACK_BOT_TOKEN_FILE", "SLACK_WEBHOOK_URL_FILE"])
def test_an_empty_secret_file_is_refused_not_taken_for_no_secret(tmp_path, name):
    # An empty webhook secret file would send unsigned webhooks; an empty token file, no alerts at all.
    from alerts.config import AlertConfig, AlertConfigError

    empty = tmp_path / "secret"
    empty.write_text(" \n")
    with pytest.raises(AlertConfigError, match=f"^{name}: {empty} is empty"):
        AlertConfig.from_settings(Settings(), env={name: str(empty)})
