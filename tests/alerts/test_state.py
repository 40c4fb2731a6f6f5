"""The shared alert state in real Redis: one claim per notification across workers, leases for crashed
senders, fail-open when Redis is away, and reconciliation when it is back."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from alerts.model import new_instance
from alerts.state import MemoryAlertStore, Mute, RedisAlertStore
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def app_id() -> str:
    return f"test-alerts-{uuid.uuid4().hex[:8]}"


async def _cleanup(store: RedisAlertStore) -> None:
    keys = [k async for k in store.r.scan_iter(f"{store.prefix}:*")]
    if keys:
        await store.r.delete(*keys)
    await store.close()


async def test_one_claim_wins_across_workers(shared_redis_url):
    a = RedisAlertStore.from_url(shared_redis_url, app_id())
    b = RedisAlertStore(a.r, a.prefix.split(":alerts")[0])
    try:
        results = await asyncio.gather(*(s.claim("fp:1:firing:0", owner, 60_000)
                                         for s, owner in [(a, "A"), (b, "B")] * 10))
        assert sorted(c.status for c in results).count("claimed") == 1
        winner = "A" if results[0].status == "claimed" else "B"
        await (a if winner == "A" else b).complete("fp:1:firing:0", winner)
        assert (await b.claim("fp:1:firing:0", "C", 60_000)).status == "sent"
    finally:
        await _cleanup(a)


async def test_an_expired_lease_is_claimed_again_and_flagged(shared_redis_url):
    store = RedisAlertStore.from_url(shared_redis_url, app_id())
    try:
        assert (await store.claim("k", "crashed-worker", 50)).attempt == 1
        busy = await store.claim("k", "other", 60_000)
        assert busy.status == "busy" and 0 < busy.retry_in_ms <= 50
        await asyncio.sleep(0.08)
        again = await store.claim("k", "other", 60_000)
        assert again.status == "claimed" and again.attempt == 2  # the notification will say "may repeat"
        await store.release("k", "other")  # a graceful stop hands it on without a repeat flag
        assert (await store.claim("k", "third", 60_000)).attempt == 1
    finally:
        await _cleanup(store)


async def test_instances_mutes_meta_and_activity(shared_redis_url):
    store = RedisAlertStore.from_url(shared_redis_url, app_id())
    try:
        inst = new_instance("r", "kpi", {"team": "hunters"})
        inst.state = "firing"
        await store.put_instance(inst)
        assert (await store.get_instance(inst.fingerprint)).state == "firing"
        assert [i.fingerprint for i in await store.list_instances()] == [inst.fingerprint]
        await store.set_mute(inst.fingerprint, Mute("snooze", int(__import__("time").time() * 1000) + 100))
        assert (await store.mute(inst.fingerprint)).kind == "snooze"
        await asyncio.sleep(0.15)
        assert await store.mute(inst.fingerprint) is None  # expired in Redis
        await store.set_meta(inst.fingerprint, 1, {"channel": "C1", "ts": "1.2"})
        assert await store.get_meta(inst.fingerprint, 1) == {"channel": "C1", "ts": "1.2"}
        await store.push_activity({"call|rep:hana": 10})
        await store.push_activity({"call|rep:hana": 5, "call|rep:hugo": 7})
        assert await store.pull_activity() == {"call|rep:hana": 10, "call|rep:hugo": 7}
        await store.delete_instance(inst.fingerprint)
        assert await store.get_instance(inst.fingerprint) is None
    finally:
        await _cleanup(store)


async def test_fails_open_without_redis():
    stats: dict = {}
    store = RedisAlertStore.from_url(f"redis://127.0.0.1:{free_port()}/0", app_id(), stats=stats, timeout=0.2)
    assert (await store.claim("k", "A", 60_000)).status == "claimed"
    assert stats["redis_ok"] is False and stats["redis_errors"] == 1
    await store.complete("k", "A")
    assert (await store.claim("k", "A", 60_000)).status == "sent"  # this worker's own sends stay deduplicated
    inst = new_instance("r", "kpi", {})
    await store.put_instance(inst)
    assert await store.get_instance(inst.fingerprint) == inst
    assert not await store.maybe_reconnect()
    await store.close()


async def test_reconciles_when_redis_comes_back_empty(private_redis):
    stats: dict = {}
    owned = []
    store = RedisAlertStore.from_url(private_redis.url, app_id(), stats=stats, owned=lambda: owned, retry_every=0)
    assert (await store.claim("before", "A", 60_000)).status == "claimed"
    await store.complete("before", "A")
    private_redis.stop()
    assert (await store.claim("during", "A", 60_000)).status == "claimed"
    await store.complete("during", "A")
    inst = new_instance("r", "kpi", {"team": "farmers"})
    inst.state, inst.updated_ms = "firing", 5
    owned.append(inst)
    await store.put_instance(inst)
    assert stats["redis_ok"] is False
    private_redis.start()  # a fresh, empty Redis (no persistence)
    assert await store.maybe_reconnect()
    assert stats["redis_ok"] is True
    other = RedisAlertStore(store.r, store.prefix.split(":alerts")[0])
    assert (await other.claim("before", "B", 60_000)).status == "sent"
    assert (await other.claim("during", "B", 60_000)).status == "sent"
    assert (await other.get_instance(inst.fingerprint)).state == "firing"
    await store.close()


async def test_memory_store_claims_like_redis():
    clock = [0]
    store = MemoryAlertStore(clock=lambda: clock[0])
    assert (await store.claim("k", "A", 100)).status == "claimed"
    assert (await store.claim("k", "B", 100)).status == "busy"
    clock[0] = 200
    assert (await store.claim("k", "B", 100)).attempt == 2
    await store.complete("k", "B")
    assert (await store.claim("k", "A", 100)).status == "sent"
