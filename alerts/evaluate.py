"""Pure rule evaluation: KPI thresholds over a ``/kpis`` document, lead SLA deadlines, no-activity.

Nothing here does I/O or reads a clock. ``evaluate_kpi_rule`` and ``evaluate_no_activity`` take the
previous instances and return the changed ones with their transitions. ``LeadSlaTracker`` and
``ActivityTracker`` are fed by the KPI engine's change listener (``awaiting`` contributions are leads
waiting for a first touch; ``call`` and ``response`` contributions are activity) and keep only small
per-lead / per-rep state.
"""

from __future__ import annotations

import heapq
import itertools
import operator
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.calendar import Calendar
from alerts.model import FIRING, PENDING, AlertInstance, Transition, escalate, fire, new_instance, observe, resolve
from alerts.rules import SECTION_OF_KIND, KpiRule, LeadSlaRule, NoActivityRule, RuleSet, Scope
from stream.kpi.windows import DayCalendar

UNASSIGNED = "unassigned"
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}
Changed = list[tuple[AlertInstance, list[Transition]]]


def _team_calendar(roster: Any, team: str | None) -> str | None:
    t = roster.team(team) if team else None
    return t.business_hours if t is not None else None


# --- KPI thresholds -----------------------------------------------------------------------------------
def kpi_scopes(rule: KpiRule, doc: Mapping[str, Any], roster: Any) -> list[tuple[dict[str, str], Mapping[str, Any]]]:
    """(scope labels, KPI values of that scope) for every instance the rule's scope expands to."""
    scope: Scope = rule.scope
    if scope.kind == "overall":
        return [({}, doc.get("overall") or {})]
    table = doc.get(SECTION_OF_KIND[scope.kind]) or {}
    if scope.name is not None:
        names = [scope.name]
    else:
        listed = set(table)
        if scope.kind == "team":
            listed.update(t.name for t in roster.teams)
        elif scope.kind == "rep":
            listed.update(r.rep_id for r in roster.reps)
        names = sorted(n for n in listed if n != UNASSIGNED)
    return [({scope.kind: n}, table.get(n) or {}) for n in names]


def breach(rule: KpiRule, values: Mapping[str, Any]) -> tuple[bool, float | None]:
    value = values.get(rule.kpi)
    if value is None or isinstance(value, bool):
        return False, None  # null: nothing to judge (a ratio over nothing is null)
    if rule.min_sample is not None:
        sample = values.get(rule.min_sample.kpi)
        if sample is None or sample < rule.min_sample.at_least:
            return False, float(value)
    return OPS[rule.op](float(value), rule.threshold), float(value)


def in_period(rule: KpiRule, now: int, timezone: str = "UTC") -> bool:
    """Whether the rule's window has run far enough (``after``) and is in its last part (``in_last``)."""
    if rule.after is None and rule.in_last is None:
        return True
    start, end = _calendar(timezone).period_bounds(rule.window, now)
    if rule.after is not None:
        kind, amount = rule.after
        elapsed = now - start
        if elapsed < (amount * (end - start) if kind == "share" else amount * 1000):
            return False
    return rule.in_last is None or end - now <= rule.in_last * 1000


_CALENDARS: dict[str, DayCalendar] = {}


def _calendar(timezone: str) -> DayCalendar:
    cal = _CALENDARS.get(timezone)
    if cal is None:
        cal = _CALENDARS[timezone] = DayCalendar(timezone)
    return cal


def evaluate_kpi_rule(
    rule: KpiRule,
    rules: RuleSet,
    doc: Mapping[str, Any],
    now: int,
    instances: Mapping[str, AlertInstance],
    roster: Any,
    muted: Callable[[str], bool] = lambda fp: False,
) -> Changed:
    """Observe every scope instance of one KPI rule; instances that vanished from the scope resolve."""
    out: Changed = []
    seen: set[str] = set()
    severity = rules.severity(rule)
    repeat = rules.repeat_interval(rule)
    judged = in_period(rule, now, getattr(rules, "timezone", "UTC"))
    for scope, values in kpi_scopes(rule, doc, roster):
        inst = _instance(instances, rule.name, "kpi", scope, severity)
        seen.add(inst.fingerprint)
        team = scope.get("team") or (roster.team_of(scope["rep"]) if "rep" in scope else None)
        calendar = rules.calendar(rule, _team_calendar(roster, team))
        breached, value = breach(rule, values)
        breached = breached and judged
        info = {"threshold": rule.threshold, "op": rule.op, "kpi": rule.kpi, "window": rule.window, "team": team}
        out.extend(_observe(inst, breached, value, now, calendar, rule.for_, repeat, muted, info))
    for fp, inst in instances.items():
        if inst.rule == rule.name and fp not in seen and inst.state in (PENDING, FIRING):
            out.append(observe(inst, False, now))
    return [(i, t) for i, t in out if t or i is not instances.get(i.fingerprint)]


