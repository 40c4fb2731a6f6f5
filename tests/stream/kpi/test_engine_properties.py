"""Properties of the KPI engine on small generated event logs (no Kafka).

A. the snapshot does not depend on arrival order (any permutation, duplicates included);
B. splitting the log across partitions and workers by key, as Kafka would, and merging the partials
   gives the single-partition snapshot;
C. rebuilding the aggregates from the entity table gives the incremental result;
D. the engine agrees with the independent batch oracle (tests/oracle/batch_kpis.py);
E. so it does in wall-clock mode, with the too-late rule and bucket expiry at work;
and the oracle's messy log (too-late events included) gives the oracle's answer on 1-4 partitions.

Logs span three days around a month end / DST change, with leads (created, assigned, touched, meeting,
qualified, disqualified), calls with and without a lead, deals (created, stage changes, won, lost), held
events (a touch before its lead, a won before its deal) and redelivered duplicates. Every event goes
through `EventValidator` first, as in the worker.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta, timezone

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.config import PACKAGE_DIR
from stream.events import TOPIC_OF_TYPE, EventValidator, InvalidEvent, epoch_ms
from stream.kpi.engine import GROUP_OF_TOPIC, EngineConfig, KpiEngine
from stream.kpi.facts import Entity
from stream.kpi.snapshot import build_snapshot, merge_partials
from stream.kpi.windows import WINDOWS
from stream.roster import load_roster, parse_roster
from tests.oracle.batch_kpis import compute_kpis, drop_too_late, event_clock_now, kafka_partition, load_roster_yaml
from tests.oracle.compare import assert_same
from tests.oracle.messy_log import DEFAULT_ROSTER, make_messy_log, roster_yaml

UTC = timezone.utc
ROSTER_PATH = PACKAGE_DIR / "roster.example.yaml"
ROSTER = load_roster(ROSTER_PATH)
ORACLE_ROSTER = load_roster_yaml(str(ROSTER_PATH))
STAGES = ("prospecting", "qualification", "proposal", "negotiation")
REPS = ("hana", "hugo", "felix", "ines", "zed")  # zed is not on the roster
VALIDATOR = EventValidator()
NEVER_TOO_LATE = 10**9  # seconds: nothing is dropped, so permutations are comparable

# Three-day spans starting here: across a month end and New York's fall-back (11-01), across Berlin's
# spring-forward (03-29), and a plain week.
BASES = (datetime(2026, 10, 30, 6, 0, tzinfo=UTC), datetime(2026, 3, 27, 12, 0, tzinfo=UTC),
         datetime(2026, 11, 17, 0, 0, tzinfo=UTC))
SPAN_MINUTES = 3 * 1440
OFFSETS = (timedelta(0), timedelta(0), timedelta(hours=5, minutes=30), timedelta(hours=-4))

PROPS = settings(max_examples=100, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ------------------------------------------------------------------------------------ generating --
@st.composite
def moment(draw, base: datetime) -> datetime:
    """A millisecond instant in the span; whole minutes often, so ties and minute edges are common."""
    minute = draw(st.integers(0, SPAN_MINUTES))
    ms = draw(st.sampled_from((0, 0, 0, 1, 30_000, 59_999)))
    return base + timedelta(minutes=minute, milliseconds=ms)


def stamp(when: datetime, offset: timedelta) -> str:
    local = when.astimezone(timezone(offset))
    text = local.isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if offset == timedelta(0) else text


@st.composite
def common(draw, base, *, rep_required: bool):
    rep = draw(st.sampled_from(REPS)) if rep_required else draw(st.sampled_from((None,) + REPS))
    doc = {"occurred_at": draw(moment(base))}
    if rep is not None:
        doc["rep_id"] = rep
        team = draw(st.sampled_from((None, None, "roster", "blue")))
        if team == "roster" and ROSTER.team_of(rep):
            doc["team"] = ROSTER.team_of(rep)
        elif team == "blue":
            doc["team"] = "blue"
    return doc


money = st.one_of(
    st.integers(0, 90_000),
    st.sampled_from((0, 1, 999.99, 12_500, "30000.00", 45_000.5, 60_000, "75000.10")),  # reach the quotas
    st.integers(0, 9_000_000).map(lambda c: f"{c // 100}.{c % 100:02d}"),  # decimal string with cents
    st.integers(0, 9_000_000).map(lambda c: c / 100),  # JSON number with cents
)


@st.composite
def lead_log(draw, base, lead_id):
    out = []

    def add(etype, counts, rep_required, **fields):
        for _ in range(draw(st.sampled_from(counts))):
            doc = draw(common(base, rep_required=rep_required))
            doc.update(type=etype, lead_id=lead_id)
            doc.update({k: draw(v) for k, v in fields.items()})
            out.append(doc)

    # counts are skewed so that waiting (never touched) and held (never created) leads are common
    waiting = draw(st.booleans())
    add("lead.created", (0, 1, 1, 1, 2), False, source=st.sampled_from(("webform", "referral", "ads")))
    add("lead.assigned", (0, 0, 1, 2), True)
    add("lead.qualified", (0, 1, 2), True)
    add("meeting.booked", (0, 1, 2), True)
    if not waiting:
        add("lead.touched", (0, 1, 2, 3), True, channel=st.sampled_from(("email", "sms", "chat", "social", "other")))
        add("lead.disqualified", (0, 0, 0, 1), False)
        for _ in range(draw(st.sampled_from((0, 0, 1, 2)))):
            out.append(draw(call(base, lead_id)))
    return out


@st.composite
def call(draw, base, lead_id=None):
    doc = draw(common(base, rep_required=True))
    doc.update(type="call.logged", call_id=f"K{draw(st.integers(0, 10**6))}",
               direction=draw(st.sampled_from(("outbound", "inbound"))),
               outcome=draw(st.sampled_from(("connected", "connected", "no_answer", "voicemail", "busy", "failed"))),
               duration_s=draw(st.one_of(st.integers(0, 3600), st.integers(0, 3_600_000).map(lambda ms: ms / 1000))))
    if lead_id is not None:
        doc["lead_id"] = lead_id
    return doc


@st.composite
def deal_log(draw, base, deal_id, created_first: bool):
    out = []
    for _ in range(draw(st.sampled_from((0, 1, 1, 2)))):
        doc = draw(common(base, rep_required=True))
        doc.update(type="deal.created", deal_id=deal_id, amount=draw(money), stage=draw(st.sampled_from(STAGES)))
        out.append(doc)
    for _ in range(draw(st.integers(0, 3))):
        doc = draw(common(base, rep_required=False))
        doc.update(type="deal.stage_changed", deal_id=deal_id, to_stage=draw(st.sampled_from(STAGES)))
        if draw(st.booleans()):
            doc["amount"] = draw(money)
        out.append(doc)
    for _ in range(draw(st.sampled_from((0, 0, 1, 2)))):
        doc = draw(common(base, rep_required=False))
        doc.update(type="deal.won", deal_id=deal_id)
        if draw(st.booleans()):
            doc["amount"] = draw(money)
        out.append(doc)
    for _ in range(draw(st.sampled_from((0, 0, 0, 1)))):
        doc = draw(common(base, rep_required=False))
        doc.update(type="deal.lost", deal_id=deal_id, reason="price")
        out.append(doc)
    created = [d["occurred_at"] for d in out if d["type"] == "deal.created"]
    if created_first and created:
        # see test_deal_created_after_its_outcome_*: keep the defining event at or before the outcome
        for d in out:
            if d["type"] in ("deal.won", "deal.lost"):
                d["occurred_at"] = max(d["occurred_at"], min(created))
    return out


@st.composite
def account_log(draw, base, account_id):
    """Starts, changes and cancellations in any order: reactivations, changes while inactive, ties."""
    out = []
    for _ in range(draw(st.integers(1, 5))):
        doc = draw(common(base, rep_required=False))
        kind = draw(st.sampled_from(("subscription.started", "subscription.started", "subscription.changed",
                                     "subscription.cancelled")))
        doc.update(type=kind, account_id=account_id)
        if kind != "subscription.cancelled":
            doc["mrr"] = draw(money)
        if kind == "subscription.started" and draw(st.booleans()):
            doc["product"] = draw(st.sampled_from(("pro", "basic")))
        out.append(doc)
    return out


@st.composite
def forecast_log(draw, base):
    """Forecasts of a few reps for the months around the span, revised."""
    out = []
    month = base.year * 12 + base.month - 1
    for _ in range(draw(st.integers(0, 4))):
        doc = draw(common(base, rep_required=True))
        m = month + draw(st.integers(-1, 2))
        doc.update(type="forecast.submitted", period=f"{m // 12:04d}-{m % 12 + 1:02d}", amount=draw(money))
        out.append(doc)
    return out


@st.composite
def event_logs(draw, created_first: bool = False):
    """(events in generation order, as JSON-ready dicts, duplicates included)."""
    base = draw(st.sampled_from(BASES))
    docs = []
    for i in range(draw(st.integers(0, 5))):
        docs += draw(lead_log(base, f"L{i}"))
    for _ in range(draw(st.integers(0, 2))):
        docs.append(draw(call(base)))
    for i in range(draw(st.sampled_from((0, 1, 2, 3, 4)))):
        docs += draw(deal_log(base, f"D{i}", created_first))
    for i in range(draw(st.sampled_from((0, 0, 1, 2, 3)))):
        docs += draw(account_log(base, f"S{i}"))
    docs += draw(forecast_log(base))
    for n, doc in enumerate(docs):
        doc["event_id"] = f"e{n:03d}"
        doc["occurred_at"] = stamp(doc["occurred_at"], draw(st.sampled_from(OFFSETS)))
    if docs:  # redeliveries: exact copies of some events
        docs += [dict(docs[i]) for i in draw(st.lists(st.integers(0, len(docs) - 1), max_size=4))]
    return docs


# --------------------------------------------------------------------------------------- running --
def route(doc: dict) -> tuple[str, str]:
    """(topic suffix, Kafka key) as a producer following docs/events.md would choose them."""
    topic = TOPIC_OF_TYPE[doc["type"]]
    if topic == "deals":
        return topic, doc["deal_id"]
    if topic == "calls":
        return topic, doc.get("lead_id") or doc["call_id"]
    if topic == "subscriptions":
        return topic, doc["account_id"]
    if topic == "forecasts":
        return topic, doc["rep_id"]
    return topic, doc["lead_id"]


class Cluster:
    """Workers owning partitions of the two co-partitioned groups, each with its own entity tables."""

    def __init__(self, tz: str, partitions: int = 1, workers: int = 1, salt: int = 0) -> None:
        self.n, self.salt = partitions, salt
        config = EngineConfig(timezone=tz, event_clock=True, too_late_seconds=NEVER_TOO_LATE)
        self.tz = tz
        self.engines = [KpiEngine(config) for _ in range(workers)]
        self.tables = [{"leads": {}, "deals": {}, "spend": {}, "customers": {}} for _ in range(workers)]
        self.max_ts = None

    def partition_of(self, key: str) -> int:
        return zlib.crc32(f"{self.salt}/{key}".encode()) % self.n

    def feed(self, docs) -> None:
        for doc in docs:
            topic, key = route(doc)
            event = VALIDATOR.validate(orjson.dumps(doc), topic)
            p = self.partition_of(key)
            w = p % len(self.engines)
            self.engines[w].apply(self.tables[w][GROUP_OF_TOPIC[topic]], topic, p, event, 0)
            ts = epoch_ms(event.occurred_at)
            self.max_ts = ts if self.max_ts is None else max(self.max_ts, ts)

    def now(self) -> int:
        """The event clock of the whole cluster (every worker answers with the global numbers)."""
        return max(e.now(0) for e in self.engines)

    def snapshot(self, window: str, now_ms: int) -> dict:
        merged = merge_partials(part for e in self.engines for part in e.partials(window, now_ms).values())
        return build_snapshot(merged, window=window, now_ms=now_ms, roster=ROSTER, stages=STAGES,
                              timezone=self.tz).document()

    def snapshots(self, now_ms: int) -> dict:
        return {w: self.snapshot(w, now_ms) for w in WINDOWS}


def clock(cluster: Cluster, extra_ms: int) -> int:
    now = cluster.now()
    assert now == cluster.max_ts, "event clock = largest occurred_at processed"
    return now + extra_ms


later = st.sampled_from((0, 0, 1, 59_999, 3_600_000, 86_400_000, 6 * 86_400_000 + 1, 8 * 86_400_000))
zones = st.sampled_from(("UTC", "America/New_York", "Europe/Berlin", "Asia/Kathmandu"))


# ------------------------------------------------------------------------------------ properties --
@PROPS
@given(st.data(), event_logs(), zones, later)
def test_A_arrival_order_does_not_matter(data, docs, tz, extra):
    if not docs:
        return
    reference = Cluster(tz)
    reference.feed(docs)
    now = clock(reference, extra)
    expected = reference.snapshots(now)
    shuffled = Cluster(tz)
    shuffled.feed(data.draw(st.permutations(docs), label="arrival order"))
    assert shuffled.now() == reference.now()
    assert shuffled.snapshots(now) == expected


@PROPS
@given(st.data(), event_logs(), zones, later, st.integers(2, 6), st.integers(1, 3), st.integers(0, 2**16))
def test_B_partitions_and_workers_merge_to_the_single_partition_result(data, docs, tz, extra, n, workers, salt):
    if not docs:
        return
    order = data.draw(st.permutations(docs), label="arrival order")
    single = Cluster(tz)
    single.feed(order)
    now = clock(single, extra)
    split = Cluster(tz, partitions=n, workers=workers, salt=salt)
    split.feed(order)
    assert split.now() == single.now()
    assert split.snapshots(now) == single.snapshots(now)


@PROPS
@given(st.data(), event_logs(), zones, later, st.integers(1, 4), st.integers(0, 2**16))
def test_C_rebuild_from_the_table_equals_incremental(data, docs, tz, extra, n, salt):
    if not docs:
        return
    live = Cluster(tz, partitions=n, salt=salt)
    live.feed(data.draw(st.permutations(docs), label="arrival order"))
    now = clock(live, extra)
    engine, tables = live.engines[0], live.tables[0]
    rebuilt = Cluster(tz, partitions=n, salt=salt)
    fresh = rebuilt.engines[0]
    read = 0
    for group in ("leads", "deals", "customers"):
        read += fresh.rebuild(group, range(n), list(tables[group].items()), 0)
    assert read == sum(len(t) for t in tables.values())
    assert {pid: s.watermarks for pid, s in fresh.partitions.items() if s.watermarks} == {
        pid: s.watermarks for pid, s in engine.partitions.items() if s.watermarks}
    assert fresh.now(0) == engine.now(0)
    assert rebuilt.snapshots(now) == live.snapshots(now)
    # ... and the rebuilt engine keeps applying events exactly like the live one
    more = [dict(d, event_id=d["event_id"] + "-again") for d in docs[:3]]
    rebuilt.tables = [{g: dict(t) for g, t in tables.items()}]  # the table survives a restart; aggregates do not
    live.feed(more)
    rebuilt.feed(more)
    now = max(now, live.now())
    assert rebuilt.snapshots(now) == live.snapshots(now)


@PROPS
@given(st.data(), event_logs(created_first=True), zones, later)
def test_D_engine_equals_batch_oracle(data, docs, tz, extra):
    if not docs:
        return
    order = data.draw(st.permutations(docs), label="arrival order")
    cluster = Cluster(tz, partitions=3, workers=2)
    cluster.feed(order)
    now_ms = clock(cluster, extra)
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    for window in WINDOWS:
        expected = compute_kpis(order, window, now, timezone=tz, roster=ORACLE_ROSTER, stages=STAGES)
        assert_same(cluster.snapshot(window, now_ms), expected, path=f"{window}@{tz}")


def _defined_before_outcome(docs) -> bool:
    """No deal whose first deal.created occurs after its first outcome (see the xfail test below)."""
    created, outcome = {}, {}
    for d in docs:
        ts = epoch_ms(datetime.fromisoformat(d["occurred_at"].replace("Z", "+00:00")))
        if d["type"] == "deal.created":
            created[d["deal_id"]] = min(created.get(d["deal_id"], ts), ts)
        elif d["type"] in ("deal.won", "deal.lost"):
            outcome[d["deal_id"]] = min(outcome.get(d["deal_id"], ts), ts)
    return all(created[k] <= outcome[k] for k in created.keys() & outcome.keys())


@settings(PROPS, max_examples=50)
@given(st.data(), event_logs(created_first=True), zones, st.sampled_from((0, 1, 59_999, 3_600_000)))
def test_E_wall_clock_with_too_late_and_expiry_equals_oracle(data, docs, tz, extra):
    """Live mode: `now` is the wall clock, events older than floor_minute(now) - 25 h are too late, and the
    expiry timer drops buckets at arbitrary moments."""
    if not docs:
        return
    order = data.draw(st.permutations(docs), label="arrival order")
    now_ms = max(epoch_ms(VALIDATOR.validate(orjson.dumps(d)).occurred_at) for d in docs) + extra
    engine = KpiEngine(EngineConfig(timezone=tz, event_clock=False))
    tables = {"leads": {}, "deals": {}, "spend": {}, "customers": {}}
    expire_at = set(data.draw(st.lists(st.integers(0, len(order)), max_size=3), label="expiry timer"))
    accepted = []
    for i, doc in enumerate(order):
        if i in expire_at:
            engine.expire(now_ms)
        topic, _ = route(doc)
        event = VALIDATOR.validate(orjson.dumps(doc), topic, wall_ms=now_ms)
        try:
            engine.apply(tables[GROUP_OF_TOPIC[topic]], topic, 0, event, now_ms)
            accepted.append(doc)
        except InvalidEvent as exc:
            assert exc.reason == "too_late"
            assert epoch_ms(event.occurred_at) < now_ms // 60_000 * 60_000 - 25 * 3_600_000
    if not _defined_before_outcome(accepted):
        return  # dropping a too-late deal.created can leave a later one defining the deal after its outcome
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    for window in WINDOWS:
        merged = merge_partials(engine.partials(window, now_ms).values())
        snap = build_snapshot(merged, window=window, now_ms=now_ms, roster=ROSTER, stages=STAGES,
                              timezone=tz).document()
        expected = compute_kpis(accepted, window, now, timezone=tz, roster=ORACLE_ROSTER, stages=STAGES)
        assert_same(snap, expected, path=f"{window}@{tz}")


def test_empty_engine_snapshot_equals_oracle():
    cluster = Cluster("UTC")
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    for window in WINDOWS:
        assert_same(cluster.snapshot(window, epoch_ms(now)),
                    compute_kpis([], window, now, roster=ORACLE_ROSTER, stages=STAGES))


@pytest.mark.parametrize("seed, tz, partitions, workers",
                         [(7, "UTC", 1, 1), (7, "America/New_York", 4, 2), (11, "Asia/Kathmandu", 3, 3)])
def test_messy_log_matches_oracle_including_too_late(seed, tz, partitions, workers):
    """The oracle's messy log (the one the Kafka integration test replays), here without Kafka."""
    log = make_messy_log(seed)
    roster = parse_roster(roster_yaml())
    config = EngineConfig(timezone=tz, event_clock=True)  # the real 25 h too-late rule
    engines = [KpiEngine(config) for _ in range(workers)]
    tables = [{"leads": {}, "deals": {}, "spend": {}, "customers": {}} for _ in range(workers)]
    rejected = []
    for topic, key, doc in log:
        event = VALIDATOR.validate(orjson.dumps(doc), topic)
        p = kafka_partition(key, partitions)
        try:
            engines[p % workers].apply(tables[p % workers][GROUP_OF_TOPIC[topic]], topic, p, event, 0)
        except InvalidEvent as exc:
            assert exc.reason == "too_late"
            rejected.append(doc["event_id"])
    expected_rejected: list[dict] = []
    accepted = drop_too_late([(t, kafka_partition(k, partitions), e) for t, k, e in log], expected_rejected)
    assert rejected and sorted(rejected) == sorted(e["event_id"] for e in expected_rejected)
    now = event_clock_now(accepted)
    now_ms = max(e.now(0) for e in engines)
    assert now_ms == epoch_ms(now)
    for window in WINDOWS:
        merged = merge_partials(part for e in engines for part in e.partials(window, now_ms).values())
        snap = build_snapshot(merged, window=window, now_ms=now_ms, roster=roster, stages=STAGES,
                              timezone=tz).document()
        assert_same(snap, compute_kpis(accepted, window, now, timezone=tz, roster=DEFAULT_ROSTER, stages=STAGES),
                    path=f"{window}@{tz}")


