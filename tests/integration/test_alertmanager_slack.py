"""Event text through the real Alertmanager into Slack: the project's alertmanager.yml routes a sales alert
whose lead id, team and summary carry Slack markup to a local receiver standing in for Slack, and what
arrives is what a person reads — the markup escaped, no mention, no link."""

from __future__ import annotations

import asyncio
import json

import pytest

from alerts.model import Transition, new_instance
from alerts.notification import build
from alerts.sinks.alertmanager import AlertmanagerSink
from stream.local import promstack
from tests.alerts.conftest import receiver  # noqa: F401  (fixture)
from tests.alerts.helpers import roster, rules
from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.integration
HOSTILE = "<!channel> <https://evil.example/login|Open Grafana> & <!here>"
ESCAPED = "&lt;!channel&gt; &lt;https://evil.example/login|Open Grafana&gt; &amp; &lt;!here&gt;"
RULES = rules("rules: [{name: sla, type: lead_sla, deadline: 5m}]")


def test_event_text_reaches_slack_through_alertmanager_escaped(receiver, tmp_path):  # noqa: F811
    am = promstack.start_alertmanager(tmp_path / "am", port=free_port(), group_wait="1s",
                                      slack_webhook_url=f"{receiver.url}/slack/am")
    try:
        now = int(__import__("time").time() * 1000)
        inst = new_instance("sla", "lead_sla", {"lead_id": HOSTILE})
        inst.state, inst.episode, inst.firing_since = "firing", 1, now
        inst.info = {"owner": "@channel", "team": HOSTILE, "source": HOSTILE, "created_ms": now - 300_000}
        n = build(inst, Transition("firing", 0, now), RULES, roster(), app_id="am-escape", grafana_url="http://g")

        async def send() -> None:
            sink = AlertmanagerSink(am.url)
            try:
                await sink.send(n)
            finally:
                await sink.close()

        asyncio.run(send())
        [post] = wait_for(lambda: receiver.on("/slack/am"), 30, what="Alertmanager's Slack message")
    finally:
        am.stop()
    message = json.loads(post.body)
    [attachment] = message["attachments"]
    shown = {field: attachment[field] for field in ("title", "text", "fallback")}
    print("\n" + json.dumps(shown, indent=1))
    assert message["channel"] == "#sales-floor"  # a team that is not on the roster has no channel of its own
    for field, text in shown.items():
        assert "<" not in text and ">" not in text, (field, text)
    assert ESCAPED in shown["title"] and ESCAPED in shown["text"] and ESCAPED in shown["fallback"]
