"""In process: the alert runtime (two in-process "workers": engine, runtime and RedisAlertStore, no Faust)
with Redis stopped mid-run (a private redis-server, never the shared one): alerts are still delivered
from in-process state, a metric says so; when Redis is back (empty: no persistence) the state is
reconciled into it and nothing is sent twice — neither by this runtime nor by another one adopting the
alerts. The same with real workers: tests/integration/test_alerts_redis_outage.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timezone


from alerts.dispatch import Dispatcher
from alerts.runtime import AlertRuntime
from alerts.sinks.base import QueuedSink, Redactor, RetryPolicy, new_stats
from alerts.sinks.webhook import WebhookSink
from alerts.state import RedisAlertStore
from stream.events import EventValidator
from stream.kpi.engine import EngineConfig, KpiEngine
from tests.alerts.helpers import roster, rules

M = 60_000
T0 = int(datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp() * 1000)
RULES = rules("rules: [{name: sla, type: lead_sla, deadline: 5m, calendar: none}]")


def at(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


class Worker:
    def __init__(self, redis_url: str, app_id: str, webhook: str, clock: list[int], tables: dict) -> None:
        self.stats = new_stats()
        self.clock = clock
        self.tables = tables
        self.runtime: AlertRuntime
        self.store = RedisAlertStore.from_url(redis_url, app_id, stats=self.stats, retry_every=0.1,
                                              owned=lambda: self.runtime.owned_instances())
        sink = QueuedSink(WebhookSink(webhook), stats=self.stats, redact=Redactor(),
                          policy=RetryPolicy(attempts=2, timeout=2, backoff=0.05))
        self.dispatcher = Dispatcher(self.store, [sink], owner=uuid.uuid4().hex[:6])
        self.runtime = AlertRuntime(rules=RULES, roster=roster, store=self.store, dispatcher=self.dispatcher,
                                    stats=self.stats, app_id=app_id, grafana_url="http://g", wall=lambda: clock[0])
        self.engine = KpiEngine(EngineConfig())
        self.engine.listeners.append(self.runtime.on_change)
        self.dispatcher.start()

    def apply(self, **event) -> None:
        raw = json.dumps(event).encode()
        ev = EventValidator().validate(raw, "leads")
        self.engine.apply(self.tables, "leads", 0, ev, self.clock[0])

    async def run(self, until: int, step: int = 5000) -> None:
        while self.clock[0] < until:
            self.clock[0] += step
            await self.runtime.housekeeping()
            await self.runtime.tick_leads()
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        await self.dispatcher.stop(2)
        await self.store.close()


def created(lead: str, ts: int) -> dict:
    return {"event_id": f"c-{lead}", "type": "lead.created", "occurred_at": at(ts), "lead_id": lead, "rep_id": "hana"}


def touched(lead: str, ts: int) -> dict:
    return {"event_id": f"t-{lead}", "type": "lead.touched", "occurred_at": at(ts), "lead_id": lead,
            "rep_id": "hana", "channel": "chat"}


async def test_in_process_alerts_survive_a_redis_outage_without_a_duplicate_storm(private_redis, receiver):
    app_id = f"test-outage-{uuid.uuid4().hex[:6]}"
    clock, tables = [T0], {}
    w = Worker(private_redis.url, app_id, f"{receiver.url}/webhook", clock, tables)

    def kinds() -> list[tuple[str, str]]:
        return [(d.json()["labels"]["lead_id"], d.json()["kind"]) for d in receiver.on("/webhook")]

    w.apply(**created("L1", T0))
    await w.run(T0 + 6 * M)
    await asyncio.sleep(0.2)
    assert kinds() == [("L1", "firing")] and w.stats["redis_ok"]

    private_redis.stop()  # mid-run
    w.apply(**created("L2", T0 + 2 * M))
    w.apply(**created("L3", T0 + 2 * M))
    await w.run(T0 + 8 * M)
    w.apply(**touched("L1", T0 + 8 * M))
    await w.run(T0 + 9 * M)
    await asyncio.sleep(0.3)
    assert kinds() == [("L1", "firing"), ("L2", "firing"), ("L3", "firing"), ("L1", "resolved")]
    assert w.stats["redis_ok"] is False and w.stats["redis_errors"] >= 1

    private_redis.start()  # back, and empty
    for _ in range(20):
        await w.run(clock[0] + 1000)
        if w.stats["redis_ok"]:
            break
        await asyncio.sleep(0.1)
    assert w.stats["redis_ok"] is True
    firing = {i.scope["lead_id"] for i in await w.store.list_instances() if i.state == "firing"}
    assert firing == {"L2", "L3"}  # reconciled into the fresh Redis

    # No storm: time passes, and another worker adopts the partition (a rebalance) — nothing is re-sent.
    await w.run(T0 + 20 * M)
    w.engine.drop("leads", [0])
    await w.stop()
    other = Worker(private_redis.url, app_id, f"{receiver.url}/webhook", clock, tables)
    other.engine.rebuild("leads", [0], list(tables.items()), clock[0])
    await other.run(T0 + 22 * M)
    await asyncio.sleep(0.3)
    assert len(kinds()) == 4
    other.apply(**touched("L2", T0 + 23 * M))
    await other.run(T0 + 24 * M)
    await asyncio.sleep(0.3)
    assert kinds()[4:] == [("L2", "resolved")]
    keys = [d.json()["idempotency_key"] for d in receiver.on("/webhook")]
    assert len(keys) == len(set(keys))
    await other.stop()
