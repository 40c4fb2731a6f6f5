"""In process: a sink that hangs, and one that answers 500, do not slow the KPI engine. The same simulator
log is applied to an in-process engine and alert runtime (a MemoryAlertStore, real HTTP sinks to a local
receiver) ticking every 10 ms, once with healthy sinks and once with broken ones; the event throughput and
the worst event-loop stall are measured and compared. The same on real workers and the broker:
tests/integration/test_alerts_slow_sink.py."""

from __future__ import annotations

import asyncio
import json
import time

from aiokafka.partitioner import DefaultPartitioner

from alerts.dispatch import Dispatcher
from alerts.runtime import AlertRuntime, engine_partition_clock
from alerts.sinks.base import QueuedSink, Redactor, RetryPolicy, new_stats
from alerts.sinks.slack import SlackWebhookSink
from alerts.sinks.webhook import WebhookSink
from alerts.state import MemoryAlertStore
from stream.events import EventValidator
from stream.kpi.engine import GROUP_OF_TOPIC, EngineConfig, KpiEngine
from tests.alerts.helpers import BUSY_FLOOR_RULES, busy_floor, roster, rules

RULES = rules(BUSY_FLOOR_RULES)


def log_events() -> list[tuple[str, int, object]]:
    validator, partitioner, partitions = EventValidator(), DefaultPartitioner(), [0, 1, 2, 3]
    out = []
    for e in busy_floor():
        partition = partitioner(e.key.encode(), partitions, partitions)
        out.append((e.topic, partition, validator.validate(json.dumps(e.event).encode(), e.topic)))
    return out


async def run(events, sinks_for) -> dict:
    """Apply every event (yielding to the loop every 50, like a consumer batch) while the runtime ticks."""
    stats = new_stats()
    engine = KpiEngine(EngineConfig(event_clock=True))
    store = MemoryAlertStore()
    sinks = [QueuedSink(s, stats=stats, redact=Redactor(), maxsize=200,
                        policy=RetryPolicy(attempts=3, timeout=0.5, backoff=0.1)) for s in sinks_for()]
    dispatcher = Dispatcher(store, sinks, owner="w")
    runtime = AlertRuntime(rules=RULES, roster=roster, store=store, dispatcher=dispatcher, stats=stats, app_id="t",
                           grafana_url="http://g", event_clock=True, partition_clock=engine_partition_clock(engine))
    engine.listeners.append(runtime.on_change)
    dispatcher.start()
    tables = {"leads": {}, "deals": {}, "spend": {}, "customers": {}}
    done = asyncio.Event()
    lags: list[float] = []

    async def ticker() -> None:
        while not done.is_set():
            await runtime.tick_leads()
            await asyncio.sleep(0.01)

    async def heartbeat() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    tasks = [asyncio.create_task(ticker()), asyncio.create_task(heartbeat())]
    started = time.perf_counter()
    for i, (topic, partition, event) in enumerate(events):
        engine.apply(tables[GROUP_OF_TOPIC[topic]], topic, partition, event, 0)
        if i % 50 == 0:
            await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.05)
    done.set()
    await asyncio.gather(*tasks)
    result = {"elapsed": elapsed, "eps": len(events) / elapsed, "max_lag": max(lags), "stats": stats,
              "queued": sum(s.queue.qsize() for s in sinks)}
    await dispatcher.stop(0.1)
    return result


async def test_broken_sinks_do_not_slow_the_in_process_engine(receiver):
    events = log_events()
    healthy = await run(events, lambda: [WebhookSink(f"{receiver.url}/webhook"), SlackWebhookSink(f"{receiver.url}/slack/webhook")])
    broken = await run(events, lambda: [WebhookSink(f"{receiver.url}/hang"), SlackWebhookSink(f"{receiver.url}/fail")])
    print(f"\n{len(events)} events: healthy sinks {healthy['eps']:.0f} events/s (max loop stall "
          f"{healthy['max_lag'] * 1000:.1f} ms, {sum(healthy['stats']['sent'].values())} sent); "
          f"hanging + 500 sinks {broken['eps']:.0f} events/s (max stall {broken['max_lag'] * 1000:.1f} ms, "
          f"{sum(broken['stats']['dropped'].values())} dropped, {sum(broken['stats']['failed'].values())} failed)")
    assert sum(healthy["stats"]["sent"].values()) > 100  # the run does alert a lot
    assert broken["eps"] >= 0.7 * healthy["eps"]
    assert broken["max_lag"] < max(0.5, 2 * healthy["max_lag"])  # no stall beyond what the replay burst itself causes
    assert sum(broken["stats"]["dropped"].values()) > 0 and broken["queued"] <= 400  # bounded, oldest dropped
    assert receiver.on("/hang") and receiver.on("/fail")
