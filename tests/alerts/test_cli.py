"""`kpi-monitor alerts list | ack | snooze | unmute | test` against the real Redis and a local receiver."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from click.testing import CliRunner

from alerts.model import new_instance
from alerts.state import RedisAlertStore
from stream.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture
def app_env(shared_redis_url):
    app_id = f"test-cli-{uuid.uuid4().hex[:8]}"
    env = {"KPI_APP_ID": app_id, "REDIS_URL": shared_redis_url}

    async def seed() -> str:
        store = RedisAlertStore.from_url(shared_redis_url, app_id)
        inst = new_instance("team-sla-ratio-low", "kpi", {"team": "hunters"})
        inst.state, inst.episode, inst.firing_since, inst.severity = "firing", 1, 1_700_000_000_000, "warning"
        await store.put_instance(inst)
        other = new_instance("team-sla-ratio-low", "kpi", {"team": "farmers"})
        await store.put_instance(other)  # inactive: not listed by default
        await store.close()
        return inst.fingerprint

    fp = asyncio.run(seed())
    yield env, fp

    async def cleanup() -> None:
        store = RedisAlertStore.from_url(shared_redis_url, app_id)
        keys = [k async for k in store.r.scan_iter(f"{app_id}:*")]
        if keys:
            await store.r.delete(*keys)
        await store.close()

    asyncio.run(cleanup())


def test_list_ack_snooze(app_env):
    env, fp = app_env
    runner = CliRunner()
    listed = runner.invoke(main, ["alerts", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert fp in listed.output and "team=hunters" in listed.output and "farmers" not in listed.output
    assert "farmers" in runner.invoke(main, ["alerts", "list", "--all"], env=env).output
    acked = runner.invoke(main, ["alerts", "ack", fp], env=env)
    assert acked.exit_code == 0 and "acknowledged" in acked.output and "firing" in acked.output
    doc = json.loads(runner.invoke(main, ["alerts", "list", "--json"], env=env).output.splitlines()[0])
    assert doc["fingerprint"] == fp and doc["muted"]["kind"] == "ack"
    snoozed = runner.invoke(main, ["alerts", "snooze", fp, "--for", "30m"], env=env)
    assert snoozed.exit_code == 0
    assert "snoozed 30m left" in runner.invoke(main, ["alerts", "list"], env=env).output
    assert runner.invoke(main, ["alerts", "snooze", fp, "--for", "soon"], env=env).exit_code == 2
    assert runner.invoke(main, ["alerts", "unmute", fp], env=env).exit_code == 0
    assert "snoozed" not in runner.invoke(main, ["alerts", "list"], env=env).output


def test_list_without_redis_says_so():
    result = CliRunner().invoke(main, ["alerts", "list"], env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.exit_code == 1 and "Redis at REDIS_URL does not answer" in result.output


def test_send_a_sample_through_each_sink(receiver, tmp_path):
    secret_file = tmp_path / "webhook_url"
    secret_file.write_text(f"{receiver.url}/webhook\n")
    env = {"SLACK_WEBHOOK_URL": f"{receiver.url}/slack/webhook", "KPI_ALERT_WEBHOOK_URL_FILE": str(secret_file),
           "KPI_ALERT_WEBHOOK_SECRET": "s3cret"}
    runner = CliRunner()
    slack = runner.invoke(main, ["alerts", "test", "--sink", "slack"], env=env)
    assert slack.exit_code == 0, slack.output
    assert "firing" in slack.output and "resolved" in slack.output and "delivered" in slack.output
    webhook = runner.invoke(main, ["alerts", "test", "--sink", "webhook", "--no-resolve"], env=env)
    assert webhook.exit_code == 0, webhook.output
    assert len(receiver.on("/slack/webhook")) == 2 and len(receiver.on("/webhook")) == 1
    assert receiver.on("/webhook")[0].headers["X-KPI-Signature"].startswith("sha256=")
    for out in (slack.output, webhook.output):
        assert receiver.url not in out and "s3cret" not in out
    missing = runner.invoke(main, ["alerts", "test", "--sink", "alertmanager"], env={"ALERTMANAGER_URL": ""})
    assert missing.exit_code == 1 and "ALERTMANAGER_URL" in missing.output


def test_a_failing_sink_exits_nonzero_without_leaking_the_url(receiver):
    url = f"{receiver.url}/fail?token=abc123secret"
    result = CliRunner().invoke(main, ["alerts", "test", "--sink", "webhook", "--no-resolve"],
                                env={"KPI_ALERT_WEBHOOK_URL": url, "KPI_ALERT_SINK_TIMEOUT_SECONDS": "2"})
    assert result.exit_code == 1 and "FAILED" in result.output
    assert "abc123secret" not in result.output
