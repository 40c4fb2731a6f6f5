"""Prometheus export of the KPIs: the catalogue's metrics, from the typed snapshots of every window.

The numbers are *global* (all partitions, all workers), so exactly one worker exports them: the
**leader**, the worker that currently owns partition 0 of the ``leads`` group. The others export only
``kpi_exporter_leader 0``, so ``sum``, ``max`` or ``min`` across workers all give the right answer, and
a rebalance moves the series to the new owner of partition 0 without ever doubling them.

The snapshot is asynchronous (it asks every worker for its partials over HTTP) while a collector is
synchronous, so ``refresh_kpis`` fetches one snapshot per window ahead of the scrape (at most every
``REFRESH_S``) and ``KpiCollector`` renders the cached snapshots with the pure ``kpi_families``.

Every metric name, help text and unit comes from ``stream.kpi.catalogue``. Label rules (bounded
cardinality): ``scope`` ∈ overall/team/rep, ``team`` and ``rep`` name the scope (``""`` where not
applicable: a rep's KPIs may be credited under several teams, so rep series carry ``team=""``),
``window`` one of the windows, ``stage`` a configured stage, ``product`` / ``source`` / ``campaign`` a
label of those sections (a deal's or an account's product; at most KPI_MAX_PRODUCTS / _SOURCES / _CAMPAIGNS
per worker, then ``_over_cap``), ``currency`` the reporting currency. Lead, deal, call and account ids never become labels. A KPI that is null (ratio, mean or percentile over nothing) has
no sample, so a dashboard shows "no data" rather than a made-up 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from typing import TYPE_CHECKING, Any, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from stream.kpi.catalogue import KPIS, MONTH, NOW, Kpi, Metric as KpiMetric
from stream.kpi.snapshot import Snapshot
from stream.kpi.targets import revenue_targets
from stream.kpi.windows import WINDOWS
from stream.worker.query import global_snapshot

if TYPE_CHECKING:
    from stream.roster import Roster
    from stream.worker.context import WorkerContext

log = logging.getLogger("kpi_monitor.kpi_export")

REFRESH_S = 2.0
SCOPE_LABELS = ["scope", "team", "rep"]
SECONDS_PER_DAY = 86_400


def exported(kpi: Kpi) -> Iterator[tuple[str, KpiMetric]]:
    """(dimension, metric) of every series family a KPI is exported as."""
    yield from kpi.metrics.items()


def _scopes(values: Mapping[str, Any]) -> Iterator[tuple[list[str], Mapping[str, Any]]]:
    yield ["overall", "", ""], values.get("overall") or {}
    for team, doc in sorted((values.get("teams") or {}).items()):
        yield ["team", team, ""], doc
    for rep, doc in sorted((values.get("reps") or {}).items()):
        yield ["rep", "", rep], doc


def _value(doc: Mapping[str, Any], kpi: Kpi) -> float | None:
    raw = doc.get(kpi.key)
    if raw is None or isinstance(raw, bool):
        return None
    return float(raw) * (SECONDS_PER_DAY if kpi.unit == "days" else 1.0)


def kpi_families(
    snapshots: Mapping[str, Snapshot],
    *,
    currency: str = "USD",
    roster: Roster | None = None,
    timezone: str = "UTC",
) -> list[Metric]:
    """Gauge families for ``{window: snapshot}``; nulls and absent windows give no sample."""
    families: list[Metric] = []
    # *now* values are the same in every window; `all` lists every scope that any window lists.
    now_snapshot = next((snapshots[w] for w in ("all", *WINDOWS) if snapshots.get(w)), None)
    for kpi in KPIS:
        for dimension, metric in exported(kpi):
            family = GaugeMetricFamily(metric.name, metric.help, labels=kpi.labels(dimension))
            if kpi.timing == NOW:
                sources = [(None, now_snapshot)]
            elif kpi.timing == MONTH:
                sources = [(None, snapshots.get("month"))]
            else:
                sources = [(w, snapshots.get(w)) for w in WINDOWS]
            money = [currency] if kpi.unit == "money" else []
            for window, snapshot in sources:
                if snapshot is None:
                    continue
                windowed = [] if window is None else [window]
                if dimension == "scope":
                    rows = _scopes(snapshot.values)
                else:  # stages, products, sources, campaigns: one label, the section's (bounded by its cap)
                    rows = (([label], doc) for label, doc in sorted((snapshot.values.get(dimension) or {}).items()))
                for labels, doc in rows:
                    value = _value(doc, kpi)
                    if value is not None:
                        family.add_metric(labels + windowed + money, value)
            families.append(family)

    targets = GaugeMetricFamily(
        "kpi_revenue_target",
        "Revenue target from the roster's monthly quotas: period=month the quota, period=day the quota / "
        "the month's business days (Mon-Fri).",
        labels=SCOPE_LABELS + ["period", "currency"],
    )
    as_of = GaugeMetricFamily(
        "kpi_snapshot_timestamp_seconds",
        "The `now` of the exported snapshot (Unix time): the wall clock, or the event-time watermark with KPI_CLOCK=event.",
        labels=["window"],
    )
    complete = GaugeMetricFamily(
        "kpi_snapshot_complete",
        "1 when the exported snapshot covers every partition, 0 when a partition or worker was missing.",
        labels=["window"],
    )
    for window in WINDOWS:
        snapshot = snapshots.get(window)
        if snapshot is not None:
            as_of.add_metric([window], snapshot.now_ms / 1000)
            complete.add_metric([window], 0 if snapshot.incomplete else 1)
    stamp_snapshot = snapshots.get("month") or now_snapshot
    if roster is not None and stamp_snapshot is not None:
        stamp = datetime.fromtimestamp(stamp_snapshot.now_ms / 1000, tz=dt_timezone.utc)
        for (scope, team, rep), (daily, monthly) in sorted(revenue_targets(roster, stamp, timezone).items()):
            targets.add_metric([scope, team, rep, "day", currency], daily)
            targets.add_metric([scope, team, rep, "month", currency], monthly)
    return [*families, targets, as_of, complete]


# --- the worker side ------------------------------------------------------------------------------
def is_leader(ctx: WorkerContext) -> bool:
    """The KPI exporter is whoever owns (and has rebuilt) partition 0 of the leads group."""
    return 0 in ctx.built.get("leads", set())


@dataclass
class KpiCache:
    """The last snapshots fetched for export, per window."""

    docs: dict[str, Snapshot] = field(default_factory=dict)
    fetched: float = float("-inf")  # monotonic time of the last refresh
    duration: float | None = None  # seconds the last refresh took
    leader: bool = False
    lock: asyncio.Lock | None = None


SnapshotFn = Callable[[Any, str], Awaitable[Snapshot]]


async def refresh_kpis(
    ctx: WorkerContext,
    cache: KpiCache,
    *,
    max_age: float = REFRESH_S,
    clock: Callable[[], float] = time.monotonic,
    snapshot: SnapshotFn | None = None,
    windows: Iterable[str] = WINDOWS,
) -> None:
    """Fetch the global snapshot of every window when this worker leads and the cache is older than ``max_age``."""
    cache.leader = is_leader(ctx)
    if not cache.leader:
        cache.docs = {}
        return
    if cache.lock is None:
        cache.lock = asyncio.Lock()
    async with cache.lock:  # concurrent scrapes share one refresh
        if cache.docs and clock() - cache.fetched < max_age:
            return
        snapshot = snapshot or global_snapshot
        started = clock()
        windows = tuple(windows)
        results = await asyncio.gather(*(snapshot(ctx, w) for w in windows), return_exceptions=True)
        docs: dict[str, Snapshot] = {}
        for window, result in zip(windows, results):
            if isinstance(result, BaseException):
                # No document rather than the previous one: stale numbers must not look live.
                log.warning("KPI snapshot for window %s failed: %r", window, result)
            else:
                docs[window] = result
        cache.docs = docs
        cache.fetched = clock()
        cache.duration = cache.fetched - started


class KpiCollector:
    """Renders the cached snapshots; every worker says whether it is the exporter."""

    def __init__(self, ctx: WorkerContext, cache: KpiCache) -> None:
        self.ctx = ctx
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        leader = self.cache.leader and is_leader(self.ctx)
        flag = GaugeMetricFamily(
            "kpi_exporter_leader",
            "1 on the one worker that exports the global KPI series (owner of leads partition 0), else 0.",
        )
        flag.add_metric([], 1 if leader else 0)
        yield flag
        if not leader or not self.cache.docs:
            return
        settings = self.ctx.settings
        sla = GaugeMetricFamily("kpi_lead_response_sla_seconds", "The lead response SLA (KPI_SLA_SECONDS).")
        sla.add_metric([], float(settings.kpi_sla_seconds))
        yield sla
        if self.cache.duration is not None:
            took = GaugeMetricFamily(
                "kpi_snapshot_refresh_seconds", "How long the last refresh of the exported KPI snapshots took."
            )
            took.add_metric([], self.cache.duration)
            yield took
        yield from kpi_families(
            self.cache.docs,
            currency=settings.kpi_currency,
            roster=self.ctx.roster.current(),
            timezone=settings.kpi_timezone,
        )
