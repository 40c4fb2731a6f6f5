"""The event contract (docs/events.md): typed models, and validation straight from Kafka bytes.

``EventValidator.validate(raw, topic)`` returns a typed event or raises ``InvalidEvent`` with a
machine-readable ``reason`` and a human-readable ``detail``; the worker turns the latter into a
dead-letter record. Decoding is one msgspec pass into a tagged union: no intermediate dict.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Annotated, Literal, Union

import msgspec

# Machine-readable dead-letter reasons, in the order checks run.
REASONS = (
    "oversize",
    "not_json",
    "not_object",
    "unknown_type",
    "missing_field",
    "invalid_field",
    "bad_timestamp",
    "future",
    "negative_amount",
    "invalid_amount",
    "wrong_currency",
    "unknown_stage",
    "unknown_kind",
    "invalid_term",
    "invalid_period",
    "wrong_topic",
    "too_late",
    "entity_full",
)

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
RepId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Team = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
Text = Annotated[str, msgspec.Meta(max_length=1024)]
# A channel (lead source, spend channel) or campaign: a label of the `sources`/`campaigns` sections.
Channel = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
TermMonths = int  # 1..120, checked after decoding (its own reason, invalid_term)
DealKind = str  # new | expansion | renewal, checked after decoding (unknown_kind)
DEAL_KINDS = ("new", "expansion", "renewal")
# Decimal accepts a JSON number or a decimal string; sign and finiteness are checked after decoding.
Money = Decimal


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    event_id: Id
    occurred_at: Timestamp
    rep_id: RepId | None = None
    team: Team | None = None

    @property
    def type(self) -> str:
        return self.__struct_config__.tag  # type: ignore[return-value]


class LeadCreated(Event, tag="lead.created"):
    lead_id: Id
    source: Text | None = None  # up to 1024 characters, as before campaigns existed; "" counts as unspecified
    campaign: Channel | None = None


class LeadAssigned(Event, tag="lead.assigned"):
    lead_id: Id
    rep_id: RepId


class LeadTouched(Event, tag="lead.touched"):
    lead_id: Id
    rep_id: RepId
    channel: Literal["email", "sms", "chat", "social", "other"]


class MeetingBooked(Event, tag="meeting.booked"):
    lead_id: Id
    rep_id: RepId


class LeadQualified(Event, tag="lead.qualified"):
    lead_id: Id
    rep_id: RepId


class LeadDisqualified(Event, tag="lead.disqualified"):
    lead_id: Id
    reason: Text | None = None


class CallLogged(Event, tag="call.logged"):
    call_id: Id
    rep_id: RepId
    direction: Literal["outbound", "inbound"]
    outcome: Literal["connected", "no_answer", "voicemail", "busy", "failed"]
    duration_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)]  # a "call" longer than a day is a data error
    lead_id: Id | None = None


class DealCreated(Event, tag="deal.created"):
    deal_id: Id
    rep_id: RepId
    amount: Money
    stage: Id
    lead_id: Id | None = None
    product: Text | None = None
    currency: str | None = None
    kind: DealKind | None = None  # absent: new
    account_id: Id | None = None
    source: Channel | None = None
    campaign: Channel | None = None
    term_months: TermMonths | None = None


class DealStageChanged(Event, tag="deal.stage_changed"):
    deal_id: Id
    to_stage: Id
    amount: Money | None = None
    currency: str | None = None


class DealWon(Event, tag="deal.won"):
    deal_id: Id
    amount: Money | None = None
    currency: str | None = None
    term_months: TermMonths | None = None  # overrides deal.created's


class DealLost(Event, tag="deal.lost"):
    deal_id: Id
    reason: Text | None = None


class LeadMarketingQualified(Event, tag="lead.marketing_qualified"):
    lead_id: Id


class SpendRecorded(Event, tag="spend.recorded"):
    """Money spent on a channel (and campaign) at ``occurred_at``; not credited to a rep."""

    channel: Channel
    amount: Money
    campaign: Channel | None = None
    category: Literal["marketing", "sales"] | None = None  # absent: marketing


class SubscriptionStarted(Event, tag="subscription.started"):
    account_id: Id
    mrr: Money
    product: Text | None = None
    currency: str | None = None


class SubscriptionChanged(Event, tag="subscription.changed"):
    account_id: Id
    mrr: Money
    currency: str | None = None


class SubscriptionCancelled(Event, tag="subscription.cancelled"):
    account_id: Id
    reason: Text | None = None


class ForecastSubmitted(Event, tag="forecast.submitted"):
    rep_id: RepId
    period: str  # YYYY-MM, checked after decoding (invalid_period)
    amount: Money
    currency: str | None = None


AnyEvent = Union[
    LeadCreated,
    LeadAssigned,
    LeadTouched,
    MeetingBooked,
    LeadQualified,
    LeadDisqualified,
    CallLogged,
    DealCreated,
    DealStageChanged,
    DealWon,
    DealLost,
    LeadMarketingQualified,
    SpendRecorded,
    SubscriptionStarted,
    SubscriptionChanged,
    SubscriptionCancelled,
    ForecastSubmitted,
]

EVENT_TYPES: dict[str, type[Event]] = {cls.__struct_config__.tag: cls for cls in AnyEvent.__args__}  # type: ignore[attr-defined,misc]

# Which topic (suffix) carries which type, and the message key it is produced with.
TOPIC_OF_TYPE: dict[str, str] = {
    **{t: "leads" for t in EVENT_TYPES if t.startswith(("lead.", "meeting."))},
    "call.logged": "calls",
    **{t: "deals" for t in EVENT_TYPES if t.startswith("deal.")},
    "spend.recorded": "spend",
    **{t: "subscriptions" for t in EVENT_TYPES if t.startswith("subscription.")},
    "forecast.submitted": "forecasts",
}

# Lifecycle rank used to order events with equal occurred_at (docs/events.md).
LIFECYCLE_RANK: dict[str, int] = {
    "lead.created": 0,
    "lead.assigned": 1,
    "lead.marketing_qualified": 2,
    "lead.touched": 3,
    "call.logged": 3,
    "meeting.booked": 4,
    "lead.qualified": 5,
    "lead.disqualified": 6,
    "deal.created": 0,
    "deal.stage_changed": 1,
    "deal.won": 2,
    "deal.lost": 2,
    "spend.recorded": 0,
    "subscription.started": 0,
    "subscription.changed": 1,
    "subscription.cancelled": 2,
    "forecast.submitted": 0,
}


def event_key(event: Event) -> str:
    """The Kafka message key of an event: lead_id (leads, calls with a lead), call_id, deal_id, the
    spend's channel, account_id (subscriptions) or rep_id (forecasts)."""
    if isinstance(event, SpendRecorded):
        return event.channel
    lead_id = getattr(event, "lead_id", None)
    if isinstance(event, CallLogged):
        return lead_id or event.call_id
    if isinstance(event, (DealCreated, DealStageChanged, DealWon, DealLost)):
        return event.deal_id
    if isinstance(event, (SubscriptionStarted, SubscriptionChanged, SubscriptionCancelled)):
        return event.account_id
    if isinstance(event, ForecastSubmitted):
        return event.rep_id
    return lead_id  # type: ignore[return-value]


