"""The worker on the real broker: every event type is applied and counted, every kind of bad input is
dead-lettered with its reason, and the worker stays healthy."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.integration


def _ts(delta_s: float = 0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=delta_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ev(eid: str, etype: str, **fields) -> dict:
    return {"event_id": eid, "type": etype, "occurred_at": fields.pop("at", _ts(-60)), **fields}


VALID = [
    ("leads", "L1", _ev("v1", "lead.created", lead_id="L1", source="web")),
    ("leads", "L1", _ev("v2", "lead.assigned", lead_id="L1", rep_id="hana")),
    ("leads", "L1", _ev("v3", "lead.touched", lead_id="L1", rep_id="hana", channel="email")),
    ("leads", "L1", _ev("v4", "meeting.booked", lead_id="L1", rep_id="hana")),
    ("leads", "L1", _ev("v5", "lead.qualified", lead_id="L1", rep_id="hana")),
    ("leads", "L2", _ev("v6", "lead.created", lead_id="L2", rep_id="hugo", team="hunters")),
    ("leads", "L2", _ev("v7", "lead.disqualified", lead_id="L2", reason="spam")),
    ("calls", "L1", _ev("v8", "call.logged", call_id="C1", lead_id="L1", rep_id="hana", direction="outbound", outcome="connected", duration_s=95.5)),
    ("calls", "C2", _ev("v9", "call.logged", call_id="C2", rep_id="hugo", direction="inbound", outcome="voicemail", duration_s=0)),
    ("deals", "D1", _ev("v10", "deal.created", deal_id="D1", rep_id="hana", amount="1200.50", stage="prospecting", lead_id="L1")),
    ("deals", "D1", _ev("v11", "deal.stage_changed", deal_id="D1", to_stage="proposal", amount=1300)),
    ("deals", "D1", _ev("v12", "deal.won", deal_id="D1")),
    ("deals", "D2", _ev("v13", "deal.created", deal_id="D2", rep_id="hugo", amount=500, stage="qualification", currency="USD")),
    ("deals", "D2", _ev("v14", "deal.lost", deal_id="D2", reason="budget")),
]

# (topic, key, raw bytes, expected reason)
INVALID = [
    ("leads", "X1", b"{not json", "not_json"),
    ("leads", "X2", b"\xff\xfe\x00garbage", "not_json"),
    ("leads", "X3", b"[1, 2, 3]", "not_object"),
    ("leads", "X4", json.dumps(_ev("b4", "lead.exploded", lead_id="X4")).encode(), "unknown_type"),
    ("leads", "X5", json.dumps(_ev("b5", "lead.touched", lead_id="X5", channel="email")).encode(), "missing_field"),
    ("leads", "X6", json.dumps(_ev("b6", "lead.touched", lead_id="X6", rep_id=42, channel="email")).encode(), "invalid_field"),
    ("leads", "X7", json.dumps(_ev("b7", "lead.created", lead_id="X7", at="yesterday")).encode(), "bad_timestamp"),
    ("leads", "X8", json.dumps(_ev("b8", "lead.created", lead_id="X8", at=_ts(3600))).encode(), "future"),
    ("deals", "X9", json.dumps(_ev("b9", "deal.created", deal_id="X9", rep_id="r", amount=-1, stage="prospecting")).encode(), "negative_amount"),
    ("deals", "X10", json.dumps(_ev("b10", "deal.created", deal_id="X10", rep_id="r", amount=5, stage="prospecting", currency="EUR")).encode(), "wrong_currency"),
    ("deals", "X11", json.dumps(_ev("b11", "deal.created", deal_id="X11", rep_id="r", amount=5, stage="won")).encode(), "unknown_stage"),
    ("deals", "X12", json.dumps(_ev("b12", "lead.created", lead_id="X12")).encode(), "wrong_topic"),
    ("deals", "X13", json.dumps(_ev("b13", "deal.won", deal_id="X13", amount="Infinity")).encode(), "invalid_amount"),
    ("leads", "X14", json.dumps(_ev("b14", "lead.created", lead_id="X14", source="x" * 10)).encode() + b" " * 70_000, "oversize"),
    ("leads", "X15", json.dumps(_ev("b15", "lead.created", lead_id="X15", at=_ts(-3 * 86400))).encode(), "too_late"),
]


def test_worker_applies_valid_and_deadletters_invalid(deployment):
    worker = deployment.start_worker()
    messages = [(t, k, json.dumps(e).encode()) for t, k, e in VALID]
    messages += [(t, k, raw) for t, k, raw, _ in INVALID]
    messages.append(VALID[7][:2] + (json.dumps(VALID[7][2]).encode(),))  # a redelivered call
    deployment.produce(messages)

    total = len(messages)
    wait_for(
        lambda: worker.counter("kpi_events_consumed_total") + worker.counter("kpi_events_duplicate_total")
        + worker.counter("kpi_events_deadlettered_total") >= total,
        timeout=60, what="all messages processed",
    )
    metrics = worker.metrics()
    for event_type in {e["type"] for _, _, e in VALID}:
        expected = sum(1 for _, _, e in VALID if e["type"] == event_type)
        assert f'type="{event_type}"}} {float(expected)}' in metrics, f"{event_type} not counted {expected}x"
    assert worker.counter("kpi_events_consumed_total") == len(VALID)
    assert worker.counter("kpi_events_duplicate_total") == 1
    for reason in {r for *_, r in INVALID}:
        expected = sum(1 for *_, r in INVALID if r == reason)
        assert f'kpi_events_deadlettered_total{{reason="{reason}"}} {float(expected)}' in metrics

    records = deployment.consume_deadletters(len(INVALID))
    assert len(records) == len(INVALID)
    by_sha = {r["sha256"]: r for r in records}
    for topic, key, raw, reason in INVALID:
        record = by_sha[hashlib.sha256(raw).hexdigest()]
        assert record["reason"] == reason, (key, record)
        assert record["topic"] == deployment.prefix + topic
        assert record["size"] == len(raw)
        assert record["detail"]
        assert isinstance(record["partition"], int) and isinstance(record["offset"], int)
        if record["payload_encoding"] == "utf-8":
            assert raw.startswith(record["payload"].encode()[:100])
        assert record["payload_truncated"] == (len(raw) > 64 * 1024)

    status, body = worker.health()
    assert status == 200 and body["state"] == "consuming"
    doc = worker.kpis("1h")
    assert doc["overall"]["leads_created"] == 2
    assert doc["overall"]["calls"] == 2
    assert doc["overall"]["talk_seconds_total"] == 95.5
    assert doc["overall"]["deals_won"] == 1 and doc["overall"]["won_revenue"] == 1300.0
    assert doc["teams"]["hunters"]["deals_lost"] == 1  # hugo's team from the roster
