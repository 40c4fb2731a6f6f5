"""Accounts (subscriptions) and forecasts: their entity state, what they contribute, and the parts
derived when a window is read (docs/kpis.md, "Customers" and "Forecasts").

An account is one entity (key ``S:<account_id>``) holding its subscription facts in (occurred_at, rank,
event_id) order; its *active periods* are derived from them: a ``subscription.started`` while inactive
starts one, a ``subscription.cancelled`` while active ends it, a start while active is a change, and a
change or cancellation while inactive changes nothing. A forecast is one entity per rep and month (key
``F:<YYYY-MM>:<rep_id>``); its amount is that of its latest submission, counted at the first instant of
its month (local time), so a month's forecasts sit in the day bucket of its 1st.

Some customer and forecast KPIs need the state at a window's start or the previous calendar month. Those
are *derived parts*, filled by ``derive`` from the buckets when a window is read, exactly:

- accounts active at time S = starts before S − ends before S = active now − starts at or after S + ends
  at or after S (every period that starts also either ends or is active now);
- the previous month's churned periods and forecasts, and its won revenue, are sums over its day buckets
  (kept for 93 days, retired entities' included: stream.kpi.store).

This module imports nothing from Faust, Kafka, Prometheus or HTTP.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from stream.events import epoch_ms
from stream.kpi.catalogue import DIMENSIONS, PRODUCTS, SCOPE
from stream.kpi.facts import CURRENT, UNASSIGNED, WINDOWED, Contribution, Fact
from stream.kpi.parts import Row

UNSPECIFIED = "unspecified"
ACCOUNT_PREFIX, FORECAST_PREFIX = "S:", "F:"
_S = DIMENSIONS["scope"].layout.index
_P = DIMENSIONS["products"].layout.index
_LAYOUT_INDEX = {SCOPE: _S, PRODUCTS: _P}


def forecast_key(period: str, rep_id: str) -> str:
    return f"{FORECAST_PREFIX}{period}:{rep_id}"


def period_of_key(key: str) -> str:
    return key[2:9]


@lru_cache(maxsize=4096)
def month_start_ms(period: str, tz: str = "UTC") -> int:
    """UTC milliseconds of local midnight on the 1st of ``period`` (YYYY-MM) in ``tz``."""
    year, month = int(period[:4]), int(period[5:7])
    return epoch_ms(datetime(year, month, 1, tzinfo=ZoneInfo(tz)))


def _shift(period: str, months: int) -> str:
    index = int(period[:4]) * 12 + int(period[5:7]) - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


# --- accounts ----------------------------------------------------------------------------------------
class Period:
    """One active period of an account: its start, MRR movements and end (None while active)."""

    __slots__ = ("start", "start_mrr", "changes", "end", "mrr")

    def __init__(self, start: int, mrr: Decimal) -> None:
        self.start, self.start_mrr, self.mrr = start, mrr, mrr
        self.changes: list[tuple[int, Decimal]] = []  # (ts, new MRR - old MRR)
        self.end: int | None = None


class Account:
    """What an account's facts amount to (docs/kpis.md, "Customers")."""

    __slots__ = ("periods", "owner", "team", "product")

    def __init__(self, facts: list[Fact]) -> None:
        self.periods: list[Period] = []
        self.owner: str | None = None
        self.team: str | None = None
        self.product: str | None = None
        current: Period | None = None
        for f in facts:  # already in (ts, rank, eid) order
            if f.rep:
                self.owner, self.team = f.rep, f.team
            kind = f.kind
            if kind == "subscription.started":
                if f.product:
                    self.product = f.product
                mrr = Decimal(f.amount or 0)
                if current is None:
                    current = Period(f.ts, mrr)
                    self.periods.append(current)
                else:  # a start while active is a change
                    current.changes.append((f.ts, mrr - current.mrr))
                    current.mrr = mrr
            elif kind == "subscription.changed":
                if current is not None:
                    mrr = Decimal(f.amount or 0)
                    current.changes.append((f.ts, mrr - current.mrr))
                    current.mrr = mrr
            elif kind == "subscription.cancelled":
                if current is not None:
                    current.end = f.ts
                    current = None

    @property
    def active(self) -> bool:
        return bool(self.periods) and self.periods[-1].end is None


def account_contributions(facts: list[Fact]) -> list[Contribution]:
    """Per active period: its start, MRR changes and end; the current MRR while active. Everything is
    credited to the account's owner (its latest event carrying a rep_id) and its product."""
    account = Account(facts)
    if not account.periods:
        return []
    rep, team = account.owner or UNASSIGNED, account.team
    product = account.product or UNSPECIFIED
    out: list[Contribution] = []

    def add(kind: str, ts: int, bucket: int, parts: tuple[tuple[str, Any], ...]) -> None:
        out.append(Contribution(kind, ts, rep, team, SCOPE, None, bucket, tuple((_S[n], v) for n, v in parts)))
        out.append(Contribution(kind, ts, rep, team, PRODUCTS, product, bucket, tuple((_P[n], v) for n, v in parts)))

    for period in account.periods:
        add("subscription_new", period.start, WINDOWED, (("customers_new", 1), ("mrr_new", period.start_mrr)))
        for ts, delta in period.changes:
            if delta > 0:
                add("mrr_expansion", ts, WINDOWED, (("mrr_changes", 1), ("mrr_expansion", delta)))
            elif delta < 0:
                add("mrr_contraction", ts, WINDOWED, (("mrr_changes", 1), ("mrr_contraction", -delta)))
        if period.end is not None:
            add("subscription_churned", period.end, WINDOWED, (("customers_churned", 1), ("mrr_churned", period.mrr)))
        else:
            add("subscription_active", period.start, CURRENT, (("customers_active", 1), ("mrr", period.mrr)))
    return out


