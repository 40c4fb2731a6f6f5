"""Bounded state: quiet entities retire from the table, waiting leads past lead_max_age are dropped,
one entity keeps a bounded number of events, and a flood of rep/team ids is capped.

Each test compares against an engine without the bound, on the same events, so "nothing changes in
the KPIs" is checked number by number.
"""

from __future__ import annotations

import random
import zlib
from datetime import datetime, timezone

import orjson
import pytest

from stream.events import EventValidator, InvalidEvent, epoch_ms
from stream.kpi.engine import GROUP_OF_TOPIC, EngineConfig, KpiEngine, archive_key
from stream.kpi.catalogue import SCOPE
from stream.kpi.snapshot import build_snapshot, merge_partials
from stream.kpi.store import OVER_CAP
from stream.kpi.windows import WINDOWS
from stream.roster import load_roster
from stream.config import PACKAGE_DIR

UTC = timezone.utc
VALIDATOR = EventValidator()
ROSTER = load_roster(PACKAGE_DIR / "roster.example.yaml")
STAGES = ("prospecting", "qualification", "proposal", "negotiation")
START = datetime(2026, 6, 1, tzinfo=UTC)
DAY_MS = 86_400_000
PARTITIONS = 3
GROUPS = ("leads", "deals", "spend", "customers")


def stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ninety_days(seed: int = 7) -> list[tuple[int, dict]]:
    """(arrival wall clock ms, event) over 90 days: leads (some never touched, some touched 10 days
    late), calls, deals (some still open at the end, some closed), all arriving a few seconds late."""
    rng = random.Random(seed)
    reps = ["hana", "hugo", "felix", "ines", "zed"]
    out = []

    def emit(ts: int, doc: dict) -> None:
        doc.update(event_id=f"e{len(out)}", occurred_at=stamp(ts))
        out.append((ts + rng.randint(0, 20_000), doc))

    t0 = epoch_ms(START)
    for day in range(90):
        for channel, campaign in (("web", "c1"), ("paid", "c2"), ("paid", None)):
            emit(t0 + day * DAY_MS, {"type": "spend.recorded", "channel": channel, "campaign": campaign,
                                     "amount": rng.randint(0, 900), "category": rng.choice(("marketing", "sales"))})
        for i in range(12):
            ts = t0 + day * DAY_MS + rng.randint(0, DAY_MS - 1)
            lead, rep = f"L{day}-{i}", rng.choice(reps)
            source, campaign = rng.choice(("web", "paid", None)), rng.choice(("c1", "c2", None))
            emit(ts, {"type": "lead.created", "lead_id": lead, "rep_id": rep, "source": source, "campaign": campaign})
            if rng.random() < 0.4:
                emit(ts + rng.randint(1_000, 5 * DAY_MS), {"type": "lead.marketing_qualified", "lead_id": lead})
            fate = rng.random()
            if fate < 0.6:
                emit(ts + rng.randint(1_000, 900_000), {"type": "lead.touched", "lead_id": lead, "rep_id": rep, "channel": "email"})
            elif fate < 0.7:
                emit(ts + 10 * DAY_MS, {"type": "call.logged", "lead_id": lead, "call_id": f"C{lead}", "rep_id": rep,
                                        "direction": "outbound", "outcome": "connected", "duration_s": 61.5})
            if i % 4 == 0:
                deal = f"D{day}-{i}"
                emit(ts, {"type": "deal.created", "deal_id": deal, "rep_id": rep, "amount": 1000 + i, "stage": "prospecting",
                          "kind": rng.choice(("new", "expansion", "renewal")), "product": rng.choice(("pro", "basic")),
                          "source": source, "campaign": campaign, "term_months": rng.choice((12, 24, None))})
                if rng.random() < 0.8:
                    kind = "deal.won" if rng.random() < 0.5 else "deal.lost"
                    emit(ts + rng.randint(1, 20) * DAY_MS, {"type": kind, "deal_id": deal})
    out.sort(key=lambda pair: pair[0])
    return out


