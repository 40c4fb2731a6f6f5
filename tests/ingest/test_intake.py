"""Splitting request bodies into events and checking them like the worker (no HTTP, no Kafka)."""

from __future__ import annotations

import time

import orjson
import pytest

from stream.events import EventValidator
from stream.ingest.intake import UnreadableBody, check, split_body
from tests.ingest.helpers import ts

LEAD = {"event_id": "e1", "type": "lead.created", "occurred_at": "2026-11-23T09:15:02.123Z", "lead_id": "L1"}
CALL = {"event_id": "e2", "type": "call.logged", "occurred_at": "2026-11-23T09:16:00Z", "call_id": "C1",
        "rep_id": "hana", "direction": "outbound", "outcome": "connected", "duration_s": 30}


def test_one_object_is_produced_as_sent():
    body = b'  {"event_id": "e1",  "type": "lead.created", "occurred_at": "2026-11-23T09:15:02Z", "lead_id": "L1"}\n'
    [item] = split_body(body)
    assert item.raw == body.strip() and item.index == 0 and item.line is None


def test_array_elements_become_one_item_each():
    items = split_body(orjson.dumps([LEAD, CALL, 7]))
    assert [orjson.loads(i.raw) for i in items] == [LEAD, CALL, 7]
    assert [i.index for i in items] == [0, 1, 2]


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/jsonl", "application/json"])
def test_json_lines_keep_line_numbers_and_skip_blank_lines(content_type):
    body = orjson.dumps(LEAD) + b"\n\n" + orjson.dumps(CALL) + b"\r\n{broken\n"
    items = split_body(body, content_type)
    assert [(i.index, i.line) for i in items] == [(0, 1), (1, 3), (2, 4)]
    assert items[2].raw == b"{broken"


@pytest.mark.parametrize("body, words", [
    (b"", "empty"), (b"  \n ", "empty"), (b"42", "JSON int"), (b'"text"', "JSON str"), (b"{broken", "not JSON"),
    (b"null", "JSON NoneType"),
])
def test_unreadable_bodies(body, words):
    with pytest.raises(UnreadableBody, match=words):
        split_body(body)


def test_a_bom_is_ignored():
    assert len(split_body(b"\xef\xbb\xbf" + orjson.dumps([LEAD]))) == 1


def _reasons(events: list, too_late_ms: int | None) -> list:
    wall_ms = int(time.time() * 1000)
    checked = check(split_body(orjson.dumps(events)), EventValidator(), wall_ms=wall_ms, too_late_ms=too_late_ms)
    return [c.reason for c in checked]


def test_too_late_only_with_the_wall_clock():
    old = {**LEAD, "occurred_at": ts(-26 * 3600)}
    recent = {**LEAD, "event_id": "e9", "occurred_at": ts(-24 * 3600)}
    assert _reasons([old, recent], too_late_ms=25 * 3600 * 1000) == ["too_late", None]
    assert _reasons([old, recent], too_late_ms=None) == [None, None]  # event clock: the worker decides


def test_checked_reports_key_topic_and_event_ids_of_rejected_events():
    body = orjson.dumps([CALL, {**CALL, "event_id": "bad", "duration_s": -1}, [1]])
    good, bad, worse = check(split_body(body), EventValidator(), wall_ms=int(time.time() * 1000), too_late_ms=None)
    assert (good.topic_suffix, good.key, good.event_id()) == ("calls", "C1", "e2")
    assert (bad.reason, bad.event_id()) == ("invalid_field", "bad")
    assert (worse.reason, worse.event_id()) == ("not_object", None)
