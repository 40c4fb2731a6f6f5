"""The wall's HTTP views: the page and its static files, ``/wall/status`` and ``/wall/trend``.

``/wall/status``: the freshness of the whole pipeline and the day's revenue target. Freshness is global:
every worker reports when it last processed a message and the newest event time it applied
(``/wall/status?local=1``), and the wall takes the latest of each over the workers that answered — the
pipeline is live if any worker is moving (a worker with quiet partitions is not a stale floor). A worker
that does not answer is listed, as ``/kpis`` lists it in ``incomplete``.

``/wall/trend``: the rolling-hour median and p90 response time every ``TREND.step_minutes`` over the last
``TREND.hours``, computed from the workers' minute buckets (the same partials ``/kpis?window=1h`` merges,
at earlier ``now``s), so a wall opened a minute ago shows the day's trend at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timezone
from importlib import resources
from typing import TYPE_CHECKING, Any

import aiohttp
from faust.web import Request, Response, View

from stream.kpi.targets import revenue_targets
from stream.worker.query import global_snapshot, peer_urls
from stream.worker.wall import ASSETS
from stream.worker.wall.tiles import TREND, page_config

if TYPE_CHECKING:
    from stream.worker.context import WorkerContext

log = logging.getLogger("kpi_monitor.wall")
PEER_TIMEOUT_S = 3.0
CONFIG_MARK = "/*WALL_CONFIG*/null"
STATIC = {name: resources.files("stream.worker.wall").joinpath("static", name).read_text() for name in
          ("wall.html", "wall.css", "wall.js")}


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render_page(config: dict[str, Any]) -> str:
    # The configuration sits in a <script>; "</" must not end it early.
    return STATIC["wall.html"].replace(CONFIG_MARK, json.dumps(config).replace("</", "<\\/"))


def local_freshness(ctx: WorkerContext) -> dict[str, Any]:
    return {"last_event_wall": ctx.stats.last_event_wall, "max_event_ts_ms": ctx.stats.max_event_ts_ms}


async def global_freshness(ctx: WorkerContext, authorization: str | None) -> dict[str, Any]:
    """The latest processing time and newest event time over all workers, as ages at the wall clock."""
    own = ctx.settings.web_url.rstrip("/")
    headers = {"Authorization": authorization} if authorization else {}
    unreachable: list[str] = []

    async def fetch(session: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
        if url == own:
            return local_freshness(ctx)
        try:
            async with session.get(f"{url}/wall/status", params={"local": "1"}, headers=headers) as resp:
                resp.raise_for_status()
                return await resp.json()
        except Exception as exc:
            log.warning("peer %s did not answer /wall/status: %s", url, exc)
            unreachable.append(url)
            return None

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)) as session:
        docs = [d for d in await asyncio.gather(*(fetch(session, u) for u in peer_urls(ctx))) if d]
    now = time.time()
    last = max((d["last_event_wall"] for d in docs if d.get("last_event_wall") is not None), default=None)
    newest = max((d["max_event_ts_ms"] for d in docs if d.get("max_event_ts_ms") is not None), default=None)
    return {
        "seconds_since_last_event": None if last is None else max(0.0, now - last),
        "event_time_lag_seconds": None if newest is None else max(0.0, now - newest / 1000),
        "last_event_at": None if last is None else _iso(last * 1000),
        "newest_event_at": None if newest is None else _iso(newest),
        "workers": len(docs),
        "unreachable_workers": sorted(unreachable),
    }


def daily_target(ctx: WorkerContext, team: str | None, now_ms: int) -> dict[str, float] | None:
    targets = revenue_targets(ctx.roster.current(), datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc),
                              ctx.settings.kpi_timezone)
    found = targets.get(("team", team, "") if team else ("overall", "", ""))
    return None if found is None else {"day": found[0], "month": found[1]}


async def trend(ctx: WorkerContext, team: str | None) -> dict[str, Any]:
    now_ms = ctx.engine.now(int(time.time() * 1000))
    step_ms = TREND.step_minutes * 60_000
    moments = [now_ms - i * step_ms for i in range(TREND.hours * 60 // TREND.step_minutes, -1, -1)]

    async def point(at_ms: int) -> dict[str, Any]:
        snapshot = await global_snapshot(ctx, TREND.window, at_ms=at_ms)
        values = snapshot.values
        scope = values["overall"] if team is None else values["teams"].get(team) or {}
        return {"at": _iso(at_ms), **{label: scope.get(key) for label, key in TREND.keys},
                "complete": not snapshot.incomplete}

    return {"as_of": _iso(now_ms), "window": TREND.window, "sla_seconds": ctx.settings.kpi_sla_seconds,
            "points": list(await asyncio.gather(*(point(at) for at in moments)))}


def register(ctx: WorkerContext) -> None:
    app = ctx.app
    settings = ctx.settings

    def team_of(request: Request) -> str | None:
        return request.query.get("team") or None

    @app.page("/wall")
    class WallPage(View):
        async def get(self, request: Request) -> Response:
            team = team_of(request)
            roster = ctx.roster.current()
            if team is not None and roster.team(team) is None:
                known = ", ".join(sorted(t.name for t in roster.teams))
                return self.json({"error": f"unknown team {team!r}; the roster has: {known}"}, status=404)
            reps = None if team is None else sorted(r.rep_id for r in roster.reps if r.team == team)
            config = page_config(settings.kpi_sla_seconds, settings.kpi_currency, team, reps)
            return self.html(render_page(config), headers={"Cache-Control": "no-store"})

    for name, content_type in ASSETS.items():
        def static_view(name: str = name, content_type: str = content_type) -> type[View]:
            class Static(View):
                async def get(self, request: Request) -> Response:
                    return self.text(STATIC[name], content_type=content_type)

            Static.__name__ = f"WallStatic_{name.replace('.', '_')}"
            return Static

        app.page(f"/wall/{name}", name=f"wall_{name}")(static_view())

    @app.page("/wall/status")
    class WallStatus(View):
        async def get(self, request: Request) -> Response:
            if request.query.get("local"):
                return self.json(local_freshness(ctx))
            team = team_of(request)
            now_ms = int(time.time() * 1000)
            freshness = await global_freshness(ctx, request.headers.get("Authorization"))
            return self.json({"as_of": _iso(now_ms), "freshness": freshness,
                              "target": daily_target(ctx, team, ctx.engine.now(now_ms))})

    @app.page("/wall/trend")
    class WallTrend(View):
        async def get(self, request: Request) -> Response:
            return self.json(await trend(ctx, team_of(request)))
