"""Alertmanager (``POST /api/v2/alerts``), so teams can route to PagerDuty/Opsgenie and silence there.

Alertmanager resolves an alert by itself when it has not heard of it for ``resolve_timeout``; a firing
alert is therefore posted with ``endsAt`` a few minutes ahead and re-posted (a keep-alive, ``refresh``)
while it fires, like Prometheus does. A resolve posts ``endsAt`` = the resolve time.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

import aiohttp

from alerts.notification import Notification
from alerts.sinks.base import SinkError, http_error

KEEPALIVE_S = 300.0  # endsAt horizon of a firing alert; the runtime refreshes every 60 s


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _label_name(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


def am_alert(n: Notification, now_ms: float | None = None) -> dict[str, Any]:
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    labels = {_label_name(k): str(v) for k, v in n.labels.items() if str(v)}
    labels.pop("fingerprint", None)  # Alertmanager fingerprints the label set itself
    annotations = {
        "summary": n.title,
        "description": n.text,
        "idempotency_key": n.key,
        "fingerprint": n.fingerprint,
    }
    if n.value is not None:
        annotations["value"] = f"{n.value:g}"
    if n.threshold is not None:
        annotations["threshold"] = f"{n.threshold:g}"
    if n.owner:
        annotations["owner"] = n.owner
    if n.mentions:
        annotations["mentions"] = " ".join(n.mentions)
    if n.repeat:
        annotations["repeat"] = "true"
    starts = min(n.starts_at, now_ms)
    if n.status == "resolved":
        ends = min(max(n.ends_at or now_ms, starts), now_ms)
    else:
        ends = now_ms + KEEPALIVE_S * 1000
    alert = {"labels": labels, "annotations": annotations, "startsAt": _iso(starts), "endsAt": _iso(ends)}
    if n.link:
        alert["generatorURL"] = n.link
    return alert


class AlertmanagerSink:
    name = "alertmanager"
    supports_refresh = True

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def send(self, n: Notification) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        try:
            async with self._session.post(self.url, json=[am_alert(n)]) as resp:
                if resp.status >= 300:
                    text = (await resp.text())[:200]
                    raise http_error(resp.status, f"alertmanager: {text!r}", resp.headers.get("Retry-After"))
        except aiohttp.ClientError as exc:
            raise SinkError(f"alertmanager: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
