"""Prometheus, Alertmanager and docker-compose configuration, checked by their own tools.

promtool checks the configs and rules and runs the rule unit tests (ops_test.yml); amtool checks the
Alertmanager config and where alerts are routed; docker-compose validates docker-compose.yml, and every
path it mounts or builds from exists and fits what the mounted files expect. (`promtool check metrics`
on a live worker's output is in tests/integration/test_prometheus.py.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from stream.local import promstack

REPO_ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = REPO_ROOT / "deploy" / "prometheus"
RULES = PROM_DIR / "rules" / "ops.yml"
RULE_TESTS = PROM_DIR / "rules" / "ops_test.yml"
ALERTMANAGER = REPO_ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
COMPOSE = REPO_ROOT / "docker-compose.yml"


def run(tool: str, *args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run([promstack.binary(tool), *args], capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, f"{tool} {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def test_promtool_check_rules():
    assert "SUCCESS" in run("promtool", "check", "rules", str(RULES))


def test_promtool_test_rules():
    assert "SUCCESS" in run("promtool", "test", "rules", str(RULE_TESTS))


def test_every_alert_has_a_unit_test_and_a_runbook_link():
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if case["exp_alerts"]}
    for rule in rules:
        assert rule["alert"] in tested, f"{rule['alert']} never fires in ops_test.yml"
        assert rule["labels"]["severity"] in ("page", "ticket") and rule["labels"]["service"] == "kpi-monitor"
        assert rule["annotations"]["summary"] and rule["annotations"]["dashboard"].startswith("/d/kpi-ops")
    required = {"KpiWorkerDown", "KpiConsumerLagGrowing", "KpiDeadLetterRateHigh", "KpiProcessingLatencyHigh",
                "KpiNoEventsDuringBusinessHours"}
    assert required <= {r["alert"] for r in rules}


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus.compose.yml"])
def test_promtool_check_config(name, tmp_path):
    config = PROM_DIR / name
    text = config.read_text()
    if "credentials_file" in text:  # a file the container writes at start: point the check at a stand-in
        secret = tmp_path / "token"
        secret.write_text("t")
        config = tmp_path / name
        config.write_text(re.sub(r"credentials_file: \S+", f"credentials_file: {secret}", text))
        for rules in (PROM_DIR / "rules").glob("*.yml"):
            (tmp_path / "rules").mkdir(exist_ok=True)
            (tmp_path / "rules" / rules.name).write_text(rules.read_text())
    assert "SUCCESS" in run("promtool", "check", "config", str(config))


def test_rendered_configs_are_valid(tmp_path):
    config = tmp_path / "prometheus.yml"
    config.write_text(promstack.render_prometheus_config(
        ["127.0.0.1:7001", "127.0.0.1:7002"], scrape_interval="1s", alertmanagers=["127.0.0.1:9193"],
        self_target="127.0.0.1:9190",
    ))
    run("promtool", "check", "config", str(config))
    rendered = yaml.safe_load(config.read_text())
    job = next(j for j in rendered["scrape_configs"] if j["job_name"] == "kpi-monitor")
    assert job["static_configs"] == [{"targets": ["127.0.0.1:7001", "127.0.0.1:7002"]}]
    assert rendered["global"]["scrape_timeout"] == "1s"
    am = tmp_path / "alertmanager.yml"
    am.write_text(promstack.render_alertmanager_config(tmp_path / "slack_url"))
    run("amtool", "check-config", str(am))


def test_amtool_check_config():
    out = run("amtool", "check-config", str(ALERTMANAGER))
    assert "SUCCESS" in out and "3 receivers" in out


@pytest.mark.parametrize(
    "labels, receiver",
    [
        (["alertname=KpiWorkerDown", "service=kpi-monitor", "severity=page"], "slack-oncall"),
        (["alertname=KpiDeadLetterRateHigh", "service=kpi-monitor", "severity=ticket"], "slack-ops"),
        (["alertname=LeadResponseSlaBreached", "team=hunters", "slack_channel=#sales-hunters"], "slack-sales"),
        (["alertname=Whatever"], "slack-ops"),
    ],
)
def test_alert_routing(labels, receiver):
    out = run("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert out.strip() == receiver


def test_alertmanager_groups_by_alertname_and_team_and_keeps_the_webhook_out():
    config = yaml.safe_load(ALERTMANAGER.read_text())
    assert config["route"]["group_by"] == ["alertname", "team"]
    assert "hooks.slack.com" not in ALERTMANAGER.read_text()
    assert config["global"]["slack_api_url_file"]
    for receiver in config["receivers"]:
        for slack in receiver.get("slack_configs", []):
            assert "api_url" not in slack and slack["send_resolved"] is True


# --- docker-compose ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose_cmd() -> list[str]:
    """`docker compose` (v2) when it works, else Debian's docker-compose (v1), installed if missing."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    if not shutil.which("docker-compose"):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip("neither `docker compose` nor docker-compose is available (apt-get install docker-compose)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "docker-compose"]):
            subprocess.run(cmd, env=env, capture_output=True, check=True)
    return [shutil.which("docker-compose")]


