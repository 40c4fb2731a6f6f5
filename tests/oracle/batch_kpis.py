"""Independent batch oracle for the `/kpis` snapshot, derived only from the written definitions
(docs/events.md and docs/kpis.md; the project lead's contract, sections 1-4).

It recomputes every KPI from a plain list of accepted events, with no streaming, no buckets and no sketches,
so integration tests can compare the streaming worker against it. Clarity over speed: ~50k events take
well under a few seconds.

Public functions:
  compute_kpis(events, window, now, *, sla_seconds, timezone, roster, stages, lead_max_age_seconds)
  drop_too_late(events_with_partition, rejected=None)   -- the too-late rule, event-clock mode
  topic_and_key(event), kafka_partition(key, n)         -- routing as a replay would do it (murmur2)
  event_clock_now(events)                               -- largest occurred_at (KPI_CLOCK=event)
  parse_ts(text), floor_minute(dt), window_bounds(window, now, tz), load_roster_yaml(path)

Which scopes appear (rule derived from golden/expected.json, windows `all` and `1h`):
  * `overall` always has every key.
  * A rep / team appears with EVERY key when it received at least one *windowed contribution* in W, i.e. it
    is credited with one of: a lead created, a lead responded (first touch), a lead qualified, a lead's first
    meeting (touches_to_meeting), a call, a deal won or a deal lost, whose occurred_at is in W.
    (golden 1h: ana has two deals won in W -> full; ben and cal have nothing in W -> not full.)
  * Otherwise it appears with only the *now* keys (leads_awaiting_response, oldest_wait_seconds,
    open_deals, open_pipeline_value, pipeline_velocity_per_day) when leads_awaiting_response > 0 or
    open_deals > 0 (golden 1h: ben has an open deal, cal and team blue an awaiting lead; the
    `unassigned` rep/team, whose only fact is a lead created at 09:05, is absent).
  * Otherwise it is absent.
  Events that feed no per-rep KPI (lead.assigned, a non-first touch, deal.created, deal.stage_changed, a
  held event of an entity never created) do not make a scope "active" by themselves.
  `quota_attainment` is added (window == "month" only) to overall and to every full-key scope.

Decisions where the spec leaves room (each one is a choice, flagged so a disagreement is easy to trace):
  D1  Team of owner-credited KPIs (deals won/lost, revenue, cycle, open deals): the `team` on the deal's first
      deal.created (the event that names the owner), else the owner's roster team, else `unassigned`; a team on
      the outcome event is not used. Awaiting leads: the team on the lead.created/lead.assigned that set the
      owner, else roster; an ownerless lead uses its lead.created's team, else `unassigned`.
  D2  leads_created without rep_id: rep `unassigned`, team = the lead.created's `team` if any (literal reading).
  D3  Windows are [start, now], both ends inclusive; `all` has no bounds at all (an occurred_at after now counts).
  D4  *now* KPIs use the whole accepted state (events after `now` included; only possible in wall-clock mode).
  D5  Awaiting: now - created <= lead_max_age (inclusive); any touch / disqualification at any time ends it; a
      qualified but untouched lead still waits.
  D6  Outcome: events with occurred_at strictly after the first outcome change nothing; a stage change at the same
      instant (rank 1 < 2) applies; any later outcome is ignored. The defining deal.created always applies, even
      if it occurred after the outcome (cycle floored at 0). A second deal.created keeps the owner but sets
      stage/amount like a stage change; a second lead.created may change the owner (spec: "latest ... that
      carries one") but never counts in leads_created.
  D7  stage_entries: a deal's first entry into a stage among the applied events; re-entry does not count.
      stage_conversion is null for the last stage and when entries(stage) == 0.
  D8  Money (won_revenue, avg_deal_size, open_pipeline_value) is rounded half-even to cents at the end;
      pipeline_velocity_per_day uses the exact average and is not rounded (golden: 16203.599999999999).
  D9  talk_seconds_total sums duration_s of connected calls only (0 when none). Calls whose lead never exists still
      count as calls; lead events of a never-created lead count nothing.
  D10 quota_attainment: rep = won revenue of deals it owns won in the month / roster monthly_quota, null without a
      quota (missing or <= 0); team = share of the roster reps whose *roster* team it is and that have a quota,
      attainment >= 1.0 (reps with no activity count at 0); overall = same over the whole roster; null when no rep
      qualifies. Not added to now-only scopes.
  D11 A touch occurring before lead.created is a valid first touch (response floored at 0) and counts in
      touches_to_meeting when <= the booking. SLA: response <= sla_seconds. Percentile rank = max(1, ceil(q*n)).
  D12 Too late: strict `<`; W covers accepted events of that (topic, partition) only; the first event of a
      partition is never too late; a redelivered copy is judged by the same rule before dedup.
  D13 Timestamps are kept to the microsecond (finer digits truncated).

Revenue and marketing (contract section 6: deals, leads, spend, stages):
  * `products`, `sources`, `campaigns` are listed like reps: every key of the section when something was counted
    for the label in W (a lead created / qualified / MQL, a deal won / lost, a spend), the *now* keys
    (open_deals, open_pipeline_value) with only open deals. A lead or deal without `source` (or product) counts
    under `unspecified`; without `campaign`, in no campaign. A spend counts under its `channel`.
  * An MQL makes its crediting rep and team active like any windowed count.
  D14 MQL credit: the first lead.marketing_qualified's rep_id (team: that event's, else the roster's), else the
      lead's owner (the latest lead.created/lead.assigned with a rep; team: that event's, else the roster's),
      else `unassigned` with the MQL's team, else the lead.created's, else `unassigned`.
  D15 Money per unit (cost_per_lead, cost_per_opportunity, customer_acquisition_cost, avg_contract_value_annual)
      is the exact quotient rounded half-even to the cent; marketing_roi is not rounded.
  D16 stages[s].deals_won/deals_lost: s is the deal's stage after its last stage-setting event up to the outcome.
  D17 (with the customers, batch_customers) `products` carries the deal keys above and the customer keys of the
      product's accounts: every key of both when either counted something in W, else the *now* keys of both.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import defaultdict
from datetime import datetime, timedelta, timezone as _tz
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from tests.oracle import batch_customers as cust

UTC = _tz.utc
WINDOWS = ("1h", "24h", "today", "week", "month", "quarter", "all")
DEFAULT_STAGES = ("prospecting", "qualification", "proposal", "negotiation")
TOO_LATE = timedelta(hours=25)

# "Order of events" (docs/events.md): (occurred_at, lifecycle rank, event_id). Lead and deal types never meet in
# one ordering, so one table serves both.
RANK = {
    "lead.created": 0,
    "lead.assigned": 1,
    "lead.marketing_qualified": 2,
    "lead.touched": 3,
    "call.logged": 3,  # a call carrying a lead_id is a touch
    "meeting.booked": 4,
    "lead.qualified": 5,
    "lead.disqualified": 6,
    "deal.created": 0,
    "deal.stage_changed": 1,
    "deal.won": 2,
    "deal.lost": 2,
    "spend.recorded": 0,
    "subscription.started": 0,
    "subscription.changed": 1,
    "subscription.cancelled": 2,
    "forecast.submitted": 0,
}
LEAD_TYPES = {"lead.created", "lead.assigned", "lead.touched", "meeting.booked", "lead.qualified",
              "lead.disqualified", "lead.marketing_qualified"}
DEAL_TYPES = {"deal.created", "deal.stage_changed", "deal.won", "deal.lost"}
OUTCOMES = {"deal.won", "deal.lost"}

NOW_KEYS = ("leads_awaiting_response", "oldest_wait_seconds", "open_deals", "open_pipeline_value",
            "pipeline_velocity_per_day", *cust.CUSTOMER_NOW_KEYS)

_US = 1_000_000  # microseconds per second: durations are kept as exact integers of microseconds
_CENT = Decimal("0.01")
_TS_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


# ----------------------------------------------------------------------------------------------- time --
def parse_ts(text: str) -> datetime:
    """RFC 3339 -> aware UTC datetime (fractions beyond microseconds are truncated)."""
    m = _TS_RE.match(text)
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    us = int((frac or "0")[:6].ljust(6, "0"))
    dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), us, tzinfo=UTC)
    if not z:
        off = timedelta(hours=int(oh), minutes=int(om))
        dt = dt - off if sign == "+" else dt + off
    return dt


def floor_minute(dt: datetime) -> datetime:
    return dt.replace(second=0, microsecond=0)


def _us(td: timedelta) -> int:
    return td // timedelta(microseconds=1)


def window_bounds(window: str, now: datetime, tz: str = "UTC") -> tuple[datetime | None, datetime | None]:
    """Inclusive [start, end] of a window (docs/kpis.md); (None, None) for `all` (no bound at all)."""
    if window == "1h":
        return floor_minute(now) - timedelta(minutes=59), now
    if window == "24h":
        return floor_minute(now) - timedelta(minutes=1439), now
    if window in ("today", "week", "month", "quarter"):
        zone = ZoneInfo(tz)
        local = now.astimezone(zone)
        if window == "today":
            first = local.date()
        elif window == "week":  # the local Monday
            first = local.date() - timedelta(days=local.weekday())
        elif window == "month":
            first = local.date().replace(day=1)
        else:  # the first day of the calendar quarter
            first = local.date().replace(month=3 * ((local.month - 1) // 3) + 1, day=1)
        start = datetime(first.year, first.month, first.day, tzinfo=zone)
        return start.astimezone(UTC), now
    if window == "all":
        return None, None
    raise ValueError(f"unknown window {window!r}")


def event_clock_now(events: Iterable[dict]) -> datetime:
    """`now` in event-clock mode: the largest occurred_at among the accepted events."""
    return max(parse_ts(e["occurred_at"]) for e in events)


def drop_too_late(
    events_with_partition: Iterable[tuple[str, int, dict]],
    rejected: list[dict] | None = None,
) -> list[dict]:
    """The too-late rule in event-clock mode (docs/kpis.md, "Time").

    Input: (topic, partition, event) in arrival order. W is the largest occurred_at processed before the
    event from the same (topic, partition); the event is too late when occurred_at < floor_minute(W) - 25 h.
    Returns the accepted events in arrival order; too-late ones are appended to `rejected` when given.
    Duplicates are not removed here (compute_kpis does that).
    """
    watermark: dict[tuple[str, int], datetime] = {}
    accepted = []
    for topic, partition, event in events_with_partition:
        ts = parse_ts(event["occurred_at"])
        w = watermark.get((topic, partition))
        if w is not None and ts < floor_minute(w) - TOO_LATE:
            if rejected is not None:
                rejected.append(event)
            continue
        if w is None or ts > w:
            watermark[(topic, partition)] = ts
        accepted.append(event)
    return accepted


def topic_and_key(event: dict) -> tuple[str, str]:
    """Routing (docs/events.md): ("leads"|"calls"|"deals", key) -- key = lead_id, else call_id for calls; deal_id."""
    t = event["type"]
    if t in cust.SUBSCRIPTION_TYPES:
        return "subscriptions", event["account_id"]
    if t in cust.FORECAST_TYPES:
        return "forecasts", event["rep_id"]
    if t in DEAL_TYPES:
        return "deals", event["deal_id"]
    if t == "spend.recorded":
        return "spend", event["channel"]
    if t == "call.logged":
        return "calls", event.get("lead_id") or event["call_id"]
    return "leads", event["lead_id"]


def kafka_partition(key: str, partitions: int) -> int:
    """The Kafka default partitioner for a keyed record: toPositive(murmur2(key bytes)) % partitions."""
    data = key.encode("utf-8")
    length, m = len(data), 0x5BD1E995
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(length // 4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    extra, idx = length % 4, length & ~3
    if extra >= 3:
        h ^= data[idx + 2] << 16
    if extra >= 2:
        h ^= data[idx + 1] << 8
    if extra >= 1:
        h = ((h ^ data[idx]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


# -------------------------------------------------------------------------------------------- helpers --
def _money(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise TypeError("amount must be a number or a decimal string")
    if isinstance(value, float):
        return Decimal(repr(value))  # the shortest repr is the JSON text that was sent
    return Decimal(value) if isinstance(value, int) else Decimal(str(value).strip())


def _money_out(d: Decimal) -> float:
    return float(d.quantize(_CENT, rounding=ROUND_HALF_EVEN))


def _nearest_rank(sorted_values: list, q: Fraction):
    n = len(sorted_values)
    rank = max(1, math.ceil(q * n))  # exact: q is a Fraction, no 0.9*10 rounding surprises
    return sorted_values[rank - 1]


class _Ev:
    __slots__ = ("e", "ts", "key", "type")

    def __init__(self, e: dict):
        self.e = e
        self.type = e["type"]
        self.ts = parse_ts(e["occurred_at"])
        self.key = (self.ts, RANK[self.type], e["event_id"])

    def get(self, name, default=None):
        return self.e.get(name, default)


class _Acc:
    """Everything one scope (overall / a team / a rep) collects for one window."""

    def __init__(self):
        self.active = False
        self.leads_created = 0
        self.responses_us: list[int] = []
        self.within_sla = 0
        self.leads_qualified = 0
        self.meeting_touches: list[int] = []
        self.calls = 0
        self.calls_connected = 0
        self.talk = Decimal(0)
        self.deals_won = 0
        self.deals_lost = 0
        self.won_revenue = Decimal(0)
        self.cycles_us: list[int] = []
        # now
        self.awaiting = 0
        self.oldest_created: datetime | None = None
        self.open_deals = 0
        self.open_value = Decimal(0)
        # revenue and marketing (contract section 6)
        self.won_by_kind = {"new": Decimal(0), "expansion": Decimal(0), "renewal": Decimal(0)}
        self.new_won = 0
        self.acv: list[Fraction] = []
        self.mqls = 0
        self.spend = {"marketing": Decimal(0), "sales": Decimal(0)}


# ----------------------------------------------------------------------------------------- the oracle --
def compute_kpis(
    events: list[dict],
    window: str,
    now: datetime,
    *,
    sla_seconds: float = 300,
    timezone: str = "UTC",
    roster: dict[str, dict] | None = None,
    stages: tuple[str, ...] = DEFAULT_STAGES,
    lead_max_age_seconds: float = 7 * 86400,
) -> dict:
    """The `/kpis?window=<window>` document for valid, accepted `events` given in arrival order."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    roster = roster or {}
    stages = tuple(stages)
    w_start, w_end = window_bounds(window, now, timezone)

    def in_w(ts: datetime) -> bool:
        return (w_start is None or ts >= w_start) and (w_end is None or ts <= w_end)

    def team_of(ev: _Ev | None, rep: str) -> str:
        # Crediting: the team on the crediting event, else the rep's roster team, else `unassigned`.
        if ev is not None and ev.get("team"):
            return ev.get("team")
        return (roster.get(rep) or {}).get("team") or "unassigned"

    # 1. dedup by event_id: first arrival wins.
    seen: set[str] = set()
    evs: list[_Ev] = []
    for e in events:
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        evs.append(_Ev(e))

    leads: dict[str, list[_Ev]] = defaultdict(list)
    deals: dict[str, list[_Ev]] = defaultdict(list)
    calls: list[_Ev] = []
    spends: list[_Ev] = []
    accounts: dict[str, list[_Ev]] = defaultdict(list)
    forecast_events: list[_Ev] = []
    for ev in evs:
        if ev.type in LEAD_TYPES:
            leads[ev.get("lead_id")].append(ev)
        elif ev.type == "call.logged":
            calls.append(ev)
            if ev.get("lead_id") is not None:
                leads[ev.get("lead_id")].append(ev)
        elif ev.type in DEAL_TYPES:
            deals[ev.get("deal_id")].append(ev)
        elif ev.type in cust.SUBSCRIPTION_TYPES:
            accounts[ev.get("account_id")].append(ev)
        elif ev.type in cust.FORECAST_TYPES:
            forecast_events.append(ev)
        elif ev.type == "spend.recorded":
            spends.append(ev)

    overall = _Acc()
    reps: dict[str, _Acc] = defaultdict(_Acc)
    teams: dict[str, _Acc] = defaultdict(_Acc)
    products: dict[str, _Acc] = defaultdict(_Acc)
    sources: dict[str, _Acc] = defaultdict(_Acc)
    campaigns: dict[str, _Acc] = defaultdict(_Acc)

    def credit(ts: datetime | None, rep: str | None, team: str | None, fn: Callable[[_Acc], None],
               labels: Iterable[_Acc] = ()) -> None:
        """Apply fn to overall, team and rep (rep None: to overall only), and to the product / source / campaign
        accumulators given; ts=None marks a *now* fact (no window, no activity)."""
        if ts is not None and not in_w(ts):
            return
        scoped = (overall,) if rep is None else (overall, teams[team], reps[rep])
        for acc in (*scoped, *labels):
            fn(acc)
            if ts is not None:
                acc.active = True

    def labels_of(ev: _Ev, product: bool) -> list[_Acc]:
        """A lead's or deal's accumulators in products (deals only), sources and campaigns (section 6.3):
        without the attribute `unspecified` in products and sources, and in no campaign."""
        out = [products[ev.get("product") or "unspecified"]] if product else []
        out.append(sources[ev.get("source") or "unspecified"])
        if ev.get("campaign") is not None:
            out.append(campaigns[ev.get("campaign")])
        return out

    # 2. calls (with or without a lead): the call's rep.
    for c in calls:
        connected = c.get("outcome") == "connected"
        dur = _money(c.get("duration_s", 0)) if connected else Decimal(0)

        def f(a: _Acc, connected=connected, dur=dur):
            a.calls += 1
            if connected:
                a.calls_connected += 1
                a.talk += dur

        credit(c.ts, c.get("rep_id"), team_of(c, c.get("rep_id")), f)

    # 3. leads. A lead exists once it has a lead.created; held events of a never-created lead count nothing.
    max_age = timedelta(seconds=lead_max_age_seconds)
    sla_us = Fraction(sla_seconds) * _US
    for lead_events in leads.values():
        lead_events.sort(key=lambda x: x.key)
        created = [x for x in lead_events if x.type == "lead.created"]
        if not created:
            continue
        first_created = created[0]
        owner_ev = None
        for x in lead_events:
            if x.type in ("lead.created", "lead.assigned") and x.get("rep_id"):
                owner_ev = x  # latest one carrying a rep_id wins
        touches = [x for x in lead_events if x.type in ("lead.touched", "call.logged")]
        meetings = [x for x in lead_events if x.type == "meeting.booked"]
        qualified = [x for x in lead_events if x.type == "lead.qualified"]
        disqualified = any(x.type == "lead.disqualified" for x in lead_events)

        rep = first_created.get("rep_id") or "unassigned"
        lead_labels = labels_of(first_created, product=False)
        credit(first_created.ts, rep, team_of(first_created, rep),
               lambda a: setattr(a, "leads_created", a.leads_created + 1), lead_labels)

        mqls = [x for x in lead_events if x.type == "lead.marketing_qualified"]
        if mqls:
            # D14 credit: the MQL event's rep (its team, else the roster's), else the lead's owner (the team on
            # the owner's event), else `unassigned` with the MQL's team, else the lead.created's.
            m = mqls[0]
            if m.get("rep_id"):
                m_rep, m_team = m.get("rep_id"), team_of(m, m.get("rep_id"))
            elif owner_ev is not None:
                m_rep, m_team = owner_ev.get("rep_id"), team_of(owner_ev, owner_ev.get("rep_id"))
            else:
                m_rep = "unassigned"
                m_team = team_of(m if m.get("team") else first_created, m_rep)
            credit(m.ts, m_rep, m_team, lambda a: setattr(a, "mqls", a.mqls + 1), lead_labels)

        if touches:
            t = touches[0]
            resp = max(0, _us(t.ts - first_created.ts))

            def f(a: _Acc, resp=resp):
                a.responses_us.append(resp)
                a.within_sla += resp <= sla_us

            credit(t.ts, t.get("rep_id"), team_of(t, t.get("rep_id")), f)

        if qualified:
            q = qualified[0]
            credit(q.ts, q.get("rep_id"), team_of(q, q.get("rep_id")),
                   lambda a: setattr(a, "leads_qualified", a.leads_qualified + 1), lead_labels)

        if meetings:
            m = meetings[0]
            n_touches = sum(1 for x in touches if x.ts <= m.ts)
            credit(m.ts, m.get("rep_id"), team_of(m, m.get("rep_id")),
                   lambda a, n=n_touches: a.meeting_touches.append(n))

        if not touches and not disqualified and now - first_created.ts <= max_age:
            owner = owner_ev.get("rep_id") if owner_ev else "unassigned"
            crediting = owner_ev if owner_ev else first_created

            def f(a: _Acc, ts=first_created.ts):
                a.awaiting += 1
                if a.oldest_created is None or ts < a.oldest_created:
                    a.oldest_created = ts

            credit(None, owner, team_of(crediting, owner), f)

    # 4. deals.
    won_deals: list[tuple[tuple[str, str], datetime, Decimal]] = []
    stage_entries = {s: 0 for s in stages}
    stage_open = {s: [0, Decimal(0)] for s in stages}
    stage_closed = {s: {"won": 0, "lost": 0} for s in stages}
    for deal_events in deals.values():
        deal_events.sort(key=lambda x: x.key)
        created_list = [x for x in deal_events if x.type == "deal.created"]
        if not created_list:
            continue  # held forever: nothing counts
        created = created_list[0]
        owner = created.get("rep_id")
        owner_team = team_of(created, owner)
        deal_labels = labels_of(created, product=True)  # kind, product, source, campaign: the defining event's
        kind = created.get("kind") or "new"
        stage = amount = outcome = None
        final_amount = None
        entries: dict[str, datetime] = {}
        for x in deal_events:
            if outcome is not None and x is not created:
                if x.type in OUTCOMES or x.ts > outcome.ts:
                    continue  # second outcome / anything after the outcome changes nothing
            if x.type == "deal.created":
                stage = x.get("stage")
                if x.get("amount") is not None:
                    amount = _money(x.get("amount"))
                entries.setdefault(stage, x.ts)
            elif x.type == "deal.stage_changed":
                stage = x.get("to_stage")
                if x.get("amount") is not None:
                    amount = _money(x.get("amount"))
                entries.setdefault(stage, x.ts)
            else:
                outcome = x
                if x.type == "deal.won":
                    final_amount = _money(x.get("amount")) if x.get("amount") is not None else amount
        for s, ts in entries.items():
            if s in stage_entries and in_w(ts):
                stage_entries[s] += 1
        if outcome is None:
            amt = amount if amount is not None else Decimal(0)

            def f(a: _Acc, amt=amt):
                a.open_deals += 1
                a.open_value += amt

            credit(None, owner, owner_team, f, deal_labels)
            if stage in stage_open:
                stage_open[stage][0] += 1
                stage_open[stage][1] += amt
        elif outcome.type == "deal.won":
            fa = final_amount if final_amount is not None else Decimal(0)
            cycle = max(0, _us(outcome.ts - created.ts))
            term = outcome.get("term_months") or created.get("term_months")  # the outcome's, else the creation's
            acv = None if term is None else Fraction(fa) * 12 / term

            def f(a: _Acc, fa=fa, cycle=cycle, acv=acv):
                a.deals_won += 1
                a.won_revenue += fa
                a.cycles_us.append(cycle)
                a.won_by_kind[kind] += fa
                a.new_won += kind == "new"
                if acv is not None:
                    a.acv.append(acv)

            credit(outcome.ts, owner, owner_team, f, deal_labels)
            won_deals.append(((owner, owner_team), outcome.ts, fa))
            if stage in stage_closed and in_w(outcome.ts):
                stage_closed[stage]["won"] += 1  # the stage just before the outcome
        else:
            credit(outcome.ts, owner, owner_team, lambda a: setattr(a, "deals_lost", a.deals_lost + 1), deal_labels)
            if stage in stage_closed and in_w(outcome.ts):
                stage_closed[stage]["lost"] += 1

    # 4b. spend: credited to no rep; overall, its channel in sources, its campaign in campaigns.
    for sp in spends:
        amount, category = _money(sp.get("amount")), sp.get("category") or "marketing"
        spend_labels = [sources[sp.get("channel")]]
        if sp.get("campaign") is not None:
            spend_labels.append(campaigns[sp.get("campaign")])

        def f(a: _Acc, amount=amount, category=category):
            a.spend[category] += amount

        credit(sp.ts, None, None, f, spend_labels)

    # 5. accounts (batch_customers: C1-C3) and forecasts (C4).
    c_overall = cust.CustomerAcc()
    c_teams: dict[str, cust.CustomerAcc] = defaultdict(cust.CustomerAcc)
    c_reps: dict[str, cust.CustomerAcc] = defaultdict(cust.CustomerAcc)
    c_products: dict[str, cust.CustomerAcc] = defaultdict(cust.CustomerAcc)
    cust.credit_accounts(
        cust.build_accounts(accounts, _money), w_start, in_w, now, timezone,
        lambda rep, ev, product: [c_overall, c_teams[team_of(ev, rep)], c_reps[rep], c_products[product]],
    )
    this_period, prev_period = cust.period_of(now, timezone), cust.period_of(now, timezone, back=1)
    forecast_listed: set[tuple[str, str]] = set()  # (section, name) listed by a forecast counted in W
    # (rep, team) -> forecast for this month / the previous month
    f_now: dict[tuple[str, str], Decimal] = {}
    f_prev: dict[tuple[str, str], Decimal] = {}
    for (rep, period), x in cust.latest_forecasts(forecast_events, _money).items():
        team = team_of(x, rep)
        start = cust.month_start(int(period[:4]), int(period[5:7]), timezone)
        if in_w(start):
            forecast_listed.update({("reps", rep), ("teams", team)})
        if period == this_period:
            f_now[(rep, team)] = f_now.get((rep, team), Decimal(0)) + _money(x.get("amount"))
        elif period == prev_period:
            f_prev[(rep, team)] = f_prev.get((rep, team), Decimal(0)) + _money(x.get("amount"))
    # won revenue per (rep, team) in this window, and in the previous calendar month
    prev_start, prev_end = cust.month_bounds(now, timezone, back=1)
    won_pair: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    won_prev_pair: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for rep_team, ts, amount in won_deals:
        if in_w(ts):
            won_pair[rep_team] += amount
        if prev_start <= ts < prev_end:
            won_prev_pair[rep_team] += amount

    all_pairs = set(f_now) | set(f_prev) | set(won_pair) | set(won_prev_pair)
    f_month = cust.month_fraction(now, timezone)

    def forecast_results(members: list[list[tuple[str, str]]]) -> tuple[Any, Any, Any]:
        """(forecast_amount, attainment, accuracy) summed over the members (a rep's pairs, or one pair)
        that have a forecast for the month / for the previous month."""
        amount = won = prev_amount = prev_won = Decimal(0)
        has_now = has_prev = False
        for member in members:
            if any(p in f_now for p in member):
                has_now = True
                amount += sum((f_now.get(p, Decimal(0)) for p in member), Decimal(0))
                won += sum((won_pair.get(p, Decimal(0)) for p in member), Decimal(0))
            if any(p in f_prev for p in member):
                has_prev = True
                prev_amount += sum((f_prev.get(p, Decimal(0)) for p in member), Decimal(0))
                prev_won += sum((won_prev_pair.get(p, Decimal(0)) for p in member), Decimal(0))
        return (_money_out(amount) if has_now else None,
                float(won / amount) if has_now and amount else None,
                float(1 - abs(prev_won - prev_amount) / prev_amount) if has_prev and prev_amount else None)

    def month_keys(section: str, name: str, a: _Acc) -> dict:
        if section == "teams":
            members = [[p] for p in all_pairs if p[1] == name]
        else:
            rep_names = {p[0] for p in all_pairs} if section == "overall" else {name}
            members = [[p for p in all_pairs if p[0] == r] for r in rep_names]
        amount, attainment, accuracy = forecast_results(members)
        quota_reps = [r for r in (list(roster) if section == "overall" else
                                  [name] if section == "reps" else
                                  [r for r, v in roster.items() if (v or {}).get("team") == name])
                      if quota_of(r) is not None]
        if quota_reps and f_month:
            won_q = sum((reps[r].won_revenue if r in reps else Decimal(0) for r in quota_reps), Decimal(0))
            pace = float(Fraction(won_q) / (sum(Fraction(quota_of(r)) for r in quota_reps) * f_month))
        else:
            pace = None
        return {
            "forecast_amount": amount,
            "forecast_attainment": attainment,
            "forecast_accuracy": accuracy,
            "quota_pace": pace,
            "projected_won_revenue": _money_out(Decimal(a.won_revenue) * f_month.denominator / f_month.numerator)
            if f_month else None,
        }

    # 6. render.
    def render(a: _Acc, full: bool) -> dict:
        won_lost = a.deals_won + a.deals_lost
        avg = Fraction(a.won_revenue) / a.deals_won if a.deals_won else None
        win_rate = Fraction(a.deals_won, won_lost) if won_lost else None
        cycle = Fraction(sum(a.cycles_us), len(a.cycles_us) * 86400 * _US) if a.cycles_us else None
        if avg is None or win_rate is None or cycle is None or cycle == 0:
            velocity = None
        else:
            velocity = float(a.open_deals * avg * win_rate / cycle)
        out: dict[str, Any] = {
            "leads_awaiting_response": a.awaiting,
            "oldest_wait_seconds": (
                _us(now - a.oldest_created) / _US if a.oldest_created is not None else None),
            "open_deals": a.open_deals,
            "open_pipeline_value": _money_out(a.open_value),
            "pipeline_velocity_per_day": velocity,
        }
        if not full:
            return out
        n_resp = len(a.responses_us)
        resp_sorted = sorted(a.responses_us)
        out.update({
            "leads_created": a.leads_created,
            "leads_responded": n_resp,
            "lead_response_seconds_mean": float(Fraction(sum(resp_sorted), n_resp * _US)) if n_resp else None,
            "lead_response_seconds_p50": _nearest_rank(resp_sorted, Fraction(1, 2)) / _US if n_resp else None,
            "lead_response_seconds_p90": _nearest_rank(resp_sorted, Fraction(9, 10)) / _US if n_resp else None,
            "lead_response_within_sla_ratio": a.within_sla / n_resp if n_resp else None,
            "leads_qualified": a.leads_qualified,
            "lead_to_opportunity_ratio": a.leads_qualified / a.leads_created if a.leads_created else None,
            "touches_to_meeting_mean": (
                sum(a.meeting_touches) / len(a.meeting_touches) if a.meeting_touches else None),
            "calls": a.calls,
            "calls_connected": a.calls_connected,
            "connect_rate": a.calls_connected / a.calls if a.calls else None,
            "talk_seconds_total": float(a.talk) if a.calls_connected else 0,
            "deals_won": a.deals_won,
            "deals_lost": a.deals_lost,
            "win_rate": float(win_rate) if win_rate is not None else None,
            "won_revenue": _money_out(a.won_revenue),
            "avg_deal_size": _money_out(a.won_revenue / a.deals_won) if a.deals_won else None,
            "sales_cycle_days_mean": float(cycle) if cycle is not None else None,
        })
        out.update(_revenue_keys(a))
        return out

    # quota_attainment (month): rep = won revenue in the month / its roster monthly_quota;
    # team/overall = share of the roster's reps (of that roster team / all) with a quota whose attainment >= 1.
    def quota_of(rep: str) -> Decimal | None:
        q = (roster.get(rep) or {}).get("monthly_quota")
        if q is None:
            return None
        q = _money(q)
        return q if q > 0 else None

    def rep_attainment(rep: str) -> float | None:
        q = quota_of(rep)
        if q is None:
            return None
        won = reps[rep].won_revenue if rep in reps else Decimal(0)
        return float(won / q)

    def share(rep_ids: list[str]) -> float | None:
        with_quota = [r for r in rep_ids if quota_of(r) is not None]
        if not with_quota:
            return None
        return sum(1 for r in with_quota if rep_attainment(r) >= 1.0) / len(with_quota)

    def scopes(section: str, accs: dict[str, _Acc], caccs: dict[str, cust.CustomerAcc],
               quota: Callable[[str], float | None]) -> dict:
        out = {}
        for name in sorted(set(accs) | set(caccs) | {n for s, n in forecast_listed if s == section}):
            a, c = accs[name], caccs[name]
            if a.active or c.active_listing or (section, name) in forecast_listed:
                out[name] = render(a, True) | cust.render_customers(c, True, _money_out)
                if window == "month":
                    out[name]["quota_attainment"] = quota(name)
                    out[name].update(month_keys(section, name, a))
            elif a.awaiting > 0 or a.open_deals > 0 or c.customers_active > 0:
                out[name] = render(a, False) | cust.render_customers(c, False, _money_out)
        return out

    overall_out = render(overall, True) | cust.render_customers(c_overall, True, _money_out)
    overall_out.update(_spend_keys(overall))
    if window == "month":
        overall_out["quota_attainment"] = share(list(roster))
        overall_out.update(month_keys("overall", "", overall))
    # products: the deal KPIs (section 6) and the customer KPIs of the accounts of that product, listed
    # like reps (every key of both when either counted something in W, else the *now* keys of both).
    products_out = {}
    for name in sorted(set(products) | set(c_products)):
        a, c = products[name], c_products[name]
        if a.active or c.active_listing:
            doc = {**render(a, True), **_spend_keys(a)}
            products_out[name] = {k: doc[k] for k in PRODUCT_KEYS} | cust.render_customers(c, True, _money_out)
        elif a.open_deals > 0 or c.customers_active > 0:
            doc = render(a, False)
            products_out[name] = {k: doc[k] for k in LABEL_NOW_KEYS} | cust.render_customers(c, False, _money_out)
    stages_out = {}
    for i, s in enumerate(stages):
        nxt = stages[i + 1] if i + 1 < len(stages) else None
        conv = (stage_entries[nxt] / stage_entries[s]) if nxt is not None and stage_entries[s] else None
        stages_out[s] = {
            "open_deals": stage_open[s][0],
            "open_pipeline_value": _money_out(stage_open[s][1]),
            "stage_entries": stage_entries[s],
            "stage_conversion": conv,
            "deals_won": stage_closed[s]["won"],
            "deals_lost": stage_closed[s]["lost"],
        }
    return {
        "as_of": now.isoformat(),
        "window": window,
        "overall": overall_out,
        "teams": scopes("teams", teams, c_teams,
                        lambda t: share([r for r, v in roster.items() if (v or {}).get("team") == t])),
        "reps": scopes("reps", reps, c_reps, rep_attainment),
        "stages": stages_out,
        "products": products_out,
        "sources": _labelled(sources, render, MARKETING_KEYS),
        "campaigns": _labelled(campaigns, render, MARKETING_KEYS),
    }


