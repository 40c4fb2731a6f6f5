"""Who may use the worker's HTTP server, and for what.

The server answers these paths and nothing else: ``/kpis``, ``/metrics``, ``/healthz``,
``/internal/partials`` (what workers fetch from each other for the global view) and the wall
(``/wall``, its ``/wall/status`` and ``/wall/trend`` JSON, its script and style). Faust's own views are
turned off where the worker builds its app (``FAUST_WEB_VIEWS_OFF``), and this middleware refuses any
other path as well, so a view that a later Faust registers by default is not served either.

With ``KPI_WEB_TOKEN`` every path but ``/healthz`` (container health checks carry no secret) and the
wall's script and style (code, no data) needs ``Authorization: Bearer <token>``; ``/metrics`` too unless
``KPI_WEB_METRICS_PUBLIC``. The wall page itself also takes ``?token=``: a TV's browser opening a URL
cannot set a header (the page then sends the token as a header itself). A worker bound to
a non-loopback address without a token refuses to start, unless ``KPI_WEB_ALLOW_OPEN`` says that its
network is trusted.
"""

from __future__ import annotations

import hmac
from typing import Awaitable, Callable

from aiohttp import web

from stream.access import bearer_matches, is_loopback, json_response
from stream.config import ConfigError, Settings
from stream.worker.wall import ASSETS as WALL_ASSETS_BY_NAME

WALL_ASSETS = frozenset(f"/wall/{name}" for name in WALL_ASSETS_BY_NAME)
SERVED_PATHS = frozenset({"/kpis", "/metrics", "/healthz", "/internal/partials", "/wall", "/wall/status",
                          "/wall/trend"}) | WALL_ASSETS
OPEN_PATHS = frozenset({"/healthz"}) | WALL_ASSETS
TOKEN_IN_QUERY_PATHS = frozenset({"/wall"})
# faust.App settings that keep Faust's built-in views off: /table/… (table keys and values), /router/…
# (every worker's URL and partitions), the statistics, assignment and graph pages, /performance/.
FAUST_WEB_VIEWS_OFF = {
    "web_tables_enabled": False,
    "web_router_enabled": False,  # only @table_route needs it; the worker has none
    "web_stats_enabled": False,
    "web_graph_enabled": False,
    "web_metrics_enabled": False,
}


def check_web_exposure(settings: Settings) -> None:
    """A worker reachable from other machines must not serve its KPIs and partials to anyone."""
    if (not is_loopback(settings.kpi_web_host) and settings.kpi_web_token is None
            and not settings.kpi_web_allow_open):
        raise ConfigError(f"KPI_WEB_TOKEN: required when KPI_WEB_HOST ({settings.kpi_web_host}) is not a loopback "
                          "address (or KPI_WEB_ALLOW_OPEN=true on a network you trust)")


def auth_headers(settings: Settings) -> dict[str, str]:
    """What a worker sends to another worker of its app (the same KPI_WEB_TOKEN)."""
    if settings.kpi_web_token is None:
        return {}
    return {"Authorization": f"Bearer {settings.kpi_web_token.get_secret_value()}"}


def query_token_matches(given: str | None, token: bytes) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token)


def access_middleware(settings: Settings) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The aiohttp middleware of the worker's web application (``faust.App(web_application_options=…)``)."""
    token = settings.kpi_web_token.get_secret_value().encode() if settings.kpi_web_token is not None else None
    open_paths = OPEN_PATHS | ({"/metrics"} if settings.kpi_web_metrics_public else set())

    @web.middleware
    async def guard(request: web.Request, handler) -> web.StreamResponse:
        if request.path not in SERVED_PATHS:
            return json_response(404, {"error": "not_found"})
        if token is not None and request.path not in open_paths and not (
                bearer_matches(request.headers.get("Authorization"), token)
                or request.path in TOKEN_IN_QUERY_PATHS and query_token_matches(request.query.get("token"), token)):
            return json_response(401, {"error": "unauthorized", "detail": "send `Authorization: Bearer <KPI_WEB_TOKEN>`"},
                         {"WWW-Authenticate": 'Bearer realm="kpi-monitor worker"'})
        return await handler(request)

    return guard