class Worker:
    def __init__(self, **config) -> None:
        self.engine = KpiEngine(EngineConfig(**config))
        self.tables: dict[str, dict] = {group: {} for group in GROUPS}
        self.rejected: list[str] = []

    def apply(self, wall_ms: int, doc: dict) -> None:
        event = VALIDATOR.validate(orjson.dumps(doc), topic := _topic(doc), wall_ms=wall_ms)
        group = GROUP_OF_TOPIC[topic]
        partition = zlib.crc32(_key(doc).encode()) % PARTITIONS
        try:
            self.engine.apply(self.tables[group], topic, partition, event, wall_ms)
        except InvalidEvent as exc:
            self.rejected.append(exc.reason)
        self.engine.retire(self.tables[group], group, partition)  # what the agent does after each event

    def plan(self, wall_ms: int) -> int:
        self.engine.expire(wall_ms)
        return sum(self.engine.plan_retirement(g, list(t.items()), wall_ms) for g, t in self.tables.items())

    def snapshots(self, now_ms: int) -> dict:
        return {
            w: build_snapshot(merge_partials(self.engine.partials(w, now_ms).values()), window=w, now_ms=now_ms,
                              roster=ROSTER, stages=STAGES).document()
            for w in WINDOWS
        }

    def rebuilt(self, now_ms: int, **config) -> "Worker":
        fresh = Worker(**config)
        fresh.tables = {g: dict(t) for g, t in self.tables.items()}
        for group, table in fresh.tables.items():
            fresh.engine.rebuild(group, range(PARTITIONS), list(table.items()), now_ms)
        return fresh


def _topic(doc: dict) -> str:
    return {"lead": "leads", "meeting": "leads", "call": "calls", "deal": "deals", "spend": "spend"}[doc["type"].split(".")[0]]


def _key(doc: dict) -> str:
    return doc.get("deal_id") or doc.get("lead_id") or doc.get("call_id") or doc["channel"]


def feed(workers: list[Worker], log: list[tuple[int, dict]]) -> int:
    next_plan = log[0][0]
    for wall, doc in log:
        if wall >= next_plan:
            for w in workers:
                w.plan(wall)
            next_plan = wall + DAY_MS // 4
        for w in workers:
            w.apply(wall, doc)
    return log[-1][0]


def test_retirement_shrinks_the_table_and_changes_no_kpi_even_after_a_rebuild():
    log = ninety_days()
    bounded, unbounded = Worker(entity_retention_seconds=40 * 86400), Worker(entity_retention_seconds=10**9)
    now = feed([bounded, unbounded], log)
    assert bounded.rejected == unbounded.rejected == []
    rows = {g: sum(1 for k in t if not k.startswith("A:")) for g, t in bounded.tables.items()}
    all_rows = {g: len(t) for g, t in unbounded.tables.items()}
    # About 50 of 90 days have aged out: well under two thirds of the rows are left.
    assert rows["leads"] < 0.6 * all_rows["leads"] and rows["deals"] < 0.7 * all_rows["deals"], (rows, all_rows)
    assert bounded.engine.retired == sum(all_rows.values()) - sum(rows.values())
    expected = unbounded.snapshots(now)
    assert expected["all"]["overall"]["leads_created"] == 90 * 12
    assert bounded.snapshots(now) == expected
    # after a crash the aggregates come back from the table + archive records: still the same numbers
    assert bounded.rebuilt(now).snapshots(now) == expected


def test_open_deals_never_retire_and_closed_ones_do():
    log = ninety_days()
    bounded = Worker()
    now = feed([bounded], log)
    deals = bounded.tables["deals"]
    kept = {k for k in deals if k.startswith("D:")}
    first_days = {f"D:D{d}-{i}" for d in range(10) for i in (0, 4, 8)}
    open_then = {k for k in first_days if not any(doc.get("deal_id") == k[2:] and doc["type"] in ("deal.won", "deal.lost")
                                                   for _, doc in log)}
    assert open_then and kept & first_days == open_then  # 80 days later: only the still-open ones remain
    assert bounded.snapshots(now)["all"]["overall"]["open_deals"] == sum(
        1 for _, doc in log if doc["type"] == "deal.created") - sum(1 for _, doc in log if doc["type"] in ("deal.won", "deal.lost"))


def test_a_crash_between_archive_write_and_row_deletes_loses_and_doubles_nothing():
    log = ninety_days(seed=3)
    cut = len(log) * 2 // 3
    live = Worker()
    feed([live], log[:cut])
    for group in GROUPS:  # settle what the feed planned but no later event retired
        for p in range(PARTITIONS):
            live.engine.retire(live.tables[group], group, p)
    wall = log[cut][0] + DAY_MS
    assert live.plan(wall) > 0
    # Retire with a table that keeps the rows: as if the worker died right after writing the archives.
    kept_rows = {g: dict(t) for g, t in live.tables.items()}
    for group in GROUPS:
        for p in range(PARTITIONS):
            live.engine.retire(live.tables[group], group, p)
            if archive_key(p) in live.tables[group]:
                kept_rows[group][archive_key(p)] = live.tables[group][archive_key(p)]
    assert sum(map(len, kept_rows.values())) > sum(map(len, live.tables.values()))
    crashed = Worker()
    crashed.tables = kept_rows
    for group, table in kept_rows.items():
        crashed.engine.rebuild(group, range(PARTITIONS), list(table.items()), wall)
    assert crashed.snapshots(wall) == live.snapshots(wall)
    # ... and the next plan deletes the rows left behind without counting them again
    assert crashed.plan(wall) > 0
    for group in GROUPS:
        for p in range(PARTITIONS):
            crashed.engine.retire(crashed.tables[group], group, p)
    assert {g: set(t) for g, t in crashed.tables.items()} == {g: set(t) for g, t in live.tables.items()}
    assert crashed.snapshots(wall) == live.snapshots(wall)