# --- forecasts ---------------------------------------------------------------------------------------
def forecast_contributions(key: str, facts: list[Fact], tz: str) -> list[Contribution]:
    """A rep's forecast for one month: the amount of its latest submission, at the month's first instant."""
    if not facts:
        return []
    latest = facts[-1]
    rep = key[10:]
    start = month_start_ms(period_of_key(key), tz)
    return [Contribution("forecast", start, rep, latest.team, SCOPE, None, WINDOWED,
                         ((_S["forecasts"], 1), (_S["forecast_amount"], Decimal(latest.amount or 0))))]


# --- retiring ----------------------------------------------------------------------------------------
def customer_retirable(key: str, facts: list[Fact], cutoff_ms: int) -> bool:
    """Active accounts are *now* state and never retire; cancelled ones (or ones never started) may. A
    forecast may once its month is over (two months after its start in UTC: past its end in any zone)."""
    if key.startswith(ACCOUNT_PREFIX):
        return not Account(facts).active
    return month_start_ms(_shift(period_of_key(key), 2)) < cutoff_ms


# --- derived parts -----------------------------------------------------------------------------------
def derive(dim: int, aggregates: Any, rows: dict[Any, Row], window: str, now_ms: int, calendar: Any,
           minute_range: tuple[int, int] | None) -> None:
    """Fill the derived parts of ``rows`` (one dimension's rows of one window) from ``aggregates``' buckets.

    ``minute_range`` is the window's minute buckets (1h, 24h); day windows read day buckets; ``all`` has
    no start (0 customers at it).
    """
    index = _LAYOUT_INDEX.get(dim)
    if index is None:
        return
    layout = aggregates.layout
    new, churned, active = index["customers_new"], index["customers_churned"], index["customers_active"]
    at_start = index["customers_at_start"]
    prev = calendar.previous_month_days(now_ms)
    prev_lo, prev_hi = prev.start, prev.stop - 1
    labels = set(aggregates.days) | set(aggregates.current)
    churned_prev, at_start_prev = index["churned_prev_month"], index["at_start_prev_month"]
    won_prev = index.get("won_prev_month")
    won = index.get("won_revenue")
    forecast_prev, forecast_amount = index.get("forecast_prev_month"), index.get("forecast_amount")
    forecasts, forecasts_prev = index.get("forecasts"), index.get("forecasts_prev_month")
    if window == "all":
        start_lo = None
    elif minute_range is not None:
        start_lo = minute_range[0]
    else:
        start_lo = calendar.days_of(window, now_ms).start
    totals = aggregates.total
    for label in labels:
        # Only labels that ever had an account (every active period's start is in the all-time total), won
        # revenue or a forecast: the others have nothing to derive (this runs for every window of every request).
        total = totals.get(label)
        if total is None or not (total.v[new] or (forecasts is not None and (total.v[won] or total.v[forecasts]))):
            continue
        days = aggregates.days.get(label, {})
        current = aggregates.current.get(label)
        now_active = current.v[active] if current is not None else 0
        # Sums over the previous month and everything after its start.
        p_churned = since_new = since_churned = p_forecasts = 0
        p_won = p_forecast = Decimal(0)
        for day, row in days.items():
            if day >= prev_lo:
                v = row.v
                since_new += v[new]
                since_churned += v[churned]
                if day <= prev_hi:
                    p_churned += v[churned]
                    if forecasts is not None:  # the scope dimension: forecasts and their won revenue
                        p_won += v[won]
                        p_forecast += v[forecast_amount]
                        p_forecasts += v[forecasts]
        values: dict[int, Any] = {}
        if p_churned or since_new or since_churned or now_active:
            values[churned_prev] = p_churned
            values[at_start_prev] = now_active - since_new + since_churned
        if won_prev is not None and (p_won or p_forecasts):
            values[won_prev] = p_won
            values[forecast_prev] = p_forecast
            values[forecasts_prev] = p_forecasts
        if start_lo is not None:
            table = aggregates.minutes.get(label, {}) if minute_range is not None else days
            w_new = w_churned = 0
            for bucket, row in table.items():
                if bucket >= start_lo:
                    w_new += row.v[new]
                    w_churned += row.v[churned]
            if now_active or w_new or w_churned:
                values[at_start] = now_active - w_new + w_churned
        if values:
            row = rows.get(label)
            if row is None:
                row = rows[label] = layout.row()
            for i, value in values.items():
                row.v[i] += value