# ------------------------------------------------------------------- revenue and marketing (section 6) --
# Which keys the labelled sections carry (contract 6.4, column "in": P products, S sources, C campaigns).
DEAL_KEYS = ("deals_won", "deals_lost", "win_rate", "won_revenue", "avg_deal_size", "sales_cycle_days_mean",
             "open_deals", "open_pipeline_value", "won_revenue_new", "won_revenue_expansion", "won_revenue_renewal",
             "new_customers_won", "avg_contract_value_annual")
PRODUCT_KEYS = DEAL_KEYS
MARKETING_KEYS = DEAL_KEYS + ("leads_created", "leads_qualified", "lead_to_opportunity_ratio", "mqls",
                              "mql_to_sql_ratio", "marketing_spend", "sales_spend", "cost_per_lead",
                              "cost_per_opportunity", "customer_acquisition_cost", "marketing_roi")
LABEL_NOW_KEYS = ("open_deals", "open_pipeline_value")
SPEND_KEYS = ("marketing_spend", "sales_spend", "cost_per_lead", "cost_per_opportunity", "customer_acquisition_cost",
              "marketing_roi")
SECTION6_KEYS = frozenset(("won_revenue_new", "won_revenue_expansion", "won_revenue_renewal", "new_customers_won",
                           "avg_contract_value_annual", "mqls", "mql_to_sql_ratio", *SPEND_KEYS))
