"""The alert runtime fed by a real KPI engine, with injected clocks and an in-memory store: lead alerts
fire once at the deadline without a further event, escalate in order, resolve on a touch; two workers
sharing a store send each notification once; ownership moves without re-paging."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

from alerts.dispatch import Dispatcher
from alerts.notification import Notification
from alerts.runtime import AlertRuntime
from alerts.sinks.base import QueuedSink, Redactor, RetryPolicy, new_stats
from alerts.state import MemoryAlertStore, Mute
from stream.events import EventValidator
from stream.kpi.engine import EngineConfig, KpiEngine
from stream.kpi.snapshot import Snapshot
from tests.alerts.helpers import roster, rules

S, M = 1000, 60_000
T0 = int(datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp() * 1000)
RULES = rules("""
rules:
  - name: sla
    type: lead_sla
    deadline: 5m
    calendar: none
    escalation: [{after: 10m, notify: team_lead}, {after: 20m, notify: oncall}]
""")


class Recorder:
    name = "webhook"
    supports_refresh = False

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def send(self, n: Notification) -> None:
        self.sent.append(n)

    async def close(self) -> None:
        pass


class Worker:
    """One worker's engine + runtime, on a shared store and a shared recorder, clocks injected."""

    def __init__(self, store, recorder: Recorder, clock: list[int], name: str, ruleset=RULES) -> None:
        self.engine = KpiEngine(EngineConfig())
        self.tables = {"leads": {}, "deals": {}, "spend": {}, "customers": {}}
        self.clock = clock
        sink = QueuedSink(recorder, stats=new_stats(), redact=Redactor(), policy=RetryPolicy(attempts=1, timeout=1))
        self.dispatcher = Dispatcher(store, [sink], owner=name)
        self.runtime = AlertRuntime(rules=ruleset, roster=roster, store=store, dispatcher=self.dispatcher,
                                    stats=new_stats(), app_id="t", grafana_url="http://g", wall=lambda: clock[0])
        self.engine.listeners.append(self.runtime.on_change)
        self.validator = EventValidator()

    def apply(self, topic: str, partition: int, **event) -> None:
        raw = json.dumps(event).encode()
        self.engine.apply(self.tables["leads"], topic, partition, self.validator.validate(raw, topic), self.clock[0])


