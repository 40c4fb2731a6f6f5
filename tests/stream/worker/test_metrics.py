"""Worker health export: PipelineStats (plain numbers, fake clock) read through PipelineCollector."""

from __future__ import annotations

import asyncio
from collections import Counter, namedtuple
from types import SimpleNamespace

import pytest

from prometheus_client import CollectorRegistry

from stream.events import REASONS, TOPIC_OF_TYPE
from stream.worker.metrics import ALERT_SINKS, ConsumerOffsets, PipelineCollector, ScrapeState
from stream.worker.stats import LATENCY_BUCKETS_S, Histogram, PipelineStats

TP = namedtuple("TP", "topic partition")


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeConsumer:
    def __init__(self, assigned, committed):
        self._assigned = set(assigned)
        self._committed_offset = committed

    def assignment(self):
        return self._assigned


def fake_ctx(stats: PipelineStats, consumer=None, alert_stats=None):
    ctx = SimpleNamespace(
        stats=stats,
        built={"leads": {0, 1}, "deals": {0}},
        engine=SimpleNamespace(partitions={("leads", 0): SimpleNamespace(entities=5), ("leads", 1): SimpleNamespace(entities=2),
                                           ("deals", 0): SimpleNamespace(entities=4)},
                               retired=3, caps={"reps": SimpleNamespace(over_cap=9), "teams": SimpleNamespace(over_cap=0)}),
        app=SimpleNamespace(consumer=consumer),
        suffix_of_topic={"p.leads": "leads", "p.calls": "calls", "p.deals": "deals"},
        scrape=ScrapeState(),
        broker_ok=False,
        broker_checked=0.0,
    )
    if alert_stats is not None:
        ctx.alert_stats = alert_stats
    return ctx


def registry_for(ctx, clock) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(PipelineCollector(ctx, clock=clock))
    return registry


def test_histogram_buckets_are_cumulative_with_le_semantics():
    hist = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 7200):
        hist.observe(value)
    assert hist.cumulative() == [(0.1, 2), (1.0, 3), (float("inf"), 4)]
    assert hist.count == 4 and hist.sum == 0.05 + 0.1 + 0.5 + 7200


def test_counters_start_at_zero_for_every_known_label_value():
    clock = Clock(1_000.0)
    reg = registry_for(fake_ctx(PipelineStats(clock=clock)), clock)
    for event_type, topic in TOPIC_OF_TYPE.items():
        assert reg.get_sample_value("kpi_events_consumed_total", {"topic": topic, "type": event_type}) == 0
    for reason in (*REASONS, "internal_error"):
        assert reg.get_sample_value("kpi_events_deadlettered_total", {"reason": reason}) == 0
    for sink in ALERT_SINKS:
        assert reg.get_sample_value("kpi_alerts_sent_total", {"sink": sink}) == 0
        assert reg.get_sample_value("kpi_alerts_failed_total", {"sink": sink}) == 0
    assert reg.get_sample_value("kpi_processing_latency_seconds_count") == 0
    # Nothing processed yet: no timestamps (not 0, which would read as 1970).
    assert reg.get_sample_value("kpi_last_processed_timestamp_seconds") is None
    assert reg.get_sample_value("kpi_last_event_timestamp_seconds") is None


def test_latency_freshness_and_counts_follow_the_stats():
    clock = Clock(1_000.0)
    stats = PipelineStats(clock=clock)
    stats.applied("leads", "lead.created", ts_ms=999_800)  # 0.2 s old
    clock.t = 1_010.0
    stats.applied("calls", "call.logged", ts_ms=990_000)  # 20 s old
    stats.applied("leads", "lead.touched", ts_ms=1_200_000)  # clock skew: from the future, counted as 0
    stats.dead_letter("not_json")
    clock.t = 1_012.5
    stats.duplicate("leads")
    ctx = fake_ctx(stats, alert_stats={"sent": Counter(slack=3), "failed": Counter(webhook=1), "dropped": Counter()})
    reg = registry_for(ctx, Clock(1_020.0))
    assert reg.get_sample_value("kpi_events_consumed_total", {"topic": "leads", "type": "lead.created"}) == 1
    assert reg.get_sample_value("kpi_events_deadlettered_total", {"reason": "not_json"}) == 1
    assert reg.get_sample_value("kpi_events_duplicate_total", {"topic": "leads"}) == 1
    assert reg.get_sample_value("kpi_processing_latency_seconds_bucket", {"le": "0.01"}) == 1  # the future one
    assert reg.get_sample_value("kpi_processing_latency_seconds_bucket", {"le": "0.25"}) == 2
    assert reg.get_sample_value("kpi_processing_latency_seconds_bucket", {"le": "30.0"}) == 3
    assert reg.get_sample_value("kpi_processing_latency_seconds_bucket", {"le": "+Inf"}) == 3
    assert abs(reg.get_sample_value("kpi_processing_latency_seconds_sum") - 20.2) < 1e-9
    assert reg.get_sample_value("kpi_last_processed_timestamp_seconds") == 1_012.5
    assert reg.get_sample_value("kpi_last_event_timestamp_seconds") == 1_200.0  # the largest occurred_at
    assert reg.get_sample_value("kpi_last_event_age_seconds") == 7.5
    assert reg.get_sample_value("kpi_alerts_sent_total", {"sink": "slack"}) == 3
    assert reg.get_sample_value("kpi_alerts_failed_total", {"sink": "webhook"}) == 1
    assert reg.get_sample_value("kpi_worker_entities", {"group": "leads"}) == 7
    assert reg.get_sample_value("kpi_entities_retired_total") == 3
    assert reg.get_sample_value("kpi_label_over_cap_total", {"label": "rep"}) == 9
    assert reg.get_sample_value("kpi_worker_partitions", {"group": "leads"}) == 2
    assert reg.get_sample_value("kpi_worker_consuming") == 0
    assert len(LATENCY_BUCKETS_S) + 1 == len(stats.latency.counts)


