"""Sinks: Slack Block Kit structure and threading, Alertmanager payloads, webhook signatures, and the
queue in front of every sink (timeouts, retries with backoff, bounded, never blocking the caller)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import pytest
from slack_sdk.models.blocks import Block

from alerts.model import Transition, new_instance
from alerts.notification import Notification, build, slack_mention
from alerts.sinks.alertmanager import _iso, am_alert
from alerts.sinks.base import QueuedSink, Redactor, RetryPolicy, SinkError, new_stats
from alerts.sinks.slack import SlackBotSink, SlackWebhookSink, build_blocks, message
from alerts.sinks.webhook import SIGNATURE_HEADER, WebhookSink, payload
from alerts.state import MemoryAlertStore
from tests.alerts.helpers import roster, rules

SECRET_URL = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"
TOKEN = "xoxb-123-456-topsecret"
RULES = rules("""
rules:
  - name: sla
    type: lead_sla
    deadline: 5m
    escalation: [{after: 15m, notify: team_lead}, {after: 30m, notify: oncall, severity: critical}]
  - {name: ratio, type: kpi, kpi: lead_response_within_sla_ratio, scope: team, op: "<", threshold: 0.8, for: 5m}
""")
T0 = 1_764_000_000_000


def lead_notification(kind: str = "firing", step: int = 0, lead: str = "L-42") -> Notification:
    inst = new_instance("sla", "lead_sla", {"lead_id": lead})
    inst.state, inst.episode, inst.step, inst.firing_since = "firing", 1, step, T0 + 300_000
    inst.info = {"owner": "hugo", "team": "hunters", "source": "webinar", "created_ms": T0}
    if kind == "resolved":
        inst.state, inst.resolved_at, inst.info["resolution"] = "resolved", T0 + 420_000, "touched"
    at = {"firing": T0 + 300_000, "escalation": T0 + 900_000 * step, "resolved": T0 + 420_000}[kind]
    return build(inst, Transition(kind, step, at), RULES, roster(), app_id="kpi-test", grafana_url="http://grafana:3000")


def kpi_notification(kind: str = "firing") -> Notification:
    inst = new_instance("ratio", "kpi", {"team": "farmers"})
    inst.state, inst.episode, inst.firing_since, inst.value = "firing", 3, T0, 0.55
    inst.info = {"kpi": "lead_response_within_sla_ratio", "op": "<", "threshold": 0.8, "window": "1h", "team": "farmers"}
    return build(inst, Transition(kind, 0, T0), RULES, roster(), app_id="kpi-test", grafana_url="http://grafana:3000")


# --- content and routing ------------------------------------------------------------------------------
def test_lead_alert_mentions_the_owner_in_the_team_channel_then_escalates():
    first = lead_notification()
    assert first.channel == "#sales-hunters" and first.mentions == ["<@U0HUGO01>"] and first.target == "rep"
    assert first.key.endswith(":1:firing:0") and first.status == "firing"
    lead = lead_notification("escalation", step=1)
    assert lead.mentions == ["<@U0HANA01>"] and lead.target == "team_lead"
    oncall = lead_notification("escalation", step=2)
    assert oncall.mentions == ["@sales-ops-oncall"] and oncall.severity == "critical"
    resolved = lead_notification("resolved")
    assert resolved.status == "resolved" and resolved.mentions == [] and "touched" in resolved.title
    assert dict(first.facts)["Owner"] == "hugo" and dict(first.facts)["Source"] == "webinar"
    assert "var-team=hunters" in first.link and first.link.startswith("http://grafana:3000/d/")


def test_mentions():
    assert slack_mention("U123ABC") == "<@U123ABC>"
    assert slack_mention("S0ONCALL") == "<!subteam^S0ONCALL>"
    assert slack_mention("@here") == "<!here>"
    assert slack_mention("@sales-ops-oncall") == "@sales-ops-oncall"


# --- Slack ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [lead_notification(), lead_notification("escalation", 1), lead_notification("resolved"),
                               kpi_notification(), kpi_notification("resolved")])
def test_slack_payload_is_valid_block_kit(n):
    body = message(n)
    assert body["text"] and len(body["text"]) <= 3000
    blocks = body["blocks"]
    assert 1 <= len(blocks) <= 50
    assert [b["type"] for b in blocks] == ["header", "section", "context", "actions"]
    for raw in blocks:
        parsed = Block.parse(raw)  # slack_sdk's own models: unknown types or fields would not parse back
        assert parsed is not None and parsed.to_dict() == raw
    header, section, context, actions = blocks
    assert header["text"]["type"] == "plain_text" and len(header["text"]["text"]) <= 150
    assert section["text"]["type"] == "mrkdwn" and len(section["text"]["text"]) <= 3000
    assert 1 <= len(section["fields"]) <= 10 and all(len(f["text"]) <= 2000 for f in section["fields"])
    assert len(context["elements"]) <= 10
    button = actions["elements"][0]
    assert button["type"] == "button" and button["url"] == n.link and len(button["text"]["text"]) <= 75
    assert n.key in context["elements"][0]["text"]


def test_slack_text_is_escaped_and_long_titles_cut():
    n = lead_notification(lead="<script>&" + "x" * 300)
    blocks = build_blocks(n)
    assert "&lt;script&gt;&amp;" in blocks[1]["text"]["text"]
    assert len(blocks[0]["text"]["text"]) <= 150


# What anyone who can send an event controls: ids, sources, rep and team names.
HOSTILE = "<!channel> <https://evil.example/login|Open Grafana> & <@U0BOSS01> @here"


def _readable_texts(body: dict) -> dict[str, list[str]]:
    """Every piece of a Slack message a person reads, by how Slack renders it."""
    mrkdwn, plain = [body["text"]], []
    for block in body["blocks"]:
        for obj in [block.get("text")] + block.get("fields", []) + block.get("elements", []):
            if isinstance(obj, dict) and "type" in obj and obj["type"] in ("mrkdwn", "plain_text"):
                (mrkdwn if obj["type"] == "mrkdwn" else plain).append(obj["text"])
    return {"mrkdwn": mrkdwn, "plain": plain}


def test_event_text_can_neither_mention_nor_link_in_slack():
    inst = new_instance("sla", "lead_sla", {"lead_id": HOSTILE})
    inst.state, inst.episode, inst.firing_since = "firing", 1, T0 + 300_000
    inst.info = {"owner": "@channel", "team": "hunters", "source": HOSTILE, "created_ms": T0}
    n = build(inst, Transition("firing", 0, T0 + 300_000), RULES, roster(), app_id="kpi-test", grafana_url="http://g")
    assert n.mentions == []  # "@channel" is no rep of the roster: nobody to mention, least of all a channel
    texts = _readable_texts(message(n))
    escaped = "&lt;!channel&gt; &lt;https://evil.example/login|Open Grafana&gt; &amp; &lt;@U0BOSS01&gt; @here"
    assert texts["mrkdwn"][0] == f"[FIRING] Lead {escaped} not touched within 5m"  # the notification's own line
    sentence = texts["mrkdwn"][1]
    assert sentence == f":red_circle: Lead {escaped} (source {escaped}) has waited 5m for a first touch."
    for text in texts["mrkdwn"]:
        assert "<" not in text and ">" not in text, text  # no markup left: no mention, no link
    fields = dict(f.split("\n", 1) for f in texts["mrkdwn"][2:-1])
    assert fields["*Owner*"] == "@channel" and fields["*Source*"] == escaped
    assert texts["plain"] == [f"FIRING: Lead {HOSTILE} not touched within 5m"]  # plain_text: shown, never parsed


def test_only_roster_slack_ids_are_mentioned():
    hugo = lead_notification()  # hugo is on the roster with his Slack id
    assert hugo.mentions == ["<@U0HUGO01>"]
    body = message(hugo)
    assert body["text"] == "[FIRING] Lead L-42 not touched within 5m <@U0HUGO01>"
    assert body["blocks"][1]["text"]["text"] == (":red_circle: <@U0HUGO01> Lead L-42 (source webinar) has waited 5m "
                                                 "for a first touch.")
    for owner in ("zed", "U0HUGO01", "<!here>", "@channel", "S0ONCALL"):  # not rep ids of the roster
        inst = new_instance("sla", "lead_sla", {"lead_id": "L-1"})
        inst.state, inst.episode, inst.firing_since = "firing", 1, T0
        inst.info = {"owner": owner, "team": "hunters", "created_ms": T0}
        n = build(inst, Transition("firing", 0, T0), RULES, roster(), app_id="a", grafana_url="http://g")
        assert n.mentions == [], owner


def test_webhook_and_alertmanager_carry_event_text_as_data():
    inst = new_instance("sla", "lead_sla", {"lead_id": HOSTILE})
    inst.state, inst.episode, inst.firing_since = "firing", 1, T0
    inst.info = {"owner": "@channel", "team": HOSTILE, "created_ms": T0}
    n = build(inst, Transition("firing", 0, T0), RULES, roster(), app_id="a", grafana_url="http://g")
    doc = payload(n, sent_ms=T0)
    assert doc["mentions"] == [] and doc["labels"]["lead_id"] == HOSTILE and doc["owner"] == "@channel"
    assert doc["title"] == f"Lead {HOSTILE} not touched within 5m"  # plain text, as the event said it
    alert = am_alert(n, now_ms=T0)
    assert alert["labels"]["lead_id"] == HOSTILE and alert["labels"]["team"] == HOSTILE
    assert "mentions" not in alert["annotations"] and alert["annotations"]["owner"] == "@channel"


def test_repeat_is_said():
    n = lead_notification()
    n.repeat = True
    assert "may repeat" in message(n)["blocks"][1]["text"]["text"]


async def test_slack_webhook_sink_posts_blocks_without_secrets(receiver):
    url = f"{receiver.url}/slack/webhook"
    sink = SlackWebhookSink(url)
    try:
        await sink.send(lead_notification())
        await sink.send(lead_notification("resolved"))
    finally:
        await sink.close()
    posts = receiver.on("/slack/webhook")
    assert len(posts) == 2
    for post in posts:
        doc = post.json()
        assert [b["type"] for b in doc["blocks"]] == ["header", "section", "context", "actions"]
        assert url not in post.body.decode() and TOKEN not in post.body.decode()
    firing, resolved = (_readable_texts(p.json()) for p in posts)
    assert firing["plain"] == ["FIRING: Lead L-42 not touched within 5m"]
    assert firing["mrkdwn"][:2] == ["[FIRING] Lead L-42 not touched within 5m <@U0HUGO01>",
                                    ":red_circle: <@U0HUGO01> Lead L-42 (source webinar) has waited 5m for a first touch."]
    assert "*Owner*\nhugo" in firing["mrkdwn"] and "*Team*\nhunters" in firing["mrkdwn"]
    assert resolved["plain"] == ["RESOLVED: Resolved: lead L-42 touched after 7m"]
    assert resolved["mrkdwn"][:2] == ["[RESOLVED] Resolved: lead L-42 touched after 7m",
                                      ":large_green_circle: Lead L-42 was touched; it waited 7m (SLA 5m)."]


async def test_slack_bot_threads_escalations_and_edits_the_resolve_in_place(receiver):
    refs = MemoryAlertStore()
    sink = SlackBotSink(TOKEN, "#alerts-default", refs, api_url=f"{receiver.url}/slack/api/")
    try:
        await sink.send(lead_notification())
        await sink.send(lead_notification("escalation", 1))
        await sink.send(lead_notification("resolved"))
        await sink.send(kpi_notification())  # team channel of farmers
    finally:
        await sink.close()
    posts = receiver.on("/slack/api/chat.postMessage")
    updates = receiver.on("/slack/api/chat.update")
    assert [p.json()["channel"] for p in posts] == ["#sales-hunters", "#sales-hunters", "#sales-farmers"]
    first_ts = (await refs.get_meta(lead_notification().fingerprint, 1))["ts"]
    assert "thread_ts" not in posts[0].json() and posts[1].json()["thread_ts"] == first_ts
    assert len(updates) == 1 and updates[0].json()["ts"] == first_ts
    assert updates[0].json()["blocks"][0]["text"]["text"].startswith("RESOLVED")
    assert posts[0].headers["Authorization"] == f"Bearer {TOKEN}"
    for request in posts + updates:
        assert TOKEN not in request.body.decode()


async def test_slack_api_errors_are_classified(receiver):
    sink = SlackBotSink(TOKEN, None, MemoryAlertStore(), api_url=f"{receiver.url}/slack/api/")
    n = kpi_notification()
    n.channel = None
    with pytest.raises(SinkError) as exc:
        await sink.send(n)
    assert exc.value.permanent
    await sink.close()


# --- Alertmanager and webhook --------------------------------------------------------------------------
def test_alertmanager_payload():
    now = T0 + 310_000
    firing = am_alert(lead_notification(), now_ms=now)
    assert firing["labels"]["alertname"] == "sla" and firing["labels"]["lead_id"] == "L-42"
    assert firing["labels"]["team"] == "hunters" and firing["labels"]["slack_channel"] == "#sales-hunters"
    assert "fingerprint" not in firing["labels"] and firing["annotations"]["fingerprint"]
    assert firing["startsAt"].endswith("Z") and firing["endsAt"] > firing["startsAt"]
    assert firing["generatorURL"].startswith("http://grafana:3000/")
    resolved = am_alert(lead_notification("resolved"), now_ms=now + 200_000)
    assert resolved["startsAt"] == _iso(T0 + 300_000) and resolved["endsAt"] == _iso(T0 + 420_000)  # endsAt in the past: resolved
    assert resolved["labels"] == firing["labels"] | {"severity": resolved["labels"]["severity"]}


async def test_webhook_is_signed_and_carries_the_idempotency_key(receiver):
    sink = WebhookSink(f"{receiver.url}/webhook", "s3cret")
    n = lead_notification()
    try:
        await sink.send(n)
    finally:
        await sink.close()
    (request,) = receiver.on("/webhook")
    expected = "sha256=" + hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE_HEADER] == expected
    assert request.headers["X-KPI-Idempotency-Key"] == n.key
    doc = request.json()
    assert doc["idempotency_key"] == n.key and doc["fingerprint"] == n.fingerprint and doc["repeat"] is False
    assert doc["status"] == "firing" and doc["labels"]["lead_id"] == "L-42"
    assert set(payload(n)) == set(doc)


# --- the queue ------------------------------------------------------------------------------------------
class FlakySink:
    name = "flaky"
    supports_refresh = False

    def __init__(self, failures: int = 0, hang: bool = False, permanent: bool = False) -> None:
        self.failures, self.hang, self.permanent = failures, hang, permanent
        self.calls: list[tuple[str, float]] = []

    async def send(self, n: Notification) -> None:
        self.calls.append((n.key, time.monotonic()))
        if self.hang:
            await asyncio.sleep(3600)
        if self.failures > 0:
            self.failures -= 1
            raise SinkError(f"HTTP 500 from {SECRET_URL}", permanent=self.permanent)

    async def close(self) -> None:
        pass


FAST = RetryPolicy(attempts=4, timeout=0.2, backoff=0.05, max_backoff=0.2)


async def test_retries_with_backoff_then_delivers():
    sink, stats, done = FlakySink(failures=2), new_stats(), []
    queued = QueuedSink(sink, stats=stats, redact=Redactor([SECRET_URL]), on_done=lambda s, n, ok: done.append(ok), policy=FAST)
    queued.start()
    queued.offer(lead_notification())
    await asyncio.wait_for(queued.queue.join(), 5)
    assert done == [True] and stats["sent"]["flaky"] == 1 and stats["failed"]["flaky"] == 0
    gaps = [b[1] - a[1] for a, b in zip(sink.calls, sink.calls[1:])]
    assert len(sink.calls) == 3 and gaps[1] > gaps[0] * 1.2  # exponential backoff (with jitter)
    await queued.stop()


async def test_permanent_errors_are_not_retried_and_secrets_are_redacted(caplog):
    sink, stats = FlakySink(failures=5, permanent=True), new_stats()
    queued = QueuedSink(sink, stats=stats, redact=Redactor([SECRET_URL]), policy=FAST)
    assert await queued.deliver(lead_notification()) is False
    assert len(sink.calls) == 1 and stats["failed"]["flaky"] == 1
    assert "HTTP 500" in caplog.text and SECRET_URL not in caplog.text and "XXXXsecretXXXX" not in caplog.text


async def test_a_hanging_sink_times_out_and_the_queue_drops_the_oldest():
    sink, stats, done = FlakySink(hang=True), new_stats(), []
    queued = QueuedSink(sink, stats=stats, redact=Redactor(), maxsize=3, on_done=lambda s, n, ok: done.append((n.key, ok)),
                        policy=RetryPolicy(attempts=1, timeout=0.1))
    queued.start()
    started = time.monotonic()
    keys = [lead_notification(lead=f"L{i}").key for i in range(10)]
    for i in range(10):
        queued.offer(lead_notification(lead=f"L{i}"))  # never blocks, whatever the sink does
    assert time.monotonic() - started < 0.05
    assert stats["dropped"]["flaky"] >= 6
    await asyncio.sleep(0.5)
    assert (keys[0], False) in done  # timed out
    assert stats["failed"]["flaky"] >= 1
    undelivered = await queued.stop(drain_timeout=0.1)
    assert all(n.key in keys for n in undelivered)


def test_redactor():
    redact = Redactor([TOKEN, "hunter2"])
    text = redact(f"failed {TOKEN} at https://hooks.slack.com/services/T1/B2/abc and xoxp-999-zzz pw=hunter2")
    assert TOKEN not in text and "abc" not in text and "xoxp-999" not in text and "hunter2" not in text