def at(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


async def settle(*workers: Worker) -> None:
    for w in workers:
        await w.runtime.tick_leads()
    for _ in range(5):  # let the sink tasks run
        await asyncio.sleep(0)


async def run_until(workers, clock, end_ms, step=1000):
    while clock[0] < end_ms:
        clock[0] += step
        await settle(*workers)


async def test_lead_fires_once_at_the_deadline_escalates_and_resolves_on_a_touch():
    clock, store, rec = [T0], MemoryAlertStore(), Recorder()
    w = Worker(store, rec, clock, "w1")
    w.dispatcher.start()
    w.apply("leads", 0, event_id="e1", type="lead.created", occurred_at=at(T0), lead_id="L1", rep_id="hugo", source="web")
    await run_until([w], clock, T0 + 5 * M - 1000)
    assert rec.sent == []
    await run_until([w], clock, T0 + 25 * M)  # no further event: timers alone
    assert [(n.kind, n.seq, n.at, n.target) for n in rec.sent] == [
        ("firing", 0, T0 + 5 * M, "rep"), ("escalation", 1, T0 + 10 * M, "team_lead"), ("escalation", 2, T0 + 20 * M, "oncall")]
    assert rec.sent[0].mentions == ["<@U0HUGO01>"] and rec.sent[0].channel == "#sales-hunters"
    w.apply("calls", 0, event_id="e2", type="call.logged", occurred_at=at(T0 + 26 * M), lead_id="L1", call_id="C1",
            rep_id="hugo", direction="outbound", outcome="connected", duration_s=30)
    await settle(w)
    assert [n.kind for n in rec.sent][-1] == "resolved" and rec.sent[-1].ends_at == T0 + 26 * M
    assert len({n.key for n in rec.sent}) == len(rec.sent) == 4
    assert await store.list_instances() == []  # resolved lead alerts are forgotten
    await w.dispatcher.stop()


async def test_two_workers_on_one_store_send_each_notification_once():
    clock, store, rec = [T0], MemoryAlertStore(clock=lambda: clock[0]), Recorder()
    a, b = Worker(store, rec, clock, "A"), Worker(store, rec, clock, "B")
    for w in (a, b):
        w.dispatcher.start()
        # A handover: both workers briefly hold partition 0 and see the same lead.
        w.apply("leads", 0, event_id="e1", type="lead.created", occurred_at=at(T0), lead_id="L1", rep_id="hana")
    await run_until([a, b], clock, T0 + 6 * M)
    assert [n.kind for n in rec.sent] == ["firing"]
    for w in (a, b):
        w.apply("leads", 0, event_id="e2", type="lead.touched", occurred_at=at(T0 + 7 * M), lead_id="L1", rep_id="hana", channel="email")
    await settle(a, b)
    await asyncio.sleep(0.05)
    await settle(a, b)
    assert [n.kind for n in rec.sent] == ["firing", "resolved"]
    for w in (a, b):
        await w.dispatcher.stop()


async def test_a_new_owner_adopts_a_firing_lead_and_only_moves_on():
    clock, store, rec = [T0], MemoryAlertStore(clock=lambda: clock[0]), Recorder()
    a = Worker(store, rec, clock, "A")
    a.dispatcher.start()
    a.apply("leads", 3, event_id="e1", type="lead.created", occurred_at=at(T0), lead_id="L9", rep_id="ines")
    await run_until([a], clock, T0 + 6 * M)
    await asyncio.sleep(0.02)
    a.engine.drop("leads", [3])  # partition 3 moves away (a rebalance)
    await a.dispatcher.stop()
    b = Worker(store, rec, clock, "B")
    b.tables = a.tables  # the changelogged entity table moves with the partition
    b.dispatcher.start()
    b.engine.rebuild("leads", [3], list(b.tables["leads"].items()), clock[0])  # the new owner rebuilds
    await run_until([b], clock, T0 + 12 * M)
    assert [(n.kind, n.seq) for n in rec.sent] == [("firing", 0), ("escalation", 1)]
    b.apply("leads", 3, event_id="e2", type="lead.disqualified", occurred_at=at(T0 + 13 * M), lead_id="L9")
    await settle(b)
    await asyncio.sleep(0.02)
    assert [n.kind for n in rec.sent][-1] == "resolved" and "disqualified" in rec.sent[-1].title
    await b.dispatcher.stop()


async def test_ack_stops_escalations_but_not_the_resolve():
    clock, store, rec = [T0], MemoryAlertStore(clock=lambda: clock[0]), Recorder()
    w = Worker(store, rec, clock, "w")
    w.dispatcher.start()
    w.apply("leads", 0, event_id="e1", type="lead.created", occurred_at=at(T0), lead_id="L1", rep_id="hana")
    await run_until([w], clock, T0 + 6 * M)
    await store.set_mute(rec.sent[0].fingerprint, Mute("ack", None))
    await run_until([w], clock, T0 + 30 * M)
    w.apply("leads", 0, event_id="e2", type="lead.touched", occurred_at=at(T0 + 31 * M), lead_id="L1", rep_id="hana", channel="sms")
    await settle(w)
    await asyncio.sleep(0.02)
    assert [n.kind for n in rec.sent] == ["firing", "resolved"]
    assert await store.mute(rec.sent[0].fingerprint) is None  # an ack ends with its alert
    await w.dispatcher.stop()


KPI_RULES = rules("""
rules:
  - {name: waiting, type: kpi, kpi: leads_awaiting_response, scope: overall, op: ">", threshold: 2, for: 60s}
""")


async def test_global_rules_fire_after_for_and_are_held_back_on_an_incomplete_view():
    clock, store, rec = [T0], MemoryAlertStore(clock=lambda: clock[0]), Recorder()
    w = Worker(store, rec, clock, "w", KPI_RULES)
    w.dispatcher.start()
    docs = {"value": 5, "incomplete": False}

    async def doc(window: str) -> Snapshot:
        incomplete = {"missing_partitions": ["leads:2"], "unreachable_workers": []} if docs["incomplete"] else None
        values = {"overall": {"leads_awaiting_response": docs["value"]}, "teams": {}, "reps": {}}
        return Snapshot(window, clock[0], values, incomplete)

    for second in range(0, 200, 2):
        clock[0] = T0 + second * S
        docs["incomplete"] = 30 <= second < 50  # a rebalance in the middle
        docs["value"] = 5 if second < 150 else 0
        ok = await w.runtime.evaluate_global(doc)
        assert ok is not docs["incomplete"]
    await asyncio.sleep(0.02)
    assert [(n.kind, n.at) for n in rec.sent] == [("firing", T0 + 60 * S), ("resolved", T0 + 150 * S)]
    await w.dispatcher.stop()


async def test_a_transition_recorded_but_never_sent_is_sent_by_the_next_owner():
    """The previous owner crashed after saving "escalated to step 1" but before claiming/sending it."""
    from alerts.model import fingerprint, new_instance

    clock, store, rec = [T0 + 12 * M], MemoryAlertStore(clock=lambda: clock[0]), Recorder()
    inst = new_instance("sla", "lead_sla", {"lead_id": "L5"})
    inst.state, inst.episode, inst.step, inst.firing_since = "firing", 1, 1, T0 + 5 * M
    inst.last_notified, inst.updated_ms = T0 + 10 * M, clock[0]
    await store.put_instance(inst)
    await store.complete(f"{inst.fingerprint}:1:firing:0", "dead")  # the firing itself went out
    w = Worker(store, rec, clock, "B")
    w.dispatcher.start()
    w.apply("leads", 1, event_id="e1", type="lead.created", occurred_at=at(T0), lead_id="L5", rep_id="ivan")
    await settle(w)
    await settle(w)
    assert [(n.kind, n.seq, n.repeat) for n in rec.sent] == [("escalation", 1, False)]
    assert rec.sent[0].fingerprint == fingerprint("sla", {"lead_id": "L5"})
    await w.dispatcher.stop()


async def test_stage_scope_rules():
    ruleset = rules("rules: [{name: conv, type: kpi, kpi: stage_conversion, scope: stage, op: '<', threshold: 0.2}]")
    clock, store, rec = [T0], MemoryAlertStore(), Recorder()
    w = Worker(store, rec, clock, "w", ruleset)
    w.dispatcher.start()

    async def doc(window: str) -> Snapshot:
        return Snapshot(window, clock[0], {"overall": {}, "teams": {}, "reps": {},
                        "stages": {"prospecting": {"stage_conversion": 0.1}, "proposal": {"stage_conversion": 0.5},
                                   "negotiation": {"stage_conversion": None}}})

    await w.runtime.evaluate_global(doc)
    await settle(w)
    assert [(n.kind, n.labels.get("stage")) for n in rec.sent] == [("firing", "prospecting")]
    await w.dispatcher.stop()


async def test_a_lead_touched_on_its_new_owner_before_any_tick_still_resolves():
    clock, store, rec = [T0], MemoryAlertStore(clock=lambda: clock[0]), Recorder()
    a = Worker(store, rec, clock, "A")
    a.dispatcher.start()
    a.apply("leads", 2, event_id="e1", type="lead.created", occurred_at=at(T0), lead_id="L7", rep_id="iris")
    await run_until([a], clock, T0 + 6 * M)
    a.engine.drop("leads", [2])
    await a.dispatcher.stop()
    b = Worker(store, rec, clock, "B")
    b.tables = a.tables
    b.dispatcher.start()
    b.engine.rebuild("leads", [2], list(b.tables["leads"].items()), clock[0])
    b.runtime.held_back = True  # still rebalancing: no tick yet, but events are applied
    b.apply("leads", 2, event_id="e2", type="lead.touched", occurred_at=at(T0 + 7 * M), lead_id="L7", rep_id="iris", channel="email")
    b.runtime.held_back = False
    await settle(b)
    await settle(b)
    assert [n.kind for n in rec.sent] == ["firing", "resolved"]
    await b.dispatcher.stop()


# --- a worker catching up on a backlog (wall clock) -----------------------------------------------------
BACKLOG_RULES = rules("""
rules:
  - name: sla
    type: lead_sla
    deadline: 5m
    calendar: none
""")


def backlog_worker(catch_up: bool) -> tuple[Worker, Recorder, list[int]]:
    from alerts.runtime import CatchUpClock, engine_topic_marks

    clock = [T0]
    recorder = Recorder()
    worker = Worker(MemoryAlertStore(), recorder, clock, "w", BACKLOG_RULES)
    if catch_up:
        worker.runtime.partition_clock = CatchUpClock(engine_topic_marks(worker.engine), wall=lambda: clock[0])
    worker.dispatcher.start()
    return worker, recorder, clock


async def apply_backlog(worker: Worker, clock: list[int]) -> None:
    """A day of log consumed at once, a tick between every two events: lead.created on the leads topic
    and its call on the calls topic arrive apart, as they do when a worker reads a backlog."""
    day = 86_400 * S
    backlog = [
        ("leads", dict(type="lead.created", lead_id="answered", rep_id="hana", occurred_at=at(T0 - day))),
        ("leads", dict(type="lead.created", lead_id="late-but-answered", rep_id="hana", occurred_at=at(T0 - 20 * M))),
        ("leads", dict(type="lead.created", lead_id="waiting", rep_id="hana", occurred_at=at(T0 - 10 * M))),
        ("calls", dict(type="call.logged", call_id="c1", lead_id="answered", rep_id="hana", direction="outbound",
                       outcome="connected", duration_s=60, occurred_at=at(T0 - day + 3 * M))),
        ("calls", dict(type="call.logged", call_id="c2", lead_id="late-but-answered", rep_id="hana",
                       direction="outbound", outcome="no_answer", duration_s=0, occurred_at=at(T0 - 2 * M))),
    ]
    for i, (topic, event) in enumerate(backlog):
        worker.apply(topic, 0, event_id=f"e{i}", **event)
        clock[0] += 250
        await settle(worker)


async def test_a_backlog_pages_only_for_the_lead_still_waiting_once_caught_up():
    worker, recorder, clock = backlog_worker(catch_up=True)
    await apply_backlog(worker, clock)
    assert recorder.sent == []  # still catching up: nothing judged yet
    await run_until([worker], clock, clock[0] + 6 * S, step=250)  # the topics stop advancing: settled
    assert [(n.kind, n.labels["lead_id"]) for n in recorder.sent] == [("firing", "waiting")]
    await worker.dispatcher.stop()


async def test_without_the_catch_up_clock_a_backlog_pages_for_leads_answered_long_ago():
    # What CatchUpClock prevents: the plain wall clock judges each lead as soon as its creation is applied.
    worker, recorder, clock = backlog_worker(catch_up=False)
    await apply_backlog(worker, clock)
    fired = {n.labels["lead_id"] for n in recorder.sent if n.kind == "firing"}
    assert fired == {"answered", "late-but-answered", "waiting"}
    await worker.dispatcher.stop()


async def test_a_live_lead_on_a_quiet_partition_still_fires_at_its_deadline():
    worker, recorder, clock = backlog_worker(catch_up=True)
    # The calls topic's newest event is hours old: a quiet topic, not a backlog.
    worker.apply("calls", 0, event_id="old-call", type="call.logged", call_id="c0", rep_id="hana",
                 direction="inbound", outcome="connected", duration_s=30, occurred_at=at(T0 - 3 * 3600 * S))
    worker.apply("leads", 0, event_id="new", type="lead.created", lead_id="fresh", rep_id="hana", occurred_at=at(T0))
    await run_until([worker], clock, T0 + 5 * M - S, step=250)
    assert recorder.sent == []
    await run_until([worker], clock, T0 + 5 * M + S, step=250)
    assert [(n.kind, n.labels["lead_id"]) for n in recorder.sent] == [("firing", "fresh")]
    await worker.dispatcher.stop()
