"""Shared alert state: instances, notification claims, mutes (ack/snooze), Slack message refs, activity.

``RedisAlertStore`` keeps it in Redis under ``<KPI_APP_ID>:alerts:…`` so every worker sees the same
state. Exactly-once notification across workers rests on one claim per notification key
(``fingerprint:episode:kind:seq``), taken by a Lua script that reads Redis' own clock:

    absent                      -> claimed (attempt 1), status "sending", lease = now + lease_ms
    "sent"                      -> someone delivered it: skip
    "sending", lease not expired -> busy (even for its owner): ask again after the lease
    "sending", lease expired    -> claimed again, attempt n+1: the notification says it may repeat

After every sink finished, the claim becomes "sent". A hard crash between sending and recording leaves
"sending" behind; the next owner re-sends after the lease with the same key, flagged as a possible repeat
(at-least-once). A graceful stop releases the claims of notifications it could not deliver.

When Redis fails, the store fails open: the same operations run on an in-process ``MemoryAlertStore``
(which also mirrors everything read from or written to Redis), a metric says so, and every second the
store tries Redis again; when it answers, the local state is pushed back (``reconcile``) before anything
new is claimed, so what was sent during the outage is not sent again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from alerts.model import AlertInstance, dumps, loads

log = logging.getLogger("kpi_monitor.alerts.state")
CLAIM_TTL_MS = 8 * 86400 * 1000  # longer than a lead can wait (7 d) before it is stale
META_TTL_MS = 30 * 86400 * 1000


@dataclass(frozen=True)
class Claim:
    status: str  # claimed | sent | busy
    attempt: int = 0  # claimed: 1 the first time; more means an earlier sender may have sent it
    retry_in_ms: int = 0  # busy: when the other owner's lease ends


@dataclass(frozen=True)
class Mute:
    kind: str  # ack | snooze
    until_ms: int | None  # snooze end (wall clock); None: until resolved
    by: str = ""
    at_ms: int = 0


class AlertStore(Protocol):
    ok: bool

    async def get_instance(self, fp: str) -> AlertInstance | None: ...
    async def put_instance(self, inst: AlertInstance) -> None: ...
    async def delete_instance(self, fp: str) -> None: ...
    async def list_instances(self) -> list[AlertInstance]: ...
    async def claim(self, key: str, owner: str, lease_ms: int) -> Claim: ...
    async def renew(self, key: str, owner: str, lease_ms: int) -> None: ...
    async def complete(self, key: str, owner: str) -> None: ...
    async def release(self, key: str, owner: str) -> None: ...
    async def mute(self, fp: str) -> Mute | None: ...
    async def set_mute(self, fp: str, mute: Mute) -> None: ...
    async def clear_mute(self, fp: str) -> None: ...
    async def get_meta(self, fp: str, episode: int) -> dict[str, str] | None: ...
    async def set_meta(self, fp: str, episode: int, meta: dict[str, str]) -> None: ...
    async def push_activity(self, values: dict[str, int]) -> None: ...
    async def pull_activity(self) -> dict[str, int]: ...
    async def maybe_reconnect(self) -> bool: ...
    async def close(self) -> None: ...


def _wall_ms() -> int:
    return int(time.time() * 1000)


class MemoryAlertStore:
    """In-process state: the store of the backtest, and the fallback (and mirror) of the Redis store."""

    ok = True

    def __init__(self, clock: Callable[[], int] = _wall_ms) -> None:
        self.clock = clock
        self.instances: dict[str, AlertInstance] = {}
        self.claims: dict[str, dict[str, Any]] = {}  # key -> status, owner, lease_until, attempts, at
        self.mutes: dict[str, Mute] = {}
        self.meta: dict[tuple[str, int], dict[str, str]] = {}
        self.activity: dict[str, int] = {}

    async def get_instance(self, fp: str) -> AlertInstance | None:
        return self.instances.get(fp)

    async def put_instance(self, inst: AlertInstance) -> None:
        self.instances[inst.fingerprint] = inst

    async def delete_instance(self, fp: str) -> None:
        self.instances.pop(fp, None)

    async def list_instances(self) -> list[AlertInstance]:
        return list(self.instances.values())

    async def claim(self, key: str, owner: str, lease_ms: int) -> Claim:
        now = self.clock()
        self._prune(now)
        c = self.claims.get(key)
        if c is None:
            self.claims[key] = {"status": "sending", "owner": owner, "lease_until": now + lease_ms, "attempts": 1, "at": now}
            return Claim("claimed", 1)
        if c["status"] == "sent":
            return Claim("sent")
        if c["lease_until"] > now:
            return Claim("busy", retry_in_ms=c["lease_until"] - now)
        c.update(owner=owner, lease_until=now + lease_ms, attempts=c["attempts"] + 1)
        return Claim("claimed", c["attempts"])

    def note_claim(self, key: str, status: str, owner: str, lease_until: int = 0, attempts: int = 1) -> None:
        self.claims[key] = {"status": status, "owner": owner, "lease_until": lease_until, "attempts": attempts, "at": self.clock()}

    async def renew(self, key: str, owner: str, lease_ms: int) -> None:
        c = self.claims.get(key)
        if c is not None and c["owner"] == owner and c["status"] == "sending":
            c["lease_until"] = self.clock() + lease_ms

    async def complete(self, key: str, owner: str) -> None:
        c = self.claims.setdefault(key, {"owner": owner, "lease_until": 0, "attempts": 1, "at": self.clock()})
        c.update(status="sent", owner=owner)

    async def release(self, key: str, owner: str) -> None:
        c = self.claims.get(key)
        if c is not None and c["owner"] == owner and c["status"] == "sending":
            del self.claims[key]

    async def mute(self, fp: str) -> Mute | None:
        m = self.mutes.get(fp)
        if m is not None and m.until_ms is not None and m.until_ms <= self.clock():
            del self.mutes[fp]
            return None
        return m

    async def set_mute(self, fp: str, mute: Mute) -> None:
        self.mutes[fp] = mute

    async def clear_mute(self, fp: str) -> None:
        self.mutes.pop(fp, None)

    async def get_meta(self, fp: str, episode: int) -> dict[str, str] | None:
        return self.meta.get((fp, episode))

    async def set_meta(self, fp: str, episode: int, meta: dict[str, str]) -> None:
        self.meta[(fp, episode)] = dict(meta)

    async def push_activity(self, values: dict[str, int]) -> None:
        for name, ts in values.items():
            if ts > self.activity.get(name, -(2**62)):
                self.activity[name] = ts

    async def pull_activity(self) -> dict[str, int]:
        return dict(self.activity)

    async def maybe_reconnect(self) -> bool:
        return True

    async def close(self) -> None:
        pass

    def _prune(self, now: int) -> None:
        if len(self.claims) > 50_000:
            cutoff = now - CLAIM_TTL_MS
            for key in [k for k, c in self.claims.items() if c["at"] < cutoff or c["status"] == "sent"][:25_000]:
                del self.claims[key]


_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  redis.call('HSET', KEYS[1], 'status', 'sending', 'owner', ARGV[1], 'lease_until', now + tonumber(ARGV[2]), 'attempts', 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'claimed', 1, 0}
end
if status == 'sent' then return {'sent', 0, 0} end
local lease = tonumber(redis.call('HGET', KEYS[1], 'lease_until'))
if lease > now then return {'busy', 0, lease - now} end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'lease_until', now + tonumber(ARGV[2]))
return {'claimed', attempts, 0}
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] and redis.call('HGET', KEYS[1], 'status') == 'sending' then
  redis.call('HSET', KEYS[1], 'lease_until', now + tonumber(ARGV[2]))
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] and redis.call('HGET', KEYS[1], 'status') == 'sending' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Mark sent; 'dup' when another owner had marked it sent too (both sent it while Redis was away).
_COMPLETE = """
local status = redis.call('HGET', KEYS[1], 'status')
local owner = redis.call('HGET', KEYS[1], 'owner')
redis.call('HSET', KEYS[1], 'status', 'sent', 'owner', ARGV[1])
if not status then redis.call('HSET', KEYS[1], 'attempts', 1, 'lease_until', 0) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if status == 'sent' and owner ~= ARGV[1] then return 'dup' end
return 'ok'
"""

_MAX = """
for i = 1, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1e18')
  if tonumber(ARGV[i + 1]) > cur then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