def _instance(instances: Mapping[str, AlertInstance], rule: str, kind: str, scope: dict, severity: str) -> AlertInstance:
    fresh = new_instance(rule, kind, scope, severity)
    return instances.get(fresh.fingerprint) or fresh


def _observe(inst, breached, value, now, calendar: Calendar, for_s, repeat_s, muted, info) -> Changed:
    if not calendar.is_open(now):
        # Outside business hours a rule sleeps: nothing new starts, a firing alert waits for the morning.
        if inst.state == PENDING:
            return [resolve(inst, now)]
        return []
    inst.info = {**inst.info, **{k: v for k, v in info.items() if v is not None}}
    changed, transitions = observe(
        inst, breached, now, for_ms=round(for_s * 1000),
        repeat_ms=None if not repeat_s else round(repeat_s * 1000), muted=muted(inst.fingerprint), value=value,
    )
    return [(changed, transitions)]


# --- no activity ----------------------------------------------------------------------------------------
ACTIVITY_KINDS = {"calls": ("call",), "touches": ("response",), "any": ("call", "response")}


class ActivityTracker:
    """Latest activity per rep and per team on this worker's partitions, by contribution kind.

    Calls are every ``call.logged``; touches are first touches (``response``) — the engine reports only a
    lead's first touch, so a rep who only follows up on already-touched leads by email counts as idle for
    ``activity: touches`` (use ``any`` or ``calls``, or see docs/alerts.md).
    """

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], int] = {}  # (kind, "rep:<id>" | "team:<name>") -> ms
        self.dirty: set[tuple[str, str]] = set()

    def on_change(self, added: Iterable[Any], team_of: Callable[[str], str | None]) -> None:
        for c in added:
            if c.kind not in ACTIVITY_KINDS["any"] or c.rep == UNASSIGNED:
                continue
            team = c.team or team_of(c.rep)
            for name in (f"rep:{c.rep}", f"team:{team}" if team else None):
                if name is not None:
                    self.note(c.kind, name, c.ts)

    def note(self, kind: str, name: str, ts: int) -> None:
        key = (kind, name)
        if ts > self.last.get(key, -(2**62)):
            self.last[key] = ts
            self.dirty.add(key)

    def merge(self, remote: Mapping[tuple[str, str], int]) -> None:
        for key, ts in remote.items():
            if ts > self.last.get(key, -(2**62)):
                self.last[key] = ts

    def latest(self, activity: str, name: str) -> int | None:
        values = [self.last[(k, name)] for k in ACTIVITY_KINDS[activity] if (k, name) in self.last]
        return max(values, default=None)


def evaluate_no_activity(
    rule: NoActivityRule,
    rules: RuleSet,
    activity: ActivityTracker,
    baseline: int,
    now: int,
    instances: Mapping[str, AlertInstance],
    roster: Any,
    muted: Callable[[str], bool] = lambda fp: False,
) -> Changed:
    """A scope breaches when ``for`` of business time passed since its last activity (or ``baseline``)."""
    kind = rule.scope.kind
    if rule.scope.name is not None:
        names = [rule.scope.name]
    elif kind == "rep":
        names = sorted({r.rep_id for r in roster.reps} | {n[4:] for _, n in activity.last if n.startswith("rep:")})
    else:
        names = sorted({t.name for t in roster.teams} | {n[5:] for _, n in activity.last if n.startswith("team:")})
    out: Changed = []
    severity = rules.severity(rule)
    for name in names:
        if name == UNASSIGNED:
            continue
        team = name if kind == "team" else roster.team_of(name)
        calendar = rules.calendar(rule, _team_calendar(roster, team))
        last = activity.latest(rule.activity, f"{kind}:{name}")
        since = max(last, baseline) if last is not None else baseline
        due = calendar.due(since, rule.for_)
        inst = _instance(instances, rule.name, "no_activity", {kind: name}, severity)
        idle = calendar.open_seconds(since, now)
        info = {"last_activity_ms": last, "idle_seconds": idle, "threshold": rule.for_, "team": team,
                "activity": rule.activity, "due_ms": due}
        out.extend(_observe(inst, now >= due, idle, now, calendar, 0, rules.repeat_interval(rule), muted, info))
    return [(i, t) for i, t in out if t or i is not instances.get(i.fingerprint)]


# --- lead SLA -------------------------------------------------------------------------------------------
def _shared(text: str | None) -> str | None:
    # Rep, team and source names arrive as new strings with every decoded event; a tracker holding a
    # million waiting leads would keep a million copies of each (bench/RESULTS.md, memory).
    return sys.intern(text) if type(text) is str else text


