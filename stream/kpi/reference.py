"""The KPI reference tables of docs/kpis.md and the README, written from the catalogue.

``python -m stream.kpi.reference`` rewrites the generated blocks (between ``<!-- generated: NAME -->``
and ``<!-- end: NAME -->``) in place; ``--check`` exits 1 when a block is out of date (a test runs it), so
the documentation cannot drift from what the code computes and exports.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from stream.kpi.catalogue import KPIS, MONTH, NOW, WINDOW_AND_NOW, Kpi

ROOT = Path(__file__).resolve().parents[2]
WHEN = {NOW: "*now*", WINDOW_AND_NOW: "W and *now*", MONTH: "`month` only"}
UNIT_SHOWN = {"days": "days (exported in seconds)", "money": "money (`currency` label)"}


def _when(kpi: Kpi) -> str:
    return WHEN.get(kpi.timing, "W")


def _sections(kpi: Kpi) -> str:
    return ", ".join(kpi.sections)


def kpi_table() -> str:
    """Every KPI: key, definition, whose number it is, when it applies, unit and sections."""
    rows = ["| key | definition | credited to | window | unit | sections |", "|---|---|---|---|---|---|"]
    rows += [f"| `{k.key}` | {k.definition} | {k.credit} | {_when(k)} | {UNIT_SHOWN.get(k.unit, k.unit)} | "
             f"{_sections(k)} |" for k in KPIS]
    return "\n".join(rows)


def kpi_summary() -> str:
    """The README's short form: key, definition, window."""
    rows = ["| key | definition | window |", "|---|---|---|"]
    rows += [f"| `{k.key}` | {k.definition} | {_when(k)} |" for k in KPIS]
    return "\n".join(rows)


def metric_table() -> str:
    """Every KPI metric: name, labels and help, from the catalogue (the exporter reads the same)."""
    rows = ["| metric | type | labels | meaning | owner |", "|---|---|---|---|---|"]
    for k in KPIS:
        for dimension, metric in k.metrics.items():
            rows.append(f"| `{metric.name}` | gauge | {', '.join(k.labels(dimension))} | {metric.help} | leader only |")
    return "\n".join(rows)


BLOCKS: dict[str, dict[str, Callable[[], str]]] = {
    "docs/kpis.md": {"kpi-table": kpi_table},
    "README.md": {"kpi-summary": kpi_summary, "kpi-metrics": metric_table},
}


def render(text: str, blocks: dict[str, Callable[[], str]]) -> str:
    for name, make in blocks.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(<!-- end: {name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"no block `<!-- generated: {name} -->` … `<!-- end: {name} -->`")
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated block is out of date")
    args = parser.parse_args(argv)
    stale = []
    for relative, blocks in BLOCKS.items():
        path = ROOT / relative
        text = path.read_text()
        fresh = render(text, blocks)
        if fresh != text:
            stale.append(relative)
            if not args.check:
                path.write_text(fresh)
    if stale:
        verb = "out of date (run `python -m stream.kpi.reference`)" if args.check else "rewritten"
        print(f"{', '.join(stale)}: {verb}", file=sys.stderr)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
