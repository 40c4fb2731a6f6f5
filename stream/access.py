"""Who may reach an HTTP server of ours (ingest and worker alike): loopback addresses, bearer tokens, and
the JSON answers that refuse the rest."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

import orjson
from aiohttp import web


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs: a server bound there is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bearer_matches(authorization: str | None, token: bytes) -> bool:
    """The ``Authorization`` header carries ``Bearer <token>`` (compared in constant time)."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)


def json_response(status: int, doc: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json", headers=headers)
