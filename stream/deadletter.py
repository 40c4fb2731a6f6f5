"""Dead-letter records (SPEC.md section 1): why a message could not be applied, and the message itself."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone

import orjson

PAYLOAD_LIMIT = 64 * 1024


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
    """The JSON record for the dead-letter topic; the payload is text when it is UTF-8, else base64."""
    head = raw[:PAYLOAD_LIMIT]
    try:
        payload, encoding = head.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(head).decode("ascii"), "base64"
    return orjson.dumps(
        {
            "reason": reason,
            "detail": detail,
            "topic": topic,
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