# ----------------------------------------------------------------------------------- too late --
def _lead(eid: str, at: str, lead_id: str = "L") -> dict:
    return {"event_id": eid, "type": "lead.created", "occurred_at": at, "lead_id": lead_id, "rep_id": "hana"}


def test_too_late_is_judged_per_topic_partition_watermark():
    engine = KpiEngine(EngineConfig(event_clock=True))
    table: dict = {}

    def apply(doc, topic="leads", partition=0):
        return engine.apply(table, topic, partition, VALIDATOR.validate(orjson.dumps(doc), topic), 0)

    assert apply(_lead("w", "2026-11-20T12:00:30.500Z", "A"))  # W; floor_minute(W) - 25 h = 11-19T11:00Z
    with pytest.raises(InvalidEvent) as info:
        apply(_lead("x", "2026-11-19T10:59:59.999Z", "B"))
    assert info.value.reason == "too_late"
    assert apply(_lead("y", "2026-11-19T11:00:00.000Z", "C"))  # exactly at the limit: accepted
    assert apply(_lead("z", "2026-11-18T00:00:00.000Z", "D"), partition=1)  # another partition: its own W
    call = {"event_id": "k", "type": "call.logged", "occurred_at": "2026-11-18T00:00:00Z", "call_id": "K",
            "lead_id": "E", "rep_id": "hana", "direction": "inbound", "outcome": "busy", "duration_s": 0}
    assert apply(call, topic="calls")  # calls topic, same partition number: its own W as well
    with pytest.raises(InvalidEvent):
        apply(_lead("w2", "2026-11-18T00:00:00Z", "A"))  # too late for the entity's own topic partition
    ids = [f.eid for raw in table.values() for f in msgspec.msgpack.decode(raw, type=Entity).facts]
    assert "x" not in ids and "w2" not in ids  # a too-late event affects nothing