"""


class RedisUnavailable(Exception):
    pass


class RedisAlertStore:
    def __init__(
        self,
        client: Any,
        app_id: str,
        *,
        stats: dict[str, Any] | None = None,
        timeout: float = 0.5,
        retry_every: float = 1.0,
        owned: Callable[[], Iterable[AlertInstance]] = lambda: (),
        redact: Callable[[Any], str] = str,
    ) -> None:
        self.r = client
        self.prefix = f"{app_id}:alerts"
        self.local = MemoryAlertStore()
        self.stats = stats if stats is not None else {}
        self.timeout = timeout
        self.retry_every = retry_every
        self.owned = owned  # the instances this worker evaluates: pushed back on reconcile
        self.redact = redact
        self.ok = True
        self._last_try = 0.0
        self._scripts = {name: client.register_script(src) for name, src in
                         (("claim", _CLAIM), ("renew", _RENEW), ("release", _RELEASE), ("complete", _COMPLETE), ("max", _MAX))}
        self.stats["redis_ok"] = True

    @classmethod
    def from_url(cls, url: str, app_id: str, **kwargs: Any) -> RedisAlertStore:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        timeout = kwargs.get("timeout", 0.5)
        client = aioredis.from_url(
            url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # fail fast: the store falls back, and retries on its own schedule
        )
        return cls(client, app_id, **kwargs)

    def key(self, *parts: Any) -> str:
        return ":".join([self.prefix, *map(str, parts)])

    # --- failure handling -----------------------------------------------------------------------------
    async def _redis(self, op: Callable[[], Any]) -> Any:
        """Run a Redis operation; raises RedisUnavailable (after marking the store down) when it fails."""
        if not self.ok:
            raise RedisUnavailable
        try:
            return await asyncio.wait_for(op(), self.timeout * 2)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # redis errors, OSError, timeouts: all mean "not now"
            self._down(exc)
            raise RedisUnavailable from None

    def _down(self, exc: BaseException) -> None:
        if self.ok:
            log.error("alert state: Redis unavailable (%s: %s); alerting from in-process state until it is back",
                      type(exc).__name__, self.redact(exc))
        self.ok = False
        self._last_try = time.monotonic()
        self.stats["redis_ok"] = False
        self.stats["redis_errors"] = self.stats.get("redis_errors", 0) + 1

    async def maybe_reconnect(self) -> bool:
        if self.ok:
            return True
        if time.monotonic() - self._last_try < self.retry_every:
            return False
        self._last_try = time.monotonic()
        try:
            await asyncio.wait_for(self.r.ping(), self.timeout * 2)
            await asyncio.wait_for(self.reconcile(), 30)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("alert state: Redis still unavailable: %s", self.redact(exc))
            return False
        self.ok = True
        self.stats["redis_ok"] = True
        log.warning("alert state: Redis is back; in-process state reconciled")
        return True

    async def reconcile(self) -> None:
        """Push what this worker knows: claims (sent ones first), owned instances, activity."""
        r = self.r
        owner_dups = 0
        for key, c in list(self.local.claims.items()):
            if c["status"] == "sent":
                if await self._scripts["complete"](keys=[self.key("n", key)], args=[c["owner"], CLAIM_TTL_MS]) == "dup":
                    owner_dups += 1
            else:
                # Still sending: take the claim again (or learn that another worker finished it).
                await self._scripts["claim"](keys=[self.key("n", key)], args=[c["owner"], max(1, c["lease_until"] - _wall_ms()), CLAIM_TTL_MS])
        if owner_dups:
            self.stats["duplicates_reconciled"] = self.stats.get("duplicates_reconciled", 0) + owner_dups
            log.warning("alert state: %d notifications were sent by two workers while Redis was away", owner_dups)
        for inst in list(self.owned()):
            remote = await r.hget(self.key("instances"), inst.fingerprint)
            if remote is None or loads(remote).updated_ms <= inst.updated_ms:
                await r.hset(self.key("instances"), inst.fingerprint, dumps(inst).decode())
        for fp in [fp for fp, inst in self.local.instances.items() if inst.state == "deleted"]:
            await r.hdel(self.key("instances"), fp)
            self.local.instances.pop(fp, None)
        if self.local.activity:
            await self._push_activity(self.local.activity)
        for (fp, episode), meta in list(self.local.meta.items()):
            await r.hset(self.key("meta", fp, episode), mapping=meta)
            await r.pexpire(self.key("meta", fp, episode), META_TTL_MS)

    # --- instances ---------------------------------------------------------------------------------------
    async def get_instance(self, fp: str) -> AlertInstance | None:
        try:
            raw = await self._redis(lambda: self.r.hget(self.key("instances"), fp))
        except RedisUnavailable:
            inst = self.local.instances.get(fp)
            return None if inst is None or inst.state == "deleted" else inst
        inst = loads(raw) if raw else None
        if inst is not None:
            self.local.instances[fp] = inst
        return inst

    async def put_instance(self, inst: AlertInstance) -> None:
        self.local.instances[inst.fingerprint] = inst
        try:
            await self._redis(lambda: self.r.hset(self.key("instances"), inst.fingerprint, dumps(inst).decode()))
        except RedisUnavailable:
            pass

    async def delete_instance(self, fp: str) -> None:
        try:
            await self._redis(lambda: self.r.hdel(self.key("instances"), fp))
            self.local.instances.pop(fp, None)
        except RedisUnavailable:
            inst = self.local.instances.get(fp)
            if inst is not None:  # remembered as a tombstone, deleted in Redis on reconcile
                self.local.instances[fp] = AlertInstance(fingerprint=fp, rule=inst.rule, rule_type=inst.rule_type,
                                                         scope=inst.scope, state="deleted")

    async def list_instances(self) -> list[AlertInstance]:
        try:
            raw = await self._redis(lambda: self.r.hgetall(self.key("instances")))
        except RedisUnavailable:
            return [i for i in self.local.instances.values() if i.state != "deleted"]
        return [loads(v) for v in raw.values()]

    # --- claims ------------------------------------------------------------------------------------------
    async def claim(self, key: str, owner: str, lease_ms: int) -> Claim:
        try:
            status, attempt, retry = await self._redis(
                lambda: self._scripts["claim"](keys=[self.key("n", key)], args=[owner, lease_ms, CLAIM_TTL_MS]))
        except RedisUnavailable:
            return await self.local.claim(key, owner, lease_ms)
        claim = Claim(str(status), int(attempt), int(retry))
        if claim.status == "claimed":
            self.local.note_claim(key, "sending", owner, _wall_ms() + lease_ms, claim.attempt)
        elif claim.status == "sent":
            self.local.note_claim(key, "sent", "")
        return claim

    async def renew(self, key: str, owner: str, lease_ms: int) -> None:
        await self.local.renew(key, owner, lease_ms)
        try:
            await self._redis(lambda: self._scripts["renew"](keys=[self.key("n", key)], args=[owner, lease_ms]))
        except RedisUnavailable:
            pass

    async def complete(self, key: str, owner: str) -> None:
        await self.local.complete(key, owner)
        try:
            await self._redis(lambda: self._scripts["complete"](keys=[self.key("n", key)], args=[owner, CLAIM_TTL_MS]))
        except RedisUnavailable:
            pass

    async def release(self, key: str, owner: str) -> None:
        await self.local.release(key, owner)
        try:
            await self._redis(lambda: self._scripts["release"](keys=[self.key("n", key)], args=[owner]))
        except RedisUnavailable:
            pass

    # --- ack / snooze ------------------------------------------------------------------------------------
    async def mute(self, fp: str) -> Mute | None:
        try:
            raw = await self._redis(lambda: self.r.get(self.key("mute", fp)))
        except RedisUnavailable:
            return await self.local.mute(fp)
        if raw is None:
            self.local.mutes.pop(fp, None)
            return None
        mute = Mute(**json.loads(raw))
        self.local.mutes[fp] = mute
        return mute

    async def set_mute(self, fp: str, mute: Mute) -> None:
        await self.local.set_mute(fp, mute)
        raw = json.dumps(mute.__dict__)
        if mute.until_ms is not None:
            px = max(1, mute.until_ms - _wall_ms())
            await self._redis(lambda: self.r.set(self.key("mute", fp), raw, px=px))
        else:
            await self._redis(lambda: self.r.set(self.key("mute", fp), raw))

    async def clear_mute(self, fp: str) -> None:
        await self.local.clear_mute(fp)
        try:
            await self._redis(lambda: self.r.delete(self.key("mute", fp)))
        except RedisUnavailable:
            pass

    # --- Slack message refs ---------------------------------------------------------------------------
    async def get_meta(self, fp: str, episode: int) -> dict[str, str] | None:
        try:
            raw = await self._redis(lambda: self.r.hgetall(self.key("meta", fp, episode)))
        except RedisUnavailable:
            return await self.local.get_meta(fp, episode)
        return raw or await self.local.get_meta(fp, episode)

    async def set_meta(self, fp: str, episode: int, meta: dict[str, str]) -> None:
        await self.local.set_meta(fp, episode, meta)

        async def write() -> None:
            await self.r.hset(self.key("meta", fp, episode), mapping=meta)
            await self.r.pexpire(self.key("meta", fp, episode), META_TTL_MS)

        try:
            await self._redis(write)
        except RedisUnavailable:
            pass

    # --- activity (last call / touch per rep and team, merged across workers) --------------------------
    async def push_activity(self, values: dict[str, int]) -> None:
        await self.local.push_activity(values)
        if values:
            try:
                await self._redis(lambda: self._push_activity(values))
            except RedisUnavailable:
                pass

    async def _push_activity(self, values: dict[str, int]) -> None:
        args: list[Any] = []
        for name, ts in values.items():
            args += [name, ts]
        await self._scripts["max"](keys=[self.key("activity")], args=args)

    async def pull_activity(self) -> dict[str, int]:
        try:
            raw = await self._redis(lambda: self.r.hgetall(self.key("activity")))
        except RedisUnavailable:
            return await self.local.pull_activity()
        values = {k: int(float(v)) for k, v in raw.items()}
        await self.local.push_activity(values)
        return values

    async def close(self) -> None:
        try:
            await self.r.aclose()
        except Exception:
            pass