def test_consumer_lag_is_end_offset_minus_the_next_offset_to_process_for_assigned_partitions():
    consumer = FakeConsumer(
        assigned=[TP("p.leads", 0), TP("p.calls", 0), TP("p.deals", 1), TP("p.deals", 2),
                  TP("kpi-leads_entities-changelog", 0)],
        committed={TP("p.leads", 0): 40, TP("p.deals", 1): 7, TP("p.deals", 2): 30},
    )
    clock = Clock(0.0)
    stats = PipelineStats(clock=clock)
    stats.processed("p.leads", 0, 44)  # processed up to offset 44, committed up to 40: 45 is next
    stats.processed("p.deals", 2, 11)  # processed before a rebalance; the group has committed further since
    ctx = fake_ctx(stats, consumer=consumer)
    # End offsets as the refresh stores them; p.deals/3 was revoked since.
    ctx.scrape.offsets.highwaters = {("p.leads", 0): 50, ("p.calls", 0): 3, ("p.deals", 1): 7, ("p.deals", 2): 31,
                                     ("p.deals", 3): 99}
    reg = registry_for(ctx, clock)
    lag = lambda group, topic, p: reg.get_sample_value("kpi_consumer_lag_messages", {"group": group, "topic": topic, "partition": p})  # noqa: E731
    assert lag("leads", "leads", "0") == 5
    assert lag("leads", "calls", "0") == 3  # nothing processed or committed yet: from offset 0
    assert lag("deals", "deals", "1") == 0
    assert lag("deals", "deals", "2") == 1
    assert lag("deals", "deals", "3") is None


def test_offsets_refresh_without_assignment_is_cheap_and_clears():
    offsets = ConsumerOffsets(highwaters={("p.leads", 0): 5})
    ctx = fake_ctx(PipelineStats(), consumer=FakeConsumer(assigned=[], committed={}))
    asyncio.run(offsets.refresh(ctx))
    assert offsets.highwaters == {}


def test_docs_metrics_table_lists_exactly_the_exported_metrics():
    """The README's metric tables cannot drift: they name every family this project exports, and no other."""
    import re
    from pathlib import Path

    from stream.kpi.catalogue import KPIS
    from stream.kpi.snapshot import Snapshot
    from stream.kpi.windows import WINDOWS
    from stream.roster import parse_roster
    from stream.worker.kpi_export import KpiCache, KpiCollector

    doc = Path(__file__).resolve().parents[3] / "README.md"
    documented = set(re.findall(r"^\| `(kpi_[a-z0-9_]+)` \|", doc.read_text(), re.M))
    every = {kpi.key: 1.0 for kpi in KPIS}  # every KPI has a value, so every family has a sample
    values = {"overall": every, "teams": {}, "reps": {}, "stages": {"prospecting": every}}
    roster = parse_roster("teams: [{name: red}]\nreps: [{rep_id: ana, team: red, monthly_quota: 1000}]")
    ctx = fake_ctx(PipelineStats(clock=Clock(1.0)))
    ctx.settings = SimpleNamespace(kpi_currency="USD", kpi_timezone="UTC", kpi_sla_seconds=300.0)
    ctx.roster = SimpleNamespace(current=lambda: roster)
    cache = KpiCache(docs={w: Snapshot(w, 1_795_000_000_000, values) for w in WINDOWS}, leader=True, duration=0.01)
    exported = set()
    for collector in (PipelineCollector(ctx), KpiCollector(ctx, cache)):
        for family in collector.collect():
            exported.add(family.name + ("_total" if family.type == "counter" else ""))
    assert exported == documented


def test_rocksdb_memory_sums_the_partitions_databases_of_each_table(tmp_path):
    rocksdict = pytest.importorskip("rocksdict")
    dbs = {p: rocksdict.Rdict(str(tmp_path / f"p{p}")) for p in (0, 1)}
    try:
        for p, db in dbs.items():
            for i in range(1000):
                db[f"L:lead-{p}-{i}".encode()] = b"x" * 100
        memtables = sum(db.property_int_value("rocksdb.size-all-mem-tables") for db in dbs.values())
        ctx = fake_ctx(PipelineStats(clock=Clock(0.0)))
        ctx.tables = {"leads": SimpleNamespace(data=SimpleNamespace(_dbs=dbs)), "deals": SimpleNamespace(data={})}
        reg = registry_for(ctx, Clock(0.0))
        got = reg.get_sample_value("kpi_rocksdb_memory_bytes", {"table": "leads_entities", "kind": "memtables"})
        assert got == memtables > 2 * 1000 * 100  # both partitions' 100-byte values are in memory
        assert reg.get_sample_value("kpi_rocksdb_memory_bytes", {"table": "leads_entities", "kind": "block_cache"}) >= 0
        assert reg.get_sample_value("kpi_rocksdb_memory_bytes", {"table": "deals_entities", "kind": "memtables"}) == 0
    finally:
        for db in dbs.values():
            db.close()
