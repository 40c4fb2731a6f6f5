"""What every dashboard shares: the datasource, the one label selector, query and panel defaults.

Built with grafana-foundation-sdk's typed builders. The worker job's selector lives only here
(``series``); dashboards say which KPI, scope and window they want, never how to select the workers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import bargauge, common as common_builders, dashboard as dashboard_builders
from grafana_foundation_sdk.builders import gauge, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dashboard_models

# The provisioned datasource (grafana/provisioning/datasources/prometheus.yaml) has this fixed uid.
DATASOURCE = dashboard_models.DataSourceRef(type_val="prometheus", uid="prometheus")
# The Prometheus job that scrapes the workers (deploy/prometheus/*.yml).
WORKER_JOB = "kpi-monitor"
# KPI series come from one worker (the exporter); `max` drops the instance label and stays right
# during the second or two of a handover when two workers might both export.
ONE = "max"
WINDOW_LABELS = {"1h": "last hour", "24h": "last 24 h", "today": "today", "month": "this month", "all": "all time"}
SLA_SECONDS_DEFAULT = 300.0  # KPI_SLA_SECONDS's default; thresholds on the wall (generate.py --sla-seconds)

# Colours that read well on a dark TV from across a room.
GREEN, ORANGE, RED, BLUE, GREY = "green", "orange", "red", "blue", "text"


class Re(str):
    """A label value matched as a regular expression (``=~``)."""


def selector(**labels: str) -> str:
    """``{job="kpi-monitor",…}``: the worker job first, then the given labels in order."""
    parts = [f'job="{WORKER_JOB}"']
    for name, value in labels.items():
        op = "=~" if isinstance(value, Re) else "="
        parts.append(f'{name}{op}"{value}"')
    return "{" + ",".join(parts) + "}"


def series(metric: str, **labels: str) -> str:
    return metric + selector(**labels)


def kpi(metric: str, *, by: Sequence[str] = (), **labels: str) -> str:
    """One KPI's value(s), without the exporting worker's instance label."""
    grouping = f" by ({', '.join(by)})" if by else ""
    return f"{ONE}{grouping} ({series(metric, **labels)})"


def overall(metric: str, **labels: str) -> str:
    return kpi(metric, scope="overall", **labels)


# --- queries ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False


def targets(queries: Sequence[Query]) -> list[prometheus.Dataquery]:
    out = []
    for i, q in enumerate(queries):
        target = prometheus.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i)).datasource(DATASOURCE)
        if q.legend:
            target = target.legend_format(q.legend)
        target = target.instant() if q.instant else target.range()
        out.append(target)
    return out


def now(expr: str, legend: str = "") -> Query:
    """An instant query: a headline shows what is true now, never the last value of a stale series."""
    return Query(expr, legend, instant=True)


def trend(expr: str, legend: str = "") -> Query:
    return Query(expr, legend, instant=False)


# --- panel pieces -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pos:
    x: int
    y: int
    w: int
    h: int

    def grid(self) -> dashboard_models.GridPos:
        return dashboard_models.GridPos(h=self.h, w=self.w, x=self.x, y=self.y)


def thresholds(*steps: tuple[float | None, str]) -> dashboard_builders.ThresholdsConfig:
    """``thresholds((None, "green"), (300, "red"))``: the colour from each value upward."""
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dashboard_models.ThresholdsMode.ABSOLUTE)
        .steps([dashboard_models.Threshold(value=v, color=c) for v, c in steps])
    )


def fixed(color: str) -> dashboard_builders.ThresholdsConfig:
    return thresholds((None, color))


def _reduce() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def _reduced(panel, title: str, queries: Sequence[Query], pos: Pos, unit: str, steps):
    """What every single-value panel shares: where it sits, what it queries, how a value gets its colour."""
    return (
        panel.title(title)
        .datasource(DATASOURCE)
        .targets(targets(queries))
        .grid_pos(pos.grid())
        .unit(unit)
        .thresholds(steps)
        .color_scheme(dashboard_builders.FieldColor().mode(dashboard_models.FieldColorModeId.THRESHOLDS))
        .reduce_options(_reduce())
    )


def stat_panel(
    title: str,
    queries: Sequence[Query],
    pos: Pos,
    *,
    unit: str = "short",
    steps: dashboard_builders.ThresholdsConfig | None = None,
    decimals: int | None = None,
    background: bool = False,
    description: str = "",
    no_value: str = "no data",
    name_size: float | None = None,
    value_size: float | None = None,
    horizontal: bool = False,
    names: bool | None = None,
) -> stat.Panel:
    """A big-number tile. ``names``: show each series' legend above its value (default: with several queries)."""
    names = len(queries) > 1 if names is None else names
    panel = (
        _reduced(stat.Panel(), title, queries, pos, unit, steps or fixed(BLUE))
        .graph_mode(common_models.BigValueGraphMode.NONE)
        .color_mode(common_models.BigValueColorMode.BACKGROUND if background else common_models.BigValueColorMode.VALUE)
        .text_mode(common_models.BigValueTextMode.VALUE_AND_NAME if names else common_models.BigValueTextMode.VALUE)
        .justify_mode(common_models.BigValueJustifyMode.CENTER)
        .orientation(common_models.VizOrientation.HORIZONTAL if horizontal else common_models.VizOrientation.AUTO)
        .no_value(no_value)
    )
    if name_size or value_size:
        text = common_builders.VizTextDisplayOptions()
        if name_size:
            text = text.title_size(name_size)
        if value_size:
            text = text.value_size(value_size)
        panel = panel.text(text)
    if decimals is not None:
        panel = panel.decimals(decimals)
    if description:
        panel = panel.description(description)
    return panel


