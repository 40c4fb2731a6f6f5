"""The batch oracle's customers and forecasts (docs/events.md "Subscriptions" and "Forecasts", docs/kpis.md
"Customers" and "Forecasts"), written from the definitions only: no buckets, no derived parts.

Used by ``batch_kpis.compute_kpis``; imports nothing from ``stream/``.

Decisions where the definitions leave room (flagged like batch_kpis' D1..D13):
  C1  An account's owner is the rep_id of its latest event carrying one (any subscription event, even one that
      changes nothing); its team is the `team` on that event, else the owner's roster team; an account with no
      rep_id at all is `unassigned`. Everything the account counts (every period, MRR movement) is credited to
      that owner and to its product (latest subscription.started carrying one, else `unspecified`).
  C2  A change to the same MRR moves nothing and does not list a scope. A change while inactive is nothing.
  C3  customers_at_window_start counts accounts with a period starting strictly before the window's start and
      not ended strictly before it (a cancellation exactly at the start: at the start *and* churned in W).
  C4  A forecast is credited to its rep and the team of its latest submission (else roster); it counts (lists
      the scope) at the first instant of its month, local time. Team/overall attainment and accuracy: sums over
      the (rep, team) pairs (team) / reps (overall) with a forecast for the month; a rep's own: its won revenue
      over every team.
  C5  quota_pace: rep = won(month) / (quota x f); team = sums over the roster reps of that roster team with a
      quota; overall = over the whole roster. f = (now - month start) / (month end - month start), local time.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable
from zoneinfo import ZoneInfo

UTC = timezone.utc

SUBSCRIPTION_TYPES = {"subscription.started", "subscription.changed", "subscription.cancelled"}
FORECAST_TYPES = {"forecast.submitted"}
CUSTOMER_NOW_KEYS = ("mrr", "arr", "customers_active", "customer_lifetime_value")
CUSTOMER_WINDOW_KEYS = ("customers_new", "customers_churned", "customers_at_window_start", "churn_rate",
                        "customer_retention_rate", "mrr_new", "mrr_expansion", "mrr_contraction", "mrr_churned")
MONTH_KEYS = ("forecast_amount", "forecast_attainment", "forecast_accuracy", "quota_pace", "projected_won_revenue")


def month_start(year: int, month: int, tz: str) -> datetime:
    return datetime(year, month, 1, tzinfo=ZoneInfo(tz))


def month_bounds(now: datetime, tz: str, back: int = 0) -> tuple[datetime, datetime]:
    """[start, end) of the local calendar month of `now`, `back` months earlier."""
    local = now.astimezone(ZoneInfo(tz))
    index = local.year * 12 + local.month - 1 - back
    start = month_start(index // 12, index % 12 + 1, tz)
    end = month_start((index + 1) // 12, (index + 1) % 12 + 1, tz)
    return start.astimezone(UTC), end.astimezone(UTC)  # in UTC: aware datetimes of one zone subtract as wall times


def period_of(now: datetime, tz: str, back: int = 0) -> str:
    start = month_bounds(now, tz, back)[0].astimezone(ZoneInfo(tz))
    return f"{start.year:04d}-{start.month:02d}"


class Account:
    def __init__(self) -> None:
        self.periods: list[dict] = []  # {start, start_mrr, mrr, changes: [(ts, delta)], end}
        self.owner_ev = None
        self.product = None


def build_accounts(events_by_account: dict[str, list], money: Callable[[Any], Decimal]) -> list[Account]:
    accounts = []
    for evs in events_by_account.values():
        evs.sort(key=lambda x: x.key)
        acc = Account()
        current = None
        for x in evs:
            if x.get("rep_id"):
                acc.owner_ev = x
            if x.type == "subscription.started":
                if x.get("product"):
                    acc.product = x.get("product")
                mrr = money(x.get("mrr"))
                if current is None:
                    current = {"start": x.ts, "start_mrr": mrr, "mrr": mrr, "changes": [], "end": None}
                    acc.periods.append(current)
                else:
                    current["changes"].append((x.ts, mrr - current["mrr"]))
                    current["mrr"] = mrr
            elif x.type == "subscription.changed" and current is not None:
                mrr = money(x.get("mrr"))
                current["changes"].append((x.ts, mrr - current["mrr"]))
                current["mrr"] = mrr
            elif x.type == "subscription.cancelled" and current is not None:
                current["end"] = x.ts
                current = None
        accounts.append(acc)
    return accounts


class CustomerAcc:
    """What one scope (overall, team, rep, product) collects."""

    def __init__(self) -> None:
        self.active_listing = False  # a windowed customer/forecast fact in W
        self.customers_active = 0
        self.mrr = Decimal(0)
        self.customers_new = 0
        self.customers_churned = 0
        self.at_start = 0
        self.mrr_new = Decimal(0)
        self.mrr_expansion = Decimal(0)
        self.mrr_contraction = Decimal(0)
        self.mrr_churned = Decimal(0)
        self.prev_churned = 0
        self.prev_at_start = 0


def credit_accounts(accounts: list[Account], w_start, in_w: Callable, now: datetime, tz: str,
                    scopes_of: Callable[[str, Any, str], list[CustomerAcc]]) -> None:
    """Credit every account to the scopes ``scopes_of(owner, owner_event, product)`` names."""
    prev_start, prev_end = month_bounds(now, tz, back=1)
    for acc in accounts:
        if not acc.periods:
            continue
        owner = acc.owner_ev.get("rep_id") if acc.owner_ev is not None else "unassigned"
        targets = scopes_of(owner, acc.owner_ev, acc.product or "unspecified")
        for p in acc.periods:
            moves: list[tuple[str, Any]] = []
            listed = False
            if p["end"] is None:
                moves += [("customers_active", 1), ("mrr", p["mrr"])]
            if in_w(p["start"]):
                moves += [("customers_new", 1), ("mrr_new", p["start_mrr"])]
                listed = True
            for ts, delta in p["changes"]:
                if delta and in_w(ts):
                    moves.append(("mrr_expansion", delta) if delta > 0 else ("mrr_contraction", -delta))
                    listed = True
            if p["end"] is not None and in_w(p["end"]):
                moves += [("customers_churned", 1), ("mrr_churned", p["mrr"])]
                listed = True
            if w_start is not None and p["start"] < w_start and (p["end"] is None or p["end"] >= w_start):
                moves.append(("at_start", 1))
            if p["end"] is not None and prev_start <= p["end"] < prev_end:
                moves.append(("prev_churned", 1))
            if p["start"] < prev_start and (p["end"] is None or p["end"] >= prev_start):
                moves.append(("prev_at_start", 1))
            for a in targets:
                for name, value in moves:
                    setattr(a, name, getattr(a, name) + value)
                if listed:
                    a.active_listing = True


def render_customers(a: CustomerAcc, full: bool, money_out: Callable[[Decimal], float]) -> dict:
    per_customer = a.mrr / a.customers_active if a.customers_active else None
    if per_customer is None or not a.prev_at_start or not a.prev_churned:
        clv = None
    else:
        clv = money_out(per_customer * a.prev_at_start / a.prev_churned)
    out: dict[str, Any] = {
        "mrr": money_out(a.mrr),
        "arr": money_out(12 * a.mrr),
        "customers_active": a.customers_active,
        "customer_lifetime_value": clv,
    }
    if full:
        out.update({
            "customers_new": a.customers_new,
            "customers_churned": a.customers_churned,
            "customers_at_window_start": a.at_start,
            "churn_rate": a.customers_churned / a.at_start if a.at_start else None,
            "customer_retention_rate": (a.customers_active - a.customers_new) / a.at_start if a.at_start else None,
            "mrr_new": money_out(a.mrr_new),
            "mrr_expansion": money_out(a.mrr_expansion),
            "mrr_contraction": money_out(a.mrr_contraction),
            "mrr_churned": money_out(a.mrr_churned),
        })
    return out


def latest_forecasts(forecast_events: list, money: Callable[[Any], Decimal]) -> dict[tuple[str, str], Any]:
    """{(rep, period): latest forecast.submitted} by (occurred_at, rank, event_id)."""
    latest: dict[tuple[str, str], Any] = {}
    for x in forecast_events:
        k = (x.get("rep_id"), x.get("period"))
        if k not in latest or x.key > latest[k].key:
            latest[k] = x
    return latest


def month_fraction(now: datetime, tz: str) -> Fraction:
    start, end = month_bounds(now, tz)
    us = timedelta(microseconds=1)
    return Fraction((now - start) // us, (end - start) // us)
