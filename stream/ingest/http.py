"""The ingest HTTP API (aiohttp): ``POST /ingest/events``, ``POST /ingest/hubspot``, ``/healthz``, ``/metrics``.

Answers: ``202`` with one result per event (accepted with topic/partition/offset, or rejected with the
worker's reason), ``400`` unreadable body, ``401`` missing/wrong bearer token or HubSpot signature, ``413``
body over ``KPI_INGEST_MAX_BODY_BYTES``, ``503`` + ``Retry-After`` when Kafka is down, at capacity, or
(HubSpot) the CRM API cannot be read. A ``202`` is sent only after Kafka acknowledged every accepted event
(acks=all), so nothing a client saw accepted is lost; after a ``503`` the client retries the same body,
and event ids make the retry harmless.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from stream.access import bearer_matches
from stream.access import json_response as _json
from stream.config import Settings
from stream.events import EventValidator
from stream.ingest.hubspot import (EnrichmentError, HubSpotMapper, SignatureError, Skip, map_notifications,
                                   read_notifications, verify_signature_v3)
from stream.ingest.intake import Checked, Item, UnreadableBody, check, split_body
from stream.ingest.json_split import NotJson, TooManyElements
from stream.ingest.producer import AtCapacity, IngestProducer, KafkaUnavailable

log = logging.getLogger("kpi_monitor.ingest")
ENRICHMENT_RETRY_AFTER_S = 5
_ROUTES = ("/ingest/events", "/ingest/hubspot", "/healthz", "/metrics")


@dataclass
class _Metrics:
    requests: Counter
    events: Counter


def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json(status, {"error": error, "detail": detail}, headers)


class IngestService:
    """The handlers and what they share; ``app`` is the aiohttp application."""

    def __init__(self, settings: Settings, producer: IngestProducer, mapper: HubSpotMapper | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.producer = producer
        self.mapper = mapper
        self.clock = clock
        self.validator = EventValidator(currency=settings.kpi_currency, stages=settings.kpi_stages,
                                        max_bytes=settings.kpi_max_event_bytes,
                                        future_tolerance_s=settings.kpi_future_tolerance_seconds)
        # In live mode the worker dead-letters events older than its wall clock - 25 h; with the event
        # clock that depends on the partition's watermark, which only the worker knows.
        self.too_late_ms = round(settings.kpi_too_late_seconds * 1000) if settings.kpi_clock == "wall" else None
        self.token = (settings.kpi_ingest_token.get_secret_value().encode()
                      if settings.kpi_ingest_token is not None else None)
        self.hubspot_secret = (settings.hubspot_client_secret.get_secret_value()
                               if settings.hubspot_client_secret is not None else None)
        self.registry = CollectorRegistry()
        self.metrics = _Metrics(
            requests=Counter("kpi_ingest_requests", "Ingest HTTP requests by endpoint and status code",
                             ["endpoint", "code"], registry=self.registry),
            events=Counter("kpi_ingest_events", "Ingested events (HubSpot: notifications) by outcome and reason",
                           ["endpoint", "outcome", "reason"], registry=self.registry),
        )
        Gauge("kpi_ingest_in_flight", "Events handed to Kafka and not yet acknowledged",
              registry=self.registry).set_function(lambda: producer.in_flight)
        Gauge("kpi_ingest_kafka_up", "1 when the ingest producer can reach Kafka",
              registry=self.registry).set_function(lambda: 1.0 if producer.available else 0.0)
        self.app = web.Application(client_max_size=settings.kpi_ingest_max_body_bytes,
                                   middlewares=[self._count_requests])
        self.app.router.add_post("/ingest/events", self.ingest_events)
        self.app.router.add_post("/ingest/hubspot", self.ingest_hubspot)
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/metrics", self.prometheus)

    # ------------------------------------------------------------------ plumbing
    @web.middleware
    async def _count_requests(self, request: web.Request, handler) -> web.StreamResponse:
        endpoint = request.path if request.path in _ROUTES else "other"
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self.metrics.requests.labels(endpoint, str(exc.status)).inc()
            raise
        self.metrics.requests.labels(endpoint, str(response.status)).inc()
        return response

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        """401 unless the request carries the configured bearer token (none configured: open, loopback only)."""
        if self.token is None:
            return None
        if bearer_matches(request.headers.get("Authorization"), self.token):
            return None
        return _error(401, "unauthorized", "send `Authorization: Bearer <KPI_INGEST_TOKEN>`",
                      {"WWW-Authenticate": 'Bearer realm="kpi-monitor ingest"'})

    async def _body(self, request: web.Request) -> bytes | web.Response:
        limit = self.settings.kpi_ingest_max_body_bytes
        too_large = _error(413, "too_large", f"the body is over {limit} bytes (KPI_INGEST_MAX_BODY_BYTES); split the batch")
        if request.content_length is not None and request.content_length > limit:
            return too_large  # refused before reading a byte of it
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return too_large

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def _produce(self, checked: list[Checked]) -> list[Any] | web.Response:
        """RecordMetadata of the valid events, in order; or the 503 to answer."""
        records = [(self.settings.topic(c.topic_suffix), c.key.encode(), c.item.raw) for c in checked if c.ok]
        if not records:
            return []
        try:
            return await self.producer.produce(records)
        except (KafkaUnavailable, AtCapacity) as exc:
            error = "kafka_unavailable" if isinstance(exc, KafkaUnavailable) else "at_capacity"
            return _error(503, error, f"{exc}; nothing was accepted, retry the same request",
                          {"Retry-After": str(exc.retry_after)})

    # ------------------------------------------------------------------ /ingest/events
    async def ingest_events(self, request: web.Request) -> web.Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        limit = self.producer.max_in_flight
        try:
            items = split_body(body, request.content_type, max_events=limit)
        except UnreadableBody as exc:
            return _error(400, "unreadable_body", str(exc))
        except TooManyElements:
            return _error(413, "too_many_events", f"more than {limit} events in one request "
                          "(KPI_INGEST_MAX_IN_FLIGHT); split the batch")
        checked = check(items, self.validator, wall_ms=self._now_ms(), too_late_ms=self.too_late_ms)
        metas = await self._produce(checked)
        if isinstance(metas, web.Response):
            return metas
        results, accepted = [], iter(metas)
        for c in checked:
            result: dict[str, Any] = {"index": c.item.index}
            if c.item.line is not None:
                result["line"] = c.item.line
            if (event_id := c.event_id()) is not None:
                result["event_id"] = event_id
            if c.ok:
                meta = next(accepted)
                result.update(status="accepted", type=c.event.type, topic=meta.topic, key=c.key,
                              partition=meta.partition, offset=meta.offset)
                self.metrics.events.labels("events", "accepted", "").inc()
            else:
                result.update(status="rejected", reason=c.reason, detail=c.detail)
                self.metrics.events.labels("events", "rejected", c.reason).inc()
            results.append(result)
        return _json(202, {"accepted": len(metas), "rejected": len(checked) - len(metas), "results": results})

    # ------------------------------------------------------------------ /ingest/hubspot
    async def ingest_hubspot(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        if self.hubspot_secret is not None:
            uri = self.settings.hubspot_webhook_url or str(request.url)
            try:
                verify_signature_v3(self.hubspot_secret, method=request.method, uri=uri, body=body,
                                    signature=request.headers.get("X-HubSpot-Signature-v3"),
                                    timestamp=request.headers.get("X-HubSpot-Request-Timestamp"),
                                    now_ms=self._now_ms())
            except SignatureError as exc:
                log.warning("HubSpot webhook refused: %s", exc)
                return _error(401, "bad_signature", str(exc))
        elif (denied := self._unauthorized(request)) is not None:
            return denied
        limit = self.settings.hubspot_max_notifications
        try:
            notes = read_notifications(body, limit)
        except NotJson as exc:
            return _error(400, "unreadable_body", str(exc))
        except TooManyElements:
            return _error(413, "too_many_notifications", f"more than {limit} notifications in one request "
                          "(HUBSPOT_MAX_NOTIFICATIONS)")
        if self.mapper is None:
            return _error(503, "hubspot_disabled", "the HubSpot adapter is not configured")
        try:
            mapped = await map_notifications(self.mapper, notes)
        except EnrichmentError as exc:
            log.warning("HubSpot enrichment failed: %s", exc)
            return _error(503, "enrichment_unavailable", f"{exc}; nothing was accepted, HubSpot will retry",
                          {"Retry-After": str(ENRICHMENT_RETRY_AFTER_S)})
        # Every contract event of every notification is checked like any other event; a notification
        # whose events are not all valid is rejected whole, so its events are never split.
        wall_ms = self._now_ms()
        checked_of: dict[int, list[Checked]] = {}
        for index, outcome in enumerate(mapped):
            if isinstance(outcome, list):
                items = [Item(index, orjson.dumps(event)) for event in outcome]
                checked_of[index] = check(items, self.validator, wall_ms=wall_ms, too_late_ms=self.too_late_ms)
        to_send = [c for group in checked_of.values() if all(c.ok for c in group) for c in group]
        metas = await self._produce(to_send)
        if isinstance(metas, web.Response):
            return metas
        meta_of = {id(c): m for c, m in zip(to_send, metas)}
        results = []
        for index, outcome in enumerate(mapped):
            result: dict[str, Any] = {"index": index}
            if isinstance(outcome, Skip):
                result.update(status=outcome.status, reason=outcome.reason, detail=outcome.detail)
            elif (bad := next((c for c in checked_of[index] if not c.ok), None)) is not None:
                result.update(status="rejected", reason=bad.reason, detail=bad.detail)
            else:
                result.update(status="accepted", events=[
                    {"event_id": c.event.event_id, "type": c.event.type, "topic": meta_of[id(c)].topic,
                     "key": c.key, "partition": meta_of[id(c)].partition, "offset": meta_of[id(c)].offset}
                    for c in checked_of[index]])
            self.metrics.events.labels("hubspot", result["status"], result.get("reason", "")).inc()
            results.append(result)
        counts = {s: sum(1 for r in results if r["status"] == s) for s in ("accepted", "ignored", "rejected")}
        return _json(202, {**counts, "results": results})

    # ------------------------------------------------------------------ health and metrics
    async def healthz(self, _request: web.Request) -> web.Response:
        if self.producer.available:
            return _json(200, {"state": "ok", "in_flight": self.producer.in_flight})
        return _json(503, {"state": "kafka_unavailable", "detail": self.producer.down_reason})

    async def prometheus(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
