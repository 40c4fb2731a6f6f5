"""Whom a worker asks for partials: the peer URLs come from the consumer group's metadata, which any group
member writes. Only worker-shaped URLs are fetched, the token goes along, and partials that do not name
this app (another app's worker on a reused port, or no worker at all) are not merged.

The peers are local aiohttp servers answering like workers do; the worker side is the real
``gather_partials`` with an engine of its own (no Faust app: only its router's metadata is read)."""

from __future__ import annotations

from types import SimpleNamespace

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from stream.config import load_settings
from stream.kpi.catalogue import DIMENSIONS, SCOPE
from stream.kpi.engine import EngineConfig, KpiEngine
from stream.kpi.snapshot import partials_to_wire
from stream.worker.query import gather_partials, is_worker_url

SCOPE_LAYOUT = DIMENSIONS["scope"].layout

TOKEN = "peer-test-token"


class Peer:
    """Answers /internal/partials with one partition (leads:<partition>) of one rep, for ``app``."""

    def __init__(self, app: str, partition: int) -> None:
        self.app_id, self.partition = app, partition
        self.seen: list[dict] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append({"path": request.path_qs, "authorization": request.headers.get("Authorization")})
        row = SCOPE_LAYOUT.row()
        row.v[SCOPE_LAYOUT.index["leads_created"]] = 7
        rows = [{} for _ in DIMENSIONS]
        rows[SCOPE] = {("hana", "hunters"): row}
        doc = {"app": self.app_id, "watermark": None,
               "partitions": {f"leads:{self.partition}": partials_to_wire(rows)}}
        return web.Response(body=msgspec.msgpack.encode(doc), content_type="application/msgpack")


@pytest.fixture
async def peers():
    started = []

    async def start(app: str, partition: int) -> tuple[Peer, str]:
        peer = Peer(app, partition)
        server = TestServer(peer.app, host="127.0.0.1")
        await server.start_server()
        started.append(server)
        return peer, str(server.make_url("")).rstrip("/")

    yield start
    for server in started:
        await server.close()


def _worker(advertised: list[str]) -> SimpleNamespace:
    settings = load_settings(kpi_app_id="app-a", kpi_web_port=1, kpi_web_token=TOKEN)
    router = SimpleNamespace(tables_metadata=lambda: {url: {} for url in advertised})
    return SimpleNamespace(settings=settings, engine=KpiEngine(EngineConfig()), built={},
                           app=SimpleNamespace(router=router))


async def test_only_this_apps_workers_are_merged_and_they_get_the_token(peers):
    ours, ours_url = await peers("app-a", 0)
    foreign, foreign_url = await peers("app-b", 1)  # another app's worker where a peer of ours used to be
    aimed, aimed_url = await peers("app-a", 2)
    aimed_url += "/admin/reset?confirm=yes#"  # a group member pointing us at some other path
    results, failed, _ = await gather_partials(_worker([ours_url, foreign_url, aimed_url]), "all", 0)
    assert sorted(results) == ["leads:0"]
    assert results["leads:0"][SCOPE][("hana", "hunters")].v[SCOPE_LAYOUT.index["leads_created"]] == 7
    assert failed == [foreign_url]
    assert ours.seen == [{"path": "/internal/partials?window=all&now=0", "authorization": f"Bearer {TOKEN}"}]
    assert aimed.seen == []  # never asked: no request, no token


@pytest.mark.parametrize("url, ok", [
    ("http://10.0.0.5:6066", True), ("https://worker-1.internal:6066/", True), ("http://[::1]:6066", True),
    ("http://10.0.0.5", False), ("http://user:pw@10.0.0.5:6066", False), ("http://10.0.0.5:6066/x", False),
    ("http://10.0.0.5:6066?a=1", False), ("file:///etc/passwd", False), ("gopher://10.0.0.5:70", False),
    ("http://10.0.0.5:notaport", False), ("", False),
])
def test_worker_urls(url, ok):
    assert is_worker_url(url) is ok
