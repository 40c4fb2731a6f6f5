"""Plain-text rendering of a ``/kpis`` document for ``kpi-monitor kpis``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream.kpi.catalogue import BY_KEY

# (KPI key, column title); each is formatted by its unit in the catalogue.
HEADLINE = [
    ("leads_created", "leads"),
    ("leads_awaiting_response", "waiting"),
    ("oldest_wait_seconds", "oldest wait"),
    ("lead_response_seconds_p50", "resp p50"),
    ("lead_response_seconds_p90", "resp p90"),
    ("lead_response_within_sla_ratio", "in SLA"),
    ("calls", "calls"),
    ("connect_rate", "connect"),
    ("deals_won", "won"),
    ("win_rate", "win rate"),
    ("won_revenue", "revenue"),
    ("open_pipeline_value", "pipeline"),
    ("pipeline_velocity_per_day", "velocity/d"),
]


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.1f}m"
    return f"{seconds:.0f}s"


FORMATS: dict[str, Callable[[float], str]] = {
    "count": lambda v: str(int(v)),
    "seconds": _duration,
    "ratio": lambda v: f"{v * 100:.0f}%",
    "money": lambda v: f"{v:,.2f}",
    "days": lambda v: f"{v:.1f}d",
    "number": lambda v: f"{v:.2f}",
}


def _fmt(value: Any, key: str) -> str:
    return "-" if value is None else FORMATS[BY_KEY[key].unit](value)


# The products and sources tables (docs/kpis.md, "Revenue and marketing").
PRODUCT_COLUMNS = [
    ("deals_won", "won"),
    ("win_rate", "win rate"),
    ("won_revenue", "revenue"),
    ("won_revenue_new", "new"),
    ("won_revenue_expansion", "expansion"),
    ("won_revenue_renewal", "renewal"),
    ("avg_contract_value_annual", "ACV"),
    ("open_pipeline_value", "pipeline"),
]
SOURCE_COLUMNS = [
    ("leads_created", "leads"),
    ("mqls", "MQLs"),
    ("leads_qualified", "SQLs"),
    ("deals_won", "won"),
    ("won_revenue", "revenue"),
    ("marketing_spend", "spend"),
    ("cost_per_lead", "CPL"),
    ("cost_per_opportunity", "CPO"),
    ("customer_acquisition_cost", "CAC"),
    ("marketing_roi", "ROI"),
]


def _table(rows: list[tuple[str, dict[str, Any]]], columns: list[tuple[str, str]] = HEADLINE,
           first: str = "scope") -> list[str]:
    headers = [first] + [title for _, title in columns]
    cells = [[name] + [_fmt(values.get(key), key) if key in values else "" for key, _ in columns] for name, values in rows]
    widths = [max(len(str(row[i])) for row in [headers] + cells) for i in range(len(headers))]
    line = lambda row: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
    return [line(headers), line(["-" * w for w in widths])] + [line(row) for row in cells]


def render_snapshot(doc: dict[str, Any], top: int = 5) -> str:
    out = [f"KPIs for window {doc['window']} as of {doc['as_of']}"]
    if doc.get("incomplete"):
        out.append(f"WARNING: incomplete view: {doc['incomplete']}")
    out.append("")
    out += _table([("overall", doc["overall"])] + [(f"team {n}", v) for n, v in doc["teams"].items()])
    reps = [(n, v) for n, v in doc["reps"].items() if "won_revenue" in v]
    if reps:
        reps.sort(key=lambda item: (-item[1]["won_revenue"], item[0]))
        out += ["", f"reps by won revenue (top {top} and bottom {top})"]
        shown = reps if len(reps) <= 2 * top else reps[:top] + [("...", {})] + reps[-top:]
        out += _table(shown)
    out += ["", "stages: " + ", ".join(f"{s}: {v['open_deals']} open / {v['stage_entries']} entered" for s, v in doc["stages"].items())]
    for section, columns, title, order in (("products", PRODUCT_COLUMNS, "product", "won_revenue"),
                                           ("sources", SOURCE_COLUMNS, "source", "leads_created")):
        rows = [(n, v) for n, v in (doc.get(section) or {}).items()]
        if rows:
            rows.sort(key=lambda item: (-(item[1].get(order) or 0), item[0]))
            out += ["", f"{section} by {order.replace('_', ' ')}"]
            out += _table(rows[: 3 * top], columns, title)
            if len(rows) > 3 * top:
                out.append(f"... and {len(rows) - 3 * top} more")
    return "\n".join(out)