# What docker-compose.yml needs from its environment (or .env): it refuses to start without them.
COMPOSE_SECRETS = {"GRAFANA_ADMIN_PASSWORD": "grafana-pw-test", "KPI_WEB_TOKEN": "web-token-test"}


def _compose_config(compose_cmd: list[str], **env: str | None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items()
            if k not in ("SLACK_WEBHOOK_URL", "KPI_PUBLISH_ADDRESS", *COMPOSE_SECRETS)}
    full.update({k: v for k, v in {**COMPOSE_SECRETS, **env}.items() if v is not None})
    return subprocess.run([*compose_cmd, "-f", str(COMPOSE), "config"], capture_output=True, text=True, env=full,
                          cwd=REPO_ROOT)


def _published(service: dict) -> list[tuple[str, int]]:
    """(host address, host port) of a service's published ports, from either compose's output format."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):  # docker-compose v1 and compose v2 long form
            out.append((port.get("host_ip", "0.0.0.0"), int(port["published"])))
        else:
            *host, published, _target = str(port).split(":")
            out.append((host[0] if host else "0.0.0.0", int(published)))
    return out


@pytest.mark.parametrize("webhook", [None, "https://example.invalid/hook"])
def test_docker_compose_config_is_valid(compose_cmd, webhook):
    proc = _compose_config(compose_cmd, SLACK_WEBHOOK_URL=webhook)
    assert proc.returncode == 0, proc.stderr
    resolved = yaml.safe_load(proc.stdout)
    assert set(resolved["services"]) == {"kafka", "topics", "redis", "worker", "simulator", "prometheus",
                                         "alertmanager", "grafana"}
    secret = resolved["services"]["alertmanager"]["environment"]["SLACK_WEBHOOK_URL"]
    assert secret == (webhook or "http://localhost:9/slack-webhook-not-configured")
    assert "SLACK_WEBHOOK_URL" not in resolved["services"]["worker"]["environment"]


def test_compose_publishes_on_loopback_only_unless_told(compose_cmd):
    published = {name: _published(service) for name, service in
                 yaml.safe_load(_compose_config(compose_cmd).stdout)["services"].items() if service.get("ports")}
    assert published == {"prometheus": [("127.0.0.1", 9090)], "alertmanager": [("127.0.0.1", 9093)],
                         "grafana": [("127.0.0.1", 3000)]}
    wider = yaml.safe_load(_compose_config(compose_cmd, KPI_PUBLISH_ADDRESS="192.0.2.10").stdout)["services"]
    assert _published(wider["grafana"]) == [("192.0.2.10", 3000)]


@pytest.mark.parametrize("missing", list(COMPOSE_SECRETS))
@pytest.mark.parametrize("value", [None, ""])
def test_compose_refuses_to_start_without_its_secrets(compose_cmd, missing, value):
    proc = _compose_config(compose_cmd, **{missing: value})  # None: unset
    assert proc.returncode != 0, f"docker-compose accepted the stack with {missing}={value!r}"
    assert missing in proc.stderr, proc.stderr


def test_compose_secrets_reach_only_their_services(compose_cmd):
    services = yaml.safe_load(_compose_config(compose_cmd).stdout)["services"]
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == COMPOSE_SECRETS["GRAFANA_ADMIN_PASSWORD"]
    assert services["worker"]["environment"]["KPI_WEB_TOKEN"] == COMPOSE_SECRETS["KPI_WEB_TOKEN"]
    for name, service in services.items():
        text = json.dumps(service)
        if name != "grafana":
            assert COMPOSE_SECRETS["GRAFANA_ADMIN_PASSWORD"] not in text, name
        if name not in ("worker", "prometheus"):
            assert COMPOSE_SECRETS["KPI_WEB_TOKEN"] not in text, name
    # Prometheus has no lifecycle API (POST /-/quit, /-/reload) for anyone who reaches it.
    assert not any("lifecycle" in arg for arg in services["prometheus"]["command"])


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _binds(service: dict) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        host, container, *_ = volume.split(":")
        if host.startswith("."):
            out[container] = (REPO_ROOT / host).resolve()
    return out


def test_every_mounted_and_built_path_exists():
    compose = _compose()
    for name, service in compose["services"].items():
        for container, host in _binds(service).items():
            assert host.exists(), f"{name}: {host} (mounted at {container}) does not exist"
        if "build" in service:
            context = REPO_ROOT / service["build"]["context"]
            dockerfile = context / service["build"]["dockerfile"]
            assert dockerfile.is_file()
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY"):
                    for source in line.split()[1:-1]:
                        assert (context / source).exists(), f"Dockerfile copies missing {source}"
    # Every healthcheck exists and every depends_on condition names a service that has one.
    for name, service in compose["services"].items():
        for dep, how in (service.get("depends_on") or {}).items():
            if how["condition"] == "service_healthy":
                assert "healthcheck" in compose["services"][dep], f"{name} waits for {dep}'s health, which has no check"
    for name in set(compose["services"]) - {"topics", "simulator"}:  # one-shot / nothing to probe
        assert "healthcheck" in compose["services"][name], name
    assert "HEALTHCHECK" in (REPO_ROOT / "Dockerfile").read_text()


def test_mounted_files_fit_what_they_configure():
    compose = _compose()
    grafana = compose["services"]["grafana"]
    binds = _binds(grafana)
    provisioning = binds["/etc/grafana/provisioning"]
    for path in provisioning.rglob("*.yaml"):
        yaml.safe_load(path.read_text())
    provider = yaml.safe_load((provisioning / "dashboards" / "kpi.yaml").read_text())["providers"][0]
    dashboards = binds[provider["options"]["path"]]  # the provider reads the directory the JSON is mounted at
    assert sorted(p.name for p in dashboards.glob("*.json")) == ["customers.json", "drilldown.json", "ops.json",
                                                                  "revenue.json", "wall.json"]
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert binds[str(home.parent)] == dashboards and (dashboards / home.name).is_file()
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"][0]
    assert datasource["url"] == "${PROMETHEUS_URL}" and grafana["environment"]["PROMETHEUS_URL"] == "http://prometheus:9090"

    prometheus = compose["services"]["prometheus"]
    prom_binds = _binds(prometheus)
    command = " ".join(prometheus["command"])
    config_path = re.search(r"--config\.file=(\S+)", command).group(1)
    config = yaml.safe_load(prom_binds[config_path].read_text())
    for rule_file in config["rule_files"]:
        inside = str(Path(config_path).parent / rule_file)
        mount = next(c for c in prom_binds if inside.startswith(c + "/"))
        assert (prom_binds[mount] / Path(inside).relative_to(mount)).is_file()
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "kpi-monitor")
    assert job["dns_sd_configs"][0]["names"] == ["worker"]
    assert str(job["dns_sd_configs"][0]["port"]) == compose["services"]["worker"]["environment"]["KPI_WEB_PORT"]
    # The scrape sends the workers' token from the file the container writes on its tmpfs at start.
    token_file = job["authorization"]["credentials_file"]
    assert job["authorization"]["type"] == "Bearer" and f'> {token_file}' in command
    assert any(t.split(":")[0] == str(Path(token_file).parent) for t in prometheus["tmpfs"])

    alertmanager = compose["services"]["alertmanager"]
    am_binds = _binds(alertmanager)
    am_config = yaml.safe_load(am_binds["/etc/alertmanager/alertmanager.yml"].read_text())
    for template in am_config["templates"]:  # relative to the config file, as Alertmanager reads them
        assert template in {Path(c).name for c in am_binds}, f"alertmanager template {template} is not mounted"
        assert am_binds[f"/etc/alertmanager/{template}"] == ALERTMANAGER.parent / template
    secret_dir = str(Path(am_config["global"]["slack_api_url_file"]).parent)
    assert any(t.split(":")[0] == secret_dir for t in alertmanager["tmpfs"])
    assert am_config["global"]["slack_api_url_file"] in " ".join(alertmanager["command"])


def test_compose_pins_images_and_kraft():
    compose = _compose()
    built = {s["image"] for s in compose["services"].values() if "build" in s}
    for name, service in compose["services"].items():
        if service["image"] not in built:  # third-party images: a pinned version, never "latest"
            assert re.search(r":v?[0-9][\w.-]*$", service["image"]), (name, service["image"])
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
