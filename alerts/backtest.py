"""Backtest: what the rules would have fired, when, and when it resolved, over a recorded event log.

The log (JSON Lines, one event a line, as ``kpi-monitor replay`` takes it) goes through the same KPI
engine in event-clock mode, split into the same partitions Kafka would use, and through the same alert
runtime as a worker — but the store is in memory and the "dispatcher" only records. Nothing is sent.

- Lead SLA alerts are checked after every event, so they come out exactly as a live worker in
  ``KPI_CLOCK=event`` mode fires them: each deadline passes when its partition's event time (the slower
  of its leads and calls topics) is past it plus the lateness grace; a touch after the deadline still
  yields the firing, at the deadline.
- KPI threshold and no-activity rules are evaluated each time event time enters a new minute (the 1h
  window moves by whole minutes), on the merged aggregates of all partitions. A live worker evaluates
  them every ``KPI_ALERT_EVAL_SECONDS`` of wall time instead, so on a fast replay it sees fewer moments.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from alerts.notification import Notification, iso
from alerts.rules import RuleSet
from alerts.runtime import AlertRuntime, engine_partition_clock, engine_topic_clock
from alerts.sinks.base import new_stats
from alerts.state import MemoryAlertStore
from stream.events import EventValidator, InvalidEvent, epoch_ms
from stream.kpi.engine import GROUP_OF_TOPIC, TOPICS_OF_GROUP, KpiEngine, engine_config
from stream.kpi.snapshot import build_snapshot, merge_partials
from stream.local.replay import BadLine, route


class RecordingDispatcher:
    """Stands in for the dispatcher: every notification is kept, none is sent, each key once."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        self._seen: set[str] = set()

    async def dispatch(self, n: Notification) -> str:
        if n.key in self._seen:
            return "sent"
        self._seen.add(n.key)
        self.notifications.append(n)
        return "claimed"

    def refresh(self, notifications: Any) -> None:
        pass

    async def housekeeping(self) -> None:
        pass


@dataclass
class BacktestResult:
    notifications: list[Notification] = field(default_factory=list)
    events: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # dead-letter reason -> lines
    first_ms: int | None = None
    last_ms: int | None = None

    def still_firing(self) -> list[Notification]:
        last: dict[str, Notification] = {}
        for n in self.notifications:
            last[n.fingerprint] = n
        return [n for n in last.values() if n.status == "firing"]


def _lines(path: str) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield line.rstrip(b"\r\n")


async def run_backtest(rules: RuleSet, lines: Iterable[bytes], settings: Any, roster: Any) -> BacktestResult:
    engine = KpiEngine(engine_config(settings, event_clock=True))  # the worker's engine, on the log's clock
    validator = EventValidator(currency=settings.kpi_currency, stages=settings.kpi_stages,
                               max_bytes=settings.kpi_max_event_bytes)
    tables: dict[str, dict[str, bytes]] = {group: {} for group in TOPICS_OF_GROUP}
    partitioner = DefaultPartitioner()
    partitions = list(range(settings.kpi_partitions))
    recorder = RecordingDispatcher()
    clock = {"now": 0}
    runtime = AlertRuntime(
        rules=rules, roster=lambda: roster, store=MemoryAlertStore(clock=lambda: clock["now"]),
        dispatcher=recorder,  # type: ignore[arg-type]
        stats=new_stats(), app_id=settings.kpi_app_id, grafana_url=settings.kpi_grafana_url, event_clock=True,
        partition_clock=engine_partition_clock(engine), hint_clock=engine_topic_clock(engine), wall=lambda: clock["now"],
    )
    engine.listeners.append(runtime.on_change)
    result = BacktestResult()
    global_rules = bool(rules.of_type("kpi") or rules.of_type("no_activity"))
    last_minute: int | None = None

    async def snapshot(window: str) -> dict[str, Any]:
        now = clock["now"]
        merged = merge_partials(engine.partials(window, now).values())
        return build_snapshot(merged, window=window, now_ms=now, roster=roster, stages=settings.kpi_stages,
                              timezone=settings.kpi_timezone)

    for raw in lines:
        try:
            suffix, key = route(json.loads(raw))
            event = validator.validate(raw, suffix)
        except (BadLine, ValueError):
            result.skipped["unroutable"] = result.skipped.get("unroutable", 0) + 1
            continue
        except InvalidEvent as exc:
            result.skipped[exc.reason] = result.skipped.get(exc.reason, 0) + 1
            continue
        partition = partitioner(key.encode(), partitions, partitions)
        ts = epoch_ms(event.occurred_at)
        try:
            engine.apply(tables[GROUP_OF_TOPIC[suffix]], suffix, partition, event, ts)
        except InvalidEvent as exc:
            result.skipped[exc.reason] = result.skipped.get(exc.reason, 0) + 1
            continue
        result.events += 1
        result.first_ms = ts if result.first_ms is None else min(result.first_ms, ts)
        clock["now"] = engine.now(ts)
        result.last_ms = clock["now"]
        await runtime.tick_leads()
        minute = clock["now"] // 60_000
        if global_rules and minute != last_minute:
            last_minute = minute
            engine.expire(clock["now"])
            await runtime.evaluate_global(snapshot, clock["now"])
    await runtime.tick_leads()
    result.notifications = recorder.notifications
    return result


def render(result: BacktestResult) -> str:
    """The timeline as text: one line per notification, then a summary."""
    out = []
    for n in sorted(result.notifications, key=lambda n: (n.at, n.key)):
        state = {"firing": "FIRING", "repeat": "REPEAT", "escalation": "ESCALATE", "resolved": "RESOLVED"}[n.kind]
        who = f" -> {n.target}" if n.kind in ("firing", "escalation") and n.target != "none" else ""
        out.append(f"{iso(n.at)}  {state:<9} {n.rule:<28} {n.title}{who}  [{n.fingerprint}]")
    fired = sum(1 for n in result.notifications if n.kind == "firing")
    resolved = sum(1 for n in result.notifications if n.kind == "resolved")
    span = f"{iso(result.first_ms)} .. {iso(result.last_ms)}" if result.first_ms is not None else "no events"
    skipped = ", ".join(f"{k}: {v}" for k, v in sorted(result.skipped.items())) or "none"
    out.append("")
    out.append(f"{result.events} events ({span}); skipped lines: {skipped}")
    out.append(f"{fired} fired, {resolved} resolved, {len(result.still_firing())} still firing at the end of the log; nothing was sent")
    return "\n".join(out)
