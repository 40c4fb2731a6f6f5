"""docs/alerts.md cannot drift from the code: every YAML example in it is a valid rules file (or part of
one), and every extension setting it lists is one the code reads."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from alerts.rules import parse_rules

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docs" / "alerts.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```yaml\s*\n(.*?)^```", TEXT, re.M | re.S)
ENV = {"KPI_SLA_SECONDS": "300", "KPI_TIMEZONE": "UTC"}


def as_rules_file(block: str) -> str:
    if block.lstrip().startswith("- "):
        return "rules:\n" + textwrap.indent(block, "  ")
    return block if "rules:" in block else block + "\nrules: []\n"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.split("\n", 1)[0][:40] for b in BLOCKS])
def test_yaml_examples_are_valid(block):
    parse_rules(as_rules_file(block), "docs/alerts.md", env=ENV)


def test_there_are_examples_of_every_rule_type():
    text = "\n".join(BLOCKS)
    for kind in ("kpi", "lead_sla", "no_activity"):
        assert f"type: {kind}" in text


def test_documented_settings_exist_in_the_code():
    code = "\n".join(p.read_text() for p in (ROOT / "alerts").rglob("*.py"))
    for name in re.findall(r"^\| `(KPI_ALERT\w*|SLACK_API_URL|KPI_ALERTS)` \|", TEXT, re.M):
        assert name in code, name
