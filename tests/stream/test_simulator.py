"""The simulated sales floor: deterministic, contract-valid and plausible."""

from __future__ import annotations

import collections
import statistics
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from stream.config import PACKAGE_DIR, load_settings
from stream.events import TOPIC_OF_TYPE, EventValidator, InvalidEvent, event_key
from stream.roster import load_roster
from stream.simulator import SalesFloor, parse_duration, run_simulate

UTC = timezone.utc
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)
ROSTER = load_roster(PACKAGE_DIR / "roster.example.yaml")


def _quiet(_line: str) -> None:
    pass


async def _write(tmp_path, name, **options) -> bytes:
    out = tmp_path / name
    options = {"rate": 0.5, "duration": "6h", "seed": 7, "start": "2026-11-23T08:00:00Z", "bad_ratio": 0.05, **options}
    rc = await run_simulate(load_settings(), out=str(out), roster=ROSTER, echo=_quiet, **options)
    assert rc == 0
    return out.read_bytes()


async def test_same_seed_and_start_give_identical_bytes(tmp_path):
    first = await _write(tmp_path, "a.jsonl")
    assert first.count(b"\n") > 1000
    assert await _write(tmp_path, "b.jsonl") == first
    assert await _write(tmp_path, "c.jsonl", seed=8) != first


async def test_jsonl_lines_bad_share(tmp_path):
    data = await _write(tmp_path, "bad.jsonl", duration="12h")
    validator, rejected = EventValidator(), 0
    lines = data.splitlines()
    for line in lines:
        try:
            validator.validate(line)
        except InvalidEvent:
            rejected += 1
    # ~5 % are malformed; the few that are not valid UTF-8 are counted but not written.
    assert 0.035 < rejected / len(lines) < 0.065


@pytest.fixture(scope="module")
def floor_run():
    """Three simulated weekdays of a floor sized to 0.15 events/s, with 5 % malformed messages."""
    floor = SalesFloor(ROSTER, 11, MONDAY, events_per_second=0.15)
    until = MONDAY + timedelta(days=3)
    messages = list(floor.messages(until, bad_ratio=0.05))
    return floor, until, messages


@pytest.fixture(scope="module")
def valid(floor_run):
    _, _, messages = floor_run
    validator = EventValidator()
    return [(m, validator.validate(m.value, m.topic, wall_ms=None)) for m in messages if not m.bad]


def test_every_good_message_is_valid_and_every_bad_one_rejected(floor_run, valid):
    _, _, messages = floor_run
    validator = EventValidator()
    bad = [m for m in messages if m.bad]
    assert 0.04 < len(bad) / len(messages) < 0.06
    reasons = collections.Counter()
    for m in bad:
        with pytest.raises(InvalidEvent) as info:
            validator.validate(m.value, m.topic, wall_ms=None)
        reasons[info.value.reason] += 1
    assert {"not_json", "not_object", "missing_field", "unknown_type", "bad_timestamp", "negative_amount",
            "invalid_field", "wrong_currency", "unknown_stage", "oversize"} <= set(reasons)
    assert len(valid) == len(messages) - len(bad)


def test_all_types_topics_keys_and_unique_ids(valid):
    types = collections.Counter(e.type for _, e in valid)
    assert set(types) == set(TOPIC_OF_TYPE)
    for m, e in valid:
        assert m.topic == TOPIC_OF_TYPE[e.type]
        assert m.key == event_key(e)
    assert len({e.event_id for _, e in valid}) == len(valid)
    assert any(e.type == "call.logged" and e.lead_id is None for _, e in valid)
    assert any(e.type == "lead.created" and e.rep_id is None for _, e in valid)
    amounts = [orjson.loads(m.value)["amount"] for m, e in valid if e.type == "deal.created"]
    assert any(isinstance(a, str) for a in amounts) and any(isinstance(a, float) for a in amounts)


def test_occurred_at_mostly_non_decreasing(valid):
    times = [e.occurred_at for _, e in valid]
    back = [(a - b).total_seconds() for a, b in zip(times, times[1:]) if b < a]
    assert len(back) / len(times) < 0.03
    assert max(back) <= 61


def test_lead_arrivals_match_the_curve(floor_run, valid):
    floor, until, _ = floor_run
    created = [e for _, e in valid if e.type == "lead.created"]
    expected = floor.expected_leads(until)
    assert abs(len(created) - expected) < 5 * expected**0.5
    by_hour = collections.Counter(e.occurred_at.hour for e in created)
    assert by_hour[12] > 5 * by_hour[3] > 0  # business hours vs night, but never zero


def test_slow_reps_respond_slower(floor_run, valid):
    floor, _, _ = floor_run
    assert 2 <= len(floor.slow_reps) <= 3
    created = {e.lead_id: e.occurred_at for _, e in valid if e.type == "lead.created"}
    first: dict[str, tuple[float, str]] = {}
    for _, e in sorted(valid, key=lambda me: me[1].occurred_at):
        lead = getattr(e, "lead_id", None)
        if e.type in ("lead.touched", "call.logged") and lead in created and lead not in first:
            first[lead] = ((e.occurred_at - created[lead]).total_seconds(), e.rep_id)
    per_rep = collections.defaultdict(list)
    for seconds, rep in first.values():
        per_rep[rep].append(seconds)
    medians = {rep: statistics.median(v) for rep, v in per_rep.items()}
    slow = [medians[r] for r in floor.slow_reps]
    fast = [m for r, m in medians.items() if r not in floor.slow_reps]
    assert min(slow) > 300 > max(fast)
    assert min(slow) > 1.5 * max(fast)
    untouched = 1 - len(first) / len(created)
    assert 0.02 < untouched < 0.10


def test_connect_and_win_rates(valid):
    calls = [e for _, e in valid if e.type == "call.logged"]
    connected = [c for c in calls if c.outcome == "connected"]
    assert 0.25 < len(connected) / len(calls) < 0.45
    assert all(c.duration_s > 0 for c in connected)
    won = sum(e.type == "deal.won" for _, e in valid)
    lost = sum(e.type == "deal.lost" for _, e in valid)
    assert won + lost > 100
    assert 0.25 < won / (won + lost) < 0.45


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400),
                                           ("1h30m", 5400), ("45", 45), (" 1.5h ", 5400), (12, 12)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "m", "-5s", "0s", "10m junk"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)
