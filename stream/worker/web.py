"""HTTP views of the worker: ``/kpis`` (global numbers, stream.worker.query), ``/healthz``, ``/metrics``, the
wall page (stream.worker.wall), and the internal ``/internal/partials`` that workers fetch from each other
for the global view. stream.worker.web_access decides who may ask.
"""

from __future__ import annotations

import time

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream.kpi.windows import WINDOWS
from stream.worker.wall import views as wall
from stream.worker.context import WorkerContext, is_consuming
from stream.worker.metrics import refresh_before_scrape
from stream.worker.query import encode_partials, global_snapshot


def register_views(ctx: WorkerContext) -> None:
    app = ctx.app

    @app.page("/kpis")
    class KpisView(View):
        async def get(self, request: Request) -> Response:
            window = request.query.get("window", "1h")
            if window not in WINDOWS:
                return self.json({"error": f"unknown window {window!r}; use one of {', '.join(WINDOWS)}"}, status=400)
            return self.json((await global_snapshot(ctx, window)).document())

    @app.page("/healthz")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            ok, state = is_consuming(ctx)
            body = {"status": "ok" if ok else "unavailable", "state": state, "partitions": {g: sorted(p) for g, p in ctx.built.items()}}
            return self.json(body, status=200 if ok else 503)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            # The collectors are synchronous; what needs I/O (the global KPI snapshots on the leader, the
            # partitions' end offsets) is fetched here first and cached for them (stream.worker.metrics).
            await refresh_before_scrape(ctx)
            return self.bytes(generate_latest(ctx.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/internal/partials")
    class PartialsView(View):
        async def get(self, request: Request) -> Response:
            window = request.query.get("window", "1h")
            if window not in WINDOWS:
                return self.json({"error": "unknown window"}, status=400)
            now = request.query.get("now")
            if now is None:
                now_ms = ctx.engine.now(int(time.time() * 1000))
            elif now.isascii() and now.isdigit() and len(now) <= 16:
                now_ms = int(now)
            else:
                return self.json({"error": f"`now` must be milliseconds since the epoch, got {now[:40]!r}"}, status=400)
            return self.bytes(encode_partials(ctx, window, now_ms), content_type="application/msgpack")

    wall.register(ctx)  # /wall: the sales floor wall page and its JSON (stream/worker/wall)