SECTION6_SECTIONS = ("products", "sources", "campaigns")


def first_part(doc: dict) -> dict:
    """A `/kpis` document with only the keys and sections of the contract's sections 1-4 (what golden/ holds):
    without revenue and marketing, and without the customers and forecasts (tests.oracle.compare.without_section6
    does the same)."""
    later = SECTION6_KEYS | set(cust.CUSTOMER_NOW_KEYS) | set(cust.CUSTOMER_WINDOW_KEYS) | set(cust.MONTH_KEYS)
    out = {k: v for k, v in doc.items() if k not in SECTION6_SECTIONS}
    out["overall"] = {k: v for k, v in doc["overall"].items() if k not in later}
    for section in ("teams", "reps"):
        out[section] = {n: {k: v for k, v in d.items() if k not in later} for n, d in doc[section].items()}
    out["stages"] = {n: {k: v for k, v in d.items() if k not in ("deals_won", "deals_lost")}
                     for n, d in doc["stages"].items()}
    return out


def _cents(q: Fraction) -> float:
    """Money from an exact quotient, rounded half-even to the cent (D15)."""
    return float(Fraction(round(q * 100), 100))


def _revenue_keys(a: _Acc) -> dict:
    """The section-6 keys overall, teams and reps carry (spend aside)."""
    return {
        "won_revenue_new": _money_out(a.won_by_kind["new"]),
        "won_revenue_expansion": _money_out(a.won_by_kind["expansion"]),
        "won_revenue_renewal": _money_out(a.won_by_kind["renewal"]),
        "new_customers_won": a.new_won,
        "avg_contract_value_annual": _cents(sum(a.acv, Fraction(0)) / len(a.acv)) if a.acv else None,
        "mqls": a.mqls,
        "mql_to_sql_ratio": a.leads_qualified / a.mqls if a.mqls else None,
    }


