"""docs/events.md cannot drift from the code: its event examples validate, its reason table is complete,
and its dead-letter example is exactly what `deadletter_record` writes for that payload."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from stream.deadletter import deadletter_record
from stream.events import EVENT_TYPES, REASONS, TOPIC_OF_TYPE, EventValidator, InvalidEvent

DOC = Path(__file__).resolve().parents[1] / "docs" / "events.md"
TEXT = DOC.read_text(encoding="utf-8")


def section(heading: str) -> str:
    """The text under a `## heading`, up to the next heading of the same level."""
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", TEXT, re.M | re.S)
    assert match, f"docs/events.md has no '## {heading}' section"
    return match.group(1)


def json_blocks(text: str) -> list[str]:
    return re.findall(r"^```json\s*\n(.*?)^```", text, re.M | re.S)


EXAMPLES = json_blocks(section("Event examples"))


def _id(block: str) -> str:
    return json.loads(block).get("type", "?")


def test_one_example_per_event_type():
    types = [json.loads(b)["type"] for b in EXAMPLES]
    assert sorted(types) == sorted(EVENT_TYPES), "one example per type, no more, no less"


@pytest.mark.parametrize("block", EXAMPLES, ids=[_id(b) for b in EXAMPLES])
def test_event_example_is_valid(block):
    doc = json.loads(block)
    raw = block.encode("utf-8")
    event = EventValidator().validate(raw, TOPIC_OF_TYPE[doc["type"]])  # on its own topic, as sent
    assert event.type == doc["type"] and event.event_id == doc["event_id"]
    for name in ("lead_id", "deal_id", "call_id", "rep_id"):
        if name in doc:
            assert getattr(event, name) == doc[name]


def test_examples_name_the_right_topics_and_keys():
    """Each example's topic/key line (the text just above its block) matches the routing table of docs/events.md."""
    body = section("Event examples")
    current = None
    for match in re.finditer(r"`sales\.(\w+)`, key `([^`]+)`|^```json\s*\n(.*?)^```", body, re.M | re.S):
        if match.group(1):
            current = (match.group(1), match.group(2))
            continue
        doc = json.loads(match.group(3))
        assert current is not None, f"{doc['type']}: no topic line above the example"
        topic, key = current
        assert topic == TOPIC_OF_TYPE[doc["type"]], doc["type"]
        expected_key = (doc.get("deal_id") or doc.get("lead_id") or doc.get("call_id") or doc.get("channel")
                        or doc.get("account_id") or doc.get("rep_id"))
        assert key == expected_key, doc["type"]


def test_example_reps_and_teams_come_from_the_example_roster():
    from stream.config import PACKAGE_DIR
    from stream.roster import load_roster

    roster = load_roster(PACKAGE_DIR / "roster.example.yaml")
    for block in EXAMPLES:
        doc = json.loads(block)
        if "rep_id" in doc:
            assert roster.rep(doc["rep_id"]) is not None, doc["rep_id"]
        if "team" in doc:
            assert roster.team_of(doc["rep_id"]) == doc["team"], doc


def _reason_table() -> dict[str, str]:
    """Rows of the table whose header is `| reason | meaning |`."""
    text = section("Dead letters")
    start = text.index("| reason | meaning |")
    table = re.match(r"(?:^\|.*\n?)+", text[start:], re.M).group(0)
    return dict(re.findall(r"^\| `([a-z_]+)` \| (.+?) \|\s*$", table, re.M))


def test_every_reason_is_in_the_doc_table_with_a_meaning():
    table = _reason_table()
    missing = [r for r in REASONS if r not in table]
    assert not missing, f"reasons missing from docs/events.md: {missing}"
    assert all(len(table[r].strip()) > 10 for r in REASONS)
    assert set(table) - set(REASONS) <= {"internal_error"}, "the table lists reasons the code never produces"
    assert [r for r in table if r in REASONS] == list(REASONS), "the table follows the order checks run"


def test_deadletter_example_is_what_the_worker_writes():
    blocks = json_blocks(section("Dead letters"))
    assert len(blocks) == 1
    shown = json.loads(blocks[0])
    payload = shown["payload"].encode()
    with pytest.raises(InvalidEvent) as info:
        EventValidator().validate(payload, shown["topic"].rsplit(".", 1)[-1])
    assert (info.value.reason, info.value.detail) == (shown["reason"], shown["detail"])
    written = json.loads(deadletter_record(
        payload, reason=shown["reason"], detail=shown["detail"], topic=shown["topic"], partition=shown["partition"],
        offset=shown["offset"], now=datetime.fromisoformat(shown["dead_lettered_at"]),
    ))
    assert written == shown


def test_record_field_table_lists_every_field():
    blocks = json_blocks(section("Dead letters"))
    fields = set(re.findall(r"`(\w+)`", "".join(re.findall(r"^\| (`[^|]+) \|", section("Dead letters"), re.M))))
    assert set(json.loads(blocks[0])) <= fields
