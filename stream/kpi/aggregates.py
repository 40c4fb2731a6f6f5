"""Mergeable, retractable aggregates: the partial sums every KPI is computed from.

``Agg`` holds the additive parts of all windowed KPIs for one (rep, team) and one time bucket. Each
field is a count or an exact sum, so partial aggregates merge by addition (across buckets, partitions
and workers) and a correction retracts an old contribution by subtraction. ``ResponseHistogram`` keeps
response times exactly (integer milliseconds) and only when it grows past ``EXACT_LIMIT`` distinct
values does it fold them onto a logarithmic grid with under 0.5 % relative error, the sketch the spec
allows.
"""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal
from typing import Iterable

EXACT_LIMIT = 4096
# gamma = (1 + a) / (1 - a) with a = 0.5 %: any value in a bucket is within a of the representative.
_ALPHA = 0.005
_GAMMA = (1 + _ALPHA) / (1 - _ALPHA)
_LOG_GAMMA = math.log(_GAMMA)


def _grid(value_ms: int) -> int:
    """Representative of the log bucket holding value_ms (values under 1 s stay exact)."""
    if value_ms < 1000:
        return value_ms
    return _REPRESENTATIVES[math.ceil(math.log(value_ms) / _LOG_GAMMA)]


# The representative of log bucket i, precomputed: merging folded histograms maps every exact value of
# the other side, and a power and a rounding per value showed up in every /kpis request
# (bench/RESULTS.md). 2**63 ms is past any response time, so the table covers every int64.
_REPRESENTATIVES = [round(2 * _GAMMA**i / (_GAMMA + 1)) for i in range(math.ceil(math.log(2**63) / _LOG_GAMMA) + 2)]


class ResponseHistogram:
    __slots__ = ("counts", "folded")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.folded = False

    def add(self, value_ms: int, sign: int = 1) -> None:
        key = _grid(value_ms) if self.folded else value_ms
        counts = self.counts
        new = counts.get(key, 0) + sign
        if new:
            counts[key] = new
        else:
            del counts[key]
        if not self.folded and len(counts) > EXACT_LIMIT:
            self._fold()

    def _fold(self) -> None:
        folded: dict[int, int] = {}
        for value, count in self.counts.items():
            key = _grid(value)
            folded[key] = folded.get(key, 0) + count
        self.counts = {k: c for k, c in folded.items() if c}
        self.folded = True

    def merge(self, other: ResponseHistogram) -> None:
        """Add ``other``'s counts. Folding is a per-value map, so merging everything exactly and folding
        once at the end gives the same counts as adding value by value (which folds mid-way)."""
        if other.folded and not self.folded:
            self._fold()
        if not other.counts:
            return
        counts = self.counts
        if self.folded and not other.folded:
            items = [(_grid(value), count) for value, count in other.counts.items()]
        else:
            items = other.counts.items()  # type: ignore[assignment]
        get = counts.get
        for key, count in items:
            new = get(key, 0) + count
            if new:
                counts[key] = new
            else:
                del counts[key]
        if not self.folded and len(counts) > EXACT_LIMIT:
            self._fold()

    def quantile(self, q: float) -> int | None:
        """Nearest rank: the value at rank ceil(q * n)."""
        n = sum(self.counts.values())
        if n == 0:
            return None
        rank = max(1, math.ceil(q * n))
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen >= rank:
                return value
        return None  # pragma: no cover - ranks never exceed n

    def to_wire(self) -> tuple[bool, list[tuple[int, int]]]:
        return self.folded, list(self.counts.items())

    @classmethod
    def from_wire(cls, wire: tuple[bool, Iterable[tuple[int, int]]]) -> ResponseHistogram:
        hist = cls()
        hist.folded = bool(wire[0])
        hist.counts = {int(k): int(v) for k, v in wire[1] if int(v)}
        return hist


_ZERO = Decimal(0)

# Additive integer fields of Agg, in wire order.
COUNT_FIELDS = (
    "leads_created",
    "leads_responded",
    "response_ms_sum",
    "responses_within_sla",
    "leads_qualified",
    "meetings",
    "meeting_touches",
    "calls",
    "calls_connected",
    "talk_ms",
    "deals_won",
    "deals_lost",
    "cycle_ms_sum",
    "open_deals",
    "awaiting",
)


def _counts_adder():
    # `a.f += b.f` for every count field, written out once: a getattr/setattr loop over the names was
    # half the cost of merging buckets for /kpis (bench/RESULTS.md).
    body = "\n".join(f"    a.{name} += b.{name}" for name in COUNT_FIELDS)
    namespace: dict = {}
    exec(f"def add_counts(a, b):\n{body}\n", namespace)  # noqa: S102 - generated from the constant above
    return namespace["add_counts"]


_add_counts = _counts_adder()


