"""The in-memory aggregates of one partition: per dimension and label, rows of parts in time buckets.

Aggregates are a *derived view* of the entity table: they are rebuilt from it when a partition is
assigned (after Faust has recovered the table from its changelog), so they need no changelog of their
own and can never disagree with the entity state after a crash.

Windowed parts are kept in minute buckets (for ``1h``, ``24h``), local-day buckets (``today``, ``week``,
``month``, ``quarter``) and an all-time total; current parts (open deals) in one row per label; waiting
leads as the sorted creation times of each label, reduced to a count and the oldest when read.
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedList

from stream.kpi.accounts import derive
from stream.kpi.catalogue import DIMENSION_ORDER, DIMENSIONS, SCOPE
from stream.kpi.facts import AWAITING, CURRENT, Contribution
from stream.kpi.parts import Layout, Row
from stream.kpi.windows import DAYS_KEPT, MINUTE_MS, MINUTE_WINDOWS, MINUTES_KEPT, DayCalendar, minute_of

OVER_CAP = "_over_cap"  # the label of contributions whose id did not fit under its dimension's cap
Label = object  # (rep, team or None) in the scope dimension, a string (a stage) in the others
_SCOPE_LAYOUT = DIMENSIONS["scope"].layout
_AWAITING = _SCOPE_LAYOUT.index["leads_awaiting"]
_OLDEST = _SCOPE_LAYOUT.minima["oldest_created"]


class LabelCap:
    """Admits the first ``limit`` distinct ids; later new ids are counted under ``OVER_CAP``.

    A flood of made-up ids would otherwise grow every per-label structure (and the Prometheus series)
    without bound. The admitted set only grows, so an id maps to the same label when its contribution
    is added and when it is retracted later. Totals stay exact; only the split of the over-cap ids is lost.
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


class DimensionAggregates:
    """The buckets of one dimension in one partition."""

    __slots__ = ("layout", "minutes", "days", "total", "current", "awaiting")

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.minutes: dict[Label, dict[int, Row]] = {}
        self.days: dict[Label, dict[int, Row]] = {}
        self.total: dict[Label, Row] = {}
        self.current: dict[Label, Row] = {}
        self.awaiting: dict[Label, SortedList] = {}  # created_at (ms) of leads waiting for a touch

    def slot(self, table: dict[Label, Row], label: Label) -> Row:
        row = table.get(label)
        if row is None:
            row = table[label] = self.layout.row()
        return row

    def bucket(self, table: dict[Label, dict[int, Row]], label: Label, bucket: int) -> Row:
        buckets = table.get(label)
        if buckets is None:
            buckets = table[label] = {}
        row = buckets.get(bucket)
        if row is None:
            row = buckets[bucket] = self.layout.row()
        return row


