"""Helpers of the ingest tests: building settings, reading topics back, a fake HubSpot CRM API."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from stream.config import load_settings


def ts(delta_s: float = -60) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=delta_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def settings_for(bootstrap: str, prefix: str, **overrides: Any):
    return load_settings(kafka_bootstrap_servers=bootstrap, kpi_topic_prefix=prefix, **overrides)


def import_and_replay(deployment: Any, importer: str, files: tuple[str, ...], out: Any, **options: Any):
    """Run ``importer`` over ``files`` into ``out`` (JSON Lines, 00:00 UTC for dates without a time), then
    replay that file into the deployment's topics; the replay's report."""
    from stream.ingest.importers.run import import_main
    from stream.local.replay import replay

    settings = settings_for(deployment.bootstrap, deployment.prefix)
    assert import_main(settings, importer, files, out=str(out), tz="UTC", time_of_day="00:00", **options) == 0
    return asyncio.run(replay(out, settings, echo=lambda line: None))


async def read_topics(bootstrap: str, topics: list[str], expected: int, timeout: float = 20.0) -> list[Any]:
    """ConsumerRecords of ``topics`` from the beginning until ``expected`` arrived (or the timeout)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(batch)
        # a little longer: anything beyond `expected` (a duplicate) must show up too
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


class FakeHubSpotCrm:
    """A local server answering GET /crm/v3/objects/{type}/{id} with HubSpot's documented response shape."""

    def __init__(self, token: str = "pat-test") -> None:
        self.token = token
        self.objects: dict[tuple[str, str], dict] = {}  # (type, id) -> {"properties": {...}, "associations": {...}}
        self.requests: list[web.Request] = []
        self.fail_with: int | None = None  # answer this status to every request (outage, rate limit)
        self.app = web.Application()
        self.app.router.add_get("/crm/v3/objects/{type}/{id}", self._get)

    def add(self, object_type: str, object_id: str | int, associations: dict[str, list[str]] | None = None,
            **properties: Any) -> None:
        self.objects[(object_type, str(object_id))] = {"properties": properties, "associations": associations or {}}

    async def _get(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"status": "error", "message": "Authentication credentials not found.",
                                      "category": "INVALID_AUTHENTICATION"}, status=401)
        if self.fail_with is not None:
            return web.json_response({"status": "error", "message": "You have reached your secondly limit.",
                                      "errorType": "RATE_LIMIT"}, status=self.fail_with)
        object_type, object_id = request.match_info["type"], request.match_info["id"]
        stored = self.objects.get((object_type, object_id))
        if stored is None:
            return web.json_response({"status": "error", "message": "Object not found.  objectId are usually numeric.",
                                      "category": "OBJECT_NOT_FOUND"}, status=404)
        wanted = [p for p in request.query.get("properties", "").split(",") if p]
        properties = {"hs_object_id": object_id, "createdate": "2026-01-05T10:00:00.000Z",
                      "hs_lastmodifieddate": "2026-01-05T10:00:00.000Z"}
        properties.update({p: stored["properties"].get(p) for p in wanted})  # unknown ones come back null
        doc: dict[str, Any] = {"id": object_id, "properties": properties, "createdAt": "2026-01-05T10:00:00.000Z",
                               "updatedAt": "2026-01-05T10:00:00.000Z", "archived": False}
        assoc_names = [a for a in request.query.get("associations", "").split(",") if a]
        assocs = {name: {"results": [{"id": i, "type": f"{object_type[:-1]}_to_{name[:-1]}"}
                                     for i in stored["associations"].get(name, [])]}
                  for name in assoc_names if stored["associations"].get(name)}
        if assocs:
            doc["associations"] = assocs
        return web.json_response(doc)


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def count_messages(bootstrap: str, topics: list[str]) -> int:
    """Messages ever produced to ``topics`` (their partitions' end offsets): exact and immediate."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    assert {tp.topic for tp in partitions} == set(topics), described
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()
