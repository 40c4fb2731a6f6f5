"""An event's offset is committed only after it was applied and its changelog records acknowledged.

Faust commits the offsets of acked messages. Two of its acks would let a commit run ahead of the state:

- its flush before a commit gives up after 0.1 s without progress (``ProducerBuffer.flush_atmost``),
  so on a slow broker or a loaded machine a commit can cover events whose entity writes are still
  queued in the worker;
- its stream *acks a message it skips*: one fetched before a rebalance and dequeued after it, or while
  the flow is paused. The message is fetched again and applied later, but its offset already counts as
  done, and a commit in between covers an event that is nowhere yet.

A kill -9 then loses those events for good: the changelog never gets them and the group never
redelivers them. So only the worker's own acks count, and it acks a batch only once every changelog
record its processing wrote is acknowledged (README, "Guarantees"; tests/integration/test_reliability.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NoReturn

import faust

from stream.kpi.engine import archive_key, merge_changelog_record

log = logging.getLogger("kpi_monitor.worker")

# "Restart me": the supervisor (deploy/supervise.sh, docker-compose's restart policy) starts the worker again.
RESTART_EXIT_CODE = 3


def exit_for_restart(why: str) -> NoReturn:
    """Exit at once with RESTART_EXIT_CODE; a clean stop could hang on the very thing that is stuck."""
    log.error("%s; exiting (code %d) so the supervisor restarts this worker", why, RESTART_EXIT_CODE)
    logging.shutdown()
    os._exit(RESTART_EXIT_CODE)


class ChangelogTable(faust.Table):
    """A Faust table of entities that keeps the future of every changelog record it sends until
    ``take_written``, and recovers from its changelog whatever order the records arrived in
    (``stream.kpi.engine.merge_changelog_record``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.written: list[asyncio.Future] = []
        super().__init__(*args, **kwargs)

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        future = super().send_changelog(*args, **kwargs)
        self.written.append(future)
        return future

    def take_written(self) -> list[asyncio.Future]:
        written, self.written = self.written, []
        return written

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        batch = list(batch)
        merged: dict[bytes, bytes | None] = {}  # this batch's results, ahead of the store

        def current(key: bytes) -> bytes | None:
            return merged[key] if key in merged else self.data.get(key)

        for event in batch:
            message = event.message
            key = message.key
            value = merge_changelog_record(
                key.decode(), current(key), message.value,
                lambda partition: current(archive_key(partition).encode()),
            )
            message.value = event.value = merged[key] = value
        super().apply_changelog_batch(batch)


_WORKER_ACK: contextvars.ContextVar[bool] = contextvars.ContextVar("kpi_monitor_worker_ack", default=False)


def count_only_worker_acks(consumer: Any) -> None:
    """Make ``consumer`` record the acks made by ``AckWhenDurable`` and ignore every other.

    With the agent acking its events itself (``noack_take``), the only other acks Faust makes are those
    of messages its stream skipped; ignoring them keeps their offsets uncommitted until the message is
    fetched again and applied. A skipped message still leaves the consumer's unacked set, or a rebalance
    would wait for it forever.
    """
    faust_ack = consumer.ack

    def ack(message: Any) -> bool:
        if _WORKER_ACK.get():
            return faust_ack(message)
        consumer.unacked.discard(message)
        return False

    consumer.ack = ack


def hold_streams_until_recovery_completes(app: Any) -> None:
    """Keep source events out of the agents' queues until Faust has finished its recovery.

    Call from an ``on_recover`` callback. Faust then resumes fetching, awaits ``perform_seek`` (a broker
    round trip) and only then calls ``app.flow_control.resume()``, which *clears every stream queue*:
    events fetched during the seek were thrown away while the later ones were applied (faust-streaming
    #596). The commit stayed behind them, but the next owner read them after their partition's later
    events, and one more than the too-late limit behind those was dead-lettered, lost for good.
    Suspended, the fetcher waits in ``flow_control.acquire()`` with its message instead; Faust's
    ``resume()`` lifts the hold (or the next recovery's, if a rebalance cuts this one short).
    """
    app.flow_control.suspend()


async def rewind_partitions_without_commit(consumer: Any, partitions: Iterable[Any]) -> list[Any]:
    """Seek the source partitions that have no committed offset back to the start of their log.

    Faust re-seeks partitions to their committed offsets after each recovery, and a partition without
    one not at all (aiokafka's ``seek_to_committed`` skips it). Records of such a partition fetched
    before the recovery completed, and skipped by the stream meanwhile (flow paused, or an older
    generation), are then never fetched again: a worker taking over from a peer that died before its
    first commit started at the end of the log and missed every event in between.
    """
    from aiokafka import TopicPartition

    thread = consumer._thread
    client = thread._ensure_consumer()
    uncommitted = []
    for tp in partitions:
        if await thread.call_thread(client.committed, TopicPartition(tp.topic, tp.partition)) is None:
            uncommitted.append(tp)
    if uncommitted:
        await consumer.seek_wait({tp: 0 for tp in uncommitted})
    return uncommitted


class AckWhenDurable:
    """Acks each batch of events once the records written while processing it are acknowledged.

    Batches stay pipelined: the agent goes on with the next batch while the previous ones' records are
    in flight; at most ``max_pending`` batches wait, which bounds memory when the broker is slow. Batches
    are acked in the order they were processed, never a later one first: Faust commits past an unacked
    offset at the head of a partition's acks when nothing was committed there yet, or when it is a single
    offset (``Consumer._new_offset``).
    """

    def __init__(self, ack: Callable[[Any], Awaitable[Any]], max_pending: int = 8,
                 on_failure: Callable[[str], Any] = exit_for_restart) -> None:
        self.ack = ack
        self.max_pending = max_pending
        self.on_failure = on_failure
        self.pending: deque[asyncio.Future] = deque()

    async def add(self, events: list[Any], written: Iterable[asyncio.Future]) -> None:
        previous = self.pending[-1] if self.pending else None
        self.pending.append(asyncio.ensure_future(self._ack_when_acknowledged(list(events), list(written), previous)))
        while self.pending and (self.pending[0].done() or len(self.pending) > self.max_pending):
            await self.pending.popleft()

    async def _ack_when_acknowledged(self, events: list[Any], written: list[asyncio.Future],
                                     previous: asyncio.Future | None) -> None:
        if written:
            try:
                await asyncio.gather(*written)
            except Exception as exc:
                # Acking now would commit events whose state never reached the changelog. Restarting
                # redelivers them from the last commit, which is what at-least-once needs.
                self.on_failure(f"a changelog write failed ({exc!r}); its events will be redelivered")
                return
        if previous is not None:
            await asyncio.shield(previous)
        _WORKER_ACK.set(True)  # this task's own context: only these acks count (count_only_worker_acks)
        for event in events:
            await self.ack(event)
