"""The in-memory aggregates of one partition: bucketed partial sums, current state, waiting leads.

Aggregates are a *derived view* of the entity table: they are rebuilt from it when a partition is
assigned (after Faust has recovered the table from its changelog), so they need no changelog of their
own and can never disagree with the entity state after a crash.
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedList

from stream.kpi.aggregates import Agg
from stream.kpi.facts import Contribution
from stream.kpi.windows import DAYS_KEPT, MINUTE_WINDOWS, MINUTES_KEPT, DayCalendar, minute_of

ScopeKey = tuple[str, "str | None"]  # (rep, team on the crediting event or None)
OVER_CAP = "_over_cap"  # the rep/team label of contributions whose id did not fit under the cap


class LabelCap:
    """Admits the first ``limit`` distinct ids; later new ids are counted under ``OVER_CAP``.

    A flood of made-up rep or team ids would otherwise grow every per-scope structure (and the
    Prometheus series) without bound. The admitted set only grows, so an id maps to the same scope
    when its contribution is added and when it is retracted later. Team and overall figures stay
    exact; only the per-rep (per-team) split of the over-cap ids is lost.
    """

    __slots__ = ("limit", "admitted", "over_cap")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.admitted: set[str] = set()
        self.over_cap = 0  # contributions counted under OVER_CAP (added or retracted)

    def __call__(self, label: str) -> str:
        if label in self.admitted:
            return label
        if len(self.admitted) < self.limit:
            self.admitted.add(label)
            return label
        self.over_cap += 1
        return OVER_CAP


class PartitionAggregates:
    def __init__(
        self,
        calendar: DayCalendar,
        sla_ms: int,
        lead_max_age_ms: int,
        reps: LabelCap | None = None,
        teams: LabelCap | None = None,
    ) -> None:
        self.calendar = calendar
        self.reps = reps or LabelCap(10**9)
        self.teams = teams or LabelCap(10**9)
        self.sla_ms = sla_ms
        self.lead_max_age_ms = lead_max_age_ms
        self.minutes: dict[ScopeKey, dict[int, Agg]] = {}
        self.days: dict[ScopeKey, dict[int, Agg]] = {}
        self.total: dict[ScopeKey, Agg] = {}
        self.current: dict[ScopeKey, Agg] = {}  # open deals: no time dimension
        self.awaiting: dict[ScopeKey, SortedList] = {}  # created_at (ms) of leads waiting for a touch
        # Buckets below these are not kept; both only move forward, so a contribution that was not
        # added to a bucket is never retracted from it either.
        self.minute_floor = -(2**62)
        self.day_floor = -(2**62)
        # Leads waiting longer than lead_max_age count nowhere, so their entries are dropped (the same
        # forward-only floor rule: an entry below it is neither added nor removed).
        self.awaiting_floor = -(2**62)

    # --- writing -----------------------------------------------------------------------------------
    def scope_of(self, rep: str, team: str | None) -> ScopeKey:
        return self.reps(rep), None if team is None else self.teams(team)

    def apply(self, contributions: Iterable[Contribution], sign: int) -> None:
        for kind, ts, rep, team, value in contributions:
            key = self.scope_of(rep, team)
            if kind == "awaiting":
                if ts < self.awaiting_floor:
                    continue
                waiting = self.awaiting.get(key)
                if waiting is None:
                    waiting = self.awaiting[key] = SortedList()
                if sign > 0:
                    waiting.add(ts)
                else:
                    waiting.remove(ts)
                continue
            if kind == "open":
                stage, amount = value  # type: ignore[misc]
                self._slot(self.current, key).apply_open(stage, amount, sign)
                continue
            self._slot(self.total, key).apply_windowed(kind, value, sign, self.sla_ms)
            minute = minute_of(ts)
            if minute >= self.minute_floor:
                self._bucket(self.minutes, key, minute).apply_windowed(kind, value, sign, self.sla_ms)
            day = self.calendar.day_of(ts)
            if day >= self.day_floor:
                self._bucket(self.days, key, day).apply_windowed(kind, value, sign, self.sla_ms)

    @staticmethod
    def _slot(table: dict[ScopeKey, Agg], key: ScopeKey) -> Agg:
        agg = table.get(key)
        if agg is None:
            agg = table[key] = Agg()
        return agg

    @staticmethod
    def _bucket(table: dict[ScopeKey, dict[int, Agg]], key: ScopeKey, bucket: int) -> Agg:
        buckets = table.get(key)
        if buckets is None:
            buckets = table[key] = {}
        agg = buckets.get(bucket)
        if agg is None:
            agg = buckets[bucket] = Agg()
        return agg

    def expire(self, now_ms: int) -> None:
        """Drop buckets no window can read any more (call with a clock that only moves forward)."""
        minute_floor = minute_of(now_ms) - MINUTES_KEPT
        if minute_floor > self.minute_floor:
            self.minute_floor = minute_floor
            _drop_below(self.minutes, minute_floor)
        day_floor = self.calendar.day_of(now_ms) - DAYS_KEPT
        if day_floor > self.day_floor:
            self.day_floor = day_floor
            _drop_below(self.days, day_floor)
        awaiting_floor = now_ms - self.lead_max_age_ms
        if awaiting_floor > self.awaiting_floor:
            self.awaiting_floor = awaiting_floor
            for key in list(self.awaiting):
                waiting = self.awaiting[key]
                del waiting[: waiting.bisect_left(awaiting_floor)]
                if not waiting:
                    del self.awaiting[key]

    def add_archived(self, totals: dict[ScopeKey, Agg]) -> None:
        """Fold the all-time totals of retired entities back in (see KpiEngine.retire)."""
        for key, agg in totals.items():
            self._slot(self.total, key).merge(agg)

    # --- reading -----------------------------------------------------------------------------------
    def reduce(self, window: str, now_ms: int) -> dict[ScopeKey, Agg]:
        """One Agg per scope for ``window`` at ``now_ms``, current state included."""
        out: dict[ScopeKey, Agg] = {}
        if window == "all":
            for key, agg in self.total.items():
                _into(out, key).merge(agg)
        elif window in MINUTE_WINDOWS:
            hi = minute_of(now_ms)
            lo = hi - MINUTE_WINDOWS[window] + 1
            _merge_range(out, self.minutes, lo, hi)
        elif window == "today":
            day = self.calendar.day_of(now_ms)
            _merge_range(out, self.days, day, day)
        elif window == "month":
            days = self.calendar.month_days(now_ms)
            _merge_range(out, self.days, days.start, days.stop - 1)
        else:
            raise ValueError(f"unknown window {window!r}")
        for key, agg in self.current.items():
            _into(out, key).merge(agg)
        oldest_allowed = now_ms - self.lead_max_age_ms
        for key, waiting in self.awaiting.items():
            start = waiting.bisect_left(oldest_allowed)
            stop = waiting.bisect_right(now_ms)
            if stop > start:
                agg = _into(out, key)
                agg.awaiting += stop - start
                agg.oldest_created = waiting[start]
        return out


def _into(out: dict[ScopeKey, Agg], key: ScopeKey) -> Agg:
    agg = out.get(key)
    if agg is None:
        agg = out[key] = Agg()
    return agg


def _merge_range(out: dict[ScopeKey, Agg], table: dict[ScopeKey, dict[int, Agg]], lo: int, hi: int) -> None:
    for key, buckets in table.items():
        target = None
        if len(buckets) <= hi - lo + 1:
            selected = (agg for bucket, agg in buckets.items() if lo <= bucket <= hi)
        else:
            selected = (buckets[b] for b in range(lo, hi + 1) if b in buckets)
        for agg in selected:
            if target is None:
                target = _into(out, key)
            target.merge(agg)


def _drop_below(table: dict[ScopeKey, dict[int, Agg]], floor: int) -> None:
    for key in list(table):
        buckets = table[key]
        for bucket in [b for b in buckets if b < floor]:
            del buckets[bucket]
        if not buckets:
            del table[key]
