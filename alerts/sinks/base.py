"""The sink interface, and the bounded queue with timeouts and retries that every sink sits behind.

A sink only knows how to send one notification (``send``) and raises ``SinkError`` when it could not.
``QueuedSink`` makes it safe to call from the stream: ``offer`` never blocks (a full queue drops its oldest
notification and counts it), one task per sink delivers in order with a timeout per attempt and
exponential backoff between attempts. A slow or broken sink therefore delays only its own queue.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from alerts.notification import Notification

log = logging.getLogger("kpi_monitor.alerts.sinks")


class SinkError(Exception):
    """Delivery failed. ``permanent``: retrying cannot help (bad URL, rejected payload, bad token)."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class Sink(Protocol):
    name: str
    supports_refresh: bool  # wants keep-alives of firing alerts (Alertmanager expires silent alerts)

    async def send(self, notification: Notification) -> None: ...

    async def close(self) -> None: ...


def http_error(status: int, what: str, retry_after: str | None = None) -> SinkError:
    """A SinkError for an HTTP status: 4xx other than 408/429 is permanent."""
    permanent = 400 <= status < 500 and status not in (408, 425, 429)
    after = None
    if retry_after:
        try:
            after = float(retry_after)
        except ValueError:
            after = None
    return SinkError(f"{what}: HTTP {status}", permanent=permanent, retry_after=after)


class Redactor:
    """Replaces secrets (tokens, webhook URLs and their paths) in text meant for logs and errors."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4 and secret not in self.secrets:
            self.secrets = sorted([*self.secrets, secret], key=len, reverse=True)

    def __call__(self, text: Any) -> str:
        out = str(text)
        for secret in self.secrets:
            out = out.replace(secret, "***")
        # Tokens and webhook paths we were not told about (e.g. inside a library's message).
        out = re.sub(r"xox[abposr]-[A-Za-z0-9-]+", "xox?-***", out)
        out = re.sub(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[^\s'\"]+", r"\1***", out)
        return out


def new_stats() -> dict[str, Any]:
    """``ctx.alert_stats``: plain counters, exported at scrape time (see alerts.service)."""
    return {
        "sent": Counter(),  # sink -> notifications delivered
        "failed": Counter(),  # sink -> notifications given up after retries (or rejected)
        "dropped": Counter(),  # sink -> notifications dropped from a full queue
        "refreshed": Counter(),  # sink -> Alertmanager keep-alives
        "redis_ok": True,
        "redis_errors": 0,
        "held_back": False,
        "duplicates_reconciled": 0,  # notifications two workers both sent while Redis was down
    }


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    timeout: float = 5.0  # per attempt
    backoff: float = 0.5  # first pause; doubles, with jitter
    max_backoff: float = 10.0

    def pause(self, attempt: int, retry_after: float | None = None) -> float:
        base = min(self.max_backoff, self.backoff * 2**attempt)
        pause = base * (0.75 + random.random() / 2)
        return max(pause, min(retry_after or 0.0, self.max_backoff * 3))


Done = Callable[[str, Notification, bool], None]  # (sink name, notification, delivered)


class QueuedSink:
    def __init__(
        self,
        sink: Sink,
        *,
        stats: dict[str, Any],
        redact: Redactor,
        on_done: Done = lambda sink, n, ok: None,
        maxsize: int = 1000,
        policy: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.sink = sink
        self.name = sink.name
        self.stats = stats
        self.redact = redact
        self.on_done = on_done
        self.policy = policy
        self.queue: asyncio.Queue[Notification] = asyncio.Queue(maxsize)
        self.busy: Notification | None = None
        self._task: asyncio.Task | None = None
        self._drop_logged = -1e9
        self._dropped_unlogged = 0
        self._stopping = False

    @property
    def supports_refresh(self) -> bool:
        return getattr(self.sink, "supports_refresh", False)

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"alert-sink-{self.name}")

    def offer(self, notification: Notification) -> None:
        """Queue without waiting; when full, the oldest queued notification is dropped and counted."""
        while True:
            try:
                self.queue.put_nowait(notification)
                return
            except asyncio.QueueFull:
                dropped = self.queue.get_nowait()
                self.stats["dropped"][self.name] += 1
                self._dropped_unlogged += 1
                now = time.monotonic()
                if now - self._drop_logged >= 10.0:  # a flood must not become a flood of log lines too
                    log.warning("alert sink %s: queue full (%d); dropped the %d oldest notifications, last %s",
                                self.name, self.queue.maxsize, self._dropped_unlogged, dropped.key)
                    self._drop_logged, self._dropped_unlogged = now, 0
                if not dropped.refresh:
                    self.on_done(self.name, dropped, False)

    async def _run(self) -> None:
        while not self._stopping:
            notification = await self.queue.get()
            self.busy = notification
            ok = await self.deliver(notification)
            self.busy = None
            if not notification.refresh:
                self.on_done(self.name, notification, ok)
            self.queue.task_done()

    async def deliver(self, notification: Notification) -> bool:
        policy = self.policy
        for attempt in range(policy.attempts):
            try:
                await asyncio.wait_for(self.sink.send(notification), policy.timeout)
                counter = "refreshed" if notification.refresh else "sent"
                self.stats[counter][self.name] += 1
                return True
            except asyncio.CancelledError:
                raise
            except SinkError as exc:
                log.warning("alert sink %s: %s (%s, attempt %d)", self.name, self.redact(exc), notification.key, attempt + 1)
                if exc.permanent:
                    break
                retry_after = exc.retry_after
            except (asyncio.TimeoutError, TimeoutError):
                log.warning("alert sink %s: no answer within %.1fs (%s, attempt %d)", self.name, policy.timeout, notification.key, attempt + 1)
                retry_after = None
            except Exception as exc:  # a sink bug or a library error: retry, never crash the worker
                log.warning("alert sink %s: %s: %s (%s, attempt %d)", self.name, type(exc).__name__, self.redact(exc), notification.key, attempt + 1)
                retry_after = None
            if attempt + 1 < policy.attempts:
                await asyncio.sleep(policy.pause(attempt, retry_after))
        self.stats["failed"][self.name] += 1
        return False

    async def stop(self, drain_timeout: float = 5.0) -> list[Notification]:
        """Give the queue ``drain_timeout`` to empty, then stop; returns what was not delivered."""
        if self._task is None:
            return list(self._pending())
        try:
            await asyncio.wait_for(self.queue.join(), drain_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            pass
        undelivered = [n for n in ([self.busy] if self.busy else []) + self._pending() if not n.refresh]
        self._stopping = True
        # Cancel until it is really done: on Python 3.11 asyncio.wait_for can swallow a cancellation that
        # races with the send it wraps, and the task would go back to waiting on the queue forever.
        while not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task], timeout=0.1)
        if not self._task.cancelled() and self._task.exception() is not None:
            log.debug("alert sink %s: worker task ended with %r", self.name, self._task.exception())
        self._task = None
        try:
            await self.sink.close()
        except Exception as exc:
            log.debug("alert sink %s: close failed: %s", self.name, self.redact(exc))
        return undelivered

    def _pending(self) -> list[Notification]:
        items = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
            self.queue.task_done()
        return items