def gauge_panel(
    title: str,
    queries: Sequence[Query],
    pos: Pos,
    *,
    unit: str,
    steps: dashboard_builders.ThresholdsConfig,
    minimum: float = 0,
    maximum: float = 1,
    description: str = "",
) -> gauge.Panel:
    panel = (
        _reduced(gauge.Panel(), title, queries, pos, unit, steps)
        .min(minimum)
        .max(maximum)
        .show_threshold_markers(True)
        .no_value("no data")
    )
    return panel.description(description) if description else panel


def bargauge_panel(
    title: str,
    queries: Sequence[Query],
    pos: Pos,
    *,
    unit: str = "short",
    steps: dashboard_builders.ThresholdsConfig | None = None,
    description: str = "",
    minimum: float | None = 0,
) -> bargauge.Panel:
    panel = (
        _reduced(bargauge.Panel(), title, queries, pos, unit, steps or fixed(BLUE))
        .display_mode(common_models.BarGaugeDisplayMode.GRADIENT)
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .show_unfilled(True)
        .no_value("no data")
    )
    if minimum is not None:
        panel = panel.min(minimum)
    return panel.description(description) if description else panel


def timeseries_panel(
    title: str,
    queries: Sequence[Query],
    pos: Pos,
    *,
    unit: str = "short",
    description: str = "",
    steps: dashboard_builders.ThresholdsConfig | None = None,
    show_thresholds: bool = False,
    bars: bool = False,
    stacked: bool = False,
    minimum: float | None = 0,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .targets(targets(queries))
        .grid_pos(pos.grid())
        .unit(unit)
        .line_width(3 if not bars else 1)
        .fill_opacity(10 if not bars else 80)
        .draw_style(common_models.GraphDrawStyle.BARS if bars else common_models.GraphDrawStyle.LINE)
        .show_points(common_models.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common_models.LegendDisplayMode.LIST)
            .placement(common_models.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(common_builders.VizTooltipOptions().mode(common_models.TooltipDisplayMode.MULTI)
                 .sort(common_models.SortOrder.NONE))
    )
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common_models.StackingMode.NORMAL))
    if steps is not None:
        panel = panel.thresholds(steps)
    if show_thresholds:
        panel = panel.thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common_models.GraphThresholdsStyleMode.LINE)
        )
    if minimum is not None:
        panel = panel.min(minimum)
    return panel.description(description) if description else panel


