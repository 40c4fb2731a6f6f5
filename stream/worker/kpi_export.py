"""Prometheus export of the KPIs of SPEC.md §3: ``/kpis`` documents turned into gauge families.

The numbers are *global* (all partitions, all workers), so exactly one worker exports them: the
**leader**, the worker that currently owns partition 0 of the ``leads`` group. The others export only
``kpi_exporter_leader 0``, so ``sum``, ``max`` or ``min`` across workers all give the right answer, and
a rebalance moves the series to the new owner of partition 0 without ever doubling them.

The snapshot is asynchronous (it asks every worker for its partials over HTTP) while a collector is
synchronous, so ``refresh_kpis`` fetches one document per window ahead of the scrape (at most every
``REFRESH_S``) and ``KpiCollector`` renders the cached documents with the pure ``kpi_families``.

Label rules (bounded cardinality): ``scope`` ∈ overall/team/rep, ``team`` and ``rep`` name the scope
(``""`` where not applicable: a rep's KPIs may be credited under several teams, so rep series carry
``team=""``), ``window`` ∈ 1h/24h/today/month/all, ``stage`` a configured stage, ``currency`` the
reporting currency. Lead, deal and call ids never become labels. A KPI that is null (ratio, mean or
percentile over nothing) has no sample, so a dashboard shows "no data" rather than a made-up 0.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterator
from zoneinfo import ZoneInfo

from prometheus_client.core import GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from stream.worker.app import WorkerContext
    from stream.roster import Roster

log = logging.getLogger("kpi_monitor.kpi_export")

WINDOWS = ("1h", "24h", "today", "month", "all")
REFRESH_S = 2.0
SCOPE_LABELS = ["scope", "team", "rep"]
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class KpiMetric:
    """How one key of the /kpis document is exported."""

    key: str  # key in the /kpis scope object
    name: str  # metric name
    help: str
    money: bool = False  # adds the `currency` label
    scale: float = 1.0  # multiply to reach the base unit (days -> seconds)


# Windowed KPIs: labels scope, team, rep, window (+ currency for money).
WINDOWED: tuple[KpiMetric, ...] = (
    KpiMetric("leads_created", "kpi_leads_created", "Leads whose lead.created is in the window (leads_created)."),
    KpiMetric("leads_responded", "kpi_leads_responded", "Leads whose first touch is in the window (leads_responded)."),
    KpiMetric("lead_response_seconds_mean", "kpi_lead_response_mean_seconds",
              "Mean time from lead.created to first touch, leads responded in the window (lead_response_seconds_mean)."),
    KpiMetric("lead_response_seconds_p50", "kpi_lead_response_p50_seconds",
              "Median time from lead.created to first touch, leads responded in the window (lead_response_seconds_p50)."),
    KpiMetric("lead_response_seconds_p90", "kpi_lead_response_p90_seconds",
              "90th percentile time from lead.created to first touch, leads responded in the window (lead_response_seconds_p90)."),
    KpiMetric("lead_response_within_sla_ratio", "kpi_lead_response_within_sla_ratio",
              "Share of the responses in the window within KPI_SLA_SECONDS (lead_response_within_sla_ratio)."),
    KpiMetric("leads_qualified", "kpi_leads_qualified", "Leads whose first lead.qualified is in the window (leads_qualified)."),
    KpiMetric("lead_to_opportunity_ratio", "kpi_lead_to_opportunity_ratio",
              "Leads qualified / leads created in the window (lead_to_opportunity_ratio)."),
    KpiMetric("touches_to_meeting_mean", "kpi_touches_to_meeting_mean",
              "Mean touches before the first meeting, meetings booked in the window (touches_to_meeting_mean)."),
    KpiMetric("calls", "kpi_calls", "Calls logged in the window (calls)."),
    KpiMetric("calls_connected", "kpi_calls_connected", "Connected calls in the window (calls_connected)."),
    KpiMetric("connect_rate", "kpi_call_connect_ratio", "Connected calls / calls in the window (connect_rate)."),
    KpiMetric("talk_seconds_total", "kpi_talk_time_seconds", "Talk time of connected calls in the window (talk_seconds_total)."),
    KpiMetric("deals_won", "kpi_deals_won", "Deals won in the window (deals_won)."),
    KpiMetric("deals_lost", "kpi_deals_lost", "Deals lost in the window (deals_lost)."),
    KpiMetric("win_rate", "kpi_win_ratio", "Won / (won + lost) of the deals closed in the window (win_rate)."),
    KpiMetric("won_revenue", "kpi_won_revenue", "Final amounts of the deals won in the window (won_revenue).", money=True),
    KpiMetric("avg_deal_size", "kpi_deal_size_mean", "Mean final amount of the deals won in the window (avg_deal_size).", money=True),
    KpiMetric("sales_cycle_days_mean", "kpi_sales_cycle_mean_seconds",
              "Mean deal.created-to-won time of the deals won in the window (sales_cycle_days_mean, in seconds).",
              scale=SECONDS_PER_DAY),
    KpiMetric("pipeline_velocity_per_day", "kpi_pipeline_velocity_per_day",
              "Open deals now x mean deal size x win rate / mean sales cycle (days) of the window: "
              "money per day (pipeline_velocity_per_day).", money=True),
)

# *now* KPIs (SPEC §3): the same in every window, so no window label.
CURRENT: tuple[KpiMetric, ...] = (
    KpiMetric("leads_awaiting_response", "kpi_leads_awaiting_response",
              "Leads created within lead_max_age, never touched, not disqualified, now (leads_awaiting_response)."),
    KpiMetric("oldest_wait_seconds", "kpi_oldest_wait_seconds",
              "How long the oldest lead awaiting a response has waited, now (oldest_wait_seconds)."),
    KpiMetric("open_deals", "kpi_open_deals", "Deals without an outcome, now (open_deals)."),
    KpiMetric("open_pipeline_value", "kpi_open_pipeline_value",
              "Current amounts of the deals without an outcome, now (open_pipeline_value).", money=True),
)

QUOTA = KpiMetric("quota_attainment", "kpi_quota_attainment_ratio",
                  "Month to date: rep = won revenue / monthly quota; team and overall = share of the roster's "
                  "quota-carrying reps at >= 1 (quota_attainment).")


def _scopes(doc: Mapping[str, Any]) -> Iterator[tuple[list[str], Mapping[str, Any]]]:
    yield ["overall", "", ""], doc.get("overall") or {}
    for team, values in sorted((doc.get("teams") or {}).items()):
        yield ["team", team, ""], values
    for rep, values in sorted((doc.get("reps") or {}).items()):
        yield ["rep", "", rep], values


def _value(values: Mapping[str, Any], spec: KpiMetric) -> float | None:
    raw = values.get(spec.key)
    if raw is None or isinstance(raw, bool):
        return None
    return float(raw) * spec.scale


def business_days(year: int, month: int) -> int:
    """Monday-to-Friday days of the month (no holiday calendar)."""
    return sum(1 for week in calendar.monthcalendar(year, month) for day in week[:5] if day)


def revenue_targets(roster: Roster, as_of: datetime, tz: str = "UTC") -> dict[tuple[str, str, str], tuple[float, float]]:
    """``{(scope, team, rep): (daily target, monthly target)}`` from the roster's monthly quotas.

    Daily target = monthly quota / business days (Mon-Fri) of the month ``as_of`` falls in, in ``tz``.
    """
    local = as_of.astimezone(ZoneInfo(tz))
    days = business_days(local.year, local.month)
    monthly: dict[tuple[str, str, str], float] = {}
    for rep in roster.reps:
        if rep.monthly_quota and rep.monthly_quota > 0:
            quota = float(rep.monthly_quota)
            for key in (("rep", "", rep.rep_id), ("team", rep.team, ""), ("overall", "", "")):
                monthly[key] = monthly.get(key, 0.0) + quota
    return {key: (quota / days, quota) for key, quota in monthly.items()}


def kpi_families(
    docs: Mapping[str, Mapping[str, Any]],
    *,
    currency: str = "USD",
    roster: Roster | None = None,
    timezone: str = "UTC",
) -> list[Metric]:
    """Gauge families for ``{window: /kpis document}``; nulls and absent windows give no sample."""
    windowed = {
        spec.name: GaugeMetricFamily(
            spec.name, spec.help, labels=SCOPE_LABELS + ["window"] + (["currency"] if spec.money else [])
        )
        for spec in WINDOWED
    }
    current = {
        spec.name: GaugeMetricFamily(spec.name, spec.help, labels=SCOPE_LABELS + (["currency"] if spec.money else []))
        for spec in CURRENT
    }
    quota = GaugeMetricFamily(QUOTA.name, QUOTA.help, labels=SCOPE_LABELS)
    stage_entries = GaugeMetricFamily(
        "kpi_stage_entries", "Deals whose first entry into the stage is in the window (stage_entries).",
        labels=["stage", "window"],
    )
    stage_conversion = GaugeMetricFamily(
        "kpi_stage_conversion_ratio",
        "Entries of the next stage / entries of this stage in the window; none for the last stage (stage_conversion).",
        labels=["stage", "window"],
    )
    stage_open = GaugeMetricFamily("kpi_stage_open_deals", "Open deals in the stage, now.", labels=["stage"])
    stage_value = GaugeMetricFamily(
        "kpi_stage_open_pipeline_value", "Current amounts of the open deals in the stage, now.", labels=["stage", "currency"]
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
    targets = GaugeMetricFamily(
        "kpi_revenue_target",
        "Revenue target from the roster's monthly quotas: period=month the quota, period=day the quota / "
        "the month's business days (Mon-Fri).",
        labels=SCOPE_LABELS + ["period", "currency"],
    )

    for window in WINDOWS:
        doc = docs.get(window)
        if not doc:
            continue
        for labels, values in _scopes(doc):
            for spec in WINDOWED:
                value = _value(values, spec)
                if value is not None:
                    windowed[spec.name].add_metric(labels + [window] + ([currency] if spec.money else []), value)
        for stage, values in (doc.get("stages") or {}).items():
            if values.get("stage_entries") is not None:
                stage_entries.add_metric([stage, window], float(values["stage_entries"]))
            if values.get("stage_conversion") is not None:
                stage_conversion.add_metric([stage, window], float(values["stage_conversion"]))
        stamp = _timestamp(doc.get("as_of"))
        if stamp is not None:
            as_of.add_metric([window], stamp.timestamp())
        complete.add_metric([window], 0 if doc.get("incomplete") else 1)

    # *now* values are the same in every window; `all` lists every scope that any window lists.
    now_doc = next((docs[w] for w in ("all", *WINDOWS) if docs.get(w)), None)
    if now_doc is not None:
        for labels, values in _scopes(now_doc):
            for spec in CURRENT:
                value = _value(values, spec)
                if value is not None:
                    current[spec.name].add_metric(labels + ([currency] if spec.money else []), value)
        for stage, values in (now_doc.get("stages") or {}).items():
            stage_open.add_metric([stage], float(values.get("open_deals") or 0))
            stage_value.add_metric([stage, currency], float(values.get("open_pipeline_value") or 0))
    month = docs.get("month")
    if month:
        for labels, values in _scopes(month):
            value = _value(values, QUOTA)
            if value is not None:
                quota.add_metric(labels, value)
    stamp_doc = month or now_doc
    stamp = _timestamp(stamp_doc.get("as_of")) if stamp_doc else None
    if roster is not None and stamp is not None:
        for (scope, team, rep), (daily, monthly) in sorted(revenue_targets(roster, stamp, timezone).items()):
            targets.add_metric([scope, team, rep, "day", currency], daily)
            targets.add_metric([scope, team, rep, "month", currency], monthly)

    return [
        *windowed.values(), *current.values(), quota,
        stage_entries, stage_conversion, stage_open, stage_value, targets, as_of, complete,
    ]


def _timestamp(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


# --- the worker side ------------------------------------------------------------------------------
def is_leader(ctx: WorkerContext) -> bool:
    """The KPI exporter is whoever owns (and has rebuilt) partition 0 of the leads group."""
    return 0 in ctx.built.get("leads", set())


@dataclass
class KpiCache:
    """The last /kpis documents fetched for export, per window."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetched: float = float("-inf")  # monotonic time of the last refresh
    duration: float | None = None  # seconds the last refresh took
    leader: bool = False
    lock: asyncio.Lock | None = None


Snapshot = Callable[[Any, str], Awaitable[dict[str, Any]]]


async def refresh_kpis(
    ctx: WorkerContext,
    cache: KpiCache,
    *,
    max_age: float = REFRESH_S,
    clock: Callable[[], float] = time.monotonic,
    snapshot: Snapshot | None = None,
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
        if snapshot is None:
            from stream.worker.web import global_snapshot as snapshot  # late: web needs the app's modules
        started = clock()
        windows = tuple(windows)
        results = await asyncio.gather(*(snapshot(ctx, w) for w in windows), return_exceptions=True)
        docs: dict[str, dict[str, Any]] = {}
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
    """Renders the cached documents; every worker says whether it is the exporter."""

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
