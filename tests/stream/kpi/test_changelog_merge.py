"""Recovering a table from its changelog gives the same entities whatever order the records arrived in.

A killed worker's in-flight writes can reach the broker after its successor's (integration:
tests/integration/test_commit_order.py); ``merge_changelog_record`` makes the recovered value the union.
"""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.kpi.engine import Archive, archive_key, merge_changelog_record
from stream.kpi.facts import Entity, Fact

encode = msgspec.msgpack.Encoder().encode
entity_of = msgspec.msgpack.Decoder(Entity).decode
DAY = 86_400_000


def call(i: int, ts: int | None = None) -> Fact:
    return Fact(ts=ts if ts is not None else 1_000_000 + i, rank=2, eid=f"call-{i}", kind="call.logged", rep="ana")


def value(facts: list[Fact], partition: int = 0) -> bytes:
    return encode(Entity(partition=partition, facts=sorted(facts)))


def recover(records: list[tuple[str, bytes | None]]) -> dict[str, bytes]:
    """Apply changelog records in order, as ChangelogTable.apply_changelog_batch does."""
    table: dict[str, bytes] = {}
    for key, incoming in records:
        merged = merge_changelog_record(key, table.get(key), incoming, lambda p: table.get(archive_key(p)))
        if merged is None:
            table.pop(key, None)
        else:
            table[key] = merged
    return table


@settings(max_examples=200, deadline=None, database=None)
@given(st.integers(1, 40), st.randoms(use_true_random=False))
def test_any_order_of_an_entitys_values_recovers_the_newest(n, rng):
    # Each write holds the facts applied so far: a prefix of the entity's events.
    writes = [("L:x", value([call(i) for i in range(k)])) for k in range(1, n + 1)]
    rng.shuffle(writes)
    assert entity_of(recover(writes)["L:x"]).facts == [call(i) for i in range(n)]


def test_a_stale_value_after_the_newest_does_not_roll_it_back():
    newest, stale = value([call(i) for i in range(250)]), value([call(i) for i in range(116)])
    assert recover([("L:x", newest), ("L:x", stale)])["L:x"] == newest


def test_values_that_each_miss_a_fact_recover_their_union():
    a, b = value([call(0), call(1)]), value([call(0), call(2)])
    assert entity_of(recover([("L:x", a), ("L:x", b)])["L:x"]).facts == [call(0), call(1), call(2)]


def test_a_retirement_deletes_a_row_its_archive_covers_and_spares_one_that_gained_facts():
    old = value([call(0, ts=5 * DAY)])
    archive = encode(Archive(cutoff=10 * DAY, totals=[]))
    assert recover([("L:x", old), (archive_key(0), archive), ("L:x", None)]) == {archive_key(0): archive}
    # The row gained a fact after the cutoff (its successor applied an event the retiring worker never saw).
    revived = value([call(0, ts=5 * DAY), call(1, ts=11 * DAY)])
    table = recover([("L:x", old), (archive_key(0), archive), ("L:x", revived), ("L:x", None)])
    assert table["L:x"] == revived
    # No archive covers the row at all: a deletion cannot have been a retirement of it.
    assert recover([("L:x", old), ("L:x", None)])["L:x"] == old


def test_an_archive_never_moves_back_to_an_earlier_cutoff():
    later, earlier = encode(Archive(cutoff=20 * DAY, totals=[])), encode(Archive(cutoff=10 * DAY, totals=[]))
    assert recover([(archive_key(3), later), (archive_key(3), earlier)])[archive_key(3)] == later
    assert recover([(archive_key(3), earlier), (archive_key(3), later)])[archive_key(3)] == later
