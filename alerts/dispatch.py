"""From a notification to the sinks, once: claim it in the store, queue it, record it as sent.

``dispatch`` never waits for a sink: it claims the notification key (see alerts.state), offers it to the
queued sinks the rule names, and returns. When every sink has finished with it (delivered, or given up
after retries) the claim is marked sent. A claim another worker holds is asked again after its lease;
claims this worker holds are renewed while their sinks work, and released on a graceful stop if they
could not be delivered, so the next owner sends them without waiting for the lease.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import msgspec

from alerts.notification import Notification
from alerts.sinks.base import QueuedSink
from alerts.state import AlertStore

log = logging.getLogger("kpi_monitor.alerts.dispatch")


class Dispatcher:
    def __init__(
        self,
        store: AlertStore,
        sinks: Sequence[QueuedSink],
        *,
        owner: str,
        lease_ms: int = 60_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.sinks = list(sinks)
        self.owner = owner
        self.lease_ms = lease_ms
        self.clock = clock
        self.inflight: dict[str, tuple[Notification, set[str]]] = {}
        self.waiting: dict[str, tuple[Notification, float]] = {}  # busy elsewhere: key -> (notification, ask again at)
        self._finished: list[str] = []
        self._tasks: set[asyncio.Task] = set()
        self._renewed = clock()
        for sink in self.sinks:
            sink.on_done = self._on_done

    def start(self) -> None:
        for sink in self.sinks:
            sink.start()

    def targets(self, n: Notification) -> list[QueuedSink]:
        return [s for s in self.sinks if n.sinks is None or s.name in n.sinks]

    async def dispatch(self, n: Notification) -> str:
        """Claim and queue; returns the claim status (claimed | sent | busy)."""
        claim = await self.store.claim(n.key, self.owner, self.lease_ms)
        if claim.status == "busy":
            self.waiting[n.key] = (n, self.clock() + max(claim.retry_in_ms, 250) / 1000)
            return claim.status
        self.waiting.pop(n.key, None)
        if claim.status != "claimed":
            return claim.status
        if claim.attempt > 1:
            n.repeat = True
            log.warning("alert %s: sending again (attempt %d); it may repeat an earlier notification", n.key, claim.attempt)
        # One line per notification, so the worker log reads as the incident timeline even with no sink.
        log.info("alert %s %s [%s]: %s", n.kind, n.rule, n.severity, n.text)
        targets = self.targets(n)
        if not targets:
            await self.store.complete(n.key, self.owner)
            return claim.status
        self.inflight[n.key] = (n, {s.name for s in targets})
        for sink in targets:
            sink.offer(n)
        return claim.status

    def refresh(self, notifications: Sequence[Notification]) -> None:
        """Keep-alives of firing alerts for the sinks that need them (Alertmanager); not claimed."""
        for sink in self.sinks:
            if sink.supports_refresh:
                for n in notifications:
                    if n.sinks is None or sink.name in n.sinks:
                        sink.offer(msgspec.structs.replace(n, refresh=True))

    def _on_done(self, sink: str, n: Notification, ok: bool) -> None:
        entry = self.inflight.get(n.key)
        if entry is None:
            return
        entry[1].discard(sink)
        if not entry[1]:
            del self.inflight[n.key]
            task = asyncio.get_running_loop().create_task(self.store.complete(n.key, self.owner))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def housekeeping(self) -> None:
        """Ask again for claims held elsewhere; renew the leases of claims still in the sinks."""
        now = self.clock()
        for key, (n, at) in list(self.waiting.items()):
            if at <= now:
                await self.dispatch(n)
        if now - self._renewed >= self.lease_ms / 3000:
            self._renewed = now
            for key in list(self.inflight):
                await self.store.renew(key, self.owner, self.lease_ms)

    async def stop(self, drain_timeout: float = 5.0) -> None:
        results = await asyncio.gather(*(s.stop(drain_timeout) for s in self.sinks), return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        undelivered = {n.key for r in results if isinstance(r, list) for n in r} | set(self.inflight)
        for key in undelivered:
            try:
                await self.store.release(key, self.owner)
            except Exception as exc:
                log.debug("could not release claim %s: %s", key, type(exc).__name__)
        if undelivered:
            log.warning("alerts: %d notifications not delivered before stopping; the next owner sends them", len(undelivered))

    def pending(self) -> int:
        return len(self.inflight) + len(self.waiting)

