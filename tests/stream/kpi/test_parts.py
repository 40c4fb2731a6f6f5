"""Mergeable parts and rows: tiny pure aggregations, tested as one table of (part, moves, expected) in the
quix-streams style, plus properties: a row merged from any split of its moves equals the whole, adding
then retracting leaves it empty, the wire format round-trips, quantiles are exact below the fold limit
and within 1 % after it."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.kpi.parts import COUNT, EXACT_LIMIT, HISTOGRAM, MINIMUM, MONEY, SUM, Layout, Part, ResponseHistogram

LAYOUT = Layout([Part("n", COUNT, ""), Part("ms", SUM, ""), Part("usd", MONEY, ""), Part("h", HISTOGRAM, ""),
                 Part("oldest", MINIMUM, "", windowed=False), Part("open", COUNT, "", windowed=False)])
N, MS, USD, OPEN = (LAYOUT.index[p] for p in ("n", "ms", "usd", "open"))
H = LAYOUT.histograms["h"]


def result(row, part):
    if part == "h":
        hist = (row.hists or {}).get(H)
        return {} if hist is None else dict(hist.counts)
    if part == "oldest":
        return (row.mins or {}).get(LAYOUT.minima["oldest"])
    return row.v[LAYOUT.index[part]]


def run(moves):
    """moves: (part, value, sign); a minimum takes values without a sign."""
    row = LAYOUT.row()
    for part, value, sign in moves:
        if part == "h":
            row.add((), ((H, value),), sign)
        elif part == "oldest":
            row.lower(LAYOUT.minima["oldest"], value)
        else:
            row.add(((LAYOUT.index[part], value),), (), sign)
    return row


# (id, part, moves, expected result of that part)
PART_TABLE = [
    ("count-nothing", "n", [], 0),
    ("count", "n", [("n", 1, 1), ("n", 1, 1)], 2),
    ("count-retracted", "n", [("n", 1, 1), ("n", 1, -1)], 0),
    ("sum", "ms", [("ms", 61_500, 1), ("ms", 500, 1)], 62_000),
    ("sum-corrected", "ms", [("ms", 10, 1), ("ms", 10, -1), ("ms", 900_000, 1)], 900_000),
    ("money-exact", "usd", [("usd", Decimal("0.10"), 1), ("usd", Decimal("0.20"), 1), ("usd", Decimal("0.10"), -1)],
     Decimal("0.20")),
    ("money-cents-sum-exactly", "usd", [("usd", Decimal("0.1"), 1)] * 10, Decimal("1.0")),
    ("histogram", "h", [("h", 300_000, 1), ("h", 0, 1), ("h", 0, 1)], {300_000: 1, 0: 2}),
    ("histogram-moved", "h", [("h", 10, 1), ("h", 10, -1), ("h", 900_000, 1)], {900_000: 1}),
    ("minimum-nothing", "oldest", [], None),
    ("minimum", "oldest", [("oldest", 500, None), ("oldest", 200, None), ("oldest", 900, None)], 200),
]


@pytest.mark.parametrize("part, moves, expected", [r[1:] for r in PART_TABLE], ids=[r[0] for r in PART_TABLE])
def test_part_table(part, moves, expected):
    assert result(run(moves), part) == expected


@pytest.mark.parametrize("part, moves, expected", [r[1:] for r in PART_TABLE], ids=[r[0] for r in PART_TABLE])
def test_a_row_merged_from_any_split_equals_the_whole(part, moves, expected):
    for cut in range(len(moves) + 1):
        merged = run(moves[:cut])
        merged.merge(run(moves[cut:]))  # a part may be negative alone
        assert result(merged, part) == expected


def test_activity_and_state_are_the_windowed_and_current_counts():
    assert LAYOUT.activity == (N,) and LAYOUT.state == (OPEN,)
    assert LAYOUT.money == {USD}


move = st.one_of(
    st.tuples(st.just("n"), st.just(1)),
    st.tuples(st.just("ms"), st.integers(0, 10**10)),
    st.tuples(st.just("usd"), st.decimals(0, 10**9, places=2, allow_nan=False)),
    st.tuples(st.just("h"), st.integers(0, 10**8)),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(move, max_size=40), st.randoms(use_true_random=False))
def test_add_then_retract_is_empty(items, rnd):
    row = run([(p, v, 1) for p, v in items])
    assert row.is_empty() == (not any(v for p, v in items if p != "h") and not any(p == "h" for p, _ in items))
    undo = list(items)
    rnd.shuffle(undo)
    for part, value in undo:
        row.merge(run([(part, value, -1)]))
    assert row.is_empty()


def test_add_then_retract_after_folding_is_empty():
    values = list(range(0, 3 * EXACT_LIMIT * 1000, 997))
    row = run([("h", v, 1) for v in values])
    assert row.hists[H].folded
    for v in reversed(values):
        row.add((), ((H, v),), -1)
    assert row.is_empty()


@settings(max_examples=60, deadline=None)
@given(st.lists(move, max_size=40), st.one_of(st.none(), st.integers(0, 2**45)), st.booleans())
def test_wire_round_trip(items, oldest, fold):
    row = run([(p, v, 1) for p, v in items])
    if oldest is not None:
        row.lower(LAYOUT.minima["oldest"], oldest)
    if fold and row.hists:
        row.hists[H]._fold()
    wire = row.to_wire(LAYOUT)
    for encoded in (wire, msgspec.msgpack.decode(msgspec.msgpack.encode(wire))):  # in memory and between workers
        back = type(row).from_wire(encoded, LAYOUT)
        for part in ("n", "ms", "usd", "h", "oldest"):
            assert result(back, part) == result(row, part)
        assert (back.hists or {}).keys() == (row.hists or {}).keys()
        assert all(back.hists[i].folded == h.folded for i, h in (row.hists or {}).items())


# ------------------------------------------------------------------------------------- histogram --
def nearest_rank(values, q):
    s = sorted(values)
    return s[max(1, math.ceil(q * len(s))) - 1]


# (id, values in ms, {q: expected nearest-rank value})
HIST_TABLE = [
    ("empty", [], {0.5: None, 0.9: None}),
    ("one", [7], {0.0: 7, 0.5: 7, 0.9: 7, 1.0: 7}),
    ("two", [10, 20], {0.5: 10, 0.9: 20, 1.0: 20}),
    ("ten", list(range(1000, 11000, 1000)), {0.5: 5000, 0.9: 9000, 0.1: 1000, 0.91: 10000}),
    ("ties", [5, 5, 5, 9], {0.5: 5, 0.75: 5, 0.76: 9}),
    ("unsorted", [30, 10, 20], {0.5: 20, 0.34: 20, 0.33: 10}),
    ("zeros", [0, 0, 0], {0.5: 0, 0.9: 0}),
]


@pytest.mark.parametrize("values, expected", [r[1:] for r in HIST_TABLE], ids=[r[0] for r in HIST_TABLE])
def test_histogram_table(values, expected):
    h = ResponseHistogram()
    for v in values:
        h.add(v)
    for q, want in expected.items():
        assert h.quantile(q) == want, q
    assert not h.folded


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=300), st.sampled_from([0.5, 0.9, 0.99, 0.01, 1.0]))
def test_quantile_exact_below_fold_limit(values, q):
    h = ResponseHistogram()
    for v in values:
        h.add(v)
    assert not h.folded
    assert h.quantile(q) == nearest_rank(values, q)


def test_exact_up_to_the_limit_then_folded():
    h = ResponseHistogram()
    for v in range(1000, 1000 + EXACT_LIMIT):
        h.add(v)
    assert not h.folded and h.quantile(0.5) == nearest_rank(range(1000, 1000 + EXACT_LIMIT), 0.5)
    h.add(10**6)
    assert h.folded and len(h.counts) < EXACT_LIMIT


@st.composite
def many_values(draw):
    """More than EXACT_LIMIT distinct response times, from a few distribution shapes (built from a seed: fast)."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    n = draw(st.integers(EXACT_LIMIT + 1, 9000))
    shape = draw(st.sampled_from(["uniform", "loguniform", "bimodal", "small-and-large"]))
    if shape == "uniform":
        values = [rng.randrange(0, 3_600_000) for _ in range(n)]
    elif shape == "loguniform":
        values = [int(math.exp(rng.uniform(0, math.log(7 * 86_400_000)))) for _ in range(n)]
    elif shape == "bimodal":
        values = [rng.choice([rng.randrange(1000, 60_000), rng.randrange(3_600_000, 90_000_000)]) for _ in range(n)]
    else:
        values = [rng.randrange(0, 1000) if rng.random() < 0.3 else rng.randrange(0, 10**9) for _ in range(n)]
    # make sure we are past the fold limit in distinct values
    values += list(range(10**9, 10**9 + EXACT_LIMIT + 1 - len(set(values)))) if len(set(values)) <= EXACT_LIMIT else []
    return values