def _spend_keys(a: _Acc) -> dict:
    """Spend and its ratios: overall, sources and campaigns only (spend is credited to no rep)."""
    marketing, sales = Fraction(a.spend["marketing"]), Fraction(a.spend["sales"])
    return {
        "marketing_spend": _money_out(a.spend["marketing"]),
        "sales_spend": _money_out(a.spend["sales"]),
        "cost_per_lead": _cents(marketing / a.leads_created) if a.leads_created else None,
        "cost_per_opportunity": _cents(marketing / a.leads_qualified) if a.leads_qualified else None,
        "customer_acquisition_cost": _cents((marketing + sales) / a.new_won) if a.new_won else None,
        "marketing_roi": float((Fraction(a.won_revenue) - marketing) / marketing) if marketing else None,
    }


def _labelled(accs: dict[str, _Acc], render: Callable[[_Acc, bool], dict], keys: tuple[str, ...]) -> dict:
    """A products / sources / campaigns section: listed like reps (every key when something was counted in
    W, the *now* keys with only open deals, else absent)."""
    out = {}
    for name in sorted(accs):
        a = accs[name]
        if a.active:
            doc = {**render(a, True), **_spend_keys(a)}
            out[name] = {k: doc[k] for k in keys}
        elif a.open_deals > 0:
            doc = render(a, False)
            out[name] = {k: doc[k] for k in LABEL_NOW_KEYS}
    return out


