"""Health of a worker: the broker probe behind /healthz, and the stall watchdog."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.client import AIOKafkaClient

from stream.worker.context import WorkerContext, is_consuming
from stream.worker.durability import exit_for_restart

log = logging.getLogger("kpi_monitor.worker")


async def check_progress(ctx: WorkerContext, now: float) -> None:
    """The stall watchdog: messages are waiting on this worker's partitions, yet none was processed for
    KPI_STALL_SECONDS while the worker says it is consuming.

    Faust's consumer can stop fetching after a rebalance (faust-streaming #175, #523) with no error at all;
    the only cure is a restart, after which the group and the changelogs put everything back. So the
    worker reports it (/healthz 503, a log line) and, with KPI_EXIT_ON_STALL (default), exits with code 3
    for its supervisor (docker-compose's restart policy, systemd, Kubernetes) to start it again.
    """
    if not is_consuming(ctx)[0] and not ctx.stalled:
        return  # starting, rebalancing, recovering or cut off from the broker: not a stall
    # Quiet since the last processed message, or since the worker took its partitions: a worker that has
    # just recovered partitions from a dead peer has had no chance to process them yet.
    quiet_since = max(ctx.stats.last_event_wall or 0.0, ctx.stats.started, ctx.ready_since)
    if now - quiet_since < ctx.settings.kpi_stall_seconds:
        ctx.stalled = None
        return
    await ctx.scrape.offsets.refresh(ctx)  # end offsets from the broker, not the (stuck) fetcher
    waiting = sum(behind for *_, behind in ctx.scrape.offsets.lag(ctx))
    if not waiting:
        return
    ctx.stalled = f"stalled: {waiting} messages waiting, none processed for {now - quiet_since:.0f}s"
    if ctx.settings.kpi_exit_on_stall:
        exit_for_restart(f"{ctx.stalled} (KPI_EXIT_ON_STALL=false only reports it)")
    log.error("%s (KPI_EXIT_ON_STALL=false: reporting only)", ctx.stalled)


class BrokerProbe:
    """Asks the broker for the metadata of our own topics on one long-lived connection, every 2 s.

    Only our topics: metadata for *all* topics grows with the broker (a shared test broker holds
    thousands) and decoding it every 2 s cost a few % of the worker's CPU.
    """

    def __init__(self, bootstrap: str, topics: list[str], security: dict[str, Any] | None = None,
                 timeout: float = 3.0) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.security = security or {}
        self.timeout = timeout
        self.client: AIOKafkaClient | None = None

    async def reachable(self) -> bool:
        try:
            if self.client is None:
                self.client = AIOKafkaClient(
                    bootstrap_servers=self.bootstrap, request_timeout_ms=int(self.timeout * 1000), **self.security
                )
                await asyncio.wait_for(self.client.bootstrap(), self.timeout)
                self.client.set_topics(self.topics)
            if not await asyncio.wait_for(self.client.force_metadata_update(), self.timeout):
                raise ConnectionError("no broker answered the metadata request")
            return True
        except Exception:
            if self.client is not None:
                client, self.client = self.client, None
                try:
                    await asyncio.wait_for(client.close(), self.timeout)
                except Exception:
                    pass
            return False
