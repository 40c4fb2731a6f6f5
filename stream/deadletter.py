"""Dead-letter records (docs/events.md): why a message could not be applied, and the message itself."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone

import orjson

PAYLOAD_LIMIT = 64 * 1024
# The record must fit the dead-letter topic whatever the detail says: a payload of 64 KiB of control characters
# is at most 6 x 64 KiB once JSON-escaped, and the detail is cut here, so a record stays well under 1 MiB.
DETAIL_LIMIT = 4096


def deadletter_record(
    raw: bytes,
    *,
    reason: str,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
    now: datetime | None = None,
) -> bytes:
    """The JSON record for the dead-letter topic; the payload is text when it is UTF-8, else base64.

    Never fails, whatever the bytes and the strings: the worker calls it for input it could not handle.
    """
    head = raw[:PAYLOAD_LIMIT]
    try:
        payload, encoding = head.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(head).decode("ascii"), "base64"
    return orjson.dumps(
        {
            "reason": _utf8(reason),
            "detail": _cut(_utf8(detail), DETAIL_LIMIT),
            "topic": _utf8(topic),
            "partition": partition,
            "offset": offset,
            "size": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "payload": payload,
            "payload_encoding": encoding,
            "payload_truncated": len(raw) > PAYLOAD_LIMIT,
            "dead_lettered_at": (now or datetime.now(timezone.utc)).isoformat(),
        }
    )


def _utf8(text: str) -> str:
    # A lone surrogate (possible in a str built from an exception message) is not UTF-8: orjson would raise.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
