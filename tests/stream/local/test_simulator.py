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
from stream.local.simulator import SalesFloor, backfill_start, parse_positive_duration as parse_duration, run_simulate
from tests.oracle.batch_kpis import compute_kpis, load_roster_yaml

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
    assert len(floor.slow_reps) == 2  # one or two slow reps on a floor of 12
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


def test_connect_rate(valid):
    calls = [e for _, e in valid if e.type == "call.logged"]
    connected = [c for c in calls if c.outcome == "connected"]
    assert 0.25 < len(connected) / len(calls) < 0.45
    assert all(c.duration_s > 0 for c in connected)


# --- the demo's floor: five weeks of history up to "now", then live ----------------------------------
NOW = datetime(2026, 12, 2, 14, 48, 30, tzinfo=UTC)  # a Wednesday afternoon, two days into the month
STAGES = ("prospecting", "qualification", "proposal", "negotiation")


@pytest.fixture(scope="module")
def history():
    """The natural floor (the example roster's size) from local midnight five weeks before NOW, up to NOW."""
    start = backfill_start(NOW, "5w")
    floor = SalesFloor(ROSTER, 42, start)
    events = [se.event for se in floor.events(NOW) if se.at_ms <= NOW.timestamp() * 1000]
    return floor, start, events


def _kpis(events, window):
    return compute_kpis(events, window, NOW, sla_seconds=300, timezone="UTC",
                        roster=load_roster_yaml(str(PACKAGE_DIR / "roster.example.yaml")), stages=STAGES,
                        lead_max_age_seconds=7 * 86400)


def test_backfill_starts_at_local_midnight():
    assert backfill_start(NOW, "5w") == datetime(2026, 10, 28, tzinfo=UTC)
    berlin = backfill_start(NOW, "1d", "Europe/Berlin")
    assert berlin.isoformat() == "2026-12-01T00:00:00+01:00"


def test_history_leaves_no_lead_waiting_that_a_managed_floor_would_not(history):
    """Every past lead was touched or disqualified: what waits at NOW arrived minutes ago (or is junk
    about to be disqualified), so the history pages nobody."""
    _, _, events = history
    created = {e["lead_id"]: e["occurred_at"] for e in events if e["type"] == "lead.created"}
    ended = {e["lead_id"] for e in events if e["type"] in ("lead.touched", "lead.disqualified")
             or (e["type"] == "call.logged" and "lead_id" in e)}
    waiting = {lead: at for lead, at in created.items() if lead not in ended}
    assert len(created) > 4000
    assert len(waiting) <= 6
    oldest = min(waiting.values())
    assert (NOW - datetime.fromisoformat(oldest.replace("Z", "+00:00"))).total_seconds() < 3 * 3600
    now_kpis = _kpis(events, "today")["overall"]
    assert now_kpis["leads_awaiting_response"] == len(waiting)


def test_history_numbers_make_sense_to_a_sales_manager(history):
    _, _, events = history
    quotas = sum(r.monthly_quota for r in ROSTER.reps)
    for window in ("today", "24h", "month", "all"):
        o = _kpis(events, window)["overall"]
        assert o["leads_created"] > 20 and o["calls"] > 50 and o["deals_won"] >= 1 and o["deals_lost"] >= 1, window
        assert 60 < o["lead_response_seconds_p50"] < 240, window  # most reps answer in 1.5-3 minutes
        assert 0.75 < o["lead_response_within_sla_ratio"] < 0.95, window
        assert o["open_deals"] > 10 and o["pipeline_velocity_per_day"] > 0
    everything = _kpis(events, "all")["overall"]
    assert 0.2 < everything["win_rate"] < 0.45
    assert 0.02 < everything["lead_to_opportunity_ratio"] < 0.1
    assert 2 < everything["sales_cycle_days_mean"] < 15
    # A month of steady floor (the last 30 days; the first week only opens deals) wins about the quotas.
    month_ago = (NOW - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S")
    won = [e for e in events if e["type"] == "deal.won" and e["occurred_at"] >= month_ago]
    revenue = sum(float(e.get("amount") or 0) for e in won)  # final amounts: most outcomes carry one
    assert 0.6 * quotas < revenue < 1.5 * quotas
    assert _kpis(events, "month")["overall"]["quota_attainment"] is not None


def test_a_few_leads_per_peak_hour_wait_past_the_sla(history):
    """What pages: leads whose first touch came after the SLA, a few per weekday peak hour."""
    floor, _, events = history
    created = {e["lead_id"]: datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00"))
               for e in events if e["type"] == "lead.created"}
    first: dict[str, datetime] = {}
    for e in events:
        lead = e.get("lead_id") if e["type"] in ("lead.touched", "call.logged") else None
        at = datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00"))
        if lead in created and (lead not in first or at < first[lead]):
            first[lead] = at
    late = collections.Counter()
    for lead, at in first.items():
        c = created[lead]
        if c.weekday() < 5 and 10 <= c.hour < 16 and (at - c).total_seconds() > 300:
            late[c.date(), c.hour] += 1
    per_hour = sum(late.values()) / (25 * 6)  # 25 weekdays x 6 peak hours
    assert 1 <= per_hour <= 6


async def test_backfill_run_is_deterministic_and_never_ahead_of_now(tmp_path):
    async def run(name):
        out = tmp_path / name
        rc = await run_simulate(load_settings(), out=str(out), seed=5, backfill="1w", now=NOW, roster=ROSTER,
                                echo=_quiet)
        assert rc == 0
        return out.read_bytes()

    data = await run("a.jsonl")
    assert await run("b.jsonl") == data
    times = [orjson.loads(line)["occurred_at"] for line in data.splitlines()]
    assert min(times) >= "2026-11-25T00:00:00" and max(times) <= "2026-12-02T14:48:30"
    assert len(times) > 3000


async def test_backfill_refuses_a_start_and_a_speedup(tmp_path):
    lines = []
    for options in ({"start": "2026-11-23T08:00:00Z"}, {"speedup": 10}):
        rc = await run_simulate(load_settings(), out=str(tmp_path / "x"), backfill="5w", echo=lines.append, **options)
        assert rc == 2
    assert "exclude each other" in lines[0] and "--speedup must be 1" in lines[1]


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("5w", 35 * 86400),
                                           ("1h30m", 5400), ("45", 45), (" 1.5h ", 5400), (12, 12)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "m", "-5s", "0s", "10m junk"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)
