"""`Agg` and `ResponseHistogram`: tiny pure aggregations, tested as one table of (operations, expected) rows
in the quix-streams style, plus properties: exact quantiles below the fold limit, <= 1 % after folding,
add-then-retract is empty, the wire format round-trips."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.kpi.aggregates import COUNT_FIELDS, EXACT_LIMIT, Agg, ResponseHistogram
from stream.kpi.snapshot import scope_kpis

SLA_MS = 300_000


def run(ops) -> Agg:
    """ops: ("w", kind, value, sign) for apply_windowed, ("o", stage, amount, sign) for apply_open."""
    agg = Agg()
    for op in ops:
        if op[0] == "w":
            agg.apply_windowed(op[1], op[2], op[3], SLA_MS)
        else:
            agg.apply_open(op[1], op[2], op[3])
    return agg


def fields(agg: Agg) -> dict:
    out = {name: getattr(agg, name) for name in COUNT_FIELDS}
    out.update(won_revenue=agg.won_revenue, open_value=agg.open_value, stage_entries=dict(agg.stage_entries),
               open_by_stage={k: tuple(v) for k, v in agg.open_by_stage.items()}, hist=dict(agg.hist.counts))
    return out


def semantic(agg: Agg) -> dict:
    """fields() without zero entries: merge() may keep a stage at 0 where apply_* deletes it; KPIs read both as 0."""
    out = fields(agg)
    out["stage_entries"] = {k: v for k, v in out["stage_entries"].items() if v}
    out["open_by_stage"] = {k: v for k, v in out["open_by_stage"].items() if v != (0, 0)}
    return out


def W(kind, value=1, sign=1):
    return ("w", kind, value, sign)


def O(stage, amount, sign=1):
    return ("o", stage, Decimal(amount), sign)


# (id, operations, expected non-default fields, expected is_active, expected is_empty)
AGG_TABLE = [
    ("nothing", [], {}, False, True),
    ("created", [W("created")], {"leads_created": 1}, True, False),
    ("created-retracted", [W("created"), W("created", 1, -1)], {}, False, True),
    ("response-within-sla", [W("response", 300_000)],
     {"leads_responded": 1, "response_ms_sum": 300_000, "responses_within_sla": 1, "hist": {300_000: 1}}, True, False),
    ("response-over-sla", [W("response", 300_001)],
     {"leads_responded": 1, "response_ms_sum": 300_001, "hist": {300_001: 1}}, True, False),
    ("response-zero", [W("response", 0), W("response", 0)],
     {"leads_responded": 2, "responses_within_sla": 2, "hist": {0: 2}}, True, False),
    ("response-moved", [W("response", 10), W("response", 10, -1), W("response", 900_000)],
     {"leads_responded": 1, "response_ms_sum": 900_000, "hist": {900_000: 1}}, True, False),
    ("qualified", [W("qualified")], {"leads_qualified": 1}, True, False),
    ("meeting", [W("meeting", 3), W("meeting", 0)], {"meetings": 2, "meeting_touches": 3}, True, False),
    ("call-connected", [W("call", (True, 61_500))], {"calls": 1, "calls_connected": 1, "talk_ms": 61_500}, True, False),
    ("call-not-connected-ignores-talk", [W("call", (False, 99_000))], {"calls": 1}, True, False),
    ("won", [W("won", (Decimal("1000.10"), 86_400_000))],
     {"deals_won": 1, "won_revenue": Decimal("1000.10"), "cycle_ms_sum": 86_400_000}, True, False),
    ("won-zero-amount-still-active", [W("won", (Decimal(0), 0))], {"deals_won": 1}, True, False),
    ("won-retracted-exact-decimal", [W("won", (Decimal("0.10"), 5)), W("won", (Decimal("0.20"), 7)),
                                     W("won", (Decimal("0.10"), 5), -1)],
     {"deals_won": 1, "won_revenue": Decimal("0.20"), "cycle_ms_sum": 7}, True, False),
    ("lost", [W("lost")], {"deals_lost": 1}, True, False),
    ("stage-entry-not-active", [W("stage_entry", "proposal"), W("stage_entry", "proposal")],
     {"stage_entries": {"proposal": 2}}, False, False),
    ("stage-entry-retracted-key-gone", [W("stage_entry", "proposal"), W("stage_entry", "proposal", -1)], {},
     False, True),
    ("open-deal", [O("proposal", "5000.50")],
     {"open_deals": 1, "open_value": Decimal("5000.50"), "open_by_stage": {"proposal": (1, Decimal("5000.50"))}},
     False, False),
    ("open-deal-moves-stage", [O("proposal", "10"), O("proposal", "10", -1), O("negotiation", "12")],
     {"open_deals": 1, "open_value": Decimal("12"), "open_by_stage": {"negotiation": (1, Decimal("12"))}},
     False, False),
    ("open-deal-closed", [O("proposal", "10"), O("proposal", "10", -1)], {}, False, True),
    ("open-deal-without-stage", [O(None, "3")],
     {"open_deals": 1, "open_value": Decimal("3"), "open_by_stage": {"": (1, Decimal("3"))}}, False, False),
]


@pytest.mark.parametrize("ops, expected, active, empty", [r[1:] for r in AGG_TABLE], ids=[r[0] for r in AGG_TABLE])
def test_agg_table(ops, expected, active, empty):
    agg = run(ops)
    want = fields(Agg())
    want.update(expected)
    assert fields(agg) == want
    assert agg.is_active() is active
    assert agg.is_empty() is empty
    assert agg.has_current_state() is bool(want["open_deals"] or want["awaiting"])


@pytest.mark.parametrize("ops, expected, active, empty", [r[1:] for r in AGG_TABLE], ids=[r[0] for r in AGG_TABLE])
def test_agg_merge_of_split_equals_whole(ops, expected, active, empty):
    whole = run(ops)
    for cut in range(len(ops) + 1):
        merged = run(ops[:cut])
        merged.merge(run(ops[cut:]))
        assert semantic(merged) == semantic(whole)  # parts may be negative alone


def test_agg_merge_keeps_earliest_oldest_created():
    a, b, c = Agg(), Agg(), Agg()
    a.oldest_created, b.oldest_created = 500, 200
    a.merge(b)
    a.merge(c)
    assert a.oldest_created == 200
    c.merge(a)
    assert c.oldest_created == 200


def test_unknown_contribution_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        Agg().apply_windowed("awaiting", 1, 1, SLA_MS)


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


# ------------------------------------------------------------------------------ add then retract --
contribution = st.one_of(
    st.tuples(st.just("w"), st.just("created"), st.just(1)),
    st.tuples(st.just("w"), st.just("response"), st.integers(0, 10**8)),
    st.tuples(st.just("w"), st.just("qualified"), st.just(1)),
    st.tuples(st.just("w"), st.just("meeting"), st.integers(0, 20)),
    st.tuples(st.just("w"), st.just("call"), st.tuples(st.booleans(), st.integers(0, 10**7))),
    st.tuples(st.just("w"), st.just("won"),
              st.tuples(st.decimals(0, 10**9, places=2, allow_nan=False), st.integers(0, 10**10))),
    st.tuples(st.just("w"), st.just("lost"), st.just(1)),
    st.tuples(st.just("w"), st.just("stage_entry"), st.sampled_from(["prospecting", "proposal"])),
    st.tuples(st.just("o"), st.sampled_from(["prospecting", "proposal", None]),
              st.decimals(0, 10**9, places=2, allow_nan=False)),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(contribution, max_size=40), st.randoms(use_true_random=False))
def test_add_then_retract_is_empty(items, rnd):
    agg = run([(*c, 1) for c in items])
    assert agg.is_empty() == (not items)  # every contribution counts something, even with a zero value
    undo = list(items)
    rnd.shuffle(undo)
    for op, a, b in undo:
        if op == "w":
            agg.apply_windowed(a, b, -1, SLA_MS)
        else:
            agg.apply_open(a, b, -1)
    assert agg.is_empty()
    assert fields(agg) == fields(Agg())


def test_add_then_retract_after_folding_is_empty():
    agg = Agg()
    values = list(range(0, 3 * EXACT_LIMIT * 1000, 997))
    for v in values:
        agg.apply_windowed("response", v, 1, SLA_MS)
    assert agg.hist.folded
    for v in reversed(values):
        agg.apply_windowed("response", v, -1, SLA_MS)
    assert agg.is_empty()


# ------------------------------------------------------------------------------------------- wire --
@settings(max_examples=60, deadline=None)
@given(st.lists(contribution, max_size=40), st.one_of(st.none(), st.integers(0, 2**45)), st.booleans())
def test_wire_round_trip(items, oldest, fold):
    agg = run([(*c, 1) for c in items])
    agg.oldest_created = oldest
    if fold:
        agg.hist._fold()
    for encoded in (agg.to_wire(), orjson.loads(orjson.dumps(agg.to_wire()))):  # in memory and through JSON
        back = Agg.from_wire(encoded)
        assert fields(back) == fields(agg)
        assert back.oldest_created == agg.oldest_created and back.hist.folded == agg.hist.folded
        assert scope_kpis(back, 2**46) == scope_kpis(agg, 2**46)
        assert orjson.dumps(back.to_wire()) == orjson.dumps(agg.to_wire())