@dataclass(slots=True)  # one per waiting lead: no per-instance __dict__
class WaitingLead:
    key: str  # entity key, "L:<lead_id>"
    partition: int
    created: int
    rep: str
    team: str | None  # on the event, else the roster's at the time it was seen
    source: str | None
    generation: int = 0  # bumped when the deadlines must be recomputed (owner or creation changed)
    dues: dict[str, list[int]] = field(default_factory=dict)  # rule -> due ms of step 0 (deadline), 1.. (escalations)
    fired: dict[str, int] = field(default_factory=dict)  # rule -> last step notified
    ended_at: int | None = None  # event time: first touch (or disqualification) seen, verdict pending
    end_reason: str = ""

    @property
    def lead_id(self) -> str:
        return self.key[2:] if self.key.startswith("L:") else self.key


@dataclass(frozen=True)
class LeadEvent:
    kind: str  # fire | escalate | resolve
    rule: str
    lead: WaitingLead
    step: int
    at: int
    reason: str = ""  # resolve: touched | disqualified


END = -1  # heap step of an event-time "the lead ended: resolve or forget it" check

HeapItem = tuple[int, int, str, str, int, int]  # (time, seq, key, rule, step, generation)


class LeadSlaTracker:
    """Deadlines of waiting leads, in one heap per partition; fed by engine changes, drained by ``advance``.

    Wall clock (``event_time=False``): a deadline passes when the clock reaches it (the worker ticks every
    0.25 s); a touch or disqualification resolves at once. Overdue steps found together (after a restart)
    collapse into one notice at the highest step reached.

    Event time (``event_time=True``, replays and backtests): every decision waits until the partition's
    clock — the slower of its leads and calls topics — is past the moment in question plus a lateness
    grace, so all events stamped before it have been applied whatever the interleaving of topics and
    partitions: a lead fires (at its deadline) iff its first touch is later than the deadline, resolves at
    that touch, and each escalation step is reported at its own time. The outcome depends only on the
    events, which is what makes a backtest and a live replay agree.
    """

    def __init__(self, rules: RuleSet, roster: Callable[[], Any], *, event_time: bool = False) -> None:
        self.rules = rules
        self.roster = roster
        self.event_time = event_time
        self.leads: dict[str, WaitingLead] = {}
        self.heaps: dict[int, list[HeapItem]] = {}
        self.outbox: list[LeadEvent] = []
        self._seq = itertools.count()

    def set_rules(self, rules: RuleSet) -> None:
        self.rules = rules
        for lead in list(self.leads.values()):
            self._schedule(lead, lead.created)

    # --- feeding ------------------------------------------------------------------------------------
    def on_change(self, partition: int, key: str, removed: Iterable[Any], added: Iterable[Any], now: int,
                  live: bool = True) -> None:
        """One entity's contribution change. ``live`` is False while a partition is rebuilt from its table."""
        added = list(added)
        gone = next((c for c in removed if c.kind == "awaiting"), None)
        came = next((c for c in added if c.kind == "awaiting"), None)
        touch = next((c for c in added if c.kind == "response"), None)
        lead = self.leads.get(key)
        if came is not None:
            team = came.team or self.roster().team_of(came.rep)
            if lead is None:
                lead = self.leads[key] = WaitingLead(key, partition, came.ts, _shared(came.rep), _shared(team),
                                                     _shared(came.info))
                self._schedule(lead, now)
            else:  # reassigned (or an earlier lead.created): same alert, new owner
                changed = (lead.created, lead.team) != (came.ts, team)
                lead.rep, lead.team, lead.source, lead.partition = _shared(came.rep), _shared(team), _shared(came.info), partition
                if changed:
                    lead.created = came.ts
                    self._schedule(lead, now)
            return
        if not self.event_time:
            if gone is not None and lead is not None:
                del self.leads[key]
                at = touch.ts if touch is not None else now
                reason = "touched" if touch is not None else "disqualified"
                for rule_name, dues in lead.dues.items():
                    # Fired here, or overdue: then it may have fired on the partition's previous owner
                    # (the runtime checks the shared state) before a tick here got to it.
                    if rule_name in lead.fired or dues[0] <= max(now, at):
                        self.outbox.append(LeadEvent("resolve", rule_name, lead, 0, at, reason))
            return
        if lead is None:
            if gone is None and touch is not None and live:
                lead = self._born_touched(partition, key, added)
            if lead is None:
                return
        if touch is not None:
            end, reason = touch.ts, "touched"
        elif gone is not None:
            end, reason = now, "disqualified"  # the event carries no time here: the leads topic's clock
        else:
            return
        if lead.ended_at is None or end < lead.ended_at:
            lead.ended_at, lead.end_reason = end, reason
            self._push(lead, "", END, end)

    def _born_touched(self, partition: int, key: str, added: list) -> WaitingLead | None:
        """A lead whose first touch was applied before its creation (a call on the calls topic overtook the
        lead.created): it never waited here, but in event time it may have. Tracked like any lead (owner:
        the creator; the source is not known here); the touch is its end."""
        created = next((c for c in added if c.kind == "created"), None)
        if created is None:
            return None
        team = created.team or self.roster().team_of(created.rep)
        lead = self.leads[key] = WaitingLead(key, partition, created.ts, _shared(created.rep), _shared(team), None)
        self._schedule(lead, created.ts)
        return lead

    def drop_partition(self, partition: int) -> list[WaitingLead]:
        """The partition moved to another worker: forget its leads without resolving anything."""
        dropped = [lead for lead in self.leads.values() if lead.partition == partition]
        for lead in dropped:
            del self.leads[lead.key]
        self.heaps.pop(partition, None)
        return dropped

    def _schedule(self, lead: WaitingLead, now: int) -> None:
        lead.generation += 1
        lead.dues = {}
        roster = self.roster()
        for rule in self.rules.of_type("lead_sla"):
            if not _applies(rule, lead):
                continue
            if now - lead.created > rule.max_age * 1000:
                continue  # stale: not worth a page
            team = roster.team(lead.team) if lead.team else None
            calendar = self.rules.calendar(rule, team.business_hours if team else None)
            due0 = calendar.due(lead.created, rule.deadline)
            dues = [due0] + [max(due0, calendar.due(lead.created, s.after)) for s in rule.escalation]
            if dues[0] - lead.created > rule.max_age * 1000:
                continue
            lead.dues[rule.name] = dues
            step = lead.fired.get(rule.name, -1) + 1
            if step < len(dues):
                self._push(lead, rule.name, step, dues[step])
        if lead.ended_at is not None:
            self._push(lead, "", END, lead.ended_at)

    def _push(self, lead: WaitingLead, rule_name: str, step: int, at: int) -> None:
        heap = self.heaps.setdefault(lead.partition, [])
        heapq.heappush(heap, (at, next(self._seq), lead.key, rule_name, step, lead.generation))

    # --- draining -----------------------------------------------------------------------------------
    def advance(self, now_of: Callable[[int], int | None], grace_ms: int = 0) -> list[LeadEvent]:
        """Events for every moment that passed: ``now_of(partition)`` is that partition's clock.

        Event time: a moment counts as passed once the clock is *beyond* it plus ``grace_ms`` (events
        delivered up to that late are still applied first; a touch stamped exactly at the deadline is in
        time).
        """
        events, self.outbox = self.outbox, []
        strict = self.event_time
        for partition, heap in self.heaps.items():
            now = now_of(partition)
            if now is None:
                continue
            limit = now - grace_ms if strict else now
            while heap:
                at, _, key, rule_name, step, generation = heap[0]
                if at > limit or (strict and at == limit):
                    break
                heapq.heappop(heap)
                lead = self.leads.get(key)
                if lead is None or lead.generation != generation:
                    continue
                if step == END:
                    if lead.ended_at == at:
                        del self.leads[key]
                        events += [LeadEvent("resolve", name, lead, 0, at, lead.end_reason) for name in lead.fired]
                    continue
                dues = lead.dues.get(rule_name)
                if dues is None or (lead.ended_at is not None and lead.ended_at <= at):
                    continue  # touched in time for this step (and so for the later ones)
                if not strict:
                    while step + 1 < len(dues) and dues[step + 1] <= now:
                        step += 1
                last = lead.fired.get(rule_name, -1)
                if step > last:
                    lead.fired[rule_name] = step
                    events.append(LeadEvent("fire" if last < 0 else "escalate", rule_name, lead, step, dues[step]))
                if step + 1 < len(dues):
                    self._push(lead, rule_name, step + 1, dues[step + 1])
        return events


def _applies(rule: LeadSlaRule, lead: WaitingLead) -> bool:
    if rule.sources is not None and lead.source not in rule.sources:
        return False
    if rule.teams is not None and (lead.team or UNASSIGNED) not in rule.teams:
        return False
    return True


def lead_transition(inst: AlertInstance, event: LeadEvent, muted: bool = False) -> tuple[AlertInstance, list[Transition]]:
    """Apply a tracker event to the lead's alert instance."""
    if event.kind == "fire":
        inst, transitions = fire(inst, event.at, step=event.step)
        return inst, transitions
    if event.kind == "escalate":
        return escalate(inst, event.step, event.at, muted=muted)
    return resolve(inst, event.at)
