"""The alert engine inside the Faust worker: ``attach_alerts(ctx)`` is the one call ``create_app`` makes.

It registers the engine listener, three app timers (lead deadlines every 0.25 s; KPI and no-activity
rules every ``KPI_ALERT_EVAL_SECONDS`` on the worker owning leads partition 0; housekeeping every second),
a Faust service that starts the sinks and closes them (draining for a few seconds) on shutdown, and a
Prometheus collector. While the worker rebalances or recovers its tables, or the global view is
incomplete, alerts are held back (``kpi_alerts_held_back`` = 1): a restart never pages on half-loaded state.
The rules file is reloaded when it changes or on SIGHUP; a broken edit keeps the previous rules.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urlsplit

import click
import mode
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from alerts.config import AlertConfig, AlertConfigError
from alerts.dispatch import Dispatcher
from alerts.rules import RulesError, RuleSet, check_against_roster, load_rules
from alerts.runtime import AlertRuntime, CatchUpClock, engine_partition_clock, engine_topic_clock, engine_topic_marks
from alerts.sinks.base import Redactor, new_stats
from alerts.sinks.factory import make_queued_sinks
from alerts.state import RedisAlertStore
from stream.watched import WatchedFile
from stream.worker.context import is_consuming
from stream.worker.query import global_snapshot

if TYPE_CHECKING:
    from stream.worker.context import WorkerContext

log = logging.getLogger("kpi_monitor.alerts")
TICK_S = 0.25
HOUSEKEEPING_S = 1.0
DRAIN_S = 5.0


class AlertsStartupError(click.ClickException):
    """A bad rules file or alert setting: the worker command prints it in one block and exits 1."""


def watch_rules(path: Path, settings: Any, rules: RuleSet) -> WatchedFile[RuleSet]:
    """The rules file, reloaded when it changes or a SIGHUP asks (``reload_now``)."""
    return WatchedFile(path, lambda p: load_rules(p, settings), what="alert rules", errors=(RulesError,),
                       describe=RuleSet.summary, value=rules)


class AlertService:
    def __init__(self, ctx: WorkerContext, config: AlertConfig, rules: RuleSet) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.config = config
        self._roster = ctx.roster.current()  # refreshed every second: the listener runs per event
        self.stats = new_stats()
        self.redact = Redactor(config.secrets())
        password = urlsplit(settings.redis_dsn).password
        self.redact.add(password)
        self.watcher = watch_rules(settings.kpi_alert_rules, settings, rules)
        self.store = RedisAlertStore.from_url(
            settings.redis_dsn, settings.kpi_app_id, stats=self.stats,
            owned=lambda: self.runtime.owned_instances(), redact=self.redact,
        )
        sinks = make_queued_sinks(config, self.store, self.stats, self.redact)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.dispatcher = Dispatcher(self.store, sinks, owner=owner, lease_ms=round(config.claim_lease_seconds * 1000))
        event_clock = settings.kpi_clock == "event"
        self.runtime = AlertRuntime(
            rules=rules, roster=self.roster, store=self.store, dispatcher=self.dispatcher, stats=self.stats,
            app_id=settings.kpi_app_id, grafana_url=config.grafana_url, event_clock=event_clock,
            # Wall clock: the deadlines of a partition catching up on a backlog wait until it has (CatchUpClock).
            partition_clock=(engine_partition_clock(ctx.engine) if event_clock
                             else CatchUpClock(engine_topic_marks(ctx.engine))),
            hint_clock=engine_topic_clock(ctx.engine) if event_clock else lambda partition: int(time.time() * 1000),
        )
        self.runtime.activity_complete = lambda: len(ctx.built.get("leads", ())) >= settings.kpi_partitions
        self.runtime.partition_live = lambda partition: partition in ctx.built.get("leads", ())
        self.started = False
        self.consuming_held = True
        self.view_held = False

    # --- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.dispatcher.start()
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_hup)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            pass
        self.started = True
        sinks = ", ".join(s.name for s in self.dispatcher.sinks) or "none (state only)"
        log.info("alerts: %s; sinks: %s", self.watcher.value.summary(), sinks)

    def _on_hup(self) -> None:
        self.watcher.reload_now()

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        await self.dispatcher.stop(DRAIN_S)
        await self.store.close()

    # --- timers ----------------------------------------------------------------------------------------
    def _update_held(self) -> bool:
        self.consuming_held = not is_consuming(self.ctx)[0]
        self.runtime.held_back = self.consuming_held
        self.stats["held_back"] = self.consuming_held or self.view_held
        return self.consuming_held

    async def tick(self) -> None:
        if not self.started:
            return
        rules = self.watcher.poll()
        if rules is not None:
            self.runtime.set_rules(rules)
        self._update_held()
        await self.runtime.tick_leads()

    async def evaluate(self) -> None:
        if not self.started:
            return
        if 0 not in self.ctx.built.get("leads", ()):
            if self.runtime.global_instances is not None:
                self.runtime.release_global()  # another worker evaluates the global rules now
            self.view_held = False
            return
        if self._update_held():
            return
        ok = await self.runtime.evaluate_global(lambda window: global_snapshot(self.ctx, window))
        self.view_held = not ok
        self.stats["held_back"] = self.consuming_held or self.view_held

    def roster(self) -> Any:
        return self._roster

    async def housekeeping(self) -> None:
        self._roster = self.ctx.roster.current()  # watch_roster reloads when the file changed
        if self.started:
            await self.runtime.housekeeping()


def _guarded(name: str, fn):
    async def run(*_app: Any) -> None:  # Faust passes the app to timers whose function takes arguments
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception:  # an alerting bug must never stop the worker
            log.exception("alerts: %s failed", name)

    run.__name__ = run.__qualname__ = f"alerts_{name}"
    return run


class AlertCollector:
    """Alert-engine gauges read at scrape time (sent/failed counters are exported by stream.worker.metrics)."""

    def __init__(self, service: AlertService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        s = self.service
        held = GaugeMetricFamily("kpi_alerts_held_back",
                                 "1 while alerts are held back (rebalancing, recovering tables, incomplete global view).")
        held.add_metric([], 1 if s.stats.get("held_back") else 0)
        yield held
        up = GaugeMetricFamily("kpi_alert_state_redis_up", "1 when the alert state store (Redis) answers; 0: alerting from in-process state.")
        up.add_metric([], 1 if s.stats.get("redis_ok") else 0)
        yield up
        firing = GaugeMetricFamily("kpi_alerts_firing", "Firing alert instances this worker owns, by rule and severity (sum across workers).",
                                   labels=["rule", "severity"])
        for (rule, severity), count in sorted(s.runtime.firing_counts().items()):
            firing.add_metric([rule, severity], count)
        yield firing
        dropped = CounterMetricFamily("kpi_alerts_dropped", "Notifications dropped from a full sink queue, by sink.", labels=["sink"])
        depth = GaugeMetricFamily("kpi_alerts_queue_depth", "Notifications waiting in a sink's queue.", labels=["sink"])
        for sink in s.dispatcher.sinks:
            dropped.add_metric([sink.name], s.stats["dropped"].get(sink.name, 0))
            depth.add_metric([sink.name], sink.queue.qsize())
        yield dropped
        yield depth
        errors = CounterMetricFamily("kpi_alert_state_redis_errors", "Redis operations of the alert store that failed.")
        errors.add_metric([], s.stats.get("redis_errors", 0))
        yield errors
        dups = CounterMetricFamily("kpi_alerts_duplicates_reconciled",
                                   "Notifications found sent by two workers when Redis came back (both failed open).")
        dups.add_metric([], s.stats.get("duplicates_reconciled", 0))
        yield dups
        reload_failures = CounterMetricFamily("kpi_alert_rules_reload_failures", "Rules file edits rejected (the previous rules stay).")
        reload_failures.add_metric([], s.watcher.failures)
        yield reload_failures


def attach_alerts(ctx: WorkerContext) -> AlertService | None:
    """Wire the alert engine into a worker built by ``stream.worker.app.create_app``."""
    settings = ctx.settings
    try:
        config = AlertConfig.from_settings(settings)
    except AlertConfigError as exc:
        raise AlertsStartupError(str(exc)) from None
    if not config.enabled:
        log.warning("alerts: disabled by KPI_ALERTS=off")
        return None
    try:
        rules = load_rules(settings.kpi_alert_rules, settings)
    except RulesError as exc:
        raise AlertsStartupError(f"KPI_ALERT_RULES is not usable:\n{exc}") from None
    for warning in check_against_roster(rules, ctx.roster.current()):
        log.warning("alert rules: %s", warning)
    service = AlertService(ctx, config, rules)
    ctx.alert_stats = service.stats
    ctx.engine.listeners.append(service.runtime.on_change)
    ctx.registry.register(AlertCollector(service))
    app = ctx.app
    app.timer(TICK_S, name="alerts_tick")(_guarded("tick", service.tick))
    app.timer(config.eval_seconds, name="alerts_evaluate")(_guarded("evaluate", service.evaluate))
    app.timer(HOUSEKEEPING_S, name="alerts_housekeeping")(_guarded("housekeeping", service.housekeeping))

    class AlertLifecycle(mode.Service):
        async def on_start(self) -> None:
            await service.start()

        async def on_stop(self) -> None:
            await service.stop()

    app.service(AlertLifecycle)
    return service
