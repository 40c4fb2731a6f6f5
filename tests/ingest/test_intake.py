"""Splitting request bodies into events and checking them like the worker (no HTTP, no Kafka)."""

from __future__ import annotations

import time

import orjson
import pytest

from stream.events import EventValidator
from stream.ingest.intake import TooManyElements, UnreadableBody, check, split_body
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


# Money as clients write it: 16 significant digits and more, which a float cannot hold.
EXACT_DEAL = (b'{"event_id": "m1", "type": "deal.won", "occurred_at": "2026-11-23T09:15:02Z", "deal_id": "D9",'
              b' "amount": 1234567890123.123456}')
EDGE_DEAL = (b'{"event_id": "m2", "type": "deal.won", "occurred_at": "2026-11-23T09:15:02Z", "deal_id": "D9",'
             b' "amount": 9999999999999999.99}')  # the largest amount the contract allows (15 integer digits + 1)


@pytest.mark.parametrize("content_type, body", [
    ("application/json", EXACT_DEAL),
    ("application/json", b"[" + EXACT_DEAL + b",\n  " + EDGE_DEAL + b"]"),
    ("application/x-ndjson", EXACT_DEAL + b"\n" + EDGE_DEAL + b"\n"),
])
def test_every_element_is_produced_byte_for_byte_as_sent(content_type, body):
    items = split_body(body, content_type)
    assert [i.raw for i in items] == [EXACT_DEAL, EDGE_DEAL][:len(items)]


def test_the_same_event_gets_the_same_verdict_alone_in_an_array_and_in_json_lines():
    wall_ms = int(time.time() * 1000)
    verdicts = {}
    for how, body, ctype in [("alone", EDGE_DEAL, "application/json"), ("array", b"[" + EDGE_DEAL + b"]", "application/json"),
                             ("lines", EDGE_DEAL + b"\n", "application/x-ndjson")]:
        [checked] = check(split_body(body, ctype), EventValidator(), wall_ms=wall_ms, too_late_ms=None)
        verdicts[how] = (checked.reason, str(checked.event.amount) if checked.ok else None)
    assert verdicts == {how: (None, "9999999999999999.99") for how in ("alone", "array", "lines")}


@pytest.mark.parametrize("body", [
    b"[" + b"{}," * 100 + b"{}]",  # objects only
    b"[" + b"{}, 1, " * 50 + b'"x,]"]',  # mixed, with a string holding a comma and a bracket
    b'[{"a": [1, 2, {"b": [3, 4]}]}, [[1, 2], [3]], ' + b"7, " * 99 + b"7]",  # nested containers
])
def test_more_elements_than_the_limit_are_refused_and_the_limit_itself_is_not(body):
    count = len(split_body(body))
    assert count >= 100
    assert len(split_body(body, max_events=count)) == count
    with pytest.raises(TooManyElements):
        split_body(body, max_events=count - 1)
    lines = b"\n".join([b"{}"] * count) + b"\n\n \r\n"
    assert len(split_body(lines, "application/x-ndjson", max_events=count)) == count
    with pytest.raises(TooManyElements):
        split_body(lines, "application/x-ndjson", max_events=count - 1)


def test_json_lines_of_only_white_space_are_skipped_without_a_cost_per_position():
    body = b"{}\n" + b" " * 2_000_000 + b"\n\r\n" + b"{}"
    started = time.perf_counter()
    assert [(i.index, i.line) for i in split_body(body, "application/x-ndjson")] == [(0, 1), (1, 4)]
    assert time.perf_counter() - started < 1.0
