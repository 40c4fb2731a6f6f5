"""The event contract (docs/events.md): what `EventValidator.validate` accepts, and why it refuses the rest.

Every dead-letter reason except `too_late` and `entity_full` (decided by the engine, see tests/stream/kpi) is produced
here by at least one raw message; a fuzz test checks that nothing but an Event or an InvalidEvent with a
known reason ever comes out of `validate`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.events import (
    EVENT_TYPES,
    REASONS,
    TOPIC_OF_TYPE,
    CallLogged,
    DealCreated,
    Event,
    EventValidator,
    InvalidEvent,
    LeadCreated,
    epoch_ms,
    event_key,
)

AT = "2026-11-20T09:15:02.123Z"
WALL_MS = epoch_ms(datetime(2026, 11, 20, 9, 15, 2, 123000, tzinfo=timezone.utc))

# One valid example per event type; only the fields the type requires or commonly carries.
VALID = {
    "lead.created": {"lead_id": "L-1", "rep_id": "hana", "source": "webform"},
    "lead.assigned": {"lead_id": "L-1", "rep_id": "hugo"},
    "lead.touched": {"lead_id": "L-1", "rep_id": "hugo", "channel": "email"},
    "meeting.booked": {"lead_id": "L-1", "rep_id": "hugo"},
    "lead.qualified": {"lead_id": "L-1", "rep_id": "hugo"},
    "lead.disqualified": {"lead_id": "L-1", "reason": "no budget"},
    "call.logged": {"call_id": "C-1", "rep_id": "ines", "lead_id": "L-1", "direction": "outbound",
                    "outcome": "connected", "duration_s": 184.5},
    "deal.created": {"deal_id": "D-1", "rep_id": "felix", "lead_id": "L-1", "amount": 12000, "stage": "prospecting",
                     "product": "pro"},
    "deal.stage_changed": {"deal_id": "D-1", "to_stage": "proposal", "amount": "12500.00"},
    "deal.won": {"deal_id": "D-1", "amount": 12500.5},
    "deal.lost": {"deal_id": "D-1", "reason": "price"},
    "lead.marketing_qualified": {"lead_id": "L-1"},
    "spend.recorded": {"channel": "paid_search", "campaign": "black-friday", "amount": "420.00", "category": "marketing"},
    "subscription.started": {"account_id": "A-1", "mrr": 490, "rep_id": "felix", "product": "pro"},
    "subscription.changed": {"account_id": "A-1", "mrr": "640.00"},
    "subscription.cancelled": {"account_id": "A-1", "reason": "budget"},
    "forecast.submitted": {"rep_id": "hana", "period": "2026-11", "amount": 45000},
}


def event(etype: str, **fields) -> dict:
    doc = {"event_id": f"ev-{etype}", "type": etype, "occurred_at": AT, **VALID[etype]}
    for name, value in fields.items():
        if value is _DROP:
            doc.pop(name, None)
        else:
            doc[name] = value
    return doc


_DROP = object()


def raw(etype: str, **fields) -> bytes:
    return orjson.dumps(event(etype, **fields))


def reason_of(data: bytes, topic: str | None = None, wall_ms: int | None = None) -> str:
    with pytest.raises(InvalidEvent) as info:
        EventValidator().validate(data, topic, wall_ms=wall_ms)
    assert info.value.reason in REASONS
    assert info.value.detail and "\n" not in info.value.detail
    return info.value.reason


def test_every_type_has_an_example():
    assert set(VALID) == set(EVENT_TYPES)


@pytest.mark.parametrize("etype", sorted(VALID))
def test_valid_example_of_each_type_passes(etype):
    doc = event(etype)
    ev = EventValidator().validate(orjson.dumps(doc), TOPIC_OF_TYPE[etype], wall_ms=WALL_MS)
    assert isinstance(ev, Event) and isinstance(ev, EVENT_TYPES[etype])
    assert ev.type == etype and ev.event_id == doc["event_id"]
    assert ev.occurred_at == datetime(2026, 11, 20, 9, 15, 2, 123000, tzinfo=timezone.utc)
    for name, value in VALID[etype].items():
        got = getattr(ev, name)
        if name in ("amount", "mrr"):
            assert got == Decimal(str(value))
        else:
            assert got == value, name


# --------------------------------------------------------------------------------------- reasons --
DEEP = 10_000  # deep, but under the size limit: the parser must refuse it, not recurse to death

# (id, raw bytes, topic suffix or None, wall clock ms or None, expected reason)
REJECTED = [
    # customers and forecasts: each bad input its own reason
    ("period-month-13", raw("forecast.submitted", period="2026-13"), "forecasts", None, "invalid_period"),
    ("period-not-a-string", raw("forecast.submitted", period=202611), "forecasts", None, "invalid_period"),
    ("period-with-day", raw("forecast.submitted", period="2026-11-01"), "forecasts", None, "invalid_period"),
    ("mrr-negative", raw("subscription.changed", mrr=-1), "subscriptions", None, "negative_amount"),
    ("cancel-without-account", raw("subscription.cancelled", account_id=_DROP), "subscriptions", None,
     "missing_field"),
    ("forecast-on-subscriptions", raw("forecast.submitted"), "subscriptions", None, "wrong_topic"),
    ("oversize-65537", b" " * (64 * 1024 + 1), None, None, "oversize"),
    ("oversize-valid-json-with-padding", raw("lead.created", pad="x" * (64 * 1024)), "leads", None, "oversize"),
    ("oversize-100k-open-brackets", b"[" * 100_000, None, None, "oversize"),
    ("invalid-utf8-bare", b"\xc3\x28", None, None, "not_json"),
    ("invalid-utf8-before-object", b"\xff" + raw("lead.created"), None, None, "not_json"),
    ("utf16-encoded", json.dumps(event("lead.created")).encode("utf-16"), None, None, "not_json"),
    ("empty", b"", None, None, "not_json"),
    ("truncated-json", raw("lead.created")[:-5], None, None, "not_json"),
    ("trailing-garbage", raw("lead.created") + b"}", None, None, "not_json"),
    ("two-objects", raw("lead.created") + raw("lead.created"), None, None, "not_json"),
    ("deep-objects", b'{"a":' * DEEP + b"1" + b"}" * DEEP, None, None, "not_json"),
    ("deep-array-in-extra-field", raw("lead.created")[:-1] + b',"x":' + b"[" * DEEP + b"]" * DEEP + b"}",
     None, None, "not_json"),
    ("nan-literal", raw("call.logged").replace(b"184.5", b"NaN"), None, None, "not_json"),
    ("infinity-literal", raw("deal.won").replace(b"12500.5", b"Infinity"), None, None, "not_json"),
    ("minus-infinity-literal", raw("deal.won").replace(b"12500.5", b"-Infinity"), None, None, "not_json"),
    ("single-quotes", b"{'event_id': 'x'}", None, None, "not_json"),
    # Syntax is checked before shape: an unclosed (or too deep) array is not JSON before it is not an object.
    ("deep-array-top-level", b"[" * 60_000, None, None, "not_json"),
    ("trailing-garbage-after-empty-object", b"{}}", None, None, "not_json"),
    ("trailing-garbage-after-unknown-type", raw("lead.created", type="lead.x") + b" x", None, None, "not_json"),
    ("shallow-array-top-level", b"[" * 300 + b"]" * 300, None, None, "not_object"),
    ("array", b"[1, 2]", None, None, "not_object"),
    ("string", b'"lead.created"', None, None, "not_object"),
    ("null", b"null", None, None, "not_object"),
    ("number", b"42", None, None, "not_object"),
    ("unknown-type", raw("lead.created", type="lead.deleted"), None, None, "unknown_type"),
    ("type-case", raw("lead.created", type="Lead.Created"), None, None, "unknown_type"),
    ("type-missing", raw("lead.created", type=_DROP), None, None, "unknown_type"),
    ("type-not-string", raw("lead.created", type=3), None, None, "unknown_type"),
    ("type-null", raw("lead.created", type=None), None, None, "unknown_type"),
    ("missing-event-id", raw("lead.created", event_id=_DROP), None, None, "missing_field"),
    ("missing-occurred-at", raw("lead.touched", occurred_at=_DROP), None, None, "missing_field"),
    ("missing-lead-id", raw("lead.created", lead_id=_DROP), None, None, "missing_field"),
    ("missing-rep-on-assigned", raw("lead.assigned", rep_id=_DROP), None, None, "missing_field"),
    ("missing-channel", raw("lead.touched", channel=_DROP), None, None, "missing_field"),
    ("missing-duration", raw("call.logged", duration_s=_DROP), None, None, "missing_field"),
    ("missing-amount-on-created", raw("deal.created", amount=_DROP), None, None, "missing_field"),
    ("missing-to-stage", raw("deal.stage_changed", to_stage=_DROP), None, None, "missing_field"),
    ("event-id-number", raw("lead.created", event_id=17), None, None, "invalid_field"),
    ("event-id-empty", raw("lead.created", event_id=""), None, None, "invalid_field"),
    ("event-id-129-chars", raw("lead.created", event_id="e" * 129), None, None, "invalid_field"),
    ("rep-id-65-chars", raw("lead.touched", rep_id="r" * 65), None, None, "invalid_field"),
    ("rep-id-empty", raw("lead.touched", rep_id=""), None, None, "invalid_field"),
    ("team-65-chars", raw("lead.touched", team="t" * 65), None, None, "invalid_field"),
    ("lead-id-null", raw("lead.created", lead_id=None), None, None, "invalid_field"),
    ("lead-id-object", raw("lead.created", lead_id={"id": 1}), None, None, "invalid_field"),
    ("channel-unknown", raw("lead.touched", channel="fax"), None, None, "invalid_field"),
    ("direction-unknown", raw("call.logged", direction="sideways"), None, None, "invalid_field"),
    ("outcome-unknown", raw("call.logged", outcome="hung_up"), None, None, "invalid_field"),
    ("duration-string", raw("call.logged", duration_s="12"), None, None, "invalid_field"),
    ("duration-bool", raw("call.logged", duration_s=True), None, None, "invalid_field"),
    ("duration-negative", raw("call.logged", duration_s=-1), None, None, "invalid_field"),
    ("duration-1e400", raw("call.logged").replace(b"184.5", b"1e400"), None, None, "invalid_field"),
    ("amount-bool", raw("deal.created", amount=True), None, None, "invalid_field"),
    ("amount-not-a-number", raw("deal.created", amount="twelve"), None, None, "invalid_field"),
    ("amount-comma", raw("deal.created", amount="1,5"), None, None, "invalid_field"),
    ("amount-list", raw("deal.created", amount=[1]), None, None, "invalid_field"),
    ("currency-number", raw("deal.won", currency=840), None, None, "invalid_field"),
    ("source-too-long", raw("lead.created", source="s" * 1025), None, None, "invalid_field"),
    ("ts-year-1", raw("lead.created", occurred_at="0001-01-01T00:00:00Z"), None, None, "bad_timestamp"),
    ("ts-year-9999", raw("lead.created", occurred_at="9999-12-31T23:59:59.999Z"), None, None, "bad_timestamp"),
    ("ts-without-offset", raw("lead.created", occurred_at="2026-11-20T09:15:02.123"), None, None, "bad_timestamp"),
    ("ts-date-only", raw("lead.created", occurred_at="2026-11-20"), None, None, "bad_timestamp"),
    ("ts-month-13", raw("lead.created", occurred_at="2026-13-01T00:00:00Z"), None, None, "bad_timestamp"),
    ("ts-epoch-number", raw("lead.created", occurred_at=1_763_630_102), None, None, "bad_timestamp"),
    ("ts-garbage", raw("lead.created", occurred_at="yesterday"), None, None, "bad_timestamp"),
    ("ts-before-1990", raw("lead.created", occurred_at="1989-12-31T23:59:59Z"), None, None, "bad_timestamp"),
    ("future-10-min", raw("lead.created", occurred_at="2026-11-20T09:25:02.124Z"), "leads", WALL_MS, "future"),
    ("future-offset-form", raw("lead.created", occurred_at="2026-11-20T10:25:02.124+01:00"), None, WALL_MS,
     "future"),
    ("amount-negative-number", raw("deal.created", amount=-1), None, None, "negative_amount"),
    ("amount-negative-string", raw("deal.stage_changed", amount="-0.01"), None, None, "negative_amount"),
    ("amount-negative-won", raw("deal.won", amount=-12500), None, None, "negative_amount"),
    ("amount-1e400", raw("deal.won").replace(b"12500.5", b"1e400"), None, None, "invalid_amount"),
    ("amount-string-1e20", raw("deal.created", amount="1e20"), None, None, "invalid_amount"),
    ("amount-string-nan", raw("deal.created", amount="NaN"), None, None, "invalid_amount"),
    ("amount-string-infinity", raw("deal.created", amount="Infinity"), None, None, "invalid_amount"),
    ("amount-1e-999999999", raw("deal.won").replace(b"12500.5", b"1e-999999999"), None, None, "invalid_amount"),
    ("amount-21-decimals", raw("deal.won", amount="0.000000000000000000001"), None, None, "invalid_amount"),
    ("amount-string-padded", raw("deal.created", amount=" 12 "), None, None, "invalid_field"),
    ("amount-string-underscore", raw("deal.created", amount="1_000"), None, None, "invalid_field"),
    ("amount-string-plus", raw("deal.created", amount="+5"), None, None, "invalid_field"),
    ("amount-string-arabic-indic-digit", raw("deal.created", amount="\u0661"), None, None, "invalid_field"),
    ("currency-eur", raw("deal.created", currency="EUR"), None, None, "wrong_currency"),
    ("currency-lowercase", raw("deal.won", currency="usd"), None, None, "wrong_currency"),
    ("stage-unknown", raw("deal.created", stage="closed_won"), None, None, "unknown_stage"),
    ("stage-case", raw("deal.created", stage="Proposal"), None, None, "unknown_stage"),
    ("to-stage-unknown", raw("deal.stage_changed", to_stage="won"), None, None, "unknown_stage"),
    ("kind-unknown", raw("deal.created", kind="upsell"), None, None, "unknown_kind"),
    ("kind-not-a-string", raw("deal.created", kind=1), None, None, "unknown_kind"),
    ("term-zero", raw("deal.created", term_months=0), None, None, "invalid_term"),
    ("term-121", raw("deal.won", term_months=121), None, None, "invalid_term"),
    ("term-fraction", raw("deal.won", term_months=6.5), None, None, "invalid_term"),
    ("spend-negative", raw("spend.recorded", amount=-1), None, None, "negative_amount"),
    ("spend-no-channel", raw("spend.recorded", channel=_DROP), None, None, "missing_field"),
    ("spend-on-deals", raw("spend.recorded"), "deals", None, "wrong_topic"),
    ("lead-on-deals-topic", raw("lead.created"), "deals", None, "wrong_topic"),
    ("call-on-leads-topic", raw("call.logged"), "leads", None, "wrong_topic"),
    ("deal-on-calls-topic", raw("deal.won"), "calls", None, "wrong_topic"),
]


@pytest.mark.parametrize("data, topic, wall_ms, reason", [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_rejected_with_reason(data, topic, wall_ms, reason):
    assert reason_of(data, topic, wall_ms) == reason


# Invalid UTF-8 *inside a JSON string that the decoder reads* escapes as UnicodeDecodeError instead of
# InvalidEvent("not_json"); the worker then dead-letters it as `internal_error` (not a REASON) and logs
# a traceback per message.
INVALID_UTF8_IN_STRINGS = {
    "in-event-id": raw("lead.created", event_id="@@").replace(b"@@", b"\xff\xfe"),
    "in-type": b'{"type": "\xff"}',
    "in-source": raw("lead.created", source="@@").replace(b"@@", b"\x80"),
    "encoded-surrogate": raw("lead.touched", rep_id="@@").replace(b"@@", b"\xed\xa0\x80"),
    # msgspec does not decode the strings of fields it ignores, so these used to be accepted.
    "in-unknown-field": raw("lead.created", note="@@").replace(b"@@", b"\xff"),
    "in-unknown-key": raw("lead.created", note="x").replace(b"note", b"n\xc3\x28te"),
    "overlong-slash-in-unknown-field": raw("lead.created", note="@@").replace(b"@@", b"\xc0\xaf"),
    "above-u10ffff-in-unknown-list": raw("lead.created", tags=["@@"]).replace(b"@@", b"\xf4\x90\x80\x80"),
}


@pytest.mark.parametrize("data", list(INVALID_UTF8_IN_STRINGS.values()), ids=list(INVALID_UTF8_IN_STRINGS))
def test_invalid_utf8_inside_strings_is_not_json(data):
    assert reason_of(data) == "not_json"


@pytest.mark.parametrize(
    "data",
    [
        raw("lead.created", type="x\x00\n\r\x1b[31m\u202e\u2028"),
        raw("deal.created", stage="won\nFAKE LOG LINE"),
        raw("deal.won").replace(b"12500.5", b"9" * 60_000),
        raw("lead.created", type="t" * 60_000),
    ],
    ids=["control-chars-in-type", "newline-in-stage", "60k-digit-amount", "60k-char-type"],
)
def test_detail_is_one_short_printable_line_whatever_the_input(data):
    with pytest.raises(InvalidEvent) as info:
        EventValidator().validate(data)
    detail = info.value.detail
    assert detail.isprintable() and len(detail) < 1100
    assert str(info.value) == f"{info.value.reason}: {detail}"


def test_every_reason_but_too_late_is_produced():
    produced = {r[-1] for r in REJECTED}
    assert produced == set(REASONS) - {"too_late", "entity_full"}


def test_future_tolerance_is_five_minutes():
    v = EventValidator()
    four_min = raw("lead.created", occurred_at="2026-11-20T09:19:02.123Z")
    assert v.validate(four_min, "leads", wall_ms=WALL_MS).event_id == "ev-lead.created"
    exactly_five = raw("lead.created", occurred_at="2026-11-20T09:20:02.123Z")
    assert v.validate(exactly_five, "leads", wall_ms=WALL_MS)
    past = raw("lead.created", occurred_at="2026-11-10T09:15:02.123Z")
    assert v.validate(past, "leads", wall_ms=WALL_MS)  # old is not invalid; too_late is the engine's call
    ten_min = raw("lead.created", occurred_at="2026-11-20T09:25:02.123Z")
    assert v.validate(ten_min, "leads")  # no wall clock given: no future check (replay)


# ---------------------------------------------------------------------------------------- accepted --
@pytest.mark.parametrize(
    "text, expected",
    [
        ("12500.25", Decimal("12500.25")),
        ("0.10", Decimal("0.10")),
        ("0.1", Decimal("0.1")),
        ("999999999999.99", Decimal("999999999999.99")),
        ("0", Decimal("0")),
        ("1E+3", Decimal("1000")),
        (".5", Decimal("0.5")),
        ("0.00000000000000000001", Decimal("1e-20")),
    ],
)
def test_amount_decimal_string_is_exact(text, expected):
    ev = EventValidator().validate(raw("deal.created", amount=text), "deals")
    assert isinstance(ev, DealCreated)
    assert isinstance(ev.amount, Decimal) and ev.amount == expected
    assert str(ev.amount) == str(Decimal(text))  # not via float: no 0.1000000000000000055...


def test_amount_json_number_keeps_its_digits():
    data = raw("deal.created").replace(b'"amount":12000', b'"amount":0.1')
    ev = EventValidator().validate(data, "deals")
    assert ev.amount == Decimal("0.1")


def test_amount_in_reporting_currency_is_accepted():
    assert EventValidator().validate(raw("deal.won", currency="USD")).amount == Decimal("12500.5")
    assert EventValidator(currency="EUR").validate(raw("deal.won", currency="EUR"))


def test_configured_stages_decide():
    v = EventValidator(stages=("new", "won_pending"))
    assert v.validate(raw("deal.created", stage="new")).stage == "new"
    with pytest.raises(InvalidEvent) as info:
        v.validate(raw("deal.created", stage="prospecting"))
    assert info.value.reason == "unknown_stage"


@pytest.mark.parametrize(
    "text, utc",
    [
        ("2026-11-20T09:15:02.123Z", datetime(2026, 11, 20, 9, 15, 2, 123000, tzinfo=timezone.utc)),
        ("2026-11-20T10:15:02.123+01:00", datetime(2026, 11, 20, 9, 15, 2, 123000, tzinfo=timezone.utc)),
        ("2026-11-20T03:45:02.123-05:30", datetime(2026, 11, 20, 9, 15, 2, 123000, tzinfo=timezone.utc)),
        ("2026-11-20T09:15:02Z", datetime(2026, 11, 20, 9, 15, 2, tzinfo=timezone.utc)),
        ("1990-01-01T00:00:00Z", datetime(1990, 1, 1, tzinfo=timezone.utc)),
    ],
)
def test_timestamps_with_offsets(text, utc):
    ev = EventValidator().validate(raw("lead.created", occurred_at=text))
    assert ev.occurred_at == utc and ev.occurred_at.utcoffset() is not None
    assert epoch_ms(ev.occurred_at) == int(utc.timestamp() * 1000)


@pytest.mark.parametrize(
    "value",
    [
        "a\x00b",
        "line\nbreak\ttab\r\x1b[31mred",
        "'; DROP TABLE leads; --",
        "<script>alert(1)</script>",
        "{{7*7}} ${jndi:ldap://x/a}",
        "../../etc/passwd",
        "ünïcødé-名前-🙂",
        "x" * 64,
    ],
)
def test_odd_but_valid_ids_are_kept_verbatim(value):
    ev = EventValidator().validate(raw("lead.touched", event_id=value, lead_id=value, rep_id=value, team=value))
    assert (ev.event_id, ev.lead_id, ev.rep_id, ev.team) == (value, value, value, value)


def test_unknown_extra_fields_are_accepted():
    data = raw("call.logged", crm={"id": [1, 2, {"x": None}]}, note="hi", score=1e300, flag=False)
    ev = EventValidator().validate(data, "calls")
    assert isinstance(ev, CallLogged) and ev.call_id == "C-1"


def test_optional_fields_may_be_absent_or_null():
    v = EventValidator()
    ev = v.validate(raw("lead.created", rep_id=_DROP, source=_DROP), "leads")
    assert isinstance(ev, LeadCreated) and ev.rep_id is None and ev.team is None
    assert v.validate(raw("lead.created", rep_id=None, team=None), "leads").rep_id is None
    assert v.validate(raw("deal.won", amount=_DROP), "deals").amount is None
    assert v.validate(raw("call.logged", lead_id=_DROP), "calls").lead_id is None


def test_size_limit_is_inclusive():
    base = raw("lead.created")
    padded = base[:-1] + b',"pad":"' + b"x" * (64 * 1024 - len(base) - 9) + b'"}'
    assert len(padded) == 64 * 1024
    assert EventValidator().validate(padded, "leads")
    assert reason_of(padded + b" ") == "oversize"


# ------------------------------------------------------------------------------------------- fuzz --
def _outcome(data: bytes) -> None:
    try:
        ev = EventValidator().validate(data, None, wall_ms=WALL_MS)
    except InvalidEvent as exc:
        assert exc.reason in REASONS and exc.reason not in ("too_late", "entity_full")
        assert isinstance(exc.detail, str)
    else:
        assert isinstance(ev, Event)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes(data):
    _outcome(data)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "USD", "EUR", "proposal", "won", "email", "connected", "outbound", AT,
                     "0001-01-01T00:00:00Z", "2026-11-20T09:15:02", "1e20", "-5", "NaN", "12.50"]),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = sorted({"event_id", "type", "occurred_at", "rep_id", "team", "lead_id", "call_id", "deal_id", "source",
                  "channel", "direction", "outcome", "duration_s", "amount", "stage", "to_stage", "currency",
                  "reason", "product", "campaign", "kind", "account_id", "term_months", "category", "mrr", "period"})


@st.composite
def jsonish_events(draw):
    """Mostly-plausible events: a real type and real field names, with arbitrary values mixed in."""
    etype = draw(st.one_of(st.sampled_from(sorted(EVENT_TYPES)), _json))
    doc = dict(event(etype)) if isinstance(etype, str) and etype in EVENT_TYPES else {"type": etype}
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()):
            doc.pop(name, None)
        else:
            doc[name] = draw(_json)
    doc.update(draw(st.dictionaries(st.text(max_size=6), _json, max_size=2)))
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(jsonish_events(), _json))
def test_fuzz_jsonish_documents(doc):
    _outcome(json.dumps(doc, allow_nan=True).encode())


def test_subscriptions_and_forecasts_route_to_their_topics_and_keys():
    v = EventValidator()
    sub = v.validate(raw("subscription.cancelled"), "subscriptions")
    fc = v.validate(raw("forecast.submitted"), "forecasts")
    assert (TOPIC_OF_TYPE[sub.type], event_key(sub)) == ("subscriptions", "A-1")
    assert (TOPIC_OF_TYPE[fc.type], event_key(fc)) == ("forecasts", "hana")
