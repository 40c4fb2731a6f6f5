"""Replay: routing of lines (pure), reporting of bad lines, pacing, and one round trip through Kafka."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import orjson
import pytest

from stream.config import load_settings
from stream.events import EventValidator, event_key
from stream.local.replay import BadLine, parse_line, replay, route

TS = "2026-11-23T09:15:02.123Z"
GOOD = [
    {"event_id": "e1", "type": "lead.created", "occurred_at": TS, "lead_id": "L1", "source": "web_form"},
    {"event_id": "e2", "type": "lead.touched", "occurred_at": TS, "lead_id": "L1", "rep_id": "ana", "channel": "email"},
    {"event_id": "e3", "type": "call.logged", "occurred_at": TS, "call_id": "C1", "lead_id": "L1", "rep_id": "ana",
     "direction": "outbound", "outcome": "connected", "duration_s": 30},
    {"event_id": "e4", "type": "call.logged", "occurred_at": TS, "call_id": "C2", "rep_id": "ana",
     "direction": "inbound", "outcome": "busy", "duration_s": 0},
    {"event_id": "e5", "type": "deal.created", "occurred_at": TS, "deal_id": "D1", "lead_id": "L1", "rep_id": "ana",
     "amount": "1200.50", "stage": "prospecting"},
    {"event_id": "e6", "type": "deal.won", "occurred_at": TS, "deal_id": "D1"},
    {"event_id": "e7", "type": "meeting.booked", "occurred_at": TS, "lead_id": "L2", "rep_id": "ben"},
]
EXPECTED = [("leads", "L1"), ("leads", "L1"), ("calls", "L1"), ("calls", "C2"), ("deals", "D1"), ("deals", "D1"),
            ("leads", "L2")]


def test_route_matches_event_key():
    validator = EventValidator()
    for obj, expected in zip(GOOD, EXPECTED):
        assert route(obj) == expected
        event = validator.validate(orjson.dumps(obj))
        assert expected[1] == event_key(event)


def test_invalid_but_routable_events_are_routed():
    # The worker dead-letters these; replay must still deliver them.
    negative = {**GOOD[4], "amount": -5}
    assert route(negative) == ("deals", "D1")
    assert route({"type": "lead.touched", "lead_id": 123}) == ("leads", "123")
    assert route({"type": "call.logged", "lead_id": "", "call_id": "C9"}) == ("calls", "C9")


def test_spend_and_mqls_are_routed_to_their_topics():
    spend = {"event_id": "s1", "type": "spend.recorded", "occurred_at": "2026-11-20T00:00:00Z",
             "channel": "paid_search", "campaign": "bf", "amount": "120.00"}
    assert route(spend) == ("spend", "paid_search") == ("spend", event_key(EventValidator().validate(orjson.dumps(spend))))
    assert route({"type": "spend.recorded", "channel": "web", "amount": -1}) == ("spend", "web")  # dead-lettered later
    assert route({"type": "lead.marketing_qualified", "lead_id": "L7"}) == ("leads", "L7")
    with pytest.raises(BadLine, match="no usable key"):
        route({"type": "spend.recorded", "amount": 5})  # no channel: nothing to key it by


@pytest.mark.parametrize("line, reason", [
    (b"not json at all", "not JSON"),
    (b"\xff\xfe{}", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"lead_id": "L1"}', "no `type`"),
    (b'{"type": "lead.exploded", "lead_id": "L1"}', "unknown type"),
    (b'{"type": 5, "lead_id": "L1"}', "unknown type"),
    (b'{"type": "lead.created", "lead_id": ""}', "no usable key"),
    (b'{"type": "call.logged", "lead_id": null}', "no usable key"),
    (b'{"type": "deal.won", "lead_id": "L1"}', "no usable key"),
])
def test_unroutable_lines(line, reason):
    with pytest.raises(BadLine, match=reason):
        parse_line(line)


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, float]] = []

    async def send(self, topic, value=None, key=None):
        self.sent.append((topic, key, value, time.monotonic()))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def _settings(prefix="t."):
    return load_settings(kpi_topic_prefix=prefix)


async def test_replay_produces_in_order_and_reports_bad_lines(tmp_path):
    lines = [orjson.dumps(o) for o in GOOD[:3]]
    lines += [b"garbage", b"", orjson.dumps({**GOOD[4], "amount": -5}), b'{"type": "x"}']
    lines += [b"{broken"] * 12 + [orjson.dumps(GOOD[6])]
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\r\n")
    producer = FakeProducer()
    report = await replay(path, _settings(), producer=producer, echo=lambda _: None)
    assert [(t, k.decode()) for t, k, _, _ in producer.sent] == [
        ("t.leads", "L1"), ("t.leads", "L1"), ("t.calls", "L1"), ("t.deals", "D1"), ("t.leads", "L2")]
    assert producer.sent[3][2] == lines[5]  # bytes unchanged, negative amount and all
    assert report.lines == len(lines)
    assert report.produced == {"t.leads": 3, "t.calls": 1, "t.deals": 1}
    assert report.bad == 14
    assert [n for n, _ in report.bad_samples] == [4, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    assert "not JSON" in report.bad_samples[0][1]
    text = report.format()
    assert "line 4: not JSON" in text and "4 more bad lines" in text and "14 bad lines" in text


async def test_replay_speed_paces_by_event_time(tmp_path):
    events = [{**GOOD[0], "event_id": f"e{i}", "lead_id": f"L{i}", "occurred_at": f"2026-11-23T09:00:0{2 * i}Z"}
              for i in range(3)]  # 0 s, 2 s, 4 s of event time
    path = tmp_path / "paced.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events))
    producer = FakeProducer()
    await replay(path, _settings(), speed=20, producer=producer, echo=lambda _: None)
    times = [t for *_, t in producer.sent]
    assert 0.18 <= times[2] - times[0] < 0.6  # 4 s / 20
    assert 0.09 <= times[1] - times[0]


def _broker_up(host="127.0.0.1", port=9092) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


@pytest.mark.integration
@pytest.mark.timeout(120)
async def test_replay_round_trip_through_kafka(tmp_path):
    if not _broker_up():
        pytest.skip("no Kafka broker on 127.0.0.1:9092")
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    from stream.local.stack import ensure_topics

    bootstrap, prefix = "127.0.0.1:9092", f"test-replay-{uuid.uuid4().hex[:8]}."
    settings = load_settings(kpi_topic_prefix=prefix, kafka_bootstrap_servers=bootstrap)
    await ensure_topics(bootstrap, prefix, 2)
    path = tmp_path / "small.jsonl"
    path.write_bytes(b"\n".join([*(orjson.dumps(o) for o in GOOD), b"not json"]) + b"\n")
    topics = [prefix + t for t in ("leads", "calls", "deals")]
    try:
        report = await replay(path, settings, echo=lambda _: None)
        assert report.failed == 0 and report.bad == 1
        assert report.produced == {prefix + "leads": 3, prefix + "calls": 2, prefix + "deals": 2}
        consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        got = []
        try:
            deadline = time.monotonic() + 30
            while len(got) < len(GOOD) and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    got += [(r.topic[len(prefix):], r.key.decode(), orjson.loads(r.value)["event_id"]) for r in records]
        finally:
            await consumer.stop()
        expected = {(t, k, o["event_id"]) for (t, k), o in zip(EXPECTED, GOOD)}
        assert len(got) == len(GOOD) and set(got) == expected
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([prefix + t for t in ("leads", "calls", "deals", "deadletter")])
        finally:
            await admin.close()
