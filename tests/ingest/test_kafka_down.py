"""Kafka down: the ingest service answers 503 with Retry-After at once, and once the broker is back the
client's retry gets 202 — every event the client was told to retry ends up on the topic."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from tests.ingest.conftest import running_ingest
from tests.ingest.helpers import read_topics, ts
from tests.private_broker import PrivateBroker

pytestmark = pytest.mark.integration


def _batch(first: int, count: int) -> bytes:
    return b"\n".join(orjson.dumps({"event_id": f"e{i}", "type": "lead.created", "occurred_at": ts(-60),
                                    "lead_id": f"L{i}"}) for i in range(first, first + count))


async def _outage(broker: PrivateBroker, go_down, come_back) -> None:
    """50 events accepted; Kafka goes down; 100 more refused with 503 + Retry-After; Kafka comes back; the
    client retries as told until accepted; all 150 are on the topic."""
    timeout = 2.0
    async with running_ingest(broker.settings.topic_prefix, broker.bootstrap, kpi_ingest_token=None,
                              kpi_ingest_produce_timeout_seconds=timeout) as ingest:
        async def post(body: bytes) -> tuple[int, dict, dict]:
            answer = await ingest.post("/ingest/events", body, token=None, content_type="application/x-ndjson")
            return answer.status, answer.doc, answer.headers

        status, doc, _ = await post(_batch(0, 50))
        assert status == 202 and doc["accepted"] == 50

        await asyncio.to_thread(go_down)
        t0 = time.monotonic()
        status, doc, headers = await post(_batch(50, 50))  # discovers the outage (produce timeout)
        assert status == 503 and doc["error"] == "kafka_unavailable", doc
        assert int(headers["Retry-After"]) >= 1
        assert time.monotonic() - t0 < timeout + 1.5
        t1 = time.monotonic()
        status, doc, headers = await post(_batch(100, 50))  # a known outage: refused at once
        assert status == 503 and "Retry-After" in headers and time.monotonic() - t1 < 0.5
        async with ingest.session.get(ingest.url("/healthz")) as resp:
            assert resp.status == 503
        async with ingest.session.get(ingest.url("/metrics")) as resp:
            metrics = await resp.text()
        assert "kpi_ingest_kafka_up 0.0" in metrics
        # the batch caught by the outage stays in flight (bounded) until Kafka takes it or it expires
        assert ingest.service.producer.in_flight <= 50

        await asyncio.to_thread(come_back)
        pending = [_batch(50, 50), _batch(100, 50)]
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            status, doc, headers = await post(pending[0])
            if status == 202:
                assert doc["accepted"] == 50
                pending.pop(0)
            else:
                assert status == 503, doc
                await asyncio.sleep(int(headers["Retry-After"]))
        assert not pending, "Kafka came back but the retries were still refused"

    records = await read_topics(broker.bootstrap, [broker.settings.topic_prefix + "leads"], 150, timeout=30)
    ids = [orjson.loads(r.value)["event_id"] for r in records]
    assert set(ids) == {f"e{i}" for i in range(150)}  # nothing lost
    assert len(ids) - len(set(ids)) <= 50  # at most the batch caught in flight went twice (harmless: same ids)
    for r in records:
        assert r.key.decode() == "L" + orjson.loads(r.value)["event_id"][1:]


async def test_hung_broker_503_then_nothing_lost(private_broker):
    """The broker stops answering (SIGSTOP) for a few seconds, then resumes (SIGCONT)."""
    await _outage(private_broker, private_broker.freeze, private_broker.thaw)


@pytest.mark.slow
async def test_crashed_broker_503_then_nothing_lost_after_restart(private_broker):
    """The broker is killed (SIGKILL) and restarted on its data; KRaft makes the restart wait for the old
    broker session to expire (~10 s), hence `slow`."""
    await _outage(private_broker, private_broker.kill, private_broker.start)


async def test_answers_never_tell_where_the_broker_is(stack):
    """/healthz is open to anyone: it says Kafka is down, not where Kafka is (nor does a 503 to a client)."""
    from aiohttp.test_utils import TestClient, TestServer

    from stream.ingest.service import ingest_service
    from tests.conftest import free_port
    from tests.ingest.helpers import settings_for

    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    async with ingest_service(settings_for(bootstrap, "unreachable.", kpi_ingest_token=None)) as service:
        async with TestClient(TestServer(service.app, host="127.0.0.1")) as client:
            await asyncio.sleep(1.5)  # the first connection attempt has failed by now
            health = await client.get("/healthz")
            posted = await client.post("/ingest/events", data=_batch(0, 1))
            bodies = {"healthz": await health.text(), "ingest": await posted.text()}
    assert (health.status, posted.status) == (503, 503), bodies
    assert all(bootstrap not in body and "127.0.0.1" not in body for body in bodies.values()), bodies
