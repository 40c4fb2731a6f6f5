"""`diff_contributions`: the fast multiset difference equals the plain Counter difference."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from stream.kpi.facts import Contribution, diff_contributions

contribution = st.builds(
    Contribution,
    kind=st.sampled_from(["created", "call", "awaiting", "response"]),
    ts=st.integers(0, 3),
    rep=st.sampled_from(["a", "b"]),
    team=st.none(),
    dim=st.just(0),
    label=st.none(),
    bucket=st.just(0),
    adds=st.tuples(st.tuples(st.just(0), st.integers(0, 2))),
    hists=st.just(()),
    info=st.none(),
)


def reference(old: list, new: list) -> tuple[Counter, Counter]:
    before, after = Counter(old), Counter(new)
    return before - after, after - before


@given(st.lists(contribution, max_size=8), st.lists(contribution, max_size=8))
def test_equals_counter_difference(old, new):
    removed, added = diff_contributions(old, new)
    assert (Counter(removed), Counter(added)) == reference(old, new)


@given(st.lists(contribution, max_size=6), st.lists(contribution, max_size=3), st.lists(contribution, max_size=6),
       st.lists(contribution, max_size=3))
def test_shared_head_and_tail(head, old_mid, tail, new_mid):
    # The usual shape: an event changes a stretch in the middle of the derived list.
    old, new = head + old_mid + tail, head + new_mid + tail
    removed, added = diff_contributions(old, new)
    assert (Counter(removed), Counter(added)) == reference(old, new)


def test_unchanged_is_empty():
    same = [Contribution("created", 1, "a", None, 0, None, 0, ((0, 1),))]
    assert diff_contributions(same, list(same)) == ([], [])