def epoch_ms(ts: datetime) -> int:
    """UTC milliseconds since the epoch; works for year 1 and year 9999 alike."""
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Money is below 10^16 with at most 20 decimal places: beyond that a value is a data error (1e300, 1e-999999999,
# a 60,000-digit fraction), and the bound keeps every stored amount short and every sum exact enough.
_MAX_AMOUNT_ADJUSTED_EXPONENT = 15
_MIN_AMOUNT_EXPONENT = -20
# A decimal string is what a JSON number would be, quoted: ASCII digits, optional sign, point and exponent.
# Python's Decimal() alone would also take " 12 ", "1_000", "+5" and non-ASCII digits ("\u0661" is 1).
_DECIMAL_TEXT = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?", re.ASCII)
# Sales events from before 1990 or after 2199 are data errors, not history or plans.
_MIN_TS_MS = epoch_ms(datetime(1990, 1, 1, tzinfo=timezone.utc))
_MAX_TS_MS = epoch_ms(datetime(2200, 1, 1, tzinfo=timezone.utc))


DETAIL_MAX_CHARS = 1000


def one_line(text: str, limit: int = DETAIL_MAX_CHARS) -> str:
    """``text`` as one line of printable characters, at most ``limit`` long (plus a note of what was cut).

    Details quote the offending input (msgspec's "Invalid value '...'"), and they end up in log lines and
    alert messages: a raw newline would forge a log line, an ANSI escape recolour a terminal, a bidi
    override reorder what a reader sees, and a 60,000-digit number bury the rest. Those characters are
    shown as Python escapes (``\\n``, ``\\x1b``, ``\\u202e``) instead.
    """
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text


class InvalidEvent(Exception):
    """An event that cannot be applied; ``reason`` is one of REASONS, ``detail`` one printable line."""

    def __init__(self, reason: str, detail: str) -> None:
        detail = one_line(detail)
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_MISSING = re.compile(r"missing required field `([^`]+)`")
_AT_PATH = re.compile(r"at `\$\.?([^`]*)`")


def _classify(exc: msgspec.ValidationError) -> InvalidEvent:
    msg = str(exc)
    path_match = _AT_PATH.search(msg)
    path = path_match.group(1) if path_match else ""
    missing = _MISSING.search(msg)
    if missing and not path:
        field = missing.group(1)
        if field == "type":
            return InvalidEvent("unknown_type", "the event has no `type` field")
        return InvalidEvent("missing_field", f"required field `{field}` is missing")
    if msg.startswith("Expected `object`") and not path:
        return InvalidEvent("not_object", f"the message must be a JSON object ({msg})")
    if path == "type":
        return InvalidEvent("unknown_type", f"unknown event type ({msg}); known: {', '.join(EVENT_TYPES)}")
    if path == "period":
        return InvalidEvent("invalid_period", f"`period` must be a calendar month \"YYYY-MM\" ({msg})")
    if path == "occurred_at":
        return InvalidEvent("bad_timestamp", f"`occurred_at` must be RFC 3339 with an offset ({msg})")
    if path == "kind":
        return InvalidEvent("unknown_kind", f"`kind` must be one of {', '.join(DEAL_KINDS)} ({msg})")
    if path == "term_months":
        return InvalidEvent("invalid_term", f"`term_months` must be a whole number of months from 1 to 120 ({msg})")
    return InvalidEvent("invalid_field", msg)


class EventValidator:
    """Validates raw message bytes against the contract and the deployment's configuration."""

    def __init__(
        self,
        *,
        currency: str = "USD",
        stages: tuple[str, ...] = ("prospecting", "qualification", "proposal", "negotiation"),
        max_bytes: int = 64 * 1024,
        future_tolerance_s: float = 300.0,
    ) -> None:
        self.currency = currency
        self.stages = frozenset(stages)
        self.max_bytes = max_bytes
        self.future_tolerance_ms = int(future_tolerance_s * 1000)
        self._decoder = msgspec.json.Decoder(AnyEvent)
        self._amount_decoder = msgspec.json.Decoder(_AmountAsSent)
        self._syntax_checker = msgspec.json.Decoder(msgspec.Raw)

    def validate(self, raw: bytes, topic_suffix: str | None = None, *, wall_ms: int | None = None) -> Event:
        """Decode and check one message; ``topic_suffix`` (leads/calls/deals) checks it came on the right topic."""
        if len(raw) > self.max_bytes:
            raise InvalidEvent("oversize", f"message is {len(raw)} bytes; the limit is {self.max_bytes}")
        # msgspec checks UTF-8 only in the strings it decodes: bad bytes in an ignored extra field or key
        # would pass. The whole message must be UTF-8 (RFC 8259 section 8.1); ASCII, the usual case, is free.
        if not raw.isascii():
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidEvent("not_json", f"not valid UTF-8: {exc.reason} at byte {exc.start}") from None
        try:
            event = self._decoder.decode(raw)
        except msgspec.ValidationError as exc:
            # msgspec stops at the first field that does not fit, before reading the rest: `{}}` would be
            # "no type" and `{"type": "x"} garbage` an unknown type, though neither is JSON. Syntax first.
            self._require_json_syntax(raw)
            raise _classify(exc) from None
        except msgspec.DecodeError as exc:
            raise InvalidEvent("not_json", f"not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidEvent("not_json", "JSON nested too deeply") from None
        except UnicodeDecodeError as exc:
            raise InvalidEvent("not_json", f"not valid UTF-8: {exc.reason} at byte {exc.start}") from None
        self._check(event, raw, topic_suffix, wall_ms)
        return event

    def _require_json_syntax(self, raw: bytes) -> None:
        # Decoding as Raw only walks the text: no objects are built, no number is converted.
        try:
            self._syntax_checker.decode(raw)
        except msgspec.DecodeError as exc:
            raise InvalidEvent("not_json", f"not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidEvent("not_json", "JSON nested too deeply") from None

    def _check(self, event: Event, raw: bytes, topic_suffix: str | None, wall_ms: int | None) -> None:
        ts_ms = epoch_ms(event.occurred_at)
        if not _MIN_TS_MS <= ts_ms < _MAX_TS_MS:
            raise InvalidEvent("bad_timestamp", f"`occurred_at` {event.occurred_at.isoformat()} is outside 1990..2199")
        if wall_ms is not None:
            ahead_ms = ts_ms - wall_ms
            if ahead_ms > self.future_tolerance_ms:
                raise InvalidEvent(
                    "future", f"`occurred_at` is {ahead_ms / 1000:.0f} s ahead of the wall clock (limit {self.future_tolerance_ms // 1000} s)"
                )
        for name in _MONEY_FIELDS:
            amount = getattr(event, name, None)
            if amount is None:
                continue
            if (
                not amount.is_finite()
                or amount.adjusted() > _MAX_AMOUNT_ADJUSTED_EXPONENT
                or amount.as_tuple().exponent < _MIN_AMOUNT_EXPONENT  # type: ignore[operator]
            ):
                raise InvalidEvent(
                    "invalid_amount", f"`{name}` must be a finite number below 10^16 with at most 20 decimals, got {amount}"
                )
            if amount < 0:
                raise InvalidEvent("negative_amount", f"`{name}` must be >= 0, got {amount}")
            self._check_amount_text(raw, name)
        currency = getattr(event, "currency", None)
        if currency is not None and currency != self.currency:
            raise InvalidEvent("wrong_currency", f"`currency` is {currency!r}; the reporting currency is {self.currency}")
        stage = getattr(event, "stage", None) or getattr(event, "to_stage", None)
        if stage is not None and stage not in self.stages:
            raise InvalidEvent("unknown_stage", f"stage {stage!r} is not a configured open stage ({', '.join(sorted(self.stages))})")
        kind = getattr(event, "kind", None)
        if kind is not None and kind not in DEAL_KINDS:
            raise InvalidEvent("unknown_kind", f"`kind` {kind!r} is not one of {', '.join(DEAL_KINDS)}")
        term = getattr(event, "term_months", None)
        if term is not None and not 1 <= term <= 120:
            raise InvalidEvent("invalid_term", f"`term_months` must be a whole number of months from 1 to 120, got {term}")
        if isinstance(event, ForecastSubmitted) and not _PERIOD.fullmatch(event.period):
            raise InvalidEvent("invalid_period", f"`period` must be a calendar month YYYY-MM (1990..2199), got {event.period!r}")
        if isinstance(event, CallLogged) and not math.isfinite(event.duration_s):
            raise InvalidEvent("invalid_field", "`duration_s` must be finite")
        if topic_suffix is not None and TOPIC_OF_TYPE[event.type] != topic_suffix:
            raise InvalidEvent(
                "wrong_topic", f"`{event.type}` belongs on the {TOPIC_OF_TYPE[event.type]} topic, not {topic_suffix}"
            )

    def _check_amount_text(self, raw: bytes, name: str = "amount") -> None:
        # The decoded Decimal no longer shows how the amount was written, so read the field once more as
        # raw JSON: a second msgspec pass over a message of at most 64 KiB, only for events with an amount.
        sent = bytes(getattr(self._amount_decoder.decode(raw), name))
        if sent.startswith(b'"'):
            text = msgspec.json.decode(sent, type=str)
            if not _DECIMAL_TEXT.fullmatch(text):
                raise InvalidEvent("invalid_field", f"`{name}` {text!r} is not a plain decimal string like \"1200.50\"")


class _AmountAsSent(msgspec.Struct):
    """The money fields of a message as their raw JSON text (a number, or a string with its quotes)."""

    amount: msgspec.Raw = msgspec.Raw(b"null")
    mrr: msgspec.Raw = msgspec.Raw(b"null")


_MONEY_FIELDS = ("amount", "mrr")
# A forecast's period: a calendar month, in the years events may have.
_PERIOD = re.compile(r"(?:199\d|2[01]\d\d)-(?:0[1-9]|1[0-2])", re.ASCII)


_encoder = msgspec.json.Encoder(decimal_format="number")


def encode_event(event: Event) -> bytes:
    """JSON bytes of an event (amounts as JSON numbers)."""
    return _encoder.encode(event)
