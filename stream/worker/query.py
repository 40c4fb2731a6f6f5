"""The one query layer: the global KPI snapshot of a window, from every worker's partials.

Each worker holds aggregates only for the partitions it owns. ``global_snapshot`` asks every worker named
in the Faust assignment for its partials reduced to the window (a few rows per label and partition),
merges them and computes the KPIs once (``stream.kpi.snapshot``). ``/kpis``, the Prometheus exporter,
the wall's trend and the KPI alert rules all read the typed ``Snapshot`` it returns; per-event work stays
local, and the cost of the global view is paid per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec

from stream.kpi.engine import TOPICS_OF_GROUP
from stream.kpi.snapshot import Snapshot, build_snapshot, merge_partials, partials_from_wire, partials_to_wire
from stream.worker.context import WorkerContext
from stream.worker.web_access import auth_headers

log = logging.getLogger("kpi_monitor.web")
PEER_TIMEOUT_S = 5.0
_pack = msgspec.msgpack.encode
_unpack = msgspec.msgpack.decode


def local_partials(ctx: WorkerContext, window: str, now_ms: int) -> dict[str, Any]:
    """This worker's window-reduced partials, for the partitions it has rebuilt and serves."""
    partitions = {
        f"{group}:{partition}": rows
        for (group, partition), rows in ctx.engine.partials(window, now_ms).items()
        if partition in ctx.built.get(group, ())
    }
    # The app id lets the asking worker check that it merges partials of its own app (see gather_partials).
    return {"app": ctx.settings.kpi_app_id, "watermark": ctx.engine.watermark(), "partitions": partitions}


def encode_partials(ctx: WorkerContext, window: str, now_ms: int) -> bytes:
    doc = local_partials(ctx, window, now_ms)
    doc["partitions"] = {pid: partials_to_wire(rows) for pid, rows in doc["partitions"].items()}
    return _pack(doc)


def decode_partials(raw: bytes) -> dict[str, Any]:
    doc = _unpack(raw)
    if not isinstance(doc, dict) or not isinstance(doc.get("partitions"), dict):
        raise ValueError("not a partials document")
    doc["partitions"] = {pid: partials_from_wire(wire) for pid, wire in doc["partitions"].items()}
    return doc


def is_worker_url(url: str) -> bool:
    """A plain ``http(s)://host:port``, as workers advertise themselves; anything else is not a worker."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname) and port is not None
            and "@" not in parts.netloc and parts.path in ("", "/") and not parts.query and not parts.fragment)


def peer_urls(ctx: WorkerContext) -> list[str]:
    """Web URLs of every worker in the current assignment, this one included.

    The URLs come from the consumer group's assignment metadata, which any member of the group writes;
    only URLs shaped like a worker's are kept (no path, query or credentials to aim the request, and our
    token, elsewhere), and gather_partials then checks that the answer names this app.
    """
    own = ctx.settings.web_url.rstrip("/")
    urls = {own}
    try:
        advertised = [str(url).rstrip("/") for url in ctx.app.router.tables_metadata()]
    except Exception:  # not assigned yet
        advertised = []
    for url in advertised:
        if is_worker_url(url):
            urls.add(url)
        else:
            log.warning("ignoring peer URL %r from the group metadata: not a worker's http://host:port", url)
    return sorted(urls)


async def gather_partials(ctx: WorkerContext, window: str, now_ms: int) -> tuple[dict[str, Any], list[str], int | None]:
    """Partials of all partitions from all workers; also the peers that did not answer and the global watermark."""
    own = ctx.settings.web_url.rstrip("/")
    results: dict[str, Any] = {}
    failed: list[str] = []
    watermark = ctx.engine.watermark()

    async def fetch(session: aiohttp.ClientSession, url: str) -> dict | None:
        if url == own:
            return local_partials(ctx, window, now_ms)  # no need to serialise to ourselves
        try:
            async with session.get(f"{url}/internal/partials", params={"window": window, "now": str(now_ms)},
                                   allow_redirects=False) as resp:
                resp.raise_for_status()
                doc = decode_partials(await resp.read())
        except Exception as exc:
            log.warning("peer %s did not answer: %s", url, exc)
            failed.append(url)
            return None
        if doc.get("app") != ctx.settings.kpi_app_id:
            # Not a worker of this app: a stale address now used by another app's worker (ports are
            # reused), or a group member that is no worker. Merging its partitions would corrupt ours.
            log.warning("peer %s answered for app %r, not %r: its partials are ignored", url, doc.get("app"),
                        ctx.settings.kpi_app_id)
            failed.append(url)
            return None
        return doc

    timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout, headers=auth_headers(ctx.settings)) as session:
        docs = await asyncio.gather(*(fetch(session, url) for url in peer_urls(ctx)))
    for doc in docs:
        if doc is None:
            continue
        if doc["watermark"] is not None and (watermark is None or doc["watermark"] > watermark):
            watermark = doc["watermark"]
        for pid, rows in doc["partitions"].items():
            results.setdefault(pid, rows)  # during a handover two workers may report one partition
    return results, failed, watermark


async def global_snapshot(ctx: WorkerContext, window: str, at_ms: int | None = None) -> Snapshot:
    """The KPIs of ``window`` over all partitions, at ``now`` (or at ``at_ms``, for a trend's past points)."""
    now_ms = ctx.engine.now(int(time.time() * 1000)) if at_ms is None else at_ms
    partials, failed, watermark = await gather_partials(ctx, window, now_ms)
    if at_ms is None and ctx.engine.config.event_clock and watermark is not None and watermark != now_ms:
        # Another worker has seen later events: the global event-time clock is ahead of ours.
        now_ms = watermark
        partials, failed, _ = await gather_partials(ctx, window, now_ms)
    snapshot = build_snapshot(
        merge_partials(partials.values()),
        window=window,
        now_ms=now_ms,
        roster=ctx.roster.current(),
        stages=ctx.settings.kpi_stages,
        timezone=ctx.settings.kpi_timezone,
    )
    expected = {f"{g}:{p}" for g in TOPICS_OF_GROUP for p in range(ctx.settings.kpi_partitions)}
    missing = sorted(expected - set(partials))
    if missing or failed:
        # Say so rather than show partial numbers as if they were the whole floor.
        snapshot.incomplete = {"missing_partitions": missing, "unreachable_workers": failed}
    return snapshot
