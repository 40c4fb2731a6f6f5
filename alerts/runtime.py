"""The alert engine of one worker, without Faust: trackers + instances + store + dispatcher.

The worker (alerts.service) and the backtest (alerts.backtest) drive the same object:

- ``on_change`` is the KPI engine's listener (synchronous, no I/O): it feeds the lead SLA tracker and
  the activity tracker for the partitions this worker owns;
- ``tick_leads`` fires, escalates and resolves lead alerts whose deadline passed (called every 0.25 s,
  or after every event in a backtest);
- ``evaluate_global`` runs the KPI-threshold and no-activity rules over the global KPI snapshot; only one
  worker calls it (the owner of leads partition 0);
- ``housekeeping`` reconnects Redis, flushes activity, retries claims, refreshes Alertmanager.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from alerts.dispatch import Dispatcher
from alerts.evaluate import (
    ActivityTracker,
    LeadEvent,
    LeadSlaTracker,
    evaluate_kpi_rule,
    evaluate_no_activity,
    lead_transition,
)
from alerts.model import FIRING, RESOLVED, AlertInstance, Transition, escalate, fingerprint, new_instance
from alerts.notification import build
from alerts.rules import RuleSet
from alerts.state import AlertStore

log = logging.getLogger("kpi_monitor.alerts")
REFRESH_S = 60.0  # Alertmanager keep-alive period (its endsAt horizon is 5 min)
REDRIVE_MAX_AGE_MS = 6 * 86400 * 1000  # inside the claims' lifetime (8 d): an older claim may be gone

SnapshotFn = Callable[[str], Awaitable[Any]]  # window -> stream.kpi.snapshot.Snapshot


def _wall_ms() -> int:
    return int(time.time() * 1000)


def engine_partition_clock(engine: Any) -> Callable[[int], int | None]:
    """Event time of one leads-group partition: the slower of its two topics (leads, calls).

    A deadline then passes only when every touch stamped before it, on either topic, has been applied
    (each topic partition is in event-time order, up to the lateness grace), whatever the interleaving.
    """
    marks = engine_topic_marks(engine)

    def clock(partition: int) -> int | None:
        return min((marks(partition) or {}).values(), default=None)

    return clock


class CatchUpClock:
    """Wall clock for the lead deadlines of a leads-group partition, or None while it catches up on a backlog.

    A worker consuming a backlog (a restart after downtime, a backfill of history) applies a lead.created
    long before the touch that follows it in the log, and the touch may sit on the other topic; judging the
    deadline then pages for a lead that was answered in time. So a partition's deadlines wait until each
    of its topics has *settled*: its newest event time is within ``live_lag_ms`` of the wall clock, or it
    has not advanced for ``idle_ms`` (a quiet topic has nothing pending). Then the leads still waiting are
    the ones that really wait, and overdue ones fire at once, as after a restart.
    """

    def __init__(self, marks: Callable[[int], Mapping[str, int] | None], wall: Callable[[], int] | None = None,
                 *, live_lag_ms: int = 60_000, idle_ms: int = 5_000) -> None:
        self.marks = marks
        self.wall = wall or _wall_ms
        self.live_lag_ms = live_lag_ms
        self.idle_ms = idle_ms
        self.seen: dict[tuple[int, str], tuple[int, int]] = {}  # (partition, topic) -> (mark, wall ms it was first seen)

    def __call__(self, partition: int) -> int | None:
        now = self.wall()
        settled = True
        for topic, mark in (self.marks(partition) or {}).items():
            seen = self.seen.get((partition, topic))
            if seen is None or seen[0] != mark:
                seen = self.seen[(partition, topic)] = (mark, now)
            if now - mark > self.live_lag_ms and now - seen[1] < self.idle_ms:
                settled = False  # behind the wall clock and still advancing: a backlog being applied
        return now if settled else None


def engine_topic_marks(engine: Any) -> Callable[[int], Mapping[str, int] | None]:
    """Newest event time of each topic of a leads-group partition."""

    def marks(partition: int) -> Mapping[str, int] | None:
        return engine.watermarks_of("leads", partition)

    return marks


def engine_topic_clock(engine: Any, topic: str = "leads") -> Callable[[int], int | None]:
    """Event time of one topic of a leads-group partition (its largest applied ``occurred_at``)."""

    def clock(partition: int) -> int | None:
        return (engine.watermarks_of("leads", partition) or {}).get(topic)

    return clock


class AlertRuntime:
    def __init__(
        self,
        *,
        rules: RuleSet,
        roster: Callable[[], Any],
        store: AlertStore,
        dispatcher: Dispatcher,
        stats: dict[str, Any],
        app_id: str,
        grafana_url: str,
        event_clock: bool = False,
        partition_clock: Callable[[int], int | None] | None = None,
        hint_clock: Callable[[int], int | None] | None = None,
        wall: Callable[[], int] = _wall_ms,
        event_lateness_ms: int = 60_000,
    ) -> None:
        self.rules = rules
        self.roster = roster
        self.store = store
        self.dispatcher = dispatcher
        self.stats = stats
        self.app_id = app_id
        self.grafana_url = grafana_url
        self.event_clock = event_clock
        # Event time only: how long past a deadline to wait for touches delivered out of order.
        self.grace_ms = event_lateness_ms if event_clock else 0
        self.wall = wall
        self.partition_clock = partition_clock or (lambda p: wall())
        # "Now" for a change that carries no time of its own (a disqualification): in event time the
        # leads topic's clock, which a backtest and a live replay see alike.
        self.hint_clock = hint_clock or self.partition_clock
        self.tracker = LeadSlaTracker(rules, roster, event_time=event_clock)
        self.activity = ActivityTracker()
        self.lead_instances: dict[str, AlertInstance] = {}  # firing lead alerts of owned partitions
        self.global_instances: dict[str, AlertInstance] | None = None  # loaded while this worker evaluates
        self.baseline: int | None = None  # no-activity: "since" for scopes never seen active
        self.held_back = False
        self._refreshed = 0.0
        self.activity_complete: Callable[[], bool] = lambda: True
        # False while a partition is being rebuilt from its table (the worker sets it): a rebuild replays
        # every lead at once, which says nothing about what happened when.
        self.partition_live: Callable[[int], bool] = lambda partition: True

    # --- configuration ---------------------------------------------------------------------------------
    def set_rules(self, rules: RuleSet) -> None:
        self.rules = rules
        self.tracker.set_rules(rules)

    # --- engine listener (synchronous) ---------------------------------------------------------------
    def on_change(self, group: str, partition: int, key: str, removed: list, added: list) -> None:
        if group != "leads":
            return
        if key == "":
            dropped = {fingerprint(r.name, {"lead_id": lead.lead_id})
                       for lead in self.tracker.drop_partition(partition) for r in self.rules.of_type("lead_sla")}
            for fp in dropped:
                self.lead_instances.pop(fp, None)
            return
        now = self.hint_clock(partition)
        self.tracker.on_change(partition, key, removed, added, now if now is not None else self.wall(),
                               live=self.partition_live(partition))
        if added:
            self.activity.on_change(added, self.roster().team_of)

    # --- lead SLA --------------------------------------------------------------------------------------
    async def tick_leads(self) -> int:
        """Fire/escalate/resolve lead alerts whose time came; returns the number of tracker events."""
        if self.held_back:
            return 0
        events = self.tracker.advance(self.partition_clock, grace_ms=self.grace_ms)
        for i, event in enumerate(events, start=1):
            await self._lead_event(event)
            if i % 100 == 0:
                await asyncio.sleep(0)  # a burst of deadlines (a replay) must not starve the consumers
        return len(events)

    async def _lead_event(self, event: LeadEvent) -> None:
        rule = self.rules.by_name.get(event.rule)
        if rule is None:
            return
        lead = event.lead
        scope = {"lead_id": lead.lead_id}
        fp = fingerprint(rule.name, scope)
        inst = self.lead_instances.get(fp)
        if inst is None:
            # Another worker may have fired it before a rebalance or restart: adopt its state.
            adopted = await self.store.get_instance(fp)
            if adopted is None and event.kind == "resolve":
                return  # overdue but never fired anywhere: nothing to resolve
            if adopted is not None:
                await self._redrive(adopted)
            inst = adopted or new_instance(rule.name, "lead_sla", scope, self.rules.severity(rule))
        inst.info = {**inst.info, "owner": lead.rep, "team": lead.team, "source": lead.source,
                     "created_ms": lead.created, "partition": lead.partition}
        if event.kind == "resolve":
            inst.info["resolution"] = event.reason
        muted = False
        if event.kind == "escalate" or (event.kind == "fire" and inst.state == FIRING):
            muted = await self.store.mute(fp) is not None
        if event.kind == "fire" and inst.state == FIRING:
            new, transitions = escalate(inst, event.step, event.at, muted=muted)  # adopted: only move on
        else:
            new, transitions = lead_transition(inst, event, muted)
        await self._save(new, self.lead_instances)
        await self._notify(new, transitions)

    # --- KPI thresholds and no-activity (one worker) --------------------------------------------------
    async def evaluate_global(self, snapshot_fn: SnapshotFn, now_ms: int | None = None) -> bool:
        """Evaluate the rules that need the global view; False when held back (incomplete view)."""
        kpi_rules = self.rules.of_type("kpi")
        idle_rules = self.rules.of_type("no_activity")
        if not kpi_rules and not idle_rules:
            return True
        if self.global_instances is None:
            self.global_instances = {
                i.fingerprint: i for i in await self.store.list_instances() if i.rule_type in ("kpi", "no_activity")
            }
            for inst in self.global_instances.values():
                await self._redrive(inst)
        instances = self.global_instances
        snapshots: dict[str, Any] = {}
        # No-activity rules need no KPI, but one snapshot still says whether the view is complete and
        # what time it is (in event time: the global watermark).
        for window in sorted({r.window for r in kpi_rules} or {"1h"}):
            snapshot = await snapshot_fn(window)
            if snapshot.incomplete:
                # A partition is not loaded or a worker does not answer: numbers would be partial.
                self.stats["held_back"] = True
                return False
            snapshots[window] = snapshot
        if now_ms is None:
            now_ms = max(s.now_ms for s in snapshots.values())
        muted = {fp for fp, inst in instances.items() if inst.state == FIRING and await self.store.mute(fp) is not None}
        roster = self.roster()
        changed: list[tuple[AlertInstance, list[Transition]]] = []
        for rule in kpi_rules:
            changed += evaluate_kpi_rule(rule, self.rules, snapshots[rule.window].values, now_ms, instances, roster,
                                         muted.__contains__)
        if idle_rules:
            if self.baseline is None:
                self.baseline = now_ms
            for name, ts in (await self.store.pull_activity()).items():
                kind, _, scope = name.partition("|")
                self.activity.merge({(kind, scope): ts})
            if self.store.ok or self.activity_complete():
                for rule in idle_rules:
                    changed += evaluate_no_activity(rule, self.rules, self.activity, self.baseline, now_ms, instances,
                                                    roster, muted.__contains__)
            # else: without Redis this worker sees only its partitions' activity; an idle alert would lie.
        for inst, transitions in changed:
            await self._save(inst, instances)
            await self._notify(inst, transitions)
        return True

    def release_global(self) -> None:
        """This worker no longer evaluates the global rules (partition 0 moved away)."""
        self.global_instances = None

    # --- shared -------------------------------------------------------------------------------------
    async def _save(self, inst: AlertInstance, table: dict[str, AlertInstance]) -> None:
        inst.updated_ms = self.wall()
        if inst.rule_type == "lead_sla" and inst.state != FIRING:
            # A lead alert never comes back once resolved (a touch is forever): forget it.
            table.pop(inst.fingerprint, None)
            await self.store.delete_instance(inst.fingerprint)
            await self.store.clear_mute(inst.fingerprint)
            return
        table[inst.fingerprint] = inst
        await self.store.put_instance(inst)
        if inst.state == RESOLVED:
            await self.store.clear_mute(inst.fingerprint)

    async def _notify(self, inst: AlertInstance, transitions: Iterable[Transition]) -> None:
        for t in transitions:
            n = build(inst, t, self.rules, self.roster(), app_id=self.app_id, grafana_url=self.grafana_url)
            status = await self.dispatcher.dispatch(n)
            log.debug("alert %s %s (%s): %s", t.kind, inst.rule, n.key, status)

    async def _redrive(self, inst: AlertInstance) -> None:
        """Re-offer an adopted instance's latest notifications; the claims make this a no-op when they
        were sent. It matters when the previous owner crashed after recording a transition but before
        its notification was delivered: the claim is still "sending" (resent, flagged, after the lease)
        or absent (sent now)."""
        if inst.state != FIRING or inst.updated_ms < self.wall() - REDRIVE_MAX_AGE_MS:
            return
        last = [Transition("firing", 0, inst.firing_since or inst.updated_ms)]
        if inst.step > 0:
            last.append(Transition("escalation", inst.step, inst.last_notified or inst.updated_ms))
        if inst.repeats > 0:
            last.append(Transition("repeat", inst.repeats, inst.last_notified or inst.updated_ms))
        await self._notify(inst, last)

    def owned_instances(self) -> list[AlertInstance]:
        return [*self.lead_instances.values(), *(self.global_instances or {}).values()]

    async def housekeeping(self) -> None:
        await self.store.maybe_reconnect()
        if self.activity.dirty:
            values = {f"{kind}|{name}": self.activity.last[(kind, name)] for kind, name in self.activity.dirty}
            self.activity.dirty.clear()
            await self.store.push_activity(values)
        await self.dispatcher.housekeeping()
        now = time.monotonic()
        if now - self._refreshed >= REFRESH_S:
            self._refreshed = now
            firing = [i for i in self.owned_instances() if i.state == FIRING]
            if firing:
                roster = self.roster()
                self.dispatcher.refresh([
                    build(i, Transition("firing", 0, i.firing_since or 0), self.rules, roster,
                          app_id=self.app_id, grafana_url=self.grafana_url) for i in firing
                ])

    def firing_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for inst in self.owned_instances():
            if inst.state == FIRING:
                key = (inst.rule, inst.severity)
                counts[key] = counts.get(key, 0) + 1
        return counts
