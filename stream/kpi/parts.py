"""Mergeable parts: the measures every KPI is computed from (docs/kpis.md, "How a KPI is computed").

A part is a count, an exact integer sum, an exact decimal sum (money), a response-time histogram, or a
minimum (the oldest waiting lead). Each starts empty, takes contributions (``add``, or ``retract`` with
the opposite sign), merges with a part of the same kind (across buckets, partitions and workers) and
gives a result: counts and sums by addition, the minimum by ``min``. So a window's value is the merge of
its buckets, and a late correction is a retraction followed by an addition.

A ``Row`` holds the parts one label of one dimension has in one bucket: the additive ones in a flat list,
one slot per part its ``Layout`` carries, and the histograms and minima beside it, only once used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import add

COUNT, SUM, MONEY, HISTOGRAM, MINIMUM = "count", "sum", "money", "histogram", "minimum"
ADDITIVE = (COUNT, SUM, MONEY)


@dataclass(frozen=True)
class Part:
    """A measure: ``windowed`` parts are bucketed by time; the others hold current state (open deals)."""

    name: str
    kind: str
    doc: str
    windowed: bool = True
    derived: bool = False  # computed when a window is read, never contributed (stream.kpi.accounts)


class Layout:
    """Where each part of one dimension sits in its rows."""

    def __init__(self, parts: Sequence[Part]) -> None:
        self.parts = tuple(parts)
        self.additive = tuple(p for p in parts if p.kind in ADDITIVE)
        self.index = {p.name: i for i, p in enumerate(self.additive)}
        self.money = frozenset(i for i, p in enumerate(self.additive) if p.kind == MONEY)
        self.histograms = {p.name: i for i, p in enumerate(p for p in parts if p.kind == HISTOGRAM)}
        self.minima = {p.name: i for i, p in enumerate(p for p in parts if p.kind == MINIMUM)}
        # A label is listed with every KPI when a windowed count moved; with the current ones when a
        # current count did (an open deal, a waiting lead).
        self.activity = tuple(i for i, p in enumerate(self.additive) if p.kind == COUNT and p.windowed)
        self.state = tuple(i for i, p in enumerate(self.additive) if p.kind == COUNT and not p.windowed)
        self._zeros = [0] * len(self.additive)

    def row(self) -> Row:
        return Row(self._zeros[:])

    def __contains__(self, name: str) -> bool:
        return name in self.index or name in self.histograms or name in self.minima


class Row:
    __slots__ = ("v", "hists", "mins")

    def __init__(self, v: list) -> None:
        self.v = v  # additive parts: ints, Decimals for money (an int 0 until money first moves)
        self.hists: dict[int, ResponseHistogram] | None = None
        self.mins: dict[int, int] | None = None

    def add(self, adds: Iterable[tuple[int, object]], hists: Iterable[tuple[int, int]], sign: int) -> None:
        """Add (sign 1) or retract (sign -1) one contribution's moves."""
        v = self.v
        if sign > 0:
            for i, amount in adds:
                v[i] += amount
        else:
            for i, amount in adds:
                v[i] -= amount
        if not hists:
            return
        for i, value in hists:
            if self.hists is None:
                self.hists = {}
            hist = self.hists.get(i)
            if hist is None:
                hist = self.hists[i] = ResponseHistogram()
            hist.add(value, sign)

    def lower(self, i: int, value: int) -> None:
        """Merge ``value`` into minimum ``i``."""
        if self.mins is None:
            self.mins = {}
        current = self.mins.get(i)
        if current is None or value < current:
            self.mins[i] = value

    def merge(self, other: Row) -> None:
        self.v[:] = map(add, self.v, other.v)
        if other.hists:
            if self.hists is None:
                self.hists = {}
            for i, hist in other.hists.items():
                mine = self.hists.get(i)
                if mine is None:
                    mine = self.hists[i] = ResponseHistogram()
                mine.merge(hist)
        if other.mins:
            for i, value in other.mins.items():
                self.lower(i, value)

    def is_empty(self) -> bool:
        return not (any(self.v) or any(h.counts for h in (self.hists or {}).values()))

    def to_wire(self, layout: Layout) -> list:
        money = layout.money
        return [
            [str(x) if i in money else x for i, x in enumerate(self.v)],
            {i: h.to_wire() for i, h in (self.hists or {}).items()},
            self.mins or {},
        ]

    @classmethod
    def from_wire(cls, wire: list, layout: Layout) -> Row:
        values, hists, mins = wire
        money = layout.money
        values = list(values)
        if len(values) < len(layout.additive):  # written before parts were appended: they start at 0
            values += [0] * (len(layout.additive) - len(values))
        row = cls([Decimal(x) if i in money else x for i, x in enumerate(values)])
        if hists:
            row.hists = {int(i): ResponseHistogram.from_wire(h) for i, h in hists.items()}
        if mins:
            row.mins = {int(i): int(m) for i, m in mins.items()}
        return row


# --- the response-time histogram ----------------------------------------------------------------------
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
    """Response times kept exactly (integer milliseconds) up to EXACT_LIMIT distinct values, then folded
    onto a logarithmic grid with under 0.5 % relative error: the sketch docs/kpis.md allows."""

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
