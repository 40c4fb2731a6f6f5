"""A kill -9 while the changelog lags behind processing loses nothing, on the same machine or a new one.

A worker's entity writes reach the changelog through its producer, while its consumer reads and commits
on other connections. When the broker takes records slowly (a busy broker, a slow link; here a client
quota on the worker's producer), processing runs ahead of the changelog. What the tests check:

- no offset is committed before the changelog records of the events it covers are acknowledged: a
  commit that ran ahead would lose those events for good on a kill -9 (never redelivered, never in the
  changelog);
- the local RocksDB store, which keeps writes whose changelog records a kill -9 lost, does not swallow
  the redelivered events as duplicates: the changelog must get them, or a worker on another machine
  (an empty disk, a failover) recovers without them.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from stream.kpi.facts import Entity
from tests.conftest import PARTITIONS, wait_for
from tests.integration.checks import assert_workers_match, oracle_answers
from tests.kafka_quota import set_producer_byte_rate
from tests.oracle.batch_kpis import kafka_partition
from tests.oracle.messy_log import roster_yaml

pytestmark = pytest.mark.integration

LEAD = "L-busy"
CALLS = 250
START = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
# Slow enough that the changelog holds a small share of the ~1.5 MB of entity writes when the kill comes.
PRODUCER_BYTES_PER_S = 10_000


def _stamp(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def busy_lead_log() -> list[tuple[str, str, dict]]:
    """One lead and CALLS calls on it: each call rewrites the whole, growing, lead entity to the changelog."""
    log = [("leads", LEAD, {"event_id": "created", "type": "lead.created", "occurred_at": _stamp(START),
                            "lead_id": LEAD, "rep_id": "ana"})]
    for i in range(CALLS):
        log.append(("calls", LEAD, {"event_id": f"call-{i:04d}", "type": "call.logged", "rep_id": "ana",
                                    "occurred_at": _stamp(START + timedelta(seconds=30 + i)), "call_id": f"C{i}",
                                    "lead_id": LEAD, "direction": "outbound", "outcome": "connected",
                                    "duration_s": 10}))
    return log


async def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def entity_records(bootstrap: str, app_id: str) -> list[bytes]:
    """Every value the busy lead's entity has had in the changelog, oldest first."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tp = TopicPartition(f"{app_id}-leads_entities-changelog", kafka_partition(LEAD, PARTITIONS))
    # "earliest" rather than a seek: a seek to the beginning can lose the race with the default reset.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    values = []
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                if record.key == f"L:{LEAD}".encode():
                    values.append(record.value)
    finally:
        await consumer.stop()
    return values


def calls_in(value: bytes | None) -> int:
    return 0 if value is None else sum(1 for f in msgspec.msgpack.decode(value, type=Entity).facts
                                       if f.kind == "call.logged")


def calls_in_changelog(dep) -> int:
    """Calls in the latest changelog value of the busy lead: what a worker on a new machine would start from."""
    values = asyncio.run(entity_records(dep.bootstrap, dep.app_id))
    return calls_in(values[-1] if values else None)


@pytest.fixture
def roster_file(tmp_path):
    path = tmp_path / "roster.yaml"
    path.write_text(roster_yaml())
    return path


def test_kill_9_while_the_changelog_lags_loses_nothing_on_the_same_or_a_new_machine(make_deployment, roster_file):
    log = busy_lead_log()
    dep = make_deployment(KPI_CLOCK="event", KPI_ROSTER=str(roster_file), KPI_STORE="rocksdb://")
    calls_tp = (dep.prefix + "calls", kafka_partition(LEAD, PARTITIONS))
    set_producer_byte_rate(dep.bootstrap, dep.app_id, PRODUCER_BYTES_PER_S)
    try:
        worker = dep.start_worker()
        dep.produce([(topic, key, json.dumps(doc).encode()) for topic, key, doc in log])
        wait_for(lambda: worker.counter("kpi_events_consumed_total") == len(log), 60, interval=0.05,
                 what="every event applied")
        committed = asyncio.run(committed_offsets(dep.bootstrap, dep.app_id)).get(calls_tp, 0)
        durable = calls_in_changelog(dep)
        worker.kill()
    finally:
        set_producer_byte_rate(dep.bootstrap, dep.app_id, None)
    assert durable < CALLS, "the quota did not hold the changelog back: this test would prove nothing"
    assert committed <= durable, f"calls committed ({committed}) ahead of the changelog ({durable})"

    # The same machine: RocksDB kept every write, the changelog a few; the rest comes back as duplicates.
    expected = oracle_answers(log, roster_file, windows=("all",))
    restarted = dep.start_worker(port=worker.port)
    assert_workers_match([restarted], expected, timeout=60)
    wait_for(lambda: asyncio.run(committed_offsets(dep.bootstrap, dep.app_id)).get(calls_tp) == CALLS, 60,
             what="every redelivered call committed")
    restarted.kill()
    # The restarted worker rewrote the entity, every call in it, to the changelog. Not necessarily as
    # the last value: the killed worker's last produce requests were in flight, and a broker that had
    # muted its throttled connection may append them after the successor's writes (seen in 1 of ~10
    # runs under load). A new machine must recover from either order; append such an older value now.
    values = asyncio.run(entity_records(dep.bootstrap, dep.app_id))
    assert max(calls_in(v) for v in values) == CALLS
    stale = next(v for v in values if 0 < calls_in(v) < CALLS)
    changelog = f"{dep.app_id}-leads_entities-changelog"
    asyncio.run(_produce_to_partition(dep.bootstrap, changelog, kafka_partition(LEAD, PARTITIONS),
                                      f"L:{LEAD}".encode(), stale))
    assert calls_in_changelog(dep) < CALLS

    fresh = dep.start_worker()  # a new machine: an empty disk, the changelog alone
    assert_workers_match([fresh], expected, timeout=60)


async def _produce_to_partition(bootstrap: str, topic: str, partition: int, key: bytes, value: bytes) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()
