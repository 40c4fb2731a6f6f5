"""Fuzzing the decoder and the dead-letter record builder: whatever the bytes, nothing unexpected comes out.

`EventValidator.validate` must return an Event or raise InvalidEvent with a reason from REASONS, with a
detail that is one printable line; never another exception, never slowly. Valid events must survive an
encode -> validate round trip unchanged. `deadletter_record` must never fail and must describe the message
exactly (size, sha256, payload). The default run is a few seconds; `pytest -m slow` runs the same
properties with 50x the examples (the soak variant).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.deadletter import PAYLOAD_LIMIT, deadletter_record
from stream.events import (
    EVENT_TYPES,
    REASONS,
    TOPIC_OF_TYPE,
    CallLogged,
    DealCreated,
    DealLost,
    DealStageChanged,
    DealWon,
    Event,
    EventValidator,
    InvalidEvent,
    LeadAssigned,
    LeadCreated,
    LeadDisqualified,
    LeadMarketingQualified,
    LeadQualified,
    LeadTouched,
    MeetingBooked,
    SpendRecorded,
    encode_event,
    epoch_ms,
)

VALIDATOR = EventValidator()
STAGES = ("prospecting", "qualification", "proposal", "negotiation")
WALL_MS = epoch_ms(datetime(2026, 11, 20, 9, 15, tzinfo=timezone.utc))
TOPICS = (None, "leads", "calls", "deals", "spend")


SOAK_EXAMPLES = 20_000
PROPERTIES: dict[str, tuple] = {}  # test name -> (strategies, undecorated body): what the soak test reruns


def fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))


def fuzz_property(examples: int, *strategies):
    """@given(*strategies) with `examples` examples, remembered so `pytest -m slow` can rerun it much longer."""

    def decorate(body):
        PROPERTIES[body.__name__] = (strategies, body)
        return fuzz(examples)(given(*strategies)(body))

    return decorate


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def check_outcome(data: bytes, topic: str | None = None, wall_ms: int | None = WALL_MS) -> Event | None:
    """Validate and assert the contract of the outcome; the event, or None when it was refused."""
    try:
        event = VALIDATOR.validate(data, topic, wall_ms=wall_ms)
    except InvalidEvent as exc:
        assert exc.reason in REASONS and exc.reason != "too_late"  # too_late is the engine's verdict
        assert isinstance(exc.detail, str) and exc.detail and exc.detail.isprintable()
        assert len(exc.detail) < 1100
        if exc.reason not in ("oversize", "not_json"):  # syntax is checked first: anything else is real JSON
            json.loads(data.decode("utf-8"), parse_constant=_no_constants, parse_int=str, parse_float=str)
        return None
    assert isinstance(event, Event) and event.type in EVENT_TYPES
    data.decode("utf-8")  # accepted messages are UTF-8 throughout, ignored fields included
    assert VALIDATOR.validate(encode_event(event), wall_ms=None) == event  # and mean what they say
    return event


# ------------------------------------------------------------------------------------ strategies --
# Text of any code point except lone surrogates (a JSON encoder cannot write those as UTF-8).
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
ids = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=128)
rep_ids = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=64)

hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
    st.sampled_from([
        "", " ", "NaN", "Infinity", "-Infinity", "1e400", "-0", "1_000", " 12 ", "+5", "\u0661", "0x10", "1e-999999999",
        "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "2026-11-20T09:15:02", "2026-02-30T00:00:00Z",
        "2026-11-20T24:00:00Z", "2026-11-20T09:15:60Z", "2026-11-20T09:15:02+24:00",
        "'; DROP TABLE leads; --", "<script>alert(1)</script>", "${jndi:ldap://x/a}", "\x00", "\x1b[2J", "\u202e",
        "a" * 129, "r" * 65, "USD", "EUR", "proposal", "won", "email", "connected", "inbound",
    ]),
)
json_values = st.recursive(
    hostile_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=16,
)

AT = st.datetimes(
    min_value=datetime(1990, 1, 2), max_value=datetime(2199, 12, 30), timezones=st.sampled_from([
        timezone.utc, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)),
        timezone(timedelta(hours=5, minutes=45)), timezone(timedelta(hours=-3, minutes=-30)),
    ]),
)
# Money below 10^16 with 0 to 20 decimals: everything the contract accepts.
AMOUNTS = st.builds(
    lambda digits, places: Decimal(digits).scaleb(-places),
    st.integers(min_value=0, max_value=10**16 - 1),
    st.integers(min_value=0, max_value=20),
).filter(lambda d: d.adjusted() <= 15)
OPTIONAL_AMOUNTS = st.none() | AMOUNTS
OPT_TEXT = st.none() | st.text(st.characters(exclude_categories=("Cs",)), max_size=1024)
CHANNEL = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=64)
OPT_CHANNEL = st.none() | CHANNEL
COMMON = {"event_id": ids, "occurred_at": AT, "team": st.none() | st.text(min_size=1, max_size=64)}

valid_events = st.one_of(
    st.builds(LeadCreated, lead_id=ids, source=OPT_TEXT, rep_id=st.none() | rep_ids, **COMMON),
    st.builds(LeadAssigned, lead_id=ids, rep_id=rep_ids, **COMMON),
    st.builds(LeadTouched, lead_id=ids, rep_id=rep_ids, channel=st.sampled_from(["email", "sms", "chat", "social", "other"]), **COMMON),
    st.builds(MeetingBooked, lead_id=ids, rep_id=rep_ids, **COMMON),
    st.builds(LeadQualified, lead_id=ids, rep_id=rep_ids, **COMMON),
    st.builds(LeadDisqualified, lead_id=ids, reason=OPT_TEXT, rep_id=st.none() | rep_ids, **COMMON),
    st.builds(
        CallLogged, call_id=ids, rep_id=rep_ids, direction=st.sampled_from(["outbound", "inbound"]),
        outcome=st.sampled_from(["connected", "no_answer", "voicemail", "busy", "failed"]),
        duration_s=st.floats(min_value=0, max_value=86_400), lead_id=st.none() | ids, **COMMON,
    ),
    st.builds(
        DealCreated, deal_id=ids, rep_id=rep_ids, amount=AMOUNTS, stage=st.sampled_from(STAGES), lead_id=st.none() | ids,
        product=OPT_TEXT, currency=st.sampled_from([None, "USD"]), **COMMON,
    ),
    st.builds(DealStageChanged, deal_id=ids, to_stage=st.sampled_from(STAGES), amount=OPTIONAL_AMOUNTS,
              currency=st.sampled_from([None, "USD"]), rep_id=st.none() | rep_ids, **COMMON),
    st.builds(DealWon, deal_id=ids, amount=OPTIONAL_AMOUNTS, currency=st.sampled_from([None, "USD"]),
              rep_id=st.none() | rep_ids, **COMMON),
    st.builds(DealLost, deal_id=ids, reason=OPT_TEXT, rep_id=st.none() | rep_ids, **COMMON),
    # the revenue and marketing fields
    st.builds(LeadCreated, lead_id=ids, source=OPT_TEXT, campaign=OPT_CHANNEL, **COMMON),
    st.builds(
        DealCreated, deal_id=ids, rep_id=rep_ids, amount=AMOUNTS, stage=st.sampled_from(STAGES),
        kind=st.sampled_from([None, "new", "expansion", "renewal"]), account_id=st.none() | ids, source=OPT_CHANNEL,
        campaign=OPT_CHANNEL, term_months=st.none() | st.integers(1, 120), **COMMON,
    ),
    st.builds(DealWon, deal_id=ids, term_months=st.none() | st.integers(1, 120), **COMMON),
    st.builds(LeadMarketingQualified, lead_id=ids, rep_id=st.none() | rep_ids, **COMMON),
    st.builds(SpendRecorded, channel=CHANNEL, amount=AMOUNTS, campaign=OPT_CHANNEL,
              category=st.sampled_from([None, "marketing", "sales"]), **COMMON),
)


# Valid and invalid UTF-8 sequences that are otherwise fine inside a JSON string (no quote, no control byte).
utf8_pieces = st.lists(
    st.sampled_from([b"a", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x99\x82", b"\xff", b"\xc3", b"\x80", b"\xc0\xaf",
                     b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]),
    max_size=6,
).map(b"".join)


@st.composite
def mutated(draw, source: st.SearchStrategy[bytes]) -> bytes:
    """A valid message damaged the way transports and buggy producers damage bytes."""
    data = bytearray(draw(source))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "duplicate", "replace-token", "extra-field"]))
        at = draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"\x00", b"\xff", b"\\u0000", b'"', b"}", b",", b"NaN", b"[" * 2000]))
        elif kind == "delete":
            del data[at:at + draw(st.integers(min_value=1, max_value=10))]
        elif kind == "duplicate":
            data[at:at] = data[at:at + draw(st.integers(min_value=1, max_value=40))]
        elif kind == "extra-field" and data.endswith(b"}"):  # raw bytes where the decoder only skips
            data[-1:] = b',"' + draw(utf8_pieces) + b'":"' + draw(utf8_pieces) + b'"}'
        elif kind == "replace-token":
            token = draw(st.sampled_from([b'"USD"', b'"email"', b'"prospecting"', b"Z\"", b'"lead.created"', b'"deal.won"', b":", b"0"]))
            data = bytearray(bytes(data).replace(token, draw(st.sampled_from([b'"EUR"', b'"fax"', b'"won"', b'"', b'"lead.x"', b"null", b"-1", b"1e400"])), 1))
    return bytes(data)


valid_messages = valid_events.map(encode_event)


def _as_dict_with_hostile_field(pair) -> bytes:
    event, (field, value) = pair
    doc = orjson.loads(encode_event(event))
    doc[field] = value
    return json.dumps(doc, allow_nan=True).encode()


FIELDS = ("event_id", "type", "occurred_at", "rep_id", "team", "lead_id", "call_id", "deal_id", "source", "channel",
          "direction", "outcome", "duration_s", "amount", "stage", "to_stage", "currency", "reason", "product")
events_with_one_hostile_field = st.tuples(valid_events, st.tuples(st.sampled_from(FIELDS), json_values)).map(
    _as_dict_with_hostile_field
)


@st.composite
def big_binary(draw) -> bytes:
    """Bytes around and far beyond the 64 KiB limit, without asking Hypothesis to draw 100 KiB one by one."""
    chunk = draw(st.binary(min_size=1, max_size=64))
    size = draw(st.sampled_from([PAYLOAD_LIMIT - 1, PAYLOAD_LIMIT, PAYLOAD_LIMIT + 1, 200_000, 1_048_000]))
    return (chunk * (size // len(chunk) + 1))[:size]


# ---------------------------------------------------------------------------------------- the decoder --
@fuzz_property(500, st.binary(max_size=4096), st.sampled_from(TOPICS))
def test_arbitrary_bytes_give_an_event_or_a_known_reason(data, topic):
    check_outcome(data, topic)


@fuzz_property(30, big_binary())
def test_messages_around_the_size_limit(data):
    event = check_outcome(data)
    if len(data) > 64 * 1024:
        with pytest.raises(InvalidEvent, match="^oversize"):
            VALIDATOR.validate(data)
    else:
        assert event is None  # repeated random chunks are never a valid event


@fuzz_property(500, json_values, st.sampled_from([True, False]))
def test_arbitrary_json_documents(doc, ascii_only):
    check_outcome(json.dumps(doc, allow_nan=True, ensure_ascii=ascii_only).encode())


@fuzz_property(500, mutated(valid_messages), st.sampled_from(TOPICS))
def test_mutated_valid_events(data, topic):
    check_outcome(data, topic)


@fuzz_property(500, events_with_one_hostile_field)
def test_valid_events_with_one_hostile_field(data):
    event = check_outcome(data)
    if event is not None:  # accepted: then the fields came through verbatim
        doc = orjson.loads(data)
        assert event.event_id == doc["event_id"] and event.type == doc["type"]


@fuzz_property(500, valid_events)
def test_valid_events_round_trip_unchanged(event):
    data = encode_event(event)
    decoded = VALIDATOR.validate(data, TOPIC_OF_TYPE[event.type], wall_ms=epoch_ms(event.occurred_at))
    assert decoded == event and type(decoded) is type(event)
    assert decoded.occurred_at.utcoffset() is not None
    if getattr(event, "amount", None) is not None:  # sent as a decimal string, the amount is the same
        doc = orjson.loads(data)
        doc["amount"] = str(event.amount)
        assert VALIDATOR.validate(orjson.dumps(doc)).amount == event.amount


# Worst cases a fuzzer is unlikely to build: each is 64 KiB of the most expensive thing to parse.
WORST_CASES = {
    "nested-arrays": b"[" * 32_000 + b"]" * 32_000,
    "nested-objects-in-extra-field": b'{"type":"lead.created","x":' + b'{"a":' * 10_000 + b"1" + b"}" * 10_001,
    "escaped-control-chars": b'{"type":"lead.created","x":"' + b"\\u0000" * 10_900 + b'"}',
    "60k-digit-integer-amount": b'{"type":"deal.won","event_id":"e","deal_id":"d","occurred_at":"2026-11-20T09:15:00Z","amount":'
    + b"9" * 65_000 + b"}",
    "60k-digit-fraction-amount": b'{"type":"deal.won","event_id":"e","deal_id":"d","occurred_at":"2026-11-20T09:15:00Z","amount":"0.'
    + b"1" * 65_000 + b'"}',
    "60k-digit-duration": b'{"type":"call.logged","duration_s":' + b"1" * 65_000 + b"}",
    "many-keys": b'{"type":"lead.created",' + b",".join(b'"k%d":0' % i for i in range(6_000)) + b"}",
    "long-type-name": b'{"type":"' + b"t" * 65_000 + b'"}',
    "many-surrogate-pairs": b'{"type":"lead.created","x":"' + b"\\ud83d\\ude00" * 5_000 + b'"}',
}


@pytest.mark.parametrize("data", list(WORST_CASES.values()), ids=list(WORST_CASES))
def test_worst_case_inputs_are_refused_quickly(data):
    assert len(data) <= 64 * 1024
    started = time.perf_counter()
    for _ in range(20):
        assert check_outcome(data) is None
    # 20 runs in well under a second even on a busy 2-core machine (each takes about 0.1-1 ms).
    assert time.perf_counter() - started < 1.0


# ---------------------------------------------------------------------------------- dead-letter record --
surrogate_text = st.text(st.characters(), max_size=200)  # lone surrogates included on purpose


def check_record(raw: bytes, reason: str, detail: str, topic: str) -> None:
    encoded = deadletter_record(raw, reason=reason, detail=detail, topic=topic, partition=2, offset=10**12)
    assert len(encoded) < 1024 * 1024  # fits the dead-letter topic (1 MiB) whatever the input
    rec = orjson.loads(encoded)
    assert rec["size"] == len(raw) and rec["sha256"] == hashlib.sha256(raw).hexdigest()
    assert (rec["partition"], rec["offset"]) == (2, 10**12)
    head = raw[:PAYLOAD_LIMIT]
    if rec["payload_encoding"] == "utf-8":
        assert rec["payload"].encode() == head
    else:
        assert rec["payload_encoding"] == "base64" and base64.b64decode(rec["payload"]) == head
        with pytest.raises(UnicodeDecodeError):
            head.decode()
    assert rec["payload_truncated"] == (len(raw) > PAYLOAD_LIMIT)
    assert rec["reason"] == reason.encode("utf-8", "backslashreplace").decode()


@fuzz_property(500, st.binary(max_size=4096) | big_binary(), surrogate_text, surrogate_text, surrogate_text)
def test_deadletter_record_never_fails_and_describes_the_message(raw, reason, detail, topic):
    check_record(raw, reason, detail, topic)


@fuzz_property(200, st.binary(max_size=4096) | mutated(valid_messages))
def test_every_refused_message_makes_a_record(raw):
    try:
        VALIDATOR.validate(raw, "leads", wall_ms=WALL_MS)
    except InvalidEvent as exc:
        check_record(raw, exc.reason, exc.detail, "sales.leads")


# ------------------------------------------------------------------------------------------ soak --
@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_soak_decoder_fuzz(name):
    """Every property above with SOAK_EXAMPLES examples (`pytest -m slow`)."""
    strategies, body = PROPERTIES[name]
    fuzz(SOAK_EXAMPLES)(given(*strategies)(body))()
