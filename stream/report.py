"""Plain-text rendering of a ``/kpis`` document for ``kpi-monitor kpis``."""

from __future__ import annotations

from typing import Any

# (key, column title, format)
HEADLINE = [
    ("leads_created", "leads", "{:d}"),
    ("leads_awaiting_response", "waiting", "{:d}"),
    ("oldest_wait_seconds", "oldest wait", "dur"),
    ("lead_response_seconds_p50", "resp p50", "dur"),
    ("lead_response_seconds_p90", "resp p90", "dur"),
    ("lead_response_within_sla_ratio", "in SLA", "pct"),
    ("calls", "calls", "{:d}"),
    ("connect_rate", "connect", "pct"),
    ("deals_won", "won", "{:d}"),
    ("win_rate", "win rate", "pct"),
    ("won_revenue", "revenue", "{:,.2f}"),
    ("open_pipeline_value", "pipeline", "{:,.2f}"),
    ("pipeline_velocity_per_day", "velocity/d", "{:,.0f}"),
]


def _fmt(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "pct":
        return f"{value * 100:.0f}%"
    if fmt == "dur":
        seconds = float(value)
        if seconds >= 3600:
            return f"{seconds / 3600:.1f}h"
        if seconds >= 60:
            return f"{seconds / 60:.1f}m"
        return f"{seconds:.0f}s"
    if fmt == "{:d}":
        return str(int(value))
    return fmt.format(value)


def _table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    headers = ["scope"] + [title for _, title, _ in HEADLINE]
    cells = [[name] + [_fmt(values.get(key), fmt) if key in values else "" for key, _, fmt in HEADLINE] for name, values in rows]
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
    return "\n".join(out)
