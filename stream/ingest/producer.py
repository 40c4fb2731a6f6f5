"""The ingest service's Kafka producer: idempotent, acks=all, bounded in-flight, and honest about Kafka.

``produce(records)`` returns once the broker acknowledged every record (so a 202 means the events are
on the topic), or raises ``KafkaUnavailable`` / ``AtCapacity``, which the HTTP layer turns into ``503``
with ``Retry-After``. Kafka counts as down when a produce does not finish within ``produce_timeout_s``
or fails; from then on requests are refused at once (no client waits seconds for a known outage) until
a background probe gets cluster metadata again. Records handed to the producer before an outage may
still be delivered after it: the client retries the request and the worker applies each ``event_id``
once, so that duplicate is harmless. A broker that is down when the service starts is waited for in the
background; the service answers 503 meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Callable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

log = logging.getLogger("kpi_monitor.ingest")

RETRY_AFTER_DOWN_S = 2  # what a client is told to wait when Kafka is down; the probe runs every second
RETRY_AFTER_BUSY_S = 1
PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 2.0


class KafkaUnavailable(Exception):
    retry_after = RETRY_AFTER_DOWN_S


class AtCapacity(Exception):
    retry_after = RETRY_AFTER_BUSY_S


def new_aiokafka_producer(bootstrap: str, request_timeout_ms: int = 30_000, **security: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        **security,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,  # a few ms of batching: concurrent requests share produce requests
        max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
        request_timeout_ms=request_timeout_ms,
        retry_backoff_ms=100,
    )


class IngestProducer:
    def __init__(self, bootstrap: str, topics: Sequence[str], *, max_in_flight: int, produce_timeout_s: float,
                 factory: Callable[[str], Any] = new_aiokafka_producer) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.max_in_flight = max_in_flight
        self.produce_timeout_s = produce_timeout_s
        self._factory = factory
        self._producer: Any = None
        self._available = False
        self._down_reason = "connecting to Kafka"
        self._in_flight = 0
        self._task: asyncio.Task | None = None
        self._closing = False

    # ------------------------------------------------------------------ state
    @property
    def available(self) -> bool:
        return self._available

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def down_reason(self) -> str:
        """Why Kafka counts as down, in words fit for any client: never the broker's address."""
        return self._down_reason

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect in the background; returns at once."""
        self._task = asyncio.create_task(self._connect(), name="ingest-kafka-connect")

    async def wait_available(self, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._available and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        return self._available

    async def stop(self) -> None:
        """Flush what is in flight (bounded by the producer's request timeout) and close."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()

    async def _connect(self) -> None:
        while not self._closing:
            producer = self._factory(self.bootstrap)
            try:
                await asyncio.wait_for(producer.start(), 10)
                for topic in self.topics:  # cache the metadata now, so a later outage does not block send()
                    await asyncio.wait_for(producer.partitions_for(topic), 10)
            except (KafkaError, OSError, asyncio.TimeoutError) as exc:
                # The reason is shown to clients and on the open /healthz: no address in it (the log has it).
                self._down_reason = f"Kafka is unreachable ({type(exc).__name__})"
                log.warning("Kafka at %s is unreachable (%s: %s); retrying", self.bootstrap, type(exc).__name__, exc)
                with contextlib.suppress(Exception):
                    await producer.stop()
                await asyncio.sleep(PROBE_INTERVAL_S)
                continue
            self._producer = producer
            self._available = True
            log.info("connected to Kafka at %s", self.bootstrap)
            return

    def _mark_down(self, reason: str) -> None:
        if self._available:
            log.warning("Kafka at %s is down (%s); answering 503 until it is back", self.bootstrap, reason)
        self._available = False
        self._down_reason = reason
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._probe(), name="ingest-kafka-probe")

    async def _probe(self) -> None:
        """Ask for cluster metadata every second until the broker answers again."""
        while not self._closing:
            await asyncio.sleep(PROBE_INTERVAL_S)
            try:
                await asyncio.wait_for(self._producer.client.fetch_all_metadata(), PROBE_TIMEOUT_S)
            except (KafkaError, OSError, asyncio.TimeoutError):
                continue
            self._available = True
            log.info("Kafka at %s answers again", self.bootstrap)
            return

    # ------------------------------------------------------------------ producing
    async def produce(self, records: Sequence[tuple[str, bytes, bytes]]) -> list[Any]:
        """Send (topic, key, value) records, in order; return their RecordMetadata once all are acknowledged."""
        if not self._available:
            raise KafkaUnavailable(self._down_reason)
        count = len(records)
        if self._in_flight + count > self.max_in_flight:
            raise AtCapacity(f"{self._in_flight} events are waiting for Kafka's acknowledgement "
                             f"(limit KPI_INGEST_MAX_IN_FLIGHT={self.max_in_flight})")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.produce_timeout_s
        self._in_flight += count
        futures: list[asyncio.Future] = []
        try:
            # send() only waits when metadata is missing or the buffer is full; a timeout cancels the
            # send() in progress, which keeps that record out of the producer.
            async with asyncio.timeout_at(deadline):
                for topic, key, value in records:
                    fut = await self._producer.send(topic, value, key=key)
                    fut.add_done_callback(self._delivered)
                    futures.append(fut)
        except (KafkaError, asyncio.TimeoutError) as exc:
            self._in_flight -= count - len(futures)  # the rest never entered the producer
            reason = f"Kafka did not take the events within {self.produce_timeout_s:g} s ({type(exc).__name__})"
            self._mark_down(reason)
            raise KafkaUnavailable(reason) from None
        except BaseException:
            self._in_flight -= count - len(futures)
            raise
        _done, pending = await asyncio.wait(futures, timeout=max(0.0, deadline - loop.time()))
        if pending:
            reason = f"Kafka did not acknowledge within {self.produce_timeout_s:g} s"
            self._mark_down(reason)
            raise KafkaUnavailable(reason)
        failed = next((f.exception() for f in futures if f.exception() is not None), None)
        if failed is not None:
            log.warning("Kafka at %s refused the events (%s: %s)", self.bootstrap, type(failed).__name__, failed)
            reason = f"Kafka refused the events ({type(failed).__name__})"
            self._mark_down(reason)
            raise KafkaUnavailable(reason)
        return [f.result() for f in futures]

    def _delivered(self, fut: asyncio.Future) -> None:
        # In-flight ends at the acknowledgement (or failure), which may come after the request gave up.
        self._in_flight -= 1
        if not fut.cancelled():
            fut.exception()  # retrieved: no "exception was never retrieved" noise for late failures
