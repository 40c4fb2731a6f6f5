"""Dead-letter records (docs/events.md): reason, detail, source position, size, sha256 and the payload."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone

import orjson
import pytest

from stream.deadletter import DETAIL_LIMIT, PAYLOAD_LIMIT, deadletter_record

NOW = datetime(2026, 11, 20, 9, 15, 2, 123000, tzinfo=timezone.utc)


def record(raw: bytes, **kw) -> dict:
    args = dict(reason="not_json", detail="not valid JSON", topic="sales.leads", partition=3, offset=1234, now=NOW)
    args.update(kw)
    return orjson.loads(deadletter_record(raw, **args))


def test_record_fields():
    raw = b'{"event_id": "e1", "type": "lead.created", "occurred_at": "2026-11-20T09:15:02Z"}'
    rec = record(raw, reason="missing_field", detail="required field `lead_id` is missing")
    assert rec == {
        "reason": "missing_field",
        "detail": "required field `lead_id` is missing",
        "topic": "sales.leads",
        "partition": 3,
        "offset": 1234,
        "size": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "payload": raw.decode(),
        "payload_encoding": "utf-8",
        "payload_truncated": False,
        "dead_lettered_at": "2026-11-20T09:15:02.123000+00:00",
    }


def test_record_is_one_json_object_even_for_hostile_text():
    raw = '{"x": "\x00\n\u2028 \\"; DROP TABLE"}'.encode()
    rec = record(raw, detail="line1\nline2 \"quoted\"")
    assert rec["payload"] == raw.decode() and rec["detail"] == "line1\nline2 \"quoted\""


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00binary", b'{"a": "\xc3"}', bytes(range(256))])
def test_non_utf8_payload_is_base64(raw):
    rec = record(raw)
    assert rec["payload_encoding"] == "base64"
    assert base64.b64decode(rec["payload"]) == raw
    assert rec["size"] == len(raw) and rec["sha256"] == hashlib.sha256(raw).hexdigest()
    assert rec["payload_truncated"] is False


def test_empty_payload():
    rec = record(b"")
    assert (rec["payload"], rec["payload_encoding"], rec["size"]) == ("", "utf-8", 0)
    assert rec["sha256"] == hashlib.sha256(b"").hexdigest()


def test_limit_is_64_kib():
    assert PAYLOAD_LIMIT == 64 * 1024
    exact = b"a" * PAYLOAD_LIMIT
    rec = record(exact, reason="oversize")
    assert rec["payload_truncated"] is False and rec["payload"] == exact.decode()


@pytest.mark.parametrize("size", [PAYLOAD_LIMIT + 1, 200_000, 1_000_000])
def test_oversize_payload_is_truncated_with_hash_and_size_of_the_whole(size):
    raw = (b'{"event_id": "big", "pad": "' + b"x" * size)[:size]
    rec = record(raw, reason="oversize", detail=f"message is {size} bytes")
    assert rec["payload_truncated"] is True
    assert rec["payload"].encode() == raw[:PAYLOAD_LIMIT]
    assert rec["size"] == size
    assert rec["sha256"] == hashlib.sha256(raw).hexdigest() != hashlib.sha256(raw[:PAYLOAD_LIMIT]).hexdigest()


def test_oversize_binary_payload_is_truncated_then_base64():
    raw = b"\xff" * (PAYLOAD_LIMIT + 10)
    rec = record(raw, reason="oversize")
    assert rec["payload_encoding"] == "base64" and rec["payload_truncated"] is True
    assert base64.b64decode(rec["payload"]) == raw[:PAYLOAD_LIMIT]
    assert rec["size"] == len(raw) and rec["sha256"] == hashlib.sha256(raw).hexdigest()


def test_truncation_inside_a_multibyte_character_stays_lossless():
    raw = b"a" * (PAYLOAD_LIMIT - 1) + "€".encode() + b"tail"  # the cut falls inside the euro sign
    rec = record(raw, reason="oversize")
    payload = rec["payload"].encode() if rec["payload_encoding"] == "utf-8" else base64.b64decode(rec["payload"])
    assert payload == raw[:PAYLOAD_LIMIT] and rec["payload_truncated"] is True


def test_default_timestamp_is_utc_now():
    before = datetime.now(timezone.utc)
    rec = orjson.loads(deadletter_record(b"x", reason="not_json", detail="d", topic="t", partition=0, offset=0))
    stamped = datetime.fromisoformat(rec["dead_lettered_at"])
    assert stamped.utcoffset().total_seconds() == 0
    assert before <= stamped <= datetime.now(timezone.utc)


def test_a_detail_that_is_not_utf8_or_huge_never_breaks_the_record():
    # The worker builds a record for input it could not handle: the record itself must never fail.
    rec = record(b"x", reason="internal_error", detail="bad \ud800 surrogate " + "d" * 100_000, topic="t\udcff")
    assert rec["detail"].startswith("bad \\ud800 surrogate ddd") and len(rec["detail"]) <= DETAIL_LIMIT + 3
    assert rec["topic"] == "t\\udcff"


def test_worst_case_record_fits_the_workers_producer():
    # JSON escapes a control character as \u00XX: 64 KiB of them is the largest payload text there is. The
    # worker's Faust producer refuses requests over 1,000,000 bytes (producer_max_request_size).
    raw = b"\x01" * (1024 * 1024)
    encoded = deadletter_record(raw, reason="oversize", detail="d" * 100_000, topic="t" * 249, partition=0, offset=0)
    assert 6 * PAYLOAD_LIMIT < len(encoded) < 1_000_000 - 1024