class Agg:
    """Partial sums for one (rep, team) in one bucket (or one window, once buckets are merged)."""

    __slots__ = COUNT_FIELDS + ("won_revenue", "open_value", "hist", "stage_entries", "open_by_stage", "oldest_created")

    def __init__(self) -> None:
        for name in COUNT_FIELDS:
            setattr(self, name, 0)
        # Decimals are immutable (``+=`` rebinds), so every Agg can start from one shared zero: there is
        # an Agg per (rep, team), partition and minute, and two fresh zeros were a third of its size.
        self.won_revenue = _ZERO
        self.open_value = _ZERO
        self.hist = ResponseHistogram()
        self.stage_entries: Counter[str] = Counter()
        # stage -> [count, value]; only for the "current" (window-less) aggregate.
        self.open_by_stage: dict[str, list] = {}
        # Earliest created_at among awaiting leads; set at window reduction time only.
        self.oldest_created: int | None = None

    def is_active(self) -> bool:
        """True when some windowed KPI counted anything (decides whether a scope is listed)."""
        return bool(
            self.leads_created
            or self.leads_responded
            or self.leads_qualified
            or self.meetings
            or self.calls
            or self.deals_won
            or self.deals_lost
        )

    def has_current_state(self) -> bool:
        return bool(self.open_deals or self.awaiting)

    def merge(self, other: Agg) -> None:
        _add_counts(self, other)
        self.won_revenue += other.won_revenue
        self.open_value += other.open_value
        self.hist.merge(other.hist)
        self.stage_entries.update(other.stage_entries)
        for stage, (count, value) in other.open_by_stage.items():
            slot = self.open_by_stage.setdefault(stage, [0, Decimal(0)])
            slot[0] += count
            slot[1] += value
        if other.oldest_created is not None and (self.oldest_created is None or other.oldest_created < self.oldest_created):
            self.oldest_created = other.oldest_created

    def apply_windowed(self, kind: str, value: object, sign: int, sla_ms: int) -> None:
        """Add (sign=1) or retract (sign=-1) one windowed contribution."""
        if kind == "created":
            self.leads_created += sign
        elif kind == "response":
            self.leads_responded += sign
            self.response_ms_sum += sign * value  # type: ignore[operator]
            if value <= sla_ms:  # type: ignore[operator]
                self.responses_within_sla += sign
            self.hist.add(value, sign)  # type: ignore[arg-type]
        elif kind == "qualified":
            self.leads_qualified += sign
        elif kind == "meeting":
            self.meetings += sign
            self.meeting_touches += sign * value  # type: ignore[operator]
        elif kind == "call":
            connected, talk_ms = value  # type: ignore[misc]
            self.calls += sign
            if connected:
                self.calls_connected += sign
                self.talk_ms += sign * talk_ms
        elif kind == "won":
            amount, cycle_ms = value  # type: ignore[misc]
            self.deals_won += sign
            self.won_revenue += sign * amount
            self.cycle_ms_sum += sign * cycle_ms
        elif kind == "lost":
            self.deals_lost += sign
        elif kind == "stage_entry":
            self.stage_entries[value] += sign  # type: ignore[index]
            if not self.stage_entries[value]:  # type: ignore[index]
                del self.stage_entries[value]  # type: ignore[arg-type]
        else:  # pragma: no cover - programming error
            raise ValueError(f"not a windowed contribution: {kind}")

    def apply_open(self, stage: str | None, value: Decimal, sign: int) -> None:
        self.open_deals += sign
        self.open_value += sign * value
        slot = self.open_by_stage.setdefault(stage or "", [0, Decimal(0)])
        slot[0] += sign
        slot[1] += sign * value
        if not slot[0]:
            del self.open_by_stage[stage or ""]

    def is_empty(self) -> bool:
        return not (
            any(getattr(self, name) for name in COUNT_FIELDS)
            or self.won_revenue
            or self.open_value
            or self.hist.counts
            or self.stage_entries
            or self.open_by_stage
        )

    # --- wire format (for merging partials across workers) -------------------------------------
    def to_wire(self) -> list:
        return [
            [getattr(self, name) for name in COUNT_FIELDS],
            str(self.won_revenue),
            str(self.open_value),
            self.hist.to_wire(),
            dict(self.stage_entries),
            {stage: [count, str(value)] for stage, (count, value) in self.open_by_stage.items()},
            self.oldest_created,
        ]

    @classmethod
    def from_wire(cls, wire: list) -> Agg:
        agg = cls()
        counts, won, open_value, hist, entries, by_stage, oldest = wire
        for name, count in zip(COUNT_FIELDS, counts):
            setattr(agg, name, count)
        agg.won_revenue = Decimal(won)
        agg.open_value = Decimal(open_value)
        agg.hist = ResponseHistogram.from_wire(hist)
        agg.stage_entries = Counter(entries)
        agg.open_by_stage = {stage: [count, Decimal(value)] for stage, (count, value) in by_stage.items()}
        agg.oldest_created = oldest
        return agg
