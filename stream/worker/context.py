"""What a worker's agents, views, exporters and alert engine share, and whether the worker is consuming.

Nothing here imports the views, the exporters or the alert engine: they import this, and
``stream.worker.app`` wires them together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from stream.config import Settings
from stream.events import EventValidator
from stream.kpi.engine import KpiEngine
from stream.roster import Roster
from stream.watched import WatchedFile
from stream.worker.stats import PipelineStats


@dataclass
class WorkerContext:
    """Everything the agents and views share; one per worker process."""

    settings: Settings
    app: faust.App
    engine: KpiEngine
    validator: EventValidator
    roster: WatchedFile[Roster]
    stats: PipelineStats
    registry: CollectorRegistry
    tables: dict[str, Any] = field(default_factory=dict)  # group -> faust Table
    built: dict[str, set[int]] = field(default_factory=dict)  # group -> partitions rebuilt and live
    suffix_of_topic: dict[str, str] = field(default_factory=dict)
    deadletter_topic: Any = None
    broker_ok: bool = False
    broker_checked: float = 0.0
    stalled: str | None = None  # set by the watchdog: why this worker is not making progress
    ready_since: float = 0.0  # wall time the last table recovery completed: a stall is counted from there at most
    scrape: Any = None  # stream.worker.metrics.ScrapeState: what /metrics refreshes before rendering (set by register_metrics)
    alert_stats: Any = None  # alerts.sinks.base.new_stats(): set by alerts.service.attach_alerts


def is_consuming(ctx: WorkerContext) -> tuple[bool, str]:
    """Health: the worker is consuming when it is assigned, not rebalancing, recovered and the broker answers."""
    app = ctx.app
    if not ctx.broker_ok:
        return False, "broker unreachable" if ctx.broker_checked else "starting"
    if ctx.stalled:
        return False, ctx.stalled
    if app.rebalancing:
        return False, "rebalancing"
    if not app.tables.recovery.completed.is_set():
        return False, "recovering tables"
    return True, "consuming"
