"""Generic webhook: the notification as JSON, optionally signed with HMAC-SHA256 over the body.

Headers: ``X-KPI-Idempotency-Key`` (fingerprint:episode:kind:seq, the same on every retry and after a
crash-repeat), ``X-KPI-Signature: sha256=<hex>`` when ``KPI_ALERT_WEBHOOK_SECRET`` is set. The body carries
``sent_at``, so a receiver can refuse old replays.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp

from alerts.notification import Notification, iso
from alerts.sinks.base import SinkError, http_error

SIGNATURE_HEADER = "X-KPI-Signature"
KEY_HEADER = "X-KPI-Idempotency-Key"


def payload(n: Notification, sent_ms: float | None = None) -> dict[str, Any]:
    return {
        "version": 1,
        "idempotency_key": n.key,
        "fingerprint": n.fingerprint,
        "episode": n.episode,
        "kind": n.kind,
        "seq": n.seq,
        "status": n.status,
        "repeat": n.repeat,
        "rule": n.rule,
        "rule_type": n.rule_type,
        "severity": n.severity,
        "title": n.title,
        "text": n.text,
        "facts": dict(n.facts),
        "labels": n.labels,
        "value": n.value,
        "threshold": n.threshold,
        "starts_at": iso(n.starts_at),
        "ends_at": iso(n.ends_at) if n.ends_at is not None else None,
        "at": iso(n.at),
        "at_ms": n.at,
        "owner": n.owner,
        "mentions": n.mentions,
        "target": n.target,
        "channel": n.channel,
        "link": n.link,
        "app_id": n.app_id,
        "sent_at": iso(int(time.time() * 1000 if sent_ms is None else sent_ms)),
    }


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSink:
    name = "webhook"
    supports_refresh = False

    def __init__(self, url: str, secret: str | None = None, *, timeout: float = 5.0) -> None:
        self._url = url
        self._secret = secret
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def send(self, n: Notification) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        body = json.dumps(payload(n), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", KEY_HEADER: n.key, "User-Agent": "kpi-monitor-alerts"}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        try:
            async with self._session.post(self._url, data=body, headers=headers) as resp:
                if resp.status >= 300:
                    raise http_error(resp.status, "webhook", resp.headers.get("Retry-After"))
        except aiohttp.ClientError as exc:
            # aiohttp's message may hold the URL (a secret): the caller redacts, but say little anyway.
            raise SinkError(f"webhook: {type(exc).__name__}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
