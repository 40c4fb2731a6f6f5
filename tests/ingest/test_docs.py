"""docs/ingest.md and the README cannot drift from the code: every ingest/HubSpot setting is documented with
its default, every rejection reason is named, and the README's example event is valid."""

from __future__ import annotations

import re
from pathlib import Path

from stream.config import Settings
from stream.events import REASONS, EventValidator

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "ingest.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
INGEST_SETTINGS = [n for n in Settings.model_fields if n.startswith(("kpi_ingest_", "hubspot_"))]


def test_every_ingest_setting_is_in_the_table_with_its_default():
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (`[^|]+`) \| ([^|]+) \|", DOC, re.M)}
    for name in INGEST_SETTINGS:
        row = next((names for names in rows if f"`{name.upper()}`" in names), None)
        assert row is not None, f"{name.upper()} is not in docs/ingest.md's settings table"
        default = Settings.model_fields[name].default
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            shown = str(int(default)) if default == int(default) else str(default)
            assert f"`{shown}`" in rows[row], (name, rows[row])
        assert f"`{name.upper()}`" in README, f"{name.upper()} is not in the README's configuration table"


def test_every_rejection_reason_is_named():
    for reason in set(REASONS) - {"entity_full"}:  # the worker's verdict on an entity, after ingest
        assert f"`{reason}`" in DOC, reason


def test_readme_example_event_is_valid():
    match = re.search(r"-d '(\{\"event_id\":\"evt-1\".*?)'\n", README)
    assert match, "the README's curl example is gone"
    body = match.group(1).replace("'\"$(date -u +%FT%TZ)\"'", "2026-01-05T10:00:00Z")
    assert EventValidator().validate(body.encode()).event_id == "evt-1"
