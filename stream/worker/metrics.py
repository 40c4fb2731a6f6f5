"""Prometheus export of the worker's own health, read from plain counters at scrape time.

A custom collector (not mutable gauges) reads ``PipelineStats``, the engine and the consumer when
Prometheus scrapes, so nothing has to be kept in sync and tests can use a fresh ``CollectorRegistry``.
Everything here is per worker and safe to ``sum`` across workers (the KPI numbers, which are global and
exported by one worker only, live in ``stream.worker.kpi_export``). docs/metrics.md lists every metric.

Two inputs need I/O and so cannot be read inside a (synchronous) collector: the KPI snapshots and the
partitions' end offsets. ``refresh_before_scrape`` fetches both; the ``/metrics`` view awaits it before
rendering, and the collectors read what it cached.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Iterator

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from stream.events import REASONS, TOPIC_OF_TYPE
from stream.kpi.engine import GROUP_OF_TOPIC
from stream.worker.context import is_consuming
from stream.worker.kpi_export import KpiCache, KpiCollector, refresh_kpis
from stream.worker.stats import PipelineStats

if TYPE_CHECKING:
    from stream.worker.context import WorkerContext

log = logging.getLogger("kpi_monitor.metrics")

# Alert sinks known to exist; each gets a zero series from the start so `rate()`/`increase()` and the
# dashboards work before the first alert. Other sink names appear when the alert engine counts them.
ALERT_SINKS = ("slack", "alertmanager", "webhook")
DEADLETTER_REASONS = (*REASONS, "internal_error")
OFFSETS_TIMEOUT_S = 2.0
# What RocksDB holds in memory per database (RocksDB properties), summed over a table's partitions.
ROCKSDB_MEMORY = {
    "memtables": "rocksdb.size-all-mem-tables",
    "block_cache": "rocksdb.block-cache-usage",
    "table_readers": "rocksdb.estimate-table-readers-mem",  # index and filter blocks of the open files
}


def rocksdb_memory(table: Any) -> dict[str, int]:
    """Bytes by kind (ROCKSDB_MEMORY) for a Faust table on the RocksDB store; zeros for other stores."""
    out = dict.fromkeys(ROCKSDB_MEMORY, 0)
    dbs = getattr(getattr(table, "data", None), "_dbs", None)  # Faust's RocksDB store: partition -> database
    if not isinstance(dbs, dict):
        return out
    for db in list(dbs.values()):
        for kind, prop in ROCKSDB_MEMORY.items():
            try:
                out[kind] += int(db.property_int_value(prop) or 0)
            except Exception:  # a database closing during a rebalance
                pass
    return out


@dataclass
class ConsumerOffsets:
    """The last known end offset (highwater) of each assigned source partition, refreshed per scrape.

    The end offsets come from the broker through a small client of our own (no group, no subscription):
    asking Faust's consumer would queue behind its fetch loop (about 1.5 s per scrape), and its cached
    highwater stops moving when the consumer is paused or stuck, which is exactly when lag matters.
    """

    highwaters: dict[tuple[str, int], int] = field(default_factory=dict)  # (full topic, partition) -> end offset
    refreshed: float = 0.0
    client: Any = None  # aiokafka.AIOKafkaConsumer used only for ListOffsets

    async def refresh(self, ctx: WorkerContext) -> None:
        try:
            tps = [tp for tp in ctx.app.consumer.assignment() if tp.topic in ctx.suffix_of_topic]
        except Exception:  # consumer not started yet
            tps = []
        if not tps:
            self.highwaters = {}
            return
        try:
            ends = await asyncio.wait_for(self._end_offsets(ctx, tps), OFFSETS_TIMEOUT_S)
            self.highwaters = {(tp.topic, tp.partition): int(off) for tp, off in ends.items() if off is not None}
            self.refreshed = time.time()
        except Exception as exc:  # broker away: keep the last known values, reconnect next time
            log.debug("end offsets not refreshed: %r", exc)
            await self.close()

    async def _end_offsets(self, ctx: WorkerContext, tps: list[Any]) -> Mapping[Any, int]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from stream.kafka_security import aiokafka_security

        if self.client is None:
            client = AIOKafkaConsumer(
                bootstrap_servers=ctx.settings.kafka_bootstrap_servers,
                enable_auto_commit=False,
                request_timeout_ms=int(OFFSETS_TIMEOUT_S * 1000) + 1000,
                **aiokafka_security(ctx.settings),
            )
            await client.start()
            self.client = client
        return await self.client.end_offsets([TopicPartition(tp.topic, tp.partition) for tp in tps])

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                await asyncio.wait_for(client.stop(), OFFSETS_TIMEOUT_S)
            except Exception:
                pass

    def lag(self, ctx: WorkerContext) -> Iterator[tuple[str, str, int, int]]:
        """``(group, topic suffix, partition, lag)`` for assigned source partitions: end offset − position.

        The position is the next offset this worker has to process: past the last message it processed,
        and at least the group's committed offset (what a worker just assigned starts from). Committed
        offsets alone overstate lag: they trail processing, and read 0 right after a restart.
        """
        if not self.highwaters:
            return
        try:
            consumer = ctx.app.consumer
            assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
            # Faust's record of the group's committed offsets (the next offset to read), from the broker at
            # assignment and from its own commits.
            committed = {(tp.topic, tp.partition): off for tp, off in consumer._committed_offset.items()}
        except Exception:
            return
        positions = ctx.stats.positions
        for (topic, partition), end in sorted(self.highwaters.items()):
            if (topic, partition) not in assigned:
                continue
            suffix = ctx.suffix_of_topic[topic]
            position = max(positions.get((topic, partition), 0), committed.get((topic, partition)) or 0)
            yield GROUP_OF_TOPIC[suffix], suffix, partition, max(0, end - position)


@dataclass
class ScrapeState:
    """What ``/metrics`` refreshes (asynchronously) before the collectors read it."""

    kpis: KpiCache = field(default_factory=KpiCache)
    offsets: ConsumerOffsets = field(default_factory=ConsumerOffsets)


async def refresh_before_scrape(ctx: WorkerContext) -> None:
    state: ScrapeState = ctx.scrape
    await asyncio.gather(refresh_kpis(ctx, state.kpis), state.offsets.refresh(ctx))


def _build_info() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {
        "version": version("kpi-monitor"),
        "faust_version": version("faust-streaming"),
        "python_version": platform.python_version(),
    }


def _alert_counts(ctx: Any) -> tuple[Mapping[str, float], Mapping[str, float]]:
    """(sent, failed) by sink from ``ctx.alert_stats``; empty when the alert engine is not running.

    ``ctx.alert_stats`` is the alert engine's plain counters (``alerts.sinks.base.new_stats()``: a dict
    with ``sent`` and ``failed`` Counters); an object with those attributes or a ``(sent, failed)`` pair
    works too.
    """
    stats = getattr(ctx, "alert_stats", None)
    if stats is None:
        return {}, {}
    if isinstance(stats, tuple):
        sent, failed = stats
    elif isinstance(stats, Mapping):
        sent, failed = stats.get("sent"), stats.get("failed")
    else:
        sent, failed = getattr(stats, "sent", None), getattr(stats, "failed", None)
    return dict(sent or {}), dict(failed or {})


class PipelineCollector:
    def __init__(self, ctx: WorkerContext, clock: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.clock = clock
        self.build_info = _build_info()

    def collect(self) -> Iterator[Metric]:
        yield from self.collect_stats(self.ctx.stats)
        yield from self.collect_worker()
        yield from self.collect_alerts()

    def collect_stats(self, stats: PipelineStats) -> Iterator[Metric]:
        consumed = CounterMetricFamily(
            "kpi_events_consumed", "Valid events applied, by topic and event type.", labels=["topic", "type"]
        )
        counts = {(topic, event_type): 0 for event_type, topic in TOPIC_OF_TYPE.items()}  # zero until seen
        counts.update(stats.consumed)
        for (topic, event_type), count in sorted(counts.items()):
            consumed.add_metric([topic, event_type], count)
        yield consumed
        duplicates = CounterMetricFamily(
            "kpi_events_duplicate", "Redelivered events recognised by event_id and skipped.", labels=["topic"]
        )
        dup_counts = {topic: 0 for topic in set(TOPIC_OF_TYPE.values())}
        dup_counts.update(stats.duplicates)
        for topic, count in sorted(dup_counts.items()):
            duplicates.add_metric([topic], count)
        yield duplicates
        dead = CounterMetricFamily(
            "kpi_events_deadlettered", "Messages sent to the dead-letter topic, by reason.", labels=["reason"]
        )
        dead_counts = dict.fromkeys(DEADLETTER_REASONS, 0)
        dead_counts.update(stats.deadlettered)
        for reason, count in sorted(dead_counts.items()):
            dead.add_metric([reason], count)
        yield dead
        latency = HistogramMetricFamily(
            "kpi_processing_latency_seconds",
            "Wall-clock time when an event was applied minus its occurred_at (replays land in +Inf).",
        )
        latency.add_metric(
            [], [(_le(bound), count) for bound, count in stats.latency.cumulative()], sum_value=stats.latency.sum
        )
        yield latency
        age = GaugeMetricFamily(
            "kpi_last_event_age_seconds", "Seconds since this worker last processed a message (NaN before the first)."
        )
        now = self.clock()
        age.add_metric([], now - stats.last_event_wall if stats.last_event_wall else float("nan"))
        yield age
        processed = GaugeMetricFamily(
            "kpi_last_processed_timestamp_seconds",
            "Unix time when this worker last processed a message (applied, duplicate or dead-lettered).",
        )
        if stats.last_event_wall is not None:
            processed.add_metric([], stats.last_event_wall)
        yield processed
        event_time = GaugeMetricFamily(
            "kpi_last_event_timestamp_seconds",
            "Largest occurred_at (Unix time) of the events this worker applied: its event-time progress.",
        )
        if stats.max_event_ts_ms is not None:
            event_time.add_metric([], stats.max_event_ts_ms / 1000)
        yield event_time
        started = GaugeMetricFamily("kpi_worker_start_time_seconds", "Unix time when this worker's statistics began.")
        started.add_metric([], stats.started)
        yield started

    def collect_worker(self) -> Iterator[Metric]:
        ctx = self.ctx
        partitions = GaugeMetricFamily(
            "kpi_worker_partitions", "Partitions this worker owns and serves, by group.", labels=["group"]
        )
        entities = GaugeMetricFamily(
            "kpi_worker_entities", "Entities (leads, calls, deals) in this worker's tables.", labels=["group"]
        )
        for group, owned in sorted(ctx.built.items()):
            partitions.add_metric([group], len(owned))
            entities.add_metric(
                [group], sum(s.entities for (g, _), s in ctx.engine.partitions.items() if g == group)
            )
        yield partitions
        yield entities
        retired = CounterMetricFamily(
            "kpi_entities_retired",
            "Entities removed from the tables after KPI_ENTITY_RETENTION_DAYS without events (their totals stay).",
        )
        retired.add_metric([], ctx.engine.retired)
        yield retired
        over_cap = CounterMetricFamily(
            "kpi_label_over_cap",
            "Contributions counted under the `_over_cap` rep/team because KPI_MAX_REPS/KPI_MAX_TEAMS ids were "
            "already in use on this worker.",
            labels=["label"],
        )
        over_cap.add_metric(["rep"], ctx.engine.caps["reps"].over_cap)
        over_cap.add_metric(["team"], ctx.engine.caps["teams"].over_cap)
        if "products" in ctx.engine.caps:
            over_cap.add_metric(["product"], ctx.engine.caps["products"].over_cap)
        yield over_cap
        rocksdb = GaugeMetricFamily(
            "kpi_rocksdb_memory_bytes",
            "Memory RocksDB holds for this worker's tables (0 with the memory store), by table and kind: memtables, "
            "block_cache, table_readers.",
            labels=["table", "kind"],
        )
        for group, table in sorted(getattr(ctx, "tables", {}).items()):
            for kind, size in rocksdb_memory(table).items():
                rocksdb.add_metric([f"{group}_entities", kind], size)
        yield rocksdb
        lag = GaugeMetricFamily(
            "kpi_consumer_lag_messages",
            "Messages not yet processed by this worker, per assigned partition: end offset minus the next offset to "
            "process.",
            labels=["group", "topic", "partition"],
        )
        scrape = getattr(ctx, "scrape", None)
        if scrape is not None:
            for group, topic, partition, behind in scrape.offsets.lag(ctx):
                lag.add_metric([group, topic, str(partition)], behind)
        yield lag
        consuming = GaugeMetricFamily(
            "kpi_worker_consuming", "1 when this worker is consuming (what /healthz answers 200 for), else 0."
        )
        consuming.add_metric([], 1 if _is_consuming(ctx) else 0)
        yield consuming
        info = GaugeMetricFamily(
            "kpi_build_info", "Always 1; the labels say which build this worker runs.", labels=list(self.build_info)
        )
        info.add_metric(list(self.build_info.values()), 1)
        yield info

    def collect_alerts(self) -> Iterator[Metric]:
        sent, failed = _alert_counts(self.ctx)
        for name, help_text, counts in (
            ("kpi_alerts_sent", "Alert notifications delivered, by sink.", sent),
            ("kpi_alerts_failed", "Alert notifications that failed to deliver (after retries), by sink.", failed),
        ):
            family = CounterMetricFamily(name, help_text, labels=["sink"])
            merged = dict.fromkeys(ALERT_SINKS, 0)
            merged.update(counts)
            for sink, count in sorted(merged.items()):
                family.add_metric([sink], count)
            yield family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def _is_consuming(ctx: Any) -> bool:
    try:
        return is_consuming(ctx)[0]
    except Exception:  # a test's stand-in context
        return False


def register_metrics(registry: CollectorRegistry, ctx: WorkerContext) -> None:
    """Health (per worker), KPIs (leader only) and the process' own CPU/memory/file descriptors."""
    ctx.scrape = ScrapeState()
    offsets = ctx.scrape.offsets

    async def close_offsets_client(sender: Any = None, **kwargs: Any) -> None:
        await offsets.close()

    ctx.app.on_before_shutdown.connect(close_offsets_client)
    registry.register(PipelineCollector(ctx))
    registry.register(KpiCollector(ctx, ctx.scrape.kpis))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
