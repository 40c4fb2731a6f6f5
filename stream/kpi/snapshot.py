"""The typed KPI snapshot: merged parts of every section's labels, computed into the catalogue's KPIs.

``build_snapshot`` takes the merged partials of all partitions (per dimension, one row per label) and a
window's ``now``, and gives a ``Snapshot``: what ``/kpis`` serves (``Snapshot.document()``), what the
Prometheus exporter exports and what the KPI alert rules read. Listing (docs/kpis.md): ``overall`` always
has every key; a team or rep is listed with every key when a windowed count moved for it in the window,
with only the *now* keys when it has only current state (waiting leads, open deals), and not at all
otherwise; every configured stage is listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream.kpi.catalogue import BY_KEY, DIMENSIONS, LABEL_SECTIONS, SCOPE, SOURCES, STAGES, Inputs, keys_of, now_keys, ratio
from stream.kpi.facts import UNASSIGNED
from stream.kpi.parts import Layout, Row
from stream.kpi.windows import ms_to_datetime
from stream.roster import Roster

Partials = Sequence[dict[Any, Row]]  # per dimension (catalogue order): label -> row


def merge_partials(partials: Iterable[Partials]) -> list[dict[Any, Row]]:
    """One row per label and dimension from the partials of several partitions (and workers)."""
    layouts = [d.layout for d in DIMENSIONS.values()]
    merged: list[dict[Any, Row]] = [{} for _ in layouts]
    for partial in partials:
        for rows, target, layout in zip(partial, merged, layouts):
            for label, row in rows.items():
                mine = target.get(label)
                if mine is None:
                    mine = target[label] = layout.row()
                mine.merge(row)
    return merged


def partials_to_wire(partials: Partials) -> list:
    """A partition's partials as plain lists, for msgpack between workers."""
    out = []
    for rows, dimension in zip(partials, DIMENSIONS.values()):
        layout = dimension.layout
        out.append([[label, row.to_wire(layout)] for label, row in rows.items()])
    return out


def partials_from_wire(wire: list) -> list[dict[Any, Row]]:
    out = []
    for rows, dimension in zip(wire, DIMENSIONS.values()):
        layout, scope = dimension.layout, dimension.name == "scope"
        out.append({(tuple(label) if scope else label): Row.from_wire(row, layout) for label, row in rows})
    return out


@dataclass
class Snapshot:
    """KPIs of one window at ``now_ms``: ``values[section]`` is ``{key: value}`` for ``overall`` and
    ``{label: {key: value}}`` for the labelled sections."""

    window: str
    now_ms: int
    values: dict[str, Any]
    incomplete: dict[str, Any] | None = field(default=None)

    def document(self) -> dict[str, Any]:
        """The ``/kpis`` JSON document."""
        doc = {"as_of": ms_to_datetime(self.now_ms).isoformat(), "window": self.window, **self.values}
        if self.incomplete:
            doc["incomplete"] = self.incomplete
        return doc


def build_snapshot(
    merged: Partials,
    *,
    window: str,
    now_ms: int,
    roster: Roster,
    stages: tuple[str, ...],
) -> Snapshot:
    scope_layout = DIMENSIONS["scope"].layout
    overall = scope_layout.row()
    reps: dict[str, Row] = {}
    teams: dict[str, Row] = {}
    for (rep, event_team), row in merged[SCOPE].items():
        team = event_team or roster.team_of(rep) or UNASSIGNED
        overall.merge(row)
        for name, table in ((rep, reps), (team, teams)):
            target = table.get(name)
            if target is None:
                target = table[name] = scope_layout.row()
            target.merge(row)
    _add_spend(overall, scope_layout, merged[SOURCES])
    values: dict[str, Any] = {
        "overall": _compute(overall, scope_layout, keys_of("overall", window), now_ms),
        "teams": _listed(teams, scope_layout, "teams", window, now_ms),
        "reps": _listed(reps, scope_layout, "reps", window, now_ms),
        "stages": _stages(merged[STAGES], stages, window, now_ms),
    }
    for section, dim in LABEL_SECTIONS:
        values[section] = _listed(merged[dim], DIMENSIONS[section].layout, section, window, now_ms)
    if window == "month":
        _add_quota_attainment(values, reps, roster)
    return Snapshot(window=window, now_ms=now_ms, values=values)


def _add_spend(overall: Row, layout: Layout, sources: dict[Any, Row]) -> None:
    """Spend is credited to no rep: overall's is the sum over the channels (every spend has one)."""
    source_layout = DIMENSIONS["sources"].layout
    for part in ("marketing_spend", "sales_spend"):
        mine, theirs = layout.index[part], source_layout.index[part]
        for row in sources.values():
            overall.v[mine] += row.v[theirs]


def _compute(row: Row, layout: Layout, keys: Iterable[str], now_ms: int, next_row: Row | None = None) -> dict[str, Any]:
    inputs = Inputs(row, layout, now_ms, next_row)
    for key in keys:
        formula = BY_KEY[key].formula
        if formula is not None:  # cross-label KPIs are added by the section (quota attainment)
            inputs.values[key] = formula(inputs)
    return inputs.values


def _listed(rows: dict[str, Row], layout: Layout, section: str, window: str, now_ms: int) -> dict[str, Any]:
    every, current = keys_of(section, window), now_keys(section)
    out = {}
    for name in sorted(rows):
        row = rows[name]
        v = row.v
        if any(v[i] for i in layout.activity):
            out[name] = _compute(row, layout, every, now_ms)
        elif any(v[i] for i in layout.state):
            out[name] = _compute(row, layout, current, now_ms)
    return out


def _stages(rows: dict[Any, Row], stages: tuple[str, ...], window: str, now_ms: int) -> dict[str, Any]:
    layout = DIMENSIONS["stages"].layout
    keys = keys_of("stages", window)
    ordered = [rows.get(stage) or layout.row() for stage in stages]
    return {
        stage: _compute(row, layout, keys, now_ms, ordered[i + 1] if i + 1 < len(stages) else None)
        for i, (stage, row) in enumerate(zip(stages, ordered))
    }


def _add_quota_attainment(values: dict[str, Any], reps: dict[str, Row], roster: Roster) -> None:
    """Rep: won revenue this month ÷ monthly quota; team/overall: share of quota-carrying reps at ≥ 1.0."""
    won_at = DIMENSIONS["scope"].layout.index["won_revenue"]
    attainment: dict[str, float] = {}
    for rep in roster.reps:
        if rep.monthly_quota:
            row = reps.get(rep.rep_id)
            won = float(row.v[won_at]) if row is not None else 0.0
            attainment[rep.rep_id] = won / rep.monthly_quota
    for name, doc in values["reps"].items():
        if "won_revenue" in doc:
            doc["quota_attainment"] = attainment.get(name)
    for name, doc in values["teams"].items():
        if "won_revenue" in doc:
            members = [r.rep_id for r in roster.reps if r.team == name and r.rep_id in attainment]
            doc["quota_attainment"] = ratio(sum(attainment[r] >= 1.0 for r in members), len(members))
    values["overall"]["quota_attainment"] = ratio(sum(a >= 1.0 for a in attainment.values()), len(attainment))