def test_too_late_in_wall_clock_mode_uses_the_wall_clock():
    engine = KpiEngine(EngineConfig(event_clock=False))
    wall = epoch_ms(datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC))
    ok = VALIDATOR.validate(orjson.dumps(_lead("a", "2026-11-19T11:00:00Z")), "leads")
    late = VALIDATOR.validate(orjson.dumps(_lead("b", "2026-11-19T10:59:59.999Z", "B")), "leads")
    assert engine.apply({}, "leads", 0, ok, wall)
    with pytest.raises(InvalidEvent) as info:
        engine.apply({}, "leads", 0, late, wall)
    assert info.value.reason == "too_late"


def test_redelivery_is_applied_once():
    cluster = Cluster("UTC")
    doc = _lead("dup", "2026-11-20T10:00:00Z")
    event = VALIDATOR.validate(orjson.dumps(doc), "leads")
    table = cluster.tables[0]["leads"]
    assert cluster.engines[0].apply(table, "leads", 0, event, 0) is True
    assert cluster.engines[0].apply(table, "leads", 0, event, 0) is False
    assert cluster.snapshot("all", epoch_ms(event.occurred_at))["overall"]["leads_created"] == 1


class _RecordingTable(dict):
    """A dict table that counts writes, as the changelog would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def __setitem__(self, key, value) -> None:
        self.writes.append(key)
        super().__setitem__(key, value)


def test_a_redelivery_is_written_again_for_a_local_store_ahead_of_its_changelog():
    # RocksDB keeps a write whose changelog record a kill -9 lost; the event comes back because its offset
    # was never committed, and writing the (unchanged) entity again is what puts it in the changelog.
    engine = KpiEngine(EngineConfig(event_clock=True))
    table = _RecordingTable()
    event = VALIDATOR.validate(orjson.dumps(_lead("a", "2026-11-20T10:00:00Z")), "leads")
    assert engine.apply(table, "leads", 0, event, 0) is True
    stored = table["L:L"]
    assert engine.apply(table, "leads", 0, event, 0) is False
    assert table.writes == ["L:L", "L:L"] and table["L:L"] == stored


def test_a_redelivery_is_a_duplicate_even_when_later_events_make_it_look_too_late():
    # After a crash the watermark is rebuilt from the table, which holds the events applied after the last
    # commit; those come again, and one applied once must not be dead-lettered `too_late` the second time.
    engine = KpiEngine(EngineConfig(event_clock=True))
    table: dict = {}
    early = VALIDATOR.validate(orjson.dumps(_lead("early", "2026-11-18T10:00:00Z", "A")), "leads")
    later = VALIDATOR.validate(orjson.dumps(_lead("later", "2026-11-20T12:00:00Z", "B")), "leads")
    assert engine.apply(table, "leads", 0, early, 0) and engine.apply(table, "leads", 0, later, 0)
    rebuilt = KpiEngine(EngineConfig(event_clock=True))
    rebuilt.rebuild("leads", [0], table.items(), 0)
    assert rebuilt.partitions[("leads", 0)].watermarks["leads"] == epoch_ms(later.occurred_at)
    assert rebuilt.apply(table, "leads", 0, early, 0) is False  # a duplicate, not "too late"
    with pytest.raises(InvalidEvent) as info:  # a new event that old is still too late
        rebuilt.apply(table, "leads", 0, VALIDATOR.validate(orjson.dumps(_lead("new", "2026-11-18T10:00:00Z", "C")),
                                                              "leads"), 0)
    assert info.value.reason == "too_late"


# ---------------------------------------------------------------------------------- known bugs --
def _deal_docs(created_at: str, won_at: str) -> list[dict]:
    return [
        {"event_id": "won", "type": "deal.won", "occurred_at": won_at, "deal_id": "D"},
        {"event_id": "new", "type": "deal.created", "occurred_at": created_at, "deal_id": "D", "rep_id": "hana",
         "amount": "5000.00", "stage": "proposal"},
    ]


def test_deal_created_before_its_outcome_counts_its_amount():
    docs = _deal_docs("2026-11-20T10:00:00Z", "2026-11-20T10:00:01Z")
    cluster = Cluster("UTC")
    cluster.feed(docs)
    snap = cluster.snapshot("all", cluster.now())
    assert snap["overall"]["won_revenue"] == 5000.0 and snap["stages"]["proposal"]["stage_entries"] == 1


@pytest.mark.xfail(strict=True, reason="spec ambiguity, open: for a deal.created timed after its outcome the oracle "
                   "counts its stage entry but not its amount; the engine counts neither (docs/kpis.md: 'events after the "
                   "outcome change nothing')")
def test_deal_created_after_its_outcome_sets_nothing_like_the_oracle():
    # Events with occurred_at after the outcome change nothing, the defining deal.created included.
    docs = _deal_docs("2026-11-20T10:00:01Z", "2026-11-20T10:00:00Z")  # clocks one second apart
    cluster = Cluster("UTC")
    cluster.feed(docs)
    now_ms = cluster.now()
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    expected = compute_kpis(docs, "all", now, roster=ORACLE_ROSTER, stages=STAGES)
    assert expected["overall"]["deals_won"] == 1 and expected["overall"]["won_revenue"] == 0.0
    assert_same(cluster.snapshot("all", now_ms), expected)


def test_the_longest_call_the_contract_allows_is_counted_and_longer_ones_are_refused():
    def call(event_id: str, duration_s: float) -> dict:
        return {"event_id": event_id, "type": "call.logged", "occurred_at": "2026-11-20T10:00:00Z",
                "call_id": event_id, "rep_id": "hana", "direction": "inbound", "outcome": "connected",
                "duration_s": duration_s}

    for too_long in (86_400.001, 1e308):  # the door: a "call" longer than a day is a data error
        with pytest.raises(InvalidEvent) as refused:
            VALIDATOR.validate(orjson.dumps(call("x", too_long)), "calls")
        assert refused.value.reason == "invalid_field"
    cluster = Cluster("UTC")
    cluster.feed([call("k1", 86_400), call("k2", 86_400), call("k3", 0.5)])  # the largest accepted, twice
    snap = cluster.snapshot("all", cluster.now())
    assert snap["overall"]["calls"] == 3 and snap["overall"]["talk_seconds_total"] == 172_800.5
    assert snap["reps"]["hana"]["talk_seconds_total"] == 172_800.5


@pytest.mark.xfail(strict=True, reason="BUG (minor): stream/kpi/store.py:97-99 reads whole minute (and day) buckets, "
                                       "so in wall-clock mode an accepted event 20 s after `now` in the same minute "
                                       "counts in 1h/24h/today/month; windows end at `now` "
                                       "(expected 0, got 1)")
def test_event_after_now_in_the_same_minute_is_not_in_the_window_yet():
    wall = epoch_ms(datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC))
    engine = KpiEngine(EngineConfig(event_clock=False))
    ahead = VALIDATOR.validate(orjson.dumps(_lead("f", "2026-11-20T12:00:50Z")), "leads", wall_ms=wall)  # accepted
    assert engine.apply({}, "leads", 0, ahead, wall)
    counts = {}
    for window in WINDOWS:
        merged = merge_partials(engine.partials(window, wall).values())
        snap = build_snapshot(merged, window=window, now_ms=wall, roster=ROSTER, stages=STAGES).document()
        counts[window] = snap["overall"]["leads_created"]
    assert counts == {"1h": 0, "24h": 0, "today": 0, "month": 0, "all": 1}