def test_an_entity_active_again_since_the_scan_is_not_retired():
    worker = Worker()
    t0 = epoch_ms(START)
    worker.apply(t0, {"event_id": "c", "type": "lead.created", "occurred_at": stamp(t0), "lead_id": "L", "rep_id": "hana"})
    wall = t0 + 45 * DAY_MS
    assert worker.plan(wall) == 1
    worker.apply(wall, {"event_id": "t", "type": "lead.touched", "occurred_at": stamp(wall), "lead_id": "L",
                        "rep_id": "hana", "channel": "sms"})
    assert "L:L" in worker.tables["leads"] and worker.engine.retired == 0


def test_waiting_leads_older_than_lead_max_age_are_dropped_from_memory():
    worker = Worker(lead_max_age_seconds=7 * 86400)
    t0 = epoch_ms(START)
    for i in range(50):
        worker.apply(t0, {"event_id": f"c{i}", "type": "lead.created", "occurred_at": stamp(t0), "lead_id": f"L{i}", "rep_id": "hana"})
    state = worker.engine.partitions
    assert sum(len(w) for s in state.values() for w in s.aggregates.dims[SCOPE].awaiting.values()) == 50
    later = t0 + 8 * DAY_MS
    worker.engine.expire(later)
    assert sum(len(w) for s in state.values() for w in s.aggregates.dims[SCOPE].awaiting.values()) == 0
    # A touch after the drop retracts nothing twice and counts the response
    worker.apply(later, {"event_id": "t", "type": "lead.touched", "occurred_at": stamp(later), "lead_id": "L1",
                         "rep_id": "hana", "channel": "sms"})
    snap = worker.snapshots(later)["all"]["overall"]
    assert (snap["leads_awaiting_response"], snap["leads_responded"], snap["leads_created"]) == (0, 1, 50)


def test_one_entity_keeps_a_bounded_number_of_events():
    worker = Worker(max_facts_per_entity=20)
    t0 = epoch_ms(START)
    calls = [{"event_id": f"k{i}", "type": "call.logged", "occurred_at": stamp(t0 + i), "call_id": f"K{i}", "lead_id": "L",
              "rep_id": "hana", "direction": "outbound", "outcome": "busy", "duration_s": 0} for i in range(25)]
    for doc in calls:
        worker.apply(t0 + 1000, doc)
    worker.apply(t0 + 1000, calls[3])  # a redelivery at the cap is still recognised, not rejected
    assert worker.rejected == ["entity_full"] * 5
    assert worker.snapshots(t0 + 1000)["all"]["overall"]["calls"] == 20


def test_a_flood_of_rep_and_team_ids_is_capped_and_totals_stay_exact():
    capped, free = Worker(max_reps=50, max_teams=5), Worker()
    t0 = epoch_ms(START)
    for i in range(3000):
        doc = {"event_id": f"c{i}", "type": "lead.created", "occurred_at": stamp(t0 + i), "lead_id": f"L{i}",
               "rep_id": f"bot-{i}", "team": f"team-{i % 40}"}
        capped.apply(t0 + 5000, doc)
        free.apply(t0 + 5000, doc)
    snap, exact = capped.snapshots(t0 + 5000)["all"], free.snapshots(t0 + 5000)["all"]
    assert len(snap["reps"]) == 51 and len(snap["teams"]) == 6  # 50 admitted + the over-cap bucket
    assert snap["reps"][OVER_CAP]["leads_created"] == 3000 - 50
    assert snap["teams"][OVER_CAP]["leads_created"] == sum(
        v["leads_created"] for t, v in exact["teams"].items() if t not in snap["teams"])
    assert snap["overall"] == exact["overall"]
    assert capped.engine.caps["reps"].over_cap >= 2950
    with pytest.raises(KeyError):
        snap["reps"]["bot-2999"]