class PartitionAggregates:
    def __init__(
        self,
        calendar: DayCalendar,
        lead_max_age_ms: int,
        caps: dict[str, LabelCap] | None = None,
    ) -> None:
        self.calendar = calendar
        self.lead_max_age_ms = lead_max_age_ms
        caps = caps or {}
        self.reps = caps.get("reps") or LabelCap(10**9)
        self.teams = caps.get("teams") or LabelCap(10**9)
        # The caps of the other dimensions (products, sources, campaigns), by dimension index; None: uncapped.
        self.label_caps = [None if not d.cap else caps.get(d.cap) or LabelCap(10**9)
                           for d in (DIMENSIONS[name] for name in DIMENSION_ORDER)]
        self.dims = [DimensionAggregates(DIMENSIONS[name].layout) for name in DIMENSION_ORDER]
        # Buckets below these are not kept; both only move forward, so a contribution that was not
        # added to a bucket is never retracted from it either.
        self.minute_floor = -(2**62)
        self.day_floor = -(2**62)
        # Leads waiting longer than lead_max_age count nowhere, so their entries are dropped (the same
        # forward-only floor rule: an entry below it is neither added nor removed).
        self.awaiting_floor = -(2**62)

    # --- writing -----------------------------------------------------------------------------------
    def label_of(self, c: Contribution) -> Label:
        if c.dim == SCOPE:
            return self.reps(c.rep), None if c.team is None else self.teams(c.team)
        cap = self.label_caps[c.dim]
        return c.label if cap is None else cap(c.label)

    def apply(self, contributions: Iterable[Contribution], sign: int) -> None:
        # The hot path (every event): lookups are hoisted and the label caps inlined.
        dims, day_of = self.dims, self.calendar.day_of
        reps, teams, label_caps = self.reps, self.teams, self.label_caps
        minute_floor, day_floor = self.minute_floor, self.day_floor
        for c in contributions:
            dim = dims[c.dim]
            if c.dim == SCOPE:
                rep, team = c.rep, c.team
                label = (rep if rep in reps.admitted else reps(rep),
                         None if team is None else team if team in teams.admitted else teams(team))
            else:
                label = c.label
                cap = label_caps[c.dim]
                if cap is not None and label not in cap.admitted:
                    label = cap(label)
            bucket = c.bucket
            if bucket == AWAITING:
                ts = c.ts
                if ts < self.awaiting_floor:
                    continue
                waiting = dim.awaiting.get(label)
                if waiting is None:
                    waiting = dim.awaiting[label] = SortedList()
                if sign > 0:
                    waiting.add(ts)
                else:
                    waiting.remove(ts)
                continue
            adds, hists = c.adds, c.hists
            if bucket == CURRENT:
                dim.slot(dim.current, label).add(adds, hists, sign)
                continue
            dim.slot(dim.total, label).add(adds, hists, sign)
            ts = c.ts
            minute = ts // MINUTE_MS
            if minute >= minute_floor:
                dim.bucket(dim.minutes, label, minute).add(adds, hists, sign)
            day = day_of(ts)
            if day >= day_floor:
                dim.bucket(dim.days, label, day).add(adds, hists, sign)

    def expire(self, now_ms: int) -> None:
        """Drop buckets no window can read any more (call with a clock that only moves forward)."""
        minute_floor = minute_of(now_ms) - MINUTES_KEPT
        day_floor = self.calendar.day_of(now_ms) - DAYS_KEPT
        awaiting_floor = now_ms - self.lead_max_age_ms
        for dim in self.dims:
            if minute_floor > self.minute_floor:
                _drop_below(dim.minutes, minute_floor)
            if day_floor > self.day_floor:
                _drop_below(dim.days, day_floor)
            if awaiting_floor > self.awaiting_floor:
                for label in list(dim.awaiting):
                    waiting = dim.awaiting[label]
                    del waiting[: waiting.bisect_left(awaiting_floor)]
                    if not waiting:
                        del dim.awaiting[label]
        self.minute_floor = max(self.minute_floor, minute_floor)
        self.day_floor = max(self.day_floor, day_floor)
        self.awaiting_floor = max(self.awaiting_floor, awaiting_floor)

    def add_archived(self, dim: int, label: Label, total: Row, days: dict[int, Row]) -> None:
        """Fold retired entities' contributions back in (see KpiEngine.retire): their all-time total and
        the day buckets still kept, so every window up to `quarter` stays exact."""
        dims = self.dims[dim]
        dims.slot(dims.total, label).merge(total)
        for day, row in days.items():
            if day >= self.day_floor:
                dims.bucket(dims.days, label, day).merge(row)

    # --- reading -----------------------------------------------------------------------------------
    def reduce(self, window: str, now_ms: int) -> list[dict[Label, Row]]:
        """Per dimension, one row per label for ``window`` at ``now_ms``, current state included."""
        out: list[dict[Label, Row]] = []
        for d, dim in enumerate(self.dims):
            rows: dict[Label, Row] = {}
            minute_range = None
            if window == "all":
                for label, row in dim.total.items():
                    _into(rows, label, dim.layout).merge(row)
            elif window in MINUTE_WINDOWS:
                hi = minute_of(now_ms)
                minute_range = (hi - MINUTE_WINDOWS[window] + 1, hi)
                _merge_range(rows, dim, dim.minutes, *minute_range)
            else:
                days = self.calendar.days_of(window, now_ms)
                _merge_range(rows, dim, dim.days, days.start, days.stop - 1)
            for label, row in dim.current.items():
                _into(rows, label, dim.layout).merge(row)
            oldest_allowed = now_ms - self.lead_max_age_ms
            for label, waiting in dim.awaiting.items():
                start = waiting.bisect_left(oldest_allowed)
                stop = waiting.bisect_right(now_ms)
                if stop > start:
                    row = _into(rows, label, dim.layout)
                    row.v[_AWAITING] += stop - start
                    row.lower(_OLDEST, waiting[start])
            derive(d, dim, rows, window, now_ms, self.calendar, minute_range)
            out.append(rows)
        return out


def _into(rows: dict[Label, Row], label: Label, layout: Layout) -> Row:
    row = rows.get(label)
    if row is None:
        row = rows[label] = layout.row()
    return row


def _merge_range(rows: dict[Label, Row], dim: DimensionAggregates, table: dict[Label, dict[int, Row]],
                 lo: int, hi: int) -> None:
    for label, buckets in table.items():
        target = None
        if len(buckets) <= hi - lo + 1:
            selected = (row for bucket, row in buckets.items() if lo <= bucket <= hi)
        else:
            selected = (buckets[b] for b in range(lo, hi + 1) if b in buckets)
        for row in selected:
            if target is None:
                target = _into(rows, label, dim.layout)
            target.merge(row)


def _drop_below(table: dict[Label, dict[int, Row]], floor: int) -> None:
    for label in list(table):
        buckets = table[label]
        for bucket in [b for b in buckets if b < floor]:
            del buckets[bucket]
        if not buckets:
            del table[label]