def _close(approx, exact):
    assert exact is not None and approx is not None
    if exact < 1000:
        assert approx == exact  # below one second values are never folded
    else:
        assert abs(approx - exact) <= 0.01 * exact, (approx, exact)


@settings(max_examples=25, deadline=None)
@given(many_values(), st.integers(0, 3))
def test_quantile_within_one_percent_after_folding(values, split):
    h = ResponseHistogram()
    for v in values:
        h.add(v)
    assert h.folded
    for q in (0.5, 0.9):
        _close(h.quantile(q), nearest_rank(values, q))
    # the same holds for partials merged from several histograms (folded or not)
    parts = [ResponseHistogram() for _ in range(split + 1)]
    for i, v in enumerate(values):
        parts[i % len(parts)].add(v)
    merged = ResponseHistogram()
    for p in parts:
        merged.merge(p)
    for q in (0.5, 0.9):
        _close(merged.quantile(q), nearest_rank(values, q))


@settings(max_examples=15, deadline=None)
@given(many_values(), st.randoms(use_true_random=False))
def test_retraction_after_folding_stays_within_one_percent(values, rnd):
    h = ResponseHistogram()
    for v in values:
        h.add(v)
    gone = rnd.sample(values, len(values) // 3)
    for v in gone:
        h.add(v, -1)
    rest = list(values)
    for v in gone:
        rest.remove(v)
    assert sum(h.counts.values()) == len(rest) and all(c > 0 for c in h.counts.values())
    for q in (0.5, 0.9):
        _close(h.quantile(q), nearest_rank(rest, q))


