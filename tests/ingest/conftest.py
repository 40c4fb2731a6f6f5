"""Fixtures of the ingest tests: the ingest service in-process on the real broker, a fake HubSpot CRM."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from stream.ingest.service import ingest_service
from tests.conftest import BOOTSTRAP
from tests.ingest.helpers import FakeHubSpotCrm, settings_for
from tests.private_broker import PrivateBroker

TOKEN = "ingest-test-token"
HUBSPOT_SECRET = "hs-test-secret"


@dataclass
class Answer:
    status: int
    doc: Any
    headers: Any


class IngestClient:
    def __init__(self, server: TestServer, session: aiohttp.ClientSession, service, prefix: str) -> None:
        self.server, self.session, self.service, self.prefix = server, session, service, prefix

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def post(self, path: str, body: bytes | Any, *, token: str | None = TOKEN,
                   content_type: str = "application/json", headers: dict | None = None) -> Answer:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        head = {"Content-Type": content_type, **(headers or {})}
        if token is not None:
            head["Authorization"] = f"Bearer {token}"
        async with self.session.post(self.url(path), data=data, headers=head) as resp:
            raw = await resp.read()
            return Answer(resp.status, orjson.loads(raw) if raw else None, resp.headers)


@pytest.fixture
async def hubspot_crm():
    fake = FakeHubSpotCrm()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


@asynccontextmanager
async def running_ingest(prefix: str, bootstrap: str = BOOTSTRAP, **overrides: Any) -> AsyncIterator[IngestClient]:
    """The ingest service in this process, on a free port, connected to Kafka; a client for it."""
    settings = settings_for(bootstrap, prefix, **{"kpi_ingest_token": TOKEN, **overrides})
    async with ingest_service(settings) as service:
        assert await service.producer.wait_available(30), service.producer.down_reason
        server = TestServer(service.app, host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as session:
                yield IngestClient(server, session, service, prefix)
        finally:
            await server.close()


@pytest.fixture
async def ingest(deployment, hubspot_crm):
    """The ingest service on the shared broker with the deployment's topics, token auth and HubSpot wired."""
    async with running_ingest(deployment.prefix, kpi_ingest_max_body_bytes=512 * 1024,
                              hubspot_client_secret=HUBSPOT_SECRET, hubspot_access_token=hubspot_crm.token,
                              hubspot_api_url=hubspot_crm.url) as client:
        yield client


@pytest.fixture
async def private_broker(stack, tmp_path):
    """A started broker of this test's own, killed at the end."""
    broker = PrivateBroker(tmp_path / "stack", "ingest-down.")
    await asyncio.to_thread(broker.start)
    try:
        yield broker
    finally:
        await asyncio.to_thread(broker.kill)
