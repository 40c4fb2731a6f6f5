"""The KPI tables of docs/kpis.md and the README are the catalogue's: regenerate them and nothing changes."""

from __future__ import annotations

import pytest

from stream.kpi import reference
from stream.kpi.catalogue import KPIS


def test_generated_tables_are_up_to_date():
    assert reference.main(["--check"]) == 0, "run `python -m stream.kpi.reference` and commit the tables"


def test_every_kpi_and_metric_is_in_the_tables():
    readme = (reference.ROOT / "README.md").read_text()
    kpis_md = (reference.ROOT / "docs" / "kpis.md").read_text()
    for kpi in KPIS:
        assert f"| `{kpi.key}` | {kpi.definition} |" in kpis_md
        assert f"| `{kpi.key}` |" in readme
        for metric in kpi.metrics.values():
            assert f"| `{metric.name}` | gauge |" in readme


def test_a_stale_block_is_rewritten_and_a_missing_one_is_an_error():
    text = "intro\n<!-- generated: kpi-summary -->\nold rows\n<!-- end: kpi-summary -->\nafter\n"
    fresh = reference.render(text, {"kpi-summary": reference.kpi_summary})
    assert fresh.startswith("intro\n<!-- generated: kpi-summary -->\n| key | definition | window |")
    assert "old rows" not in fresh and fresh.endswith("<!-- end: kpi-summary -->\nafter\n")
    with pytest.raises(ValueError, match="kpi-summary"):
        reference.render("no markers", {"kpi-summary": reference.kpi_summary})