# ---------------------------------------------------------------------------------------------- CLI --
def load_roster_yaml(path: str) -> dict[str, dict]:
    """Roster YAML (`reps: [{rep_id, team, monthly_quota, ...}]`) -> {rep_id: {team, monthly_quota}}."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    reps = doc.get("reps", doc) if isinstance(doc, dict) else doc
    if isinstance(reps, dict):
        return {str(k): dict(v or {}) for k, v in reps.items()}
    return {str(r["rep_id"]): {k: v for k, v in r.items() if k != "rep_id"} for r in reps}


def _looks_valid(e: Any) -> bool:
    """Minimal guard for the CLI only (compute_kpis trusts its input): JSON object, known type, amount >= 0."""
    if not isinstance(e, dict) or e.get("type") not in RANK or not e.get("event_id"):
        return False
    try:
        parse_ts(e["occurred_at"])
        if "amount" in e and e["amount"] is not None and _money(e["amount"]) < 0:
            return False
    except Exception:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.oracle.batch_kpis", description=__doc__.splitlines()[0])
    p.add_argument("file", help="JSON Lines, one event a line, arrival order")
    p.add_argument("--window", choices=WINDOWS, default="all")
    p.add_argument("--now", help="RFC 3339; default: event clock (largest occurred_at)")
    p.add_argument("--timezone", default="UTC")
    p.add_argument("--sla-seconds", type=float, default=300)
    p.add_argument("--roster", help="roster YAML")
    p.add_argument("--partitions", type=int, metavar="N",
                   help="apply the too-late rule as if replayed to topics of N partitions (Kafka default "
                        "partitioner); default: no too-late filtering")
    args = p.parse_args(argv)
    events = []
    with open(args.file, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
            except ValueError:
                e = None
            if not _looks_valid(e):
                print(f"skipping line {n}: not a valid event", file=sys.stderr)
                continue
            events.append(e)
    if args.partitions:
        placed = []
        for e in events:
            topic, key = topic_and_key(e)
            placed.append((topic, kafka_partition(key, args.partitions), e))
        rejected: list[dict] = []
        events = drop_too_late(placed, rejected)
        for e in rejected:
            print(f"too late: {e['event_id']}", file=sys.stderr)
    now = parse_ts(args.now) if args.now else event_clock_now(events)
    roster = load_roster_yaml(args.roster) if args.roster else None
    doc = compute_kpis(events, args.window, now, sla_seconds=args.sla_seconds, timezone=args.timezone,
                       roster=roster)
    json.dump(doc, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