# --- dashboards -------------------------------------------------------------------------------------
def new_dashboard(title: str, uid: str, *, tags: Iterable[str], refresh: str, time_from: str,
                  description: str) -> dashboard_builders.Dashboard:
    return (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["kpi-monitor", *tags])
        .refresh(refresh)
        .time(time_from, "now")
        .timezone("browser")
        .tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .link(
            dashboard_builders.DashboardLink("kpi-monitor dashboards")
            .type(dashboard_models.DashboardLinkType.DASHBOARDS)
            .tags(["kpi-monitor"])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
    )


def query_variable(name: str, label: str, query: str) -> dashboard_builders.QueryVariable:
    return (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
    )


def to_dict(builder: dashboard_builders.Dashboard) -> dict[str, Any]:
    """The dashboard as plain JSON data (the form Grafana's provisioning reads), panels numbered 1, 2, …"""
    doc = json.loads(JSONEncoder(sort_keys=True).encode(builder.build()))
    for number, panel in enumerate(doc.get("panels", []), start=1):
        panel["id"] = number
    return doc


def panel_queries(dashboard: dict[str, Any]) -> Iterable[tuple[dict[str, Any], dict[str, Any]]]:
    """``(panel, target)`` for every query of every panel, rows included."""
    for panel in dashboard.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []) or []:
                yield inner, target


class Flow:
    """Places panels left to right, 24 columns wide, wrapping to a new line; rows span the width."""

    def __init__(self, y: int = 0) -> None:
        self.x, self.y, self.line_h = 0, y, 0

    def place(self, w: int, h: int) -> Pos:
        if self.x + w > 24:
            self.newline()
        pos = Pos(self.x, self.y, w, h)
        self.x += w
        self.line_h = max(self.line_h, h)
        return pos

    def newline(self) -> None:
        self.y += self.line_h
        self.x, self.line_h = 0, 0

    def row(self) -> Pos:
        self.newline()
        pos = Pos(0, self.y, 24, 1)
        self.y += 1
        return pos


def row(title: str, pos: Pos) -> dashboard_builders.Row:
    return dashboard_builders.Row(title).grid_pos(pos.grid()).collapsed(False)


def table_panel(
    title: str,
    columns: Sequence[tuple[str, str, str]],
    label: str,
    pos: Pos,
    *,
    description: str = "",
    sort_by: str | None = None,
) -> dashboard_builders.Panel:
    """One row per ``label`` value, one column per ``(title, instant query, unit)``: the queries are merged on
    their labels (Grafana's `merge` transformation) and their value columns renamed to the titles."""
    from grafana_foundation_sdk.builders import table
    from grafana_foundation_sdk.models.prometheus import PromQueryFormat

    queries = [
        prometheus.Dataquery().expr(expr).ref_id(chr(ord("A") + i)).datasource(DATASOURCE).instant()
        .format(PromQueryFormat.TABLE)
        for i, (_, expr, _) in enumerate(columns)
    ]
    rename = {f"Value #{chr(ord('A') + i)}": name for i, (name, _, _) in enumerate(columns)}
    panel = (
        table.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .targets(queries)
        .grid_pos(pos.grid())
        .with_transformation(dashboard_models.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(dashboard_models.DataTransformerConfig(id_val="organize", options={
            # keys are the fields' names before renaming, as Grafana's organize transformation reads them
            "excludeByName": {"Time": True}, "renameByName": rename,
            "indexByName": {label: 0, **{value: i + 1 for i, value in enumerate(rename)}},
        }))
        .no_value("—")
    )
    for name, _, unit in columns:
        panel = panel.override_by_name(name, [dashboard_models.DynamicConfigValue(id_val="unit", value=unit)])
    if sort_by:
        panel = panel.sort_by([common_builders.TableSortByFieldState().display_name(sort_by).desc(True)])
    return panel.description(description) if description else panel
