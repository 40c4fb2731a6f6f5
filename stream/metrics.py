"""Prometheus export of the worker's own health, read from plain counters at scrape time.

A custom collector (not mutable gauges) reads ``PipelineStats`` and the engine when Prometheus scrapes,
so nothing has to be kept in sync and tests can use a fresh ``CollectorRegistry``. Counters here are
per worker and safe to ``sum`` across workers.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from stream.app import WorkerContext


class PipelineCollector:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        stats = self.ctx.stats
        consumed = CounterMetricFamily(
            "kpi_events_consumed", "Valid events applied, by topic and event type.", labels=["topic", "type"]
        )
        for (topic, event_type), count in sorted(stats.consumed.items()):
            consumed.add_metric([topic, event_type], count)
        yield consumed
        duplicates = CounterMetricFamily(
            "kpi_events_duplicate", "Redelivered events recognised by event_id and skipped.", labels=["topic"]
        )
        for topic, count in sorted(stats.duplicates.items()):
            duplicates.add_metric([topic], count)
        yield duplicates
        dead = CounterMetricFamily(
            "kpi_events_deadlettered", "Messages sent to the dead-letter topic, by reason.", labels=["reason"]
        )
        for reason, count in sorted(stats.deadlettered.items()):
            dead.add_metric([reason], count)
        yield dead
        age = GaugeMetricFamily(
            "kpi_last_event_age_seconds", "Seconds since this worker last processed a message (NaN before the first)."
        )
        age.add_metric([], time.time() - stats.last_event_wall if stats.last_event_wall else float("nan"))
        yield age
        partitions = GaugeMetricFamily(
            "kpi_worker_partitions", "Partitions this worker owns and serves, by group.", labels=["group"]
        )
        entities = GaugeMetricFamily("kpi_worker_entities", "Entities (leads, calls, deals) in this worker's tables.", labels=["group"])
        for group, owned in sorted(self.ctx.built.items()):
            partitions.add_metric([group], len(owned))
            entities.add_metric(
                [group], sum(s.entities for (g, _), s in self.ctx.engine.partitions.items() if g == group)
            )
        yield partitions
        yield entities


def register_metrics(registry: CollectorRegistry, ctx: WorkerContext) -> None:
    registry.register(PipelineCollector(ctx))
