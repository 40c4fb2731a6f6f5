"""A simulated sales floor: realistic, deterministic event streams for demos, tests and load.

Two layers, kept apart so tests never need a broker:

* ``SalesFloor`` *generates*: from a roster, a seed and a simulated start time it yields events in
  arrival order (``events``) or as ready-to-produce messages ``(topic_suffix, key, value bytes)``
  (``messages``), optionally with malformed ones mixed in. Same seed + same options + same start
  give byte-identical output.
* ``run_simulate`` / ``simulate_main`` *deliver*: produce live to Kafka paced on the wall clock,
  and/or write a JSON Lines file.

What the floor does: leads arrive as a Poisson process whose intensity follows a business-hours
curve in the configured time zone (peak 10:00-16:00 on weekdays, low but not zero at night and on
weekends). Each lead gets a source and usually an owner (else a ``lead.assigned`` a minute or two
later). Each rep has a lognormal response time; most reps' median is 0.3-0.55 x the SLA (1.5-3 min
for the default 5-min SLA), one or two *slow reps* (``SalesFloor.slow_reps``) sit at 1.3-2 x the SLA,
so most first touches are inside the SLA and a few leads an hour wait past it. ~4 % of leads are
junk, never touched and always disqualified (most by a dedup rule within minutes, the rest within the
hour or so), so no lead is left waiting for days. Touches are calls (outcome mix ~35 % connected, talk
time for connected calls) or emails/SMS/chats/...; some calls have no lead. A few leads book a meeting
after some touches, ~5 % get qualified (-> ``deal.created`` with a product price plus noise), many are
disqualified. Deals move through the configured open stages (sometimes skipping one) and close won
(~30 %) or lost after a cycle of days (median a week). With the example roster the natural floor wins
about the reps' monthly quotas. ~1 % of events are delivered up to 60 s late, so arrival order is only
*mostly* occurred_at order. Customers and forecasts (``stream.local.customers_sim``, on random streams of
their own): a book of accounts started in the first hour, subscriptions started or grown by won deals,
expansions, contractions and ~3 % monthly churn; each rep's forecast on the 1st, revised every Monday,
two reps optimistic.

How ``rate``, ``speedup`` and the floor's intensity combine
------------------------------------------------------------
``rate`` is the target long-run average of messages per *wall* second when played live;
``speedup`` X makes simulated time run X times faster than the wall clock. So the floor must
produce ``rate / speedup`` messages per *simulated* second, and its size (lead intensity) is
scaled to exactly that: ``peak leads/s = rate x (1 - bad_ratio) / speedup / (E x W)`` where E is
the mean number of events one lead causes (calibrated once by simulation, standalone calls
included) and W the week-average of the business-hours curve (0.31). So ``rate`` is a long-run
average: the instantaneous rate follows the curve (about 3 x ``rate`` at a weekday peak, 0.1-0.2 x
at night and on weekends), and the first simulated hours are quieter still because lifecycles
(touches over hours, deals over days) are only starting. The start line on stderr says where on the
curve the run begins. ``rate=None`` means the natural floor: 16 leads per rep per weekday (with the
example roster ~20 leads an hour at a weekday peak, ~30 messages an hour on average).
Memory: the floor holds the scheduled future of every live lead and deal, about 40 MB per
simulated event/s once a couple of simulated days have passed (rate 20 at speedup 60: ~15 MB).

Live runs and the wall clock: a worker on the wall clock dead-letters events more than 5 min in
the future and more than ~25 h in the past. With speedup > 1 the simulated clock outruns the wall
clock, so when ``--start`` is not given and a duration is, the start is moved back by
``duration x (speedup - 1)``: the run ends at "now" and never runs ahead. Without a duration the
start is now and a warning says to run the worker with ``KPI_CLOCK=event``.

Backfill (``--backfill 5w``, what ``make demo`` runs): the floor starts at the local midnight five
weeks before now; its history is produced as fast as Kafka takes it, every event stamped at its real
past time, then the same floor goes on live at speedup 1, so the simulated clock *is* the wall clock
and nothing is ever stamped ahead of it. A worker on the wall clock accepts the history only with a
``KPI_TOO_LATE_SECONDS`` longer than the backfill (the demo's worker has one; a warning says so).

Determinism requires ``--start`` (and ``--seed``): otherwise the start is the wall clock. With
``--backfill`` the start is a local midnight, so the same seed gives the same history all day.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Callable, Iterator, NamedTuple
from zoneinfo import ZoneInfo

import orjson

from stream.config import DEFAULT_STAGES
from stream.events import TOPIC_OF_TYPE
from stream.local.customers_sim import CustomerBook
from stream.durations import parse_positive_duration
from stream.local.sim_marketing import Marketing
from stream.roster import Rep, Roster, Team

UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Relative lead-arrival intensity by local hour 0..23 (1.0 = peak).
WEEKDAY_CURVE = (0.05,) * 7 + (0.15, 0.4, 0.75) + (1.0,) * 6 + (0.75, 0.45, 0.25, 0.15) + (0.08,) * 4
WEEKEND_CURVE = (0.03,) * 8 + (0.12,) * 12 + (0.05,) * 4
WEEK_MEAN_WEIGHT = (5 * sum(WEEKDAY_CURVE) + 2 * sum(WEEKEND_CURVE)) / (7 * 24)

# Natural floor size (rate=None): with the funnel below, the example roster's reps win about their
# monthly quotas (won revenue a month ~ the sum of the quotas), and a weekday peak brings a new lead
# every ~3 minutes: a floor a person can follow on the wall.
LEADS_PER_REP_WEEKDAY = 16
CALLS_WITHOUT_LEAD_PER_LEAD = 0.3  # inbound calls, cold calls

P_OWNED_AT_CREATE = 0.85
ASSIGN_MEDIAN_S = 45
# Leads nobody ever touches are junk (duplicates, spam, wrong numbers): the CRM's dedup rule drops most
# within a couple of minutes, the rest a rep or ops disqualifies within the hour or so. None is left
# waiting for days, as on a floor someone manages.
P_NEVER_TOUCHED = 0.04
P_JUNK_DEDUPED = 0.6
JUNK_DEDUP_MEDIAN_S, JUNK_REVIEW_MEDIAN_S = 90, 45 * 60
P_REASSIGNED = 0.04
TOUCH_GAP_MEDIAN_S = 4 * 3600
P_CALL = 0.55
P_MEETING = 0.12  # of leads touched at least twice
P_QUALIFY_AFTER_MEETING = 0.45
P_QUALIFY_WITHOUT_MEETING = 0.02  # of leads touched 3+ times
P_DISQUALIFY = 0.35
P_DEAL = 0.8
P_WIN = 0.3
P_SKIP_STAGE = 0.15
DEAL_CYCLE_MEDIAN_S = 7 * 86400
# First-touch times: most reps' median is 0.3-0.55 x the SLA (90-165 s for 5 min), one or two slow reps
# sit at 1.3-2 x, so most first touches are inside the SLA and the slow reps' leads are the ones that page.
FAST_MEDIAN_SLA, SLOW_MEDIAN_SLA, RESPONSE_SIGMA = (0.3, 0.55), (1.3, 2.0), 0.5
P_TEAM_FIELD = 0.7  # `team` is optional on events: present on most
LATE_SHARE, MAX_LATE_S = 0.01, 60.0

SOURCES = (("web_form", 30), ("paid_search", 15), ("cold_outbound", 15), ("referral", 12),
           ("webinar", 8), ("partner", 8), ("linkedin", 8), ("trade_show", 4))
CHANNELS = (("email", 55), ("sms", 15), ("chat", 15), ("social", 10), ("other", 5))
OUTCOMES = (("connected", 35), ("no_answer", 30), ("voicemail", 22), ("busy", 8), ("failed", 5))
TOUCH_COUNTS = ((1, 25), (2, 20), (3, 18), (4, 14), (5, 10), (6, 7), (7, 4), (8, 2))
PRODUCTS = (("starter", 4_800, 60), ("growth", 12_000, 28), ("scale", 36_000, 10), ("enterprise", 90_000, 2))
DISQUALIFY_REASONS = ("no_budget", "not_a_fit", "unresponsive", "duplicate", "competitor_customer")
LOST_REASONS = ("price", "competitor", "no_decision", "timing", "no_budget")


class SimEvent(NamedTuple):
    at_ms: int  # arrival time (simulated): occurred_at, or later for late deliveries
    topic: str  # leads | calls | deals | subscriptions | forecasts
    key: str
    event: dict[str, Any]


class Message(NamedTuple):
    topic: str
    key: str
    value: bytes
    at_ms: int
    bad: bool = False


@dataclass(frozen=True)
class RepProfile:
    rep_id: str
    team: str
    median_response_s: float
    sigma: float
    slow: bool
    weight: float  # share of incoming leads


def _iso(ms: int) -> str:
    dt = _EPOCH + timedelta(milliseconds=ms)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _amount_with(cents: int, rng: random.Random) -> float | str:
    """Money as producers send it: mostly JSON numbers, some decimal strings."""
    return f"{cents // 100}.{cents % 100:02d}" if rng.random() < 0.3 else cents / 100


def _chooser(rng: random.Random, table) -> Callable[[], Any]:
    values, weights = [row[0] for row in table], list(itertools.accumulate(row[-1] for row in table))
    return lambda: rng.choices(values, cum_weights=weights)[0]


class SalesFloor:
    """Generates a sales floor's events. Single use: call ``events`` or ``messages`` once."""

    def __init__(self, roster: Roster, seed: int, start: datetime, *, sla_seconds: float = 300.0,
                 stages: tuple[str, ...] = DEFAULT_STAGES, tz: str = "UTC", currency: str = "USD",
                 events_per_second: float | None = None, late_share: float = LATE_SHARE) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not roster.reps:
            raise ValueError("the roster has no reps to simulate")
        self.seed, self.stages, self.currency, self.late_share = seed, tuple(stages), currency, late_share
        self.tz = ZoneInfo(tz)
        self.start_ms = round(start.timestamp() * 1000)
        self.rng = rng = random.Random(seed)
        # Separate streams so late delivery and bad messages never change the good events.
        self._late_rng = random.Random(f"{seed}:late")
        self._bad_rng = random.Random(f"{seed}:bad")
        self.profiles = self._profiles(roster, sla_seconds)
        self.slow_reps = tuple(sorted(p.rep_id for p in self.profiles.values() if p.slow))
        self._rep_ids = sorted(self.profiles)
        self._rep_cum = list(itertools.accumulate(self.profiles[r].weight for r in self._rep_ids))
        self._source, self._channel = _chooser(rng, SOURCES), _chooser(rng, CHANNELS)
        self._outcome, self._touch_count = _chooser(rng, OUTCOMES), _chooser(rng, TOUCH_COUNTS)
        self._product = _chooser(rng, [(p, w) for p, _, w in PRODUCTS])
        self._price = {p: price for p, price, _ in PRODUCTS}
        # Peak lead intensity (leads per simulated second at curve weight 1.0).
        if events_per_second is None:
            self.peak_leads_per_s = len(roster.reps) * LEADS_PER_REP_WEEKDAY / (sum(WEEKDAY_CURVE) * 3600)
        else:
            per_lead = events_per_lead(self.stages)
            self.peak_leads_per_s = events_per_second / (per_lead * WEEK_MEAN_WEIGHT)
        self._arrival_max = self.peak_leads_per_s * (1 + CALLS_WITHOUT_LEAD_PER_LEAD)
        self._ids, self._seq, self._customer_ids = itertools.count(1), itertools.count(), itertools.count(1)
        self._lead_n, self._call_n, self._deal_n, self._bad_n = (itertools.count(1) for _ in range(4))
        self._pending: list[tuple] = []  # heap of (ms, seq, topic, key, event)
        self._weights: dict[int, float] = {}
        self._t = self.start_ms / 1000
        # Sources and campaigns, MQLs, spend, deal kinds and terms: their own random stream and ids
        # (stream.local.sim_marketing), so the rest of the floor is what it was without them.
        self.marketing = Marketing(seed, self.tz, {name: w for name, w in SOURCES})
        self._quiet_ids = itertools.count(1)
        self._next_spend = self.start_ms / 1000  # the first day's spend is stamped at the start
        quotas = {r.rep_id: r.monthly_quota for r in roster.reps if r.monthly_quota}
        self._book = CustomerBook(seed, self._rep_ids, quotas, self.tz, self._emit_customer, _amount_with)

    # ---------------------------------------------------------------- set-up
    def _profiles(self, roster: Roster, sla: float) -> dict[str, RepProfile]:
        rng, reps = self.rng, sorted(roster.reps, key=lambda r: r.rep_id)
        n = len(reps)
        n_slow = 2 if n >= 8 else 1 if n >= 3 else 0
        slow = set(r.rep_id for r in rng.sample(reps, n_slow))
        out = {}
        for rep in reps:
            is_slow = rep.rep_id in slow
            median = sla * rng.uniform(*(SLOW_MEDIAN_SLA if is_slow else FAST_MEDIAN_SLA))
            out[rep.rep_id] = RepProfile(rep.rep_id, rep.team, median, RESPONSE_SIGMA, is_slow, rng.uniform(0.7, 1.3))
        return out

    def weight(self, t: float) -> float:
        """Relative arrival intensity at epoch second t (business-hours curve, local time)."""
        bucket = int(t // 900)  # every UTC offset is a multiple of 15 min
        w = self._weights.get(bucket)
        if w is None:
            if len(self._weights) > 4096:
                self._weights.clear()
            local = datetime.fromtimestamp(bucket * 900, self.tz)
            w = (WEEKEND_CURVE if local.weekday() >= 5 else WEEKDAY_CURVE)[local.hour]
            self._weights[bucket] = w
        return w

    def expected_leads(self, until: datetime) -> float:
        """Expected number of lead.created between the start and ``until``."""
        return self._expected_between(self.start_ms / 1000, until.timestamp())

    @property
    def events_per_second(self) -> float:
        """Long-run average events per simulated second."""
        return self.peak_leads_per_s * WEEK_MEAN_WEIGHT * events_per_lead(self.stages)

    # ---------------------------------------------------------------- event building
    def _lognormal(self, median: float, sigma: float) -> float:
        return self.rng.lognormvariate(math.log(median), sigma)

    def _emit(self, t: float, etype: str, key: str, fields: dict[str, Any], rep: str | None) -> None:
        ms = round(t * 1000)
        ev = {"event_id": f"sim-{self.seed}-{next(self._ids)}", "type": etype, "occurred_at": _iso(ms), **fields}
        if rep is not None:
            ev["rep_id"] = rep
            if self.rng.random() < P_TEAM_FIELD:
                ev["team"] = self.profiles[rep].team
        heapq.heappush(self._pending, (ms, next(self._seq), TOPIC_OF_TYPE[etype], key, ev))
        return ev

    def _emit_marketing(self, t: float, etype: str, key: str, fields: dict[str, Any]) -> None:
        """An event of the marketing side: its own ids (``sim-<seed>-m<n>``), no draw from the floor's stream."""
        ms = round(t * 1000)
        ev = {"event_id": f"sim-{self.seed}-m{next(self._quiet_ids)}", "type": etype, "occurred_at": _iso(ms), **fields}
        heapq.heappush(self._pending, (ms, next(self._seq), TOPIC_OF_TYPE[etype], key, ev))

    def _market_lead(self, created: dict[str, Any], t: float, first_touch: float | None,
                     qualified: float | None) -> None:
        """The lead's source and campaign (knowing its fate: good channels bring more opportunities), and
        its MQL, before the SQL step."""
        mkt = self.marketing
        source = created["source"] = mkt.source_for(qualified is not None)
        campaign = mkt.campaign_for(source)
        if campaign is not None:
            created["campaign"] = campaign
        mql = mkt.mql_at(source, t, first_touch, qualified)
        if mql is not None:
            self._emit_marketing(mql, "lead.marketing_qualified", created["lead_id"], {"lead_id": created["lead_id"]})

    def _spend_day(self, day_start: float) -> None:
        """Each channel's and campaign's spend of the local day starting at ``day_start``, stamped then."""
        day_end = self.marketing.next_day_start(day_start)
        for fields in self.marketing.day_spend(day_start, self._expected_between(day_start, day_end)):
            self._emit_marketing(day_start, "spend.recorded", fields["channel"], fields)
        self._next_spend = day_end

    def _expected_between(self, t0: float, t1: float) -> float:
        """Expected number of lead.created between two simulated times (seconds): the rate over 15-minute steps."""
        total, t = 0.0, t0
        while t < t1:
            step = min(900 - t % 900, t1 - t)
            total += self.weight(t) * step
            t += step
        return total * self.peak_leads_per_s

    def _emit_customer(self, t: float, etype: str, key: str, fields: dict[str, Any], rep: str | None,
                       rng: random.Random) -> dict[str, Any]:
        """Like ``_emit`` for the customer book, on its own random stream and id sequence."""
        ms = round(t * 1000)
        ev = {"event_id": f"sim-{self.seed}-c{next(self._customer_ids)}", "type": etype, "occurred_at": _iso(ms),
              **fields}
        if rep is not None:
            ev["rep_id"] = rep
            if rng.random() < P_TEAM_FIELD:
                ev["team"] = self.profiles[rep].team
        heapq.heappush(self._pending, (ms, next(self._seq), TOPIC_OF_TYPE[etype], key, ev))
        return ev

    def _pick_rep(self, exclude: str | None = None) -> str:
        while True:
            rep = self.rng.choices(self._rep_ids, cum_weights=self._rep_cum)[0]
            if rep != exclude or len(self._rep_ids) == 1:
                return rep

    def _amount(self, cents: int) -> float | str:
        # Producers differ: most send JSON numbers, some decimal strings.
        if self.rng.random() < 0.3:
            return f"{cents // 100}.{cents % 100:02d}"
        return cents / 100

    def _call(self, t: float, rep: str, lead: str | None, direction: str) -> None:
        call = f"call-{self.seed}-{next(self._call_n):06d}"
        outcome = self._outcome()
        if outcome == "connected":
            duration = round(self._lognormal(240, 0.8), 1)
        elif outcome == "voicemail":
            duration = round(self.rng.uniform(12, 40), 1)
        else:
            duration = 0.0
        fields: dict[str, Any] = {"call_id": call}
        if lead:
            fields["lead_id"] = lead
        fields.update(direction=direction, outcome=outcome, duration_s=duration)
        self._emit(t, "call.logged", lead or call, fields, rep)

    def _touch(self, t: float, rep: str, lead: str) -> None:
        if self.rng.random() < P_CALL:
            self._call(t, rep, lead, "outbound")
        else:
            self._emit(t, "lead.touched", lead, {"lead_id": lead, "channel": self._channel()}, rep)

    def _lead(self, t: float) -> None:
        """A lead's whole life, scheduled at once (the heap releases it in time order)."""
        rng = self.rng
        lead = f"lead-{self.seed}-{next(self._lead_n):06d}"
        owner = self._pick_rep()
        owned = rng.random() < P_OWNED_AT_CREATE
        created = self._emit(t, "lead.created", lead, {"lead_id": lead, "source": self._source()},
                             owner if owned else None)
        ready = t
        if not owned:
            ready = t + self._lognormal(ASSIGN_MEDIAN_S, 0.7)
            self._emit(ready, "lead.assigned", lead, {"lead_id": lead}, owner)
        if rng.random() < P_NEVER_TOUCHED:
            if rng.random() < P_JUNK_DEDUPED:
                gone, reason, by = t + self._lognormal(JUNK_DEDUP_MEDIAN_S, 0.5), "duplicate", None
            else:
                gone, reason, by = ready + self._lognormal(JUNK_REVIEW_MEDIAN_S, 0.6), rng.choice(DISQUALIFY_REASONS), owner
            self._emit(gone, "lead.disqualified", lead, {"lead_id": lead, "reason": reason}, by)
            self._market_lead(created, t, None, None)
            return
        prof = self.profiles[owner]
        touch_t = ready + self._lognormal(prof.median_response_s, prof.sigma)
        first_touch = touch_t
        n_touches = self._touch_count()
        meeting_at = rng.randint(2, n_touches) if n_touches >= 2 and rng.random() < P_MEETING else None
        reassign = n_touches >= 2 and rng.random() < P_REASSIGNED
        rep, meeting_t = owner, None
        for i in range(1, n_touches + 1):
            self._touch(touch_t, rep, lead)
            if i == 1 and reassign:
                rep = self._pick_rep(exclude=owner)
                self._emit(touch_t + self._lognormal(3600, 1.0), "lead.assigned", lead, {"lead_id": lead}, rep)
                touch_t += 3600  # the new owner picks it up after the hand-over
            if i == meeting_at:
                meeting_t = touch_t + rng.uniform(30, 900)
                self._emit(meeting_t, "meeting.booked", lead, {"lead_id": lead}, rep)
                break
            if i < n_touches:
                touch_t += self._lognormal(TOUCH_GAP_MEDIAN_S, 1.0)
        if meeting_t is not None and rng.random() < P_QUALIFY_AFTER_MEETING:
            qualified_t = meeting_t + self._lognormal(4 * 3600, 1.0)
        elif meeting_t is None and n_touches >= 3 and rng.random() < P_QUALIFY_WITHOUT_MEETING:
            qualified_t = touch_t + self._lognormal(3600, 1.0)
        else:
            if rng.random() < P_DISQUALIFY:
                self._emit(touch_t + self._lognormal(86400, 1.0), "lead.disqualified", lead,
                           {"lead_id": lead, "reason": rng.choice(DISQUALIFY_REASONS)},
                           rep if rng.random() < 0.8 else None)
            self._market_lead(created, t, first_touch, None)
            return
        self._emit(qualified_t, "lead.qualified", lead, {"lead_id": lead}, rep)
        self._market_lead(created, t, first_touch, qualified_t)
        if rng.random() < P_DEAL:
            self._deal(qualified_t + self._lognormal(1200, 1.0), rep, lead, created["source"], created.get("campaign"))

    def _deal(self, t: float, rep: str, lead: str | None, source: str | None = None,
              campaign: str | None = None) -> None:
        rng, stages = self.rng, self.stages
        deal = f"deal-{self.seed}-{next(self._deal_n):06d}"
        product = self._product()
        cents = round(self._price[product] * rng.lognormvariate(0, 0.18) * 100)
        first = 1 if len(stages) > 1 and rng.random() < 0.15 else 0
        fields: dict[str, Any] = {"deal_id": deal, "lead_id": lead, "amount": self._amount(cents),
                                  "stage": stages[first], "product": product}
        if rng.random() < 0.1:
            fields["currency"] = self.currency
        fields.update(self.marketing.deal_fields(t, product, source, campaign))
        self._emit(t, "deal.created", deal, fields, rep)
        won = rng.random() < P_WIN
        last = len(stages) - 1 if won else rng.randint(first, len(stages) - 1)
        path, i = [], first
        while i < last:
            i += 2 if i + 2 <= last and rng.random() < P_SKIP_STAGE else 1
            path.append(i)
        cycle = self._lognormal(DEAL_CYCLE_MEDIAN_S * (1.0 if won else 0.8), 0.9)
        for idx, frac in zip(path, sorted(rng.random() for _ in path)):
            change: dict[str, Any] = {"deal_id": deal, "to_stage": stages[idx]}
            if rng.random() < 0.25:
                cents = round(cents * rng.uniform(0.85, 1.15))
                change["amount"] = self._amount(cents)
            self._emit(t + cycle * frac, "deal.stage_changed", deal, change, rep if rng.random() < 0.7 else None)
        end = t + cycle
        if won:
            outcome: dict[str, Any] = {"deal_id": deal}
            final = cents
            if rng.random() < 0.8:
                final = round(cents * rng.uniform(0.9, 1.0))
                outcome["amount"] = self._amount(final)
            self._emit(end, "deal.won", deal, outcome, rep if rng.random() < 0.85 else None)
            self.marketing.won(end, fields["account_id"])
            self._book.deal_won(end, rep, product, final, fields.get("term_months"))
        else:
            self._emit(end, "deal.lost", deal, {"deal_id": deal, "reason": rng.choice(LOST_REASONS)},
                       rep if rng.random() < 0.85 else None)

    # ---------------------------------------------------------------- streams
    def _next_arrival(self) -> float:
        # Thinning (Lewis-Shedler): candidates at the peak rate, kept with probability weight(t).
        t = self._t
        while True:
            t += self.rng.expovariate(self._arrival_max)
            if self.rng.random() < self.weight(t):
                self._t = t
                return t

    def _timeline(self, until_ms: int | None) -> Iterator[tuple]:
        """All events in occurred_at order, up to (excluding) until_ms."""
        pending, call_share = self._pending, CALLS_WITHOUT_LEAD_PER_LEAD / (1 + CALLS_WITHOUT_LEAD_PER_LEAD)
        if not self._book.started:
            self._book.start_book(self.start_ms / 1000)
        while True:
            t = self._next_arrival()
            self._book.forecasts_until(t if until_ms is None else min(t, until_ms / 1000))
            ms = round(t * 1000)
            while self._next_spend <= t and (until_ms is None or self._next_spend * 1000 < until_ms):
                self._spend_day(self._next_spend)
            limit = ms if until_ms is None else min(ms, until_ms)
            while pending and pending[0][0] < limit:
                yield heapq.heappop(pending)
            if until_ms is not None and ms >= until_ms:
                return
            if self.rng.random() < call_share:
                self._call(t, self._pick_rep(), None, "inbound" if self.rng.random() < 0.6 else "outbound")
            else:
                self._lead(t)

    def events(self, until: datetime | None = None) -> Iterator[SimEvent]:
        """Events in arrival order until ``until`` (None: forever); ~1 % arrive up to 60 s late."""
        until_ms = None if until is None else round(until.timestamp() * 1000)
        late, buf = self._late_rng, []
        for ms, seq, topic, key, ev in self._timeline(until_ms):
            arrival = ms
            if late.random() < self.late_share:
                arrival += round(late.uniform(1, MAX_LATE_S) * 1000)
            heapq.heappush(buf, (arrival, seq, topic, key, ev))
            while buf and buf[0][0] <= ms:
                arrival, _, topic, key, ev = heapq.heappop(buf)
                yield SimEvent(arrival, topic, key, ev)
        while buf:
            arrival, _, topic, key, ev = heapq.heappop(buf)
            yield SimEvent(arrival, topic, key, ev)

    def messages(self, until: datetime | None = None, bad_ratio: float = 0.0) -> Iterator[Message]:
        """Messages to produce; a share ``bad_ratio`` of them are malformed (``Message.bad``)."""
        if not 0 <= bad_ratio < 1:
            raise ValueError("bad_ratio must be in [0, 1)")
        bad = self._bad_rng
        for se in self.events(until):
            yield Message(se.topic, se.key, orjson.dumps(se.event), se.at_ms)
            # Geometric number of bad ones after each good one: bad share = bad_ratio exactly in expectation.
            while bad_ratio and bad.random() < bad_ratio:
                yield self._malformed(se)

    def _malformed(self, se: SimEvent) -> Message:
        """One invalid message derived from a real one, in one of many ways the validator must catch."""
        rng, ev = self._bad_rng, dict(se.event)
        ev["event_id"] = f"sim-{self.seed}-bad-{next(self._bad_n)}"
        topic, key = se.topic, se.key
        kind = rng.choice(("not_json", "not_json", "not_object", "missing_field", "missing_field", "unknown_type",
                           "bad_timestamp", "bad_timestamp", "negative_amount", "negative_amount", "wrong_type",
                           "wrong_type", "wrong_currency", "unknown_stage", "oversize"))
        if kind in ("negative_amount", "wrong_currency", "unknown_stage"):
            if ev["type"] != "deal.created":  # these need a deal: make one up that never becomes valid
                deal = f"deal-{self.seed}-bad-{next(self._bad_n)}"
                ev = {"event_id": ev["event_id"], "type": "deal.created", "occurred_at": ev["occurred_at"],
                      "deal_id": deal, "rep_id": self._rep_ids[0], "amount": 1250.0, "stage": self.stages[0]}
                topic, key = "deals", deal
            if kind == "negative_amount":
                ev["amount"] = rng.choice((-1250.0, "-99.99", -0.01))
            elif kind == "wrong_currency":
                ev["currency"] = "EUR" if self.currency != "EUR" else "USD"
            else:
                ev["stage"] = rng.choice(("closed_won", "Prospecting", "stage-9"))
        if kind == "not_json":
            value = rng.choice((orjson.dumps(ev)[:-9], b"lead created for ACME Corp, call back tomorrow",
                                b"\xff\xfe{\x00\"type\x00", b"{'event_id': 'x', 'type': 'lead.created'}"))
        elif kind == "not_object":
            value = orjson.dumps([ev["type"], ev["event_id"]])
        elif kind == "missing_field":
            required = ["event_id", "occurred_at", {"leads": "lead_id", "calls": "call_id", "deals": "deal_id",
                                                    "spend": "channel", "subscriptions": "account_id",
                                                    "forecasts": "period"}[topic]]
            if ev["type"] == "call.logged":
                required += ["outcome", "duration_s"]
            ev.pop(rng.choice(required), None)
            value = orjson.dumps(ev)
        elif kind == "unknown_type":
            ev["type"] = rng.choice(("lead.deleted", "Lead.Created", "deal.closed", "call"))
            value = orjson.dumps(ev)
        elif kind == "bad_timestamp":
            ev["occurred_at"] = rng.choice(("2026-13-45T25:61:00Z", "yesterday", ev["occurred_at"][:19],
                                            "2250-01-01T00:00:00Z", ""))
            value = orjson.dumps(ev)
        elif kind == "wrong_type":
            field, bad_value = rng.choice({
                "calls": (("duration_s", "long"), ("duration_s", -5), ("outcome", "hung_up"), ("rep_id", 42)),
                "leads": (("rep_id", ""), ("rep_id", 42), ("team", ["a"]), ("event_id", None)),
                "deals": (("amount", True), ("amount", "12,000.00"), ("rep_id", ""), ("team", 7)),
                "spend": (("amount", True), ("channel", ""), ("category", "ads")),
                "subscriptions": (("account_id", ""), ("account_id", 42), ("team", 7)),
                "forecasts": (("period", "2026-13"), ("period", 202611), ("rep_id", "")),
            }[topic])
            if field == "amount" and ev["type"] == "deal.lost":  # no amount there: it would be ignored
                field, bad_value = "rep_id", ""
            ev[field] = bad_value
            value = orjson.dumps(ev)
        elif kind == "oversize":
            ev["notes"] = "x" * 70_000
            value = orjson.dumps(ev)
        else:
            value = orjson.dumps(ev)
        return Message(topic, key, value, se.at_ms, True)


@lru_cache(maxsize=8)
def events_per_lead(stages: tuple[str, ...] = DEFAULT_STAGES) -> float:
    """Mean events caused by one lead (standalone calls included), calibrated by simulation."""
    roster = Roster(teams=[Team("t")], reps=[Rep(f"r{i}", "t") for i in range(10)])
    floor = SalesFloor(roster, 0, datetime(2026, 1, 5, tzinfo=UTC), stages=stages)
    n = 4000
    for i in range(n):
        floor._lead(floor._t + i)
    return len(floor._pending) / n + CALLS_WITHOUT_LEAD_PER_LEAD


# ---------------------------------------------------------------- CLI hooks

def parse_start(text: str | datetime | None) -> datetime | None:
    if text is None or isinstance(text, datetime):
        start = text
    else:
        try:
            start = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(f"bad --start {text!r}: use RFC 3339, e.g. 2026-11-23T08:00:00Z") from None
    if start is not None and start.tzinfo is None:
        raise ValueError(f"--start {text!r} needs an offset (Z or +01:00)")
    return start


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Tally:
    def __init__(self) -> None:
        self.sent = self.bad = self.unwritten = self.written = self.failed = 0
        self.per_topic: dict[str, int] = {}
        self.first_error: str | None = None
        self.t0 = time.monotonic()
        self.last_at, self.last_sent = self.t0, 0

    def progress(self, echo, sim_ms: int, tz: ZoneInfo, final: bool = False) -> None:
        now = time.monotonic()
        elapsed = max(now - self.t0, 1e-9)
        recent = (self.sent - self.last_sent) / max(now - self.last_at, 1e-9)
        self.last_at, self.last_sent = now, self.sent
        sim = datetime.fromtimestamp(sim_ms / 1000, tz).strftime("%a %Y-%m-%d %H:%M")
        if final:
            topics = ", ".join(f"{t} {n}" for t, n in sorted(self.per_topic.items()))
            extra = f"; {self.unwritten} bad not written (binary)" if self.unwritten else ""
            failed = f"; {self.failed} FAILED ({self.first_error})" if self.failed else ""
            echo(f"simulate: done: {self.sent} messages in {elapsed:.1f} s ({self.sent / elapsed:.1f}/s) "
                 f"[{topics}], {self.bad} bad{extra}{failed}; simulated clock at {sim}")
        else:
            echo(f"simulate: {self.sent} sent ({self.sent / elapsed:.1f}/s, last {recent:.1f}/s), "
                 f"{self.bad} bad, simulated {sim}")


def backfill_start(now: datetime, span: str | float, tz: str = "UTC") -> datetime:
    """Where a backfill of ``span`` before ``now`` starts: the local midnight on or before ``now - span``.

    Whole local days, so two runs on the same day with the same seed simulate the same history.
    """
    local = (now - timedelta(seconds=parse_positive_duration(span))).astimezone(ZoneInfo(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


async def run_simulate(settings, *, rate: float | None = None, duration: str | float | None = None,
                       seed: int | None = None, speedup: float = 1.0, out: str | os.PathLike | None = None,
                       produce: bool | None = None, bad_ratio: float = 0.0, start: str | datetime | None = None,
                       backfill: str | float | None = None, now: datetime | None = None,
                       roster: Roster | None = None, echo: Callable[[str], None] = _stderr,
                       progress_every: float = 5.0) -> int:
    """Simulate and produce and/or write; returns an exit code (0 ok, 1 Kafka failed, 2 bad input).

    ``produce`` None means: produce unless ``out`` is given. ``duration`` is wall time when producing
    (None: until Ctrl-C / SIGTERM) and simulated time when only writing a file (None: 1 h).
    ``backfill`` (e.g. ``5w``): the floor starts at the local midnight that long before ``now`` (default:
    the wall clock); its history up to ``now`` is produced as fast as Kafka takes it, stamped at its real
    times, then the floor runs live at the wall clock's pace (``speedup`` 1), ``duration`` beyond ``now``.
    """
    from stream.roster import RosterError, load_roster

    produce = out is None if produce is None else produce
    try:
        if not produce and out is None:
            raise ValueError("nothing to do: give --out, or produce")
        if speedup <= 0 or (rate is not None and rate <= 0):
            raise ValueError("--rate and --speedup must be positive")
        if not 0 <= bad_ratio < 1:
            raise ValueError("--bad-ratio must be in [0, 1)")
        seconds = parse_positive_duration(duration) if duration is not None else None
        start_dt = parse_start(start)
        if backfill is not None:
            parse_positive_duration(backfill)
            if start_dt is not None:
                raise ValueError("--backfill and --start exclude each other: a backfill starts --backfill before now")
            if speedup != 1:
                raise ValueError("--backfill goes live at the wall clock's pace: --speedup must be 1")
        roster = roster or load_roster(settings.kpi_roster)
    except (ValueError, RosterError) as exc:
        echo(f"simulate: {exc}")
        return 2
    seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big")
    now = now or datetime.now(UTC)
    live_from = None  # with a backfill: the simulated moment that is "now" on the wall
    if backfill is not None:
        start_dt, live_from = backfill_start(now, backfill, settings.kpi_timezone), now
        history_s = (now - start_dt).total_seconds()
        if produce and settings.kpi_clock == "wall" and history_s > settings.kpi_too_late_seconds:
            echo(f"simulate: warning: the backfill reaches {history_s / 86400:.1f} days back; a worker with "
                 f"KPI_TOO_LATE_SECONDS={settings.kpi_too_late_seconds:g} dead-letters the oldest events as "
                 f"`too_late` (make demo runs its worker with a larger one)")
        until = now + timedelta(seconds=seconds) if seconds is not None else None if produce else now
    else:
        if produce:
            span_s = seconds * speedup if seconds is not None else None  # duration is wall time
        else:
            span_s = seconds if seconds is not None else 3600.0  # duration is simulated time
        if start_dt is None:
            start_dt = now
            if produce and speedup > 1:
                if seconds is None:
                    echo("simulate: warning: with --speedup > 1 and no --duration the simulated clock runs ahead of "
                         "the wall clock; a worker with KPI_CLOCK=wall dead-letters those events as `future`")
                else:
                    start_dt = now - timedelta(seconds=seconds * (speedup - 1))
                    if seconds * (speedup - 1) > 24 * 3600:
                        echo("simulate: warning: the run starts more than 24 h in the past; a worker with "
                             "KPI_CLOCK=wall dead-letters the oldest events as `too_late` (use KPI_CLOCK=event)")
        until = start_dt + timedelta(seconds=span_s) if span_s is not None else None
    per_sim_s = None if rate is None else rate * (1 - bad_ratio) / speedup
    floor = SalesFloor(roster, seed, start_dt, sla_seconds=settings.kpi_sla_seconds, stages=tuple(settings.kpi_stages),
                       tz=settings.kpi_timezone, currency=settings.kpi_currency, events_per_second=per_sim_s)
    curve = floor.weight(floor.start_ms / 1000)
    size = (f"~{floor.peak_leads_per_s * 3600:.0f} leads/h at the weekday peak, "
            f"~{floor.events_per_second * 60 * speedup / (1 - bad_ratio):.1f} messages per wall minute on average")
    echo(f"simulate: seed {seed}, start {start_dt.isoformat()}, {len(roster.reps)} reps (slow: "
         f"{', '.join(floor.slow_reps) or 'none'}), {size} at speedup {speedup:g} (business-hours curve at "
         f"{curve:.0%} of peak at the start), {'producing to ' + settings.topic('*') if produce else 'file only'}"
         + (f", backfilling to {live_from.isoformat()} then live" if live_from else "")
         + (f", writing {out}" if out else ""))
    tally = _Tally()
    loop, stop = asyncio.get_running_loop(), asyncio.Event()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C ends the run cleanly, with the summary
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        sink_cm = open(out, "wb") if out else contextlib.nullcontext()
    except OSError as exc:
        echo(f"simulate: cannot write {out}: {exc.strerror}")
        return 2
    try:
        with sink_cm as sink:
            if produce:
                return await _live(settings, floor, until, bad_ratio, speedup, sink, tally, stop, echo, progress_every,
                                   live_from)
            sim_ms = floor.start_ms
            for i, msg in enumerate(floor.messages(until, bad_ratio)):
                _record(msg, sink, tally)
                sim_ms = msg.at_ms
                if i % 5000 == 0:
                    await asyncio.sleep(0)  # let the signal handler run
                    if stop.is_set():
                        break
                    if time.monotonic() - tally.last_at >= progress_every:
                        tally.progress(echo, sim_ms, floor.tz)
            tally.progress(echo, sim_ms, floor.tz, final=True)
            return 0
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


def _record(msg: Message, sink, tally: _Tally) -> None:
    tally.sent += 1
    tally.per_topic[msg.topic] = tally.per_topic.get(msg.topic, 0) + 1
    if msg.bad:
        tally.bad += 1
    if sink is not None:
        try:
            msg.value.decode()
            ok = b"\n" not in msg.value and b"\r" not in msg.value
        except UnicodeDecodeError:
            ok = False
        if ok:
            sink.write(msg.value + b"\n")
        else:
            tally.unwritten += 1


async def _live(settings, floor: SalesFloor, until, bad_ratio, speedup, sink, tally: _Tally,
                stop: asyncio.Event, echo, progress_every: float, live_from: datetime | None = None) -> int:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from stream.kafka_security import aiokafka_security

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=10,
                                max_request_size=2 * 1024 * 1024, **aiokafka_security(settings))
    try:
        await producer.start()
    except (KafkaError, OSError) as exc:
        await producer.stop()
        echo(f"simulate: cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}")
        return 1

    def delivered(fut: asyncio.Future) -> None:
        error = "cancelled" if fut.cancelled() else fut.exception()
        if error is not None:
            tally.failed += 1
            tally.first_error = tally.first_error or str(error)

    # The simulated moment that maps to the wall clock's "now" when the loop starts: the start, or with a
    # backfill the real now (everything before it is history, due at once; everything after, at its time).
    anchor_ms = floor.start_ms if live_from is None else round(live_from.timestamp() * 1000)
    backfilling = live_from is not None
    sim_ms, wall0 = floor.start_ms, time.monotonic()
    try:
        for msg in floor.messages(until, bad_ratio):
            due = wall0 + (msg.at_ms - anchor_ms) / 1000 / speedup
            if backfilling and msg.at_ms > anchor_ms:
                backfilling = False
                took = time.monotonic() - tally.t0
                echo(f"simulate: backfill done: {tally.sent} messages up to {live_from.isoformat(timespec='seconds')} "
                     f"in {took:.1f} s; live from now on at the wall clock's pace")
                progress_every = max(progress_every, 60.0)  # a live floor sends a message a minute, not thousands
            while not stop.is_set() and (wait := due - time.monotonic()) > 0.005:  # shorter: batching beats sleeping
                if time.monotonic() - tally.last_at >= progress_every:
                    tally.progress(echo, sim_ms, floor.tz)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(wait, progress_every))
            if stop.is_set():
                break
            sim_ms = msg.at_ms
            fut = await producer.send(settings.topic(msg.topic), value=msg.value, key=msg.key.encode())
            fut.add_done_callback(delivered)
            _record(msg, sink, tally)
            if time.monotonic() - tally.last_at >= progress_every:
                tally.progress(echo, sim_ms, floor.tz)
    finally:
        with contextlib.suppress(Exception):
            await producer.flush()
        await producer.stop()
        await asyncio.sleep(0)  # let the last delivery callbacks run
        tally.progress(echo, sim_ms, floor.tz, final=True)
    return 1 if tally.failed else 0


def simulate_main(settings, *, rate: float | None = None, duration: str | float | None = None,
                  seed: int | None = None, speedup: float = 1.0, out: str | None = None, produce: bool | None = None,
                  bad_ratio: float = 0.0, start: str | None = None, backfill: str | None = None) -> int:
    """Entry point for ``kpi-monitor simulate``; returns the exit code."""
    try:
        return asyncio.run(run_simulate(settings, rate=rate, duration=duration, seed=seed, speedup=speedup,
                                        out=out, produce=produce, bad_ratio=bad_ratio, start=start,
                                        backfill=backfill))
    except KeyboardInterrupt:  # Ctrl-C in file-only mode before the loop could handle it
        _stderr("simulate: interrupted")
        return 130
