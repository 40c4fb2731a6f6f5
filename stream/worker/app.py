"""The Faust application: agents that validate and apply events, the entity tables, the web views.

``create_app(settings)`` builds everything; nothing is created at import time. Three groups are
consumed: ``leads`` (the leads and calls topics, co-partitioned by lead_id), ``deals`` and ``customers``
(the subscriptions topic, keyed by account_id, and the forecasts topic, keyed by rep_id: one agent and
one table for both, which need no co-partitioning: their entities never meet). Each group
has an entity table (changelogged: it survives a crash). The KPI aggregates are an in-memory view of
those tables, rebuilt whenever Faust finishes recovering them after a rebalance (see stream.kpi.store).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

import faust
from faust.streams import _current_event  # the context variable Faust's own stream iteration sets
from prometheus_client import CollectorRegistry

from alerts.service import attach_alerts
from stream.config import Settings
from stream.deadletter import deadletter_record
from stream.events import EventValidator, InvalidEvent, epoch_ms
from stream.kafka_security import aiokafka_security, faust_credentials
from stream.kpi.engine import TOPICS_OF_GROUP, KpiEngine, engine_config
from stream.roster import watch_roster
from stream.worker.context import WorkerContext
from stream.worker.durability import (
    AckWhenDurable,
    ChangelogTable,
    count_only_worker_acks,
    hold_streams_until_recovery_completes,
    rewind_partitions_without_commit,
)
from stream.worker.health import BrokerProbe, check_progress
from stream.worker.metrics import register_metrics
from stream.worker.stats import PipelineStats
from stream.worker.web import register_views
from stream.worker.web_access import FAUST_WEB_VIEWS_OFF, access_middleware, check_web_exposure

log = logging.getLogger("kpi_monitor.worker")

TOPIC_SUFFIXES = ("leads", "calls", "deals", "spend", "subscriptions", "forecasts")
# Per-event Faust overhead shrinks when the agent takes events in batches (bench/RESULTS.md); a batch
# waits at most BATCH_WITHIN_S for more events, which bounds the latency it adds.
BATCH_MAX = 500
BATCH_WITHIN_S = 0.02
EXPIRE_INTERVAL_S = 30.0
# RocksDB (one database per table partition: 8 with the default 4 partitions). Faust's defaults give
# each 3 x 64 MiB memtables and a 2 GiB block cache: up to 1.5 GiB of memtables alone, and a resident
# size that creeps up for as long as they fill (bench/RESULTS.md, memory). The changelog is what
# makes the tables durable, so small memtables cost only more frequent background flushes; the block
# cache only saves re-reads that the OS page cache serves too.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 8 * 2**20,
    "max_write_buffer_number": 2,
    "block_cache_size": 16 * 2**20,
}


def create_app(settings: Settings) -> WorkerContext:
    check_web_exposure(settings)
    servers = [f"kafka://{s.strip()}" for s in settings.kafka_bootstrap_servers.split(",") if s.strip()]
    # One data directory per worker: RocksDB takes a lock on it, and several workers may share a host.
    datadir = settings.kpi_data_dir / f"{settings.kpi_app_id}-{settings.kpi_web_port}"
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.kpi_app_id,
        broker=servers,
        broker_credentials=faust_credentials(settings),
        # The broker sees the deployment by name (logs, quotas), not as every Faust app's "faust-<version>".
        broker_client_id=settings.kpi_app_id,
        store=settings.kpi_store,
        datadir=str(datadir),
        web_host=settings.kpi_web_host,
        web_bind=settings.kpi_web_host,
        web_port=settings.kpi_web_port,
        canonical_url=settings.web_url,
        topic_partitions=settings.kpi_partitions,
        topic_replication_factor=1,
        # Every worker rebuilds its aggregates from its own active tables; standbys would double the
        # changelog traffic on a 2-core machine for a faster failover we do not need.
        table_standby_replicas=0,
        producer_acks=-1,
        # Every event writes its entity to the changelog. Sent one by one (Faust's defaults: no linger,
        # 16 KiB batches) that is one produce request, and one loopback socket write, per event: the
        # largest single cost of the worker (bench/RESULTS.md). Batching for up to 20 ms only delays
        # the changelog copy: the KPIs are updated in memory at once, and offsets are committed only
        # after the changelog records they depend on were acknowledged.
        producer_linger=0.02,
        producer_max_batch_size=512 * 1024,
        # A killed worker's partitions move to the survivors after this long (Faust's default is 60 s).
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        # A member killed during a rebalance holds it up this long (Faust's default is 60 s); the live
        # members only need to commit and flush in that time.
        broker_rebalance_timeout=20.0,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        # Entity values are msgpack we encode ourselves; Faust must store them as they are.
        table_key_serializer="raw",
        table_value_serializer="raw",
        autodiscover=False,
        # Entity writes hand their changelog futures to the agent, which acks events only once those are
        # acknowledged (stream.worker.durability).
        Table=ChangelogTable,
        web_enabled=True,
        web_in_thread=False,
        # Only our four paths, behind KPI_WEB_TOKEN when set (stream.worker.web_access): none of Faust's views.
        **FAUST_WEB_VIEWS_OFF,
        web_application_options={"middlewares": [access_middleware(settings)]},
    )
    count_only_worker_acks(app.consumer)
    engine = KpiEngine(engine_config(settings))
    ctx = WorkerContext(
        settings=settings,
        app=app,
        engine=engine,
        validator=EventValidator(
            currency=settings.kpi_currency,
            stages=settings.kpi_stages,
            max_bytes=settings.kpi_max_event_bytes,
            future_tolerance_s=settings.kpi_future_tolerance_seconds,
        ),
        roster=watch_roster(settings.kpi_roster),
        stats=PipelineStats(),
        registry=CollectorRegistry(),
        suffix_of_topic={settings.topic(s): s for s in TOPIC_SUFFIXES},
    )
    ctx.deadletter_topic = app.topic(settings.topic("deadletter"), key_serializer="raw", value_serializer="raw")
    _wire_group(ctx, "leads", [settings.topic("leads"), settings.topic("calls")])
    _wire_group(ctx, "deals", [settings.topic("deals")])
    _wire_group(ctx, "spend", [settings.topic("spend")])
    _wire_group(ctx, "customers", [settings.topic("subscriptions"), settings.topic("forecasts")])
    _forget_revoked_partitions(ctx)
    _wire_timers(ctx)
    register_views(ctx)
    register_metrics(ctx.registry, ctx)
    attach_alerts(ctx)
    return ctx


def _wire_group(ctx: WorkerContext, group: str, topic_names: list[str]) -> None:
    app = ctx.app
    topic = app.topic(*topic_names, key_serializer="raw", value_serializer="raw")
    table = app.Table(
        f"{group}_entities",
        default=None,
        partitions=ctx.settings.kpi_partitions,
        key_type=bytes,
        value_type=bytes,
        options=dict(ROCKSDB_OPTIONS),  # the store pops keys from it: a copy per table
    )
    ctx.tables[group] = table
    entities = BytesKeyTable(table)
    ctx.built[group] = set()
    source_topics = set(topic_names)

    @table.on_recover
    async def rebuild_aggregates() -> None:
        # Called after Faust recovered this table's changelog for the new assignment. The aggregates
        # are derived from the table, so they are recomputed here rather than recovered separately.
        hold_streams_until_recovery_completes(app)  # before Faust resumes the source partitions
        assigned = [tp for tp in app.assignor.assigned_actives() if tp.topic in source_topics]
        rewound = await rewind_partitions_without_commit(app.consumer, assigned)
        if rewound:
            log.info("%s: %s have no committed offset: reading them from the start", group,
                     ", ".join(sorted(f"{tp.topic}/{tp.partition}" for tp in rewound)))
        active = {tp.partition for tp in assigned}
        revoked = ctx.built[group] - active
        ctx.engine.drop(group, revoked)
        fresh = active - ctx.built[group]
        if fresh:
            started = time.monotonic()
            count = ctx.engine.rebuild(group, fresh, _table_items(table), int(time.time() * 1000), entities)
            log.info(
                "%s: rebuilt aggregates of partitions %s from %d entities in %.2fs (%d archived rows skipped so far)",
                group, sorted(fresh), count, time.monotonic() - started, ctx.engine.archived_rows_skipped,
            )
        ctx.built[group] = active
        ctx.ready_since = time.time()

    def apply(event: Any, wall_ms: int) -> tuple[str, str] | None:
        """Apply one message; (reason, detail) when it must be dead-lettered instead."""
        message = event.message
        suffix = ctx.suffix_of_topic.get(message.topic, message.topic)
        try:
            parsed = ctx.validator.validate(_raw(event), suffix, wall_ms=wall_ms)
            if ctx.engine.apply(entities, suffix, message.partition, parsed, wall_ms):
                ctx.stats.applied(suffix, parsed.type, epoch_ms(parsed.occurred_at))
            else:
                ctx.stats.duplicate(suffix)
            return None
        except InvalidEvent as exc:
            log.debug("dead-lettered %s/%d@%d: %s", message.topic, message.partition, message.offset, exc)
            return exc.reason, exc.detail
        except Exception:  # never let one message stop the worker
            log.exception("failed to apply %s/%d@%d; dead-lettering it", message.topic, message.partition, message.offset)
            return "internal_error", "the worker failed to apply this event; see its log"

    async def process(stream: faust.StreamT) -> None:
        # Batches, acked by us (stream.worker.durability): an event's offset becomes committable only once every
        # changelog record written while applying its batch is acknowledged by the broker. A crash before
        # that redelivers the batch and the entities' event_ids skip what was applied already:
        # at-least-once with idempotent application.
        acks = AckWhenDurable(stream.ack)
        async for events in stream.noack_take(BATCH_MAX, within=BATCH_WITHIN_S):
            wall_ms = int(time.time() * 1000)
            for event in events:
                # Table reads and writes go to the partition of Faust's "current event", which in a
                # batch is the last event taken: point it at the event being applied.
                _current_event.set(weakref.ref(event))
                rejected = apply(event, wall_ms)
                if rejected is not None:
                    await dead_letter(event.message, _raw(event), *rejected)
                partition = event.message.partition
                ctx.stats.processed(event.message.topic, partition, event.message.offset)
                if ctx.engine.partitions.get((group, partition), _NO_STATE).pending_retirement:
                    # Here, in the context of an event of this partition: Faust writes a table only there.
                    retired = ctx.engine.retire(entities, group, partition)
                    log.info("%s: retired %d quiet entities of partition %d", group, retired, partition)
            await acks.add(events, table.take_written())

    async def dead_letter(message: Any, raw: bytes, reason: str, detail: str) -> None:
        ctx.stats.dead_letter(reason)
        record = deadletter_record(
            raw, reason=reason, detail=detail, topic=message.topic, partition=message.partition, offset=message.offset
        )
        await ctx.deadletter_topic.send(key=message.key, value=record)

    process.__name__ = f"{group}_agent"
    app.agent(topic, name=f"{group}_agent")(process)


def _forget_revoked_partitions(ctx: WorkerContext) -> None:
    """Drop the aggregates of partitions the moment a rebalance takes them away.

    ``rebuild_aggregates`` runs only when a recovery completes. A partition revoked in a rebalance whose
    recovery was cut short by the next one, and assigned back in that next one, would otherwise keep
    the aggregates from before, missing what its other owner applied meanwhile.
    """
    groups = {group: {ctx.settings.topic(s) for s in TOPICS_OF_GROUP[group]} for group in ctx.built}

    @ctx.app.on_partitions_assigned.connect
    async def forget_revoked(app: Any, assigned: Any, **kwargs: Any) -> None:
        for group, topics in groups.items():
            owned = {tp.partition for tp in assigned if tp.topic in topics}
            revoked = ctx.built[group] - owned
            if revoked:
                ctx.engine.drop(group, revoked)
                ctx.built[group] = ctx.built[group] & owned


def _raw(event: Any) -> bytes:
    value = event.value
    return value if isinstance(value, bytes) else bytes(value or b"")


class BytesKeyTable:
    """The entity table with keys always as bytes.

    Faust's memory store keeps keys as given while changelog recovery restores them as bytes; mixing
    str and bytes would make a redelivered event miss its entity after a restart and count twice.
    """

    __slots__ = ("table",)

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: str) -> bytes | None:
        # Straight from the store, so also outside any event (as in rebuilds). The table's own get asks
        # the store twice (``key in data``, then ``data[key]``: two RocksDB reads) and only adds sensor
        # calls. Writes must go through the table, which sends the changelog record.
        return self.table.data.get(key.encode())

    def __setitem__(self, key: str, value: bytes) -> None:
        self.table[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]


class _NoState:
    pending_retirement = None


_NO_STATE = _NoState()


def _table_items(table: Any):
    # Iterate the store directly: the table's own items() would route through the "current event".
    return ((k.decode() if isinstance(k, bytes) else k, v) for k, v in table.data.items())


def _wire_timers(ctx: WorkerContext) -> None:
    app = ctx.app

    @app.timer(EXPIRE_INTERVAL_S)
    async def expire_buckets() -> None:
        ctx.engine.expire(int(time.time() * 1000))

    # Retirement cutoffs move in whole days; a scan is skipped while they have not.
    @app.timer(ctx.settings.kpi_retire_scan_seconds)
    async def plan_retirement() -> None:
        for group, table in ctx.tables.items():
            await scan_for_retirement(ctx, group, table)

    if ctx.settings.kpi_stall_seconds:
        @app.timer(10.0)
        async def watch_progress() -> None:
            await check_progress(ctx, time.time())

    probe = BrokerProbe(ctx.settings.kafka_bootstrap_servers, sorted(ctx.suffix_of_topic), aiokafka_security(ctx.settings))

    @app.timer(2.0)
    async def check_broker() -> None:
        ctx.broker_ok = await probe.reachable()
        ctx.broker_checked = time.time()


async def scan_for_retirement(ctx: WorkerContext, group: str, table: Any) -> int:
    """Find entities quiet for longer than the retention; the agent retires them on its next event."""
    scan = ctx.engine.retirement_scan(group, int(time.time() * 1000))
    if scan is None:
        return 0
    started = time.monotonic()
    items = _table_items(table)
    if not ctx.settings.kpi_store.startswith("rocksdb"):
        items = list(items)  # a dict store cannot be iterated while the agent writes to it
    for i, (key, raw) in enumerate(items, 1):
        scan.offer(key, raw)
        if i % 2000 == 0:
            await asyncio.sleep(0)  # let the agents run: the table may hold millions of entities
    count = scan.finish()
    log.info("%s: %d entities to retire (quiet since before the cutoff) found in %.2fs", group, count, time.monotonic() - started)
    return count


