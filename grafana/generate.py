"""Generate the dashboards' JSON (grafana/dashboards/*.json) from the builders in this package.

    python -m grafana.generate            # write the files (commit them)
    python -m grafana.generate --check    # exit 1 if a committed file differs from what the code generates

The committed JSON is what Grafana provisions (grafana/provisioning/dashboards/kpi.yaml); a test checks
it equals a fresh generation, so the code and the files never drift apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grafana import customers, drilldown, ops, revenue, wall  # noqa: E402
from grafana.common import SLA_SECONDS_DEFAULT, to_dict  # noqa: E402

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"


def build_all(sla_seconds: float = SLA_SECONDS_DEFAULT, currency: str = "USD") -> dict[str, dict[str, Any]]:
    """``{file name: dashboard JSON data}``."""
    return {
        "wall.json": to_dict(wall.build(sla_seconds=sla_seconds, currency=currency)),
        "drilldown.json": to_dict(drilldown.build(currency=currency)),
        "ops.json": to_dict(ops.build()),
        "revenue.json": to_dict(revenue.build(currency=currency)),
        "customers.json": to_dict(customers.build(currency=currency)),
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    parser.add_argument("--out", type=Path, default=DASHBOARD_DIR)
    parser.add_argument("--sla-seconds", type=float, default=SLA_SECONDS_DEFAULT,
                        help="KPI_SLA_SECONDS the wall's red thresholds use (default %(default)s)")
    parser.add_argument("--currency", default="USD", help="KPI_CURRENCY for money units (default %(default)s)")
    args = parser.parse_args(argv)
    stale = []
    for name, doc in build_all(args.sla_seconds, args.currency).items():
        path = args.out / name
        text = render(doc)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python -m grafana.generate): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
