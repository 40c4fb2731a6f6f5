"""The hostile corpus itself: large, deterministic, covering every category, and labelled as the validator
decides (so the integration test's expectations are right before any broker is involved)."""

from __future__ import annotations

import collections
from datetime import datetime, timezone

import orjson
import pytest

from stream.events import REASONS, EventValidator, InvalidEvent, epoch_ms
from tests.oracle.batch_kpis import compute_kpis, drop_too_late, event_clock_now, kafka_partition
from tests.oracle.hostile_corpus import (
    CATEGORIES,
    MAX_EVENT_BYTES,
    MAX_VALUE_BYTES,
    huge_sizes,
    interleave,
    make_bad_messages,
    with_hostile_valid_events,
)
from tests.oracle.messy_log import make_messy_log

PARTITIONS = 4


@pytest.fixture(scope="module")
def corpus():
    return make_bad_messages(seed=11, count=10_000, huge=4)


def test_corpus_is_large_and_deterministic(corpus):
    assert len(corpus) == 10_004
    again = make_bad_messages(seed=11, count=10_000, huge=4)
    assert [(m.topic, m.key, m.value, m.reason) for m in again] == [(m.topic, m.key, m.value, m.reason) for m in corpus]
    assert [m.value for m in make_bad_messages(seed=12, count=200, huge=0)] != [m.value for m in corpus[:200]]


def test_corpus_covers_every_category_and_every_input_reason(corpus):
    by_category = collections.Counter(m.category for m in corpus)
    assert set(by_category) == set(CATEGORIES)
    assert min(by_category.values()) >= 50, by_category  # 20 categories, oversize weighted 0.1
    # too_late and entity_full are the engine's verdicts on valid events (tests/stream/kpi); the rest all appear.
    assert {m.reason for m in corpus} == set(REASONS) - {"too_late", "entity_full"}
    assert sum(m.value is None for m in corpus) > 10 and all(m.key for m in corpus if m.value is None)  # tombstones
    assert sum(m.key is None for m in corpus) > 100


def test_every_label_is_the_validators_verdict(corpus):
    validator = EventValidator()
    wall_ms = epoch_ms(datetime.now(timezone.utc))
    wrong = []
    for m in corpus:
        try:
            validator.validate(m.value or b"", m.topic, wall_ms=wall_ms)
            got = "accepted"
        except InvalidEvent as exc:
            got = exc.reason
        if got != m.reason:
            wrong.append((m.category, m.reason, got, (m.value or b"")[:120]))
    assert not wrong, wrong[:10]


def test_huge_messages_go_up_to_the_largest_value_a_1_mib_topic_takes(corpus):
    assert MAX_VALUE_BYTES == 1024 * 1024 - 72
    assert huge_sizes(4) == sorted(huge_sizes(4)) and huge_sizes(4)[-2:] == [MAX_VALUE_BYTES, MAX_VALUE_BYTES]
    assert min(huge_sizes(4)) == 256 * 1024 and huge_sizes(0) == []
    over = [m for m in corpus if m.value and len(m.value) > MAX_EVENT_BYTES]
    assert all(m.reason == "oversize" for m in over)
    assert {m.reason for m in corpus if m.value and len(m.value) <= MAX_EVENT_BYTES} >= {"not_json"}  # deep, 2-60 KiB
    assert sorted(len(m.value) for m in over)[-4:] == huge_sizes(4)
    assert sum(len(m.value) > 256 * 1024 for m in over) == 3 and len(over) > 50


def test_hostile_valid_events_are_valid_and_change_no_too_late_verdict():
    log = make_messy_log(seed=7)
    mixed = with_hostile_valid_events(log, seed=7)
    extras = [e for _, _, e in mixed if e["event_id"].startswith("hv-")]
    assert len(extras) > 200
    validator = EventValidator()
    for topic, _, event in mixed:
        if event["event_id"].startswith("hv-"):
            assert validator.validate(orjson.dumps(event), topic).event_id == event["event_id"]

    def too_late(entries):
        rejected: list[dict] = []
        drop_too_late([(t, kafka_partition(k, PARTITIONS), e) for t, k, e in entries], rejected)
        return [e["event_id"] for e in rejected]

    assert too_late(mixed) == too_late(log) != []
    accepted = drop_too_late([(t, kafka_partition(k, PARTITIONS), e) for t, k, e in mixed])
    doc = compute_kpis(accepted, "all", event_clock_now(accepted))
    hostile_reps = {e["rep_id"] for e in extras}
    assert hostile_reps <= set(doc["reps"]) and len(hostile_reps) > 20


def test_interleave_keeps_the_valid_order_and_places_every_bad_message():
    valid = [("leads", f"k{i}", {"event_id": str(i)}) for i in range(50)]
    bad = make_bad_messages(seed=3, count=30, huge=0)
    mixed = interleave(valid, bad, seed=3)
    assert [item for kind, item in mixed if kind == "valid"] == valid
    assert [item for kind, item in mixed if kind == "bad"] == bad
    first_half = mixed[: len(mixed) // 2]
    assert 0 < sum(kind == "bad" for kind, _ in first_half) < 30  # scattered, not bunched at one end
