"""What an ingest request holds, checked exactly as the worker will check it.

A body is one event (a JSON object), a JSON array of events, or JSON Lines. ``split_body`` turns it into
the byte strings that will be produced; ``check`` runs each through the worker's ``EventValidator`` (the
topic comes from the event's type, so ``wrong_topic`` cannot happen) and, with the wall clock, the
``too_late`` rule the worker applies in live mode. No HTTP or Kafka here.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from stream.events import TOPIC_OF_TYPE, Event, EventValidator, InvalidEvent, epoch_ms, event_key
from stream.ingest.json_split import NotJson, TooManyElements, array_elements, check_one_value, has_several_lines, lines

__all__ = ["Checked", "Item", "TooManyElements", "UnreadableBody", "check", "split_body"]

JSON_LINES_TYPES = frozenset({
    "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines",
    "application/jsonlines", "application/json-lines",
})


class UnreadableBody(ValueError):
    """The body as a whole is not one event, an array of events, or JSON Lines (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Item:
    index: int  # position in the request, from 0
    raw: bytes  # what is validated and, when valid, produced unchanged
    line: int | None = None  # JSON Lines: 1-based line number in the body


@dataclass(slots=True)
class Checked:
    item: Item
    event: Event | None = None
    reason: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.event is not None

    @property
    def topic_suffix(self) -> str:
        assert self.event is not None
        return TOPIC_OF_TYPE[self.event.type]

    @property
    def key(self) -> str:
        assert self.event is not None
        return event_key(self.event)

    def event_id(self) -> str | None:
        """The event id, also of a rejected event when it has a readable one (to report against)."""
        if self.event is not None:
            return self.event.event_id
        try:
            doc = orjson.loads(self.item.raw)
        except orjson.JSONDecodeError:
            return None
        value = doc.get("event_id") if isinstance(doc, dict) else None
        return value if isinstance(value, str) else None


def split_body(body: bytes, content_type: str = "application/json", max_events: int | None = None) -> list[Item]:
    """The events of a request body, each exactly as sent; UnreadableBody, or TooManyElements past ``max_events``.

    The elements are counted before anything is copied (stream.ingest.json_split), and never decoded and
    re-encoded: an event reaches Kafka byte for byte as the client wrote it, and gets the same verdict
    alone, in an array or on a line of JSON Lines.
    """
    limit = max_events if max_events is not None else len(body) + 1
    if body.startswith(b"\xef\xbb\xbf"):  # a BOM some tools write
        body = body[3:]
    stripped = body.strip()
    if not stripped:
        raise UnreadableBody("the body is empty; send one event, a JSON array of events, or JSON Lines")
    if content_type in JSON_LINES_TYPES:
        return _lines(body, limit)
    try:
        if stripped.startswith(b"["):
            return [Item(i, raw) for i, raw in enumerate(array_elements(stripped, limit))]
        if stripped.startswith(b"{"):
            check_one_value(stripped)
            return [Item(0, stripped)]
        doc = orjson.loads(stripped)  # neither object nor array: one scalar, said what it is below
    except (NotJson, orjson.JSONDecodeError) as exc:
        # JSON Lines sent as application/json (curl's default with --data-binary @file.jsonl)
        if has_several_lines(body):
            return _lines(body, limit)
        raise UnreadableBody(f"not JSON: {exc}") from None
    raise UnreadableBody(f"expected a JSON object, an array of objects, or JSON Lines; got a JSON {type(doc).__name__}")


def _lines(body: bytes, limit: int) -> list[Item]:
    items = [Item(i, raw, number) for i, (number, raw) in enumerate(lines(body, limit))]
    if not items:
        raise UnreadableBody("the body has no non-blank line")
    return items


def check(items: list[Item], validator: EventValidator, *, wall_ms: int, too_late_ms: int | None) -> list[Checked]:
    """Validate every item; ``too_late_ms`` (live mode only) rejects what the worker would dead-letter as too late."""
    # Live mode: the worker compares with floor_minute(wall clock) - too_late (docs/kpis.md).
    oldest_ms = None if too_late_ms is None else wall_ms - wall_ms % 60_000 - too_late_ms
    results = []
    for item in items:
        try:
            event = validator.validate(item.raw, None, wall_ms=wall_ms)
        except InvalidEvent as exc:
            results.append(Checked(item, reason=exc.reason, detail=exc.detail))
            continue
        if oldest_ms is not None and epoch_ms(event.occurred_at) < oldest_ms:
            results.append(Checked(item, reason="too_late", detail=(
                f"`occurred_at` is more than {too_late_ms // 3_600_000} h before the wall clock; the worker "
                "would dead-letter it (backfill history with KPI_CLOCK=event and `kpi-monitor replay`)")))
            continue
        results.append(Checked(item, event=event))
    return results
