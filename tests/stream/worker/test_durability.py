"""The worker acks a batch of events only once every changelog record written for it is acknowledged."""

from __future__ import annotations

import asyncio


from stream.worker.durability import AckWhenDurable, count_only_worker_acks


class Acks:
    def __init__(self) -> None:
        self.acked: list[str] = []

    async def __call__(self, event: str) -> None:
        self.acked.append(event)


async def test_events_are_acked_only_after_their_records_are_acknowledged():
    acks = Acks()
    gate = AckWhenDurable(acks)
    first, second = asyncio.Future(), asyncio.Future()
    await gate.add(["e1", "e2"], [first, second])
    await asyncio.sleep(0.01)
    assert acks.acked == []  # nothing is committable while a record is in flight
    first.set_result("offset 1")
    await asyncio.sleep(0.01)
    assert acks.acked == []
    second.set_result("offset 2")
    await asyncio.sleep(0.01)
    assert acks.acked == ["e1", "e2"]


async def test_batches_stay_pipelined_and_are_acked_in_order():
    acks = Acks()
    gate = AckWhenDurable(acks)
    slow = asyncio.Future()
    await gate.add(["a"], [slow])
    await gate.add(["b"], [])  # the agent is not held back by the first batch's records...
    await asyncio.sleep(0.01)
    assert acks.acked == []  # ...but a later batch is never acked before an earlier one
    slow.set_result(None)
    await asyncio.sleep(0.01)
    assert acks.acked == ["a", "b"]


async def test_a_batch_that_wrote_nothing_is_acked_at_once():
    acks = Acks()
    await AckWhenDurable(acks).add(["a"], [])
    await asyncio.sleep(0.01)
    assert acks.acked == ["a"]


async def test_the_pipeline_is_bounded():
    acks = Acks()
    gate = AckWhenDurable(acks, max_pending=2)
    futures = [asyncio.Future() for _ in range(3)]
    await gate.add(["a"], [futures[0]])
    await gate.add(["b"], [futures[1]])
    third = asyncio.ensure_future(gate.add(["c"], [futures[2]]))
    await asyncio.sleep(0.01)
    assert not third.done()  # a third batch waits for the oldest
    futures[0].set_result(None)
    await asyncio.wait_for(third, 1)
    assert acks.acked == ["a"]


async def test_a_failed_changelog_write_restarts_the_worker_instead_of_acking():
    restarts: list[str] = []
    acks = Acks()
    gate = AckWhenDurable(acks, on_failure=restarts.append)
    failed = asyncio.Future()
    failed.set_exception(OSError("broker gone"))
    await gate.add(["a"], [failed])
    await asyncio.sleep(0.01)
    assert acks.acked == [] and len(restarts) == 1 and "broker gone" in restarts[0]


class FaustConsumer:
    """The part of Faust's consumer the ack filter touches: ``ack`` records, ``unacked`` tracks."""

    def __init__(self) -> None:
        self.recorded: list[str] = []
        self.unacked = {"fetched-before-rebalance", "applied"}

    def ack(self, message: str) -> bool:
        self.recorded.append(message)
        self.unacked.discard(message)
        return True


async def test_only_the_workers_acks_count_and_a_skipped_message_does_not_block_a_rebalance():
    consumer = FaustConsumer()
    count_only_worker_acks(consumer)
    # Faust's stream acks a message it skips (fetched in the previous generation): it must not count.
    assert consumer.ack("fetched-before-rebalance") is False
    assert consumer.recorded == [] and "fetched-before-rebalance" not in consumer.unacked
    async def stream_ack(event: str) -> None:  # Stream.ack: the event's message, acked by the consumer
        consumer.ack(event)

    gate = AckWhenDurable(stream_ack)
    await gate.add(["applied"], [])
    await asyncio.sleep(0.01)
    assert consumer.recorded == ["applied"] and not consumer.unacked


async def test_events_fetched_while_a_recovery_completes_are_held_not_cleared():
    """Faust's end of recovery: our on_recover callback, then the seek (events keep arriving), then
    ``flow_control.resume()``, which clears every stream queue. Held from the callback on, the fetcher
    waits with its message instead of queueing it, so nothing is thrown away (real Faust flow control)."""
    from types import SimpleNamespace

    from mode.utils.queues import FlowControlEvent, FlowControlQueue

    from stream.worker.durability import hold_streams_until_recovery_completes

    async def end_of_recovery(hold: bool) -> list[str]:
        app = SimpleNamespace(flow_control=FlowControlEvent(initially_suspended=False))
        queue = FlowControlQueue(flow_control=app.flow_control, clear_on_resume=True)

        async def fetcher() -> None:  # faust.transport.conductor: acquire flow control, then deliver
            for offset in ("64", "65"):
                await app.flow_control.acquire()
                await queue.put(offset)

        if hold:
            hold_streams_until_recovery_completes(app)  # the on_recover callback
        fetching = asyncio.ensure_future(fetcher())
        await asyncio.sleep(0.01)  # the seek: a round trip to the broker, while the fetcher runs
        app.flow_control.resume()  # Faust: "Resume stream partitions" (clears the queues)
        await asyncio.wait_for(fetching, 1)
        return [queue.get_nowait() for _ in range(queue.qsize())]

    assert await end_of_recovery(hold=False) == []  # both events were queued, then cleared
    assert await end_of_recovery(hold=True) == ["64", "65"]
