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
from stream.kpi.windows import DayCalendar, ms_to_datetime
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
    timezone: str = "UTC",
) -> Snapshot:
    scope_layout = DIMENSIONS["scope"].layout
    overall = scope_layout.row()
    reps: dict[str, Row] = {}
    teams: dict[str, Row] = {}
    pairs: dict[tuple[str, str], Row] = {}  # (team, rep): what forecast attainment and accuracy sum over
    for (rep, event_team), row in merged[SCOPE].items():
        team = event_team or roster.team_of(rep) or UNASSIGNED
        overall.merge(row)
        for name, table in ((rep, reps), (team, teams), ((team, rep), pairs)):
            target = table.get(name)  # type: ignore[call-overload]
            if target is None:
                target = table[name] = scope_layout.row()  # type: ignore[index]
            target.merge(row)
    _add_spend(overall, scope_layout, merged[SOURCES])
    span = DayCalendar(timezone).month_span(now_ms) if window == "month" else None
    values: dict[str, Any] = {
        "overall": _compute(overall, scope_layout, keys_of("overall", window), now_ms, month_fraction=span),
        "teams": _listed(teams, scope_layout, "teams", window, now_ms, span),
        "reps": _listed(reps, scope_layout, "reps", window, now_ms, span),
        "stages": _stages(merged[STAGES], stages, window, now_ms),
    }
    for section, dim in LABEL_SECTIONS:
        values[section] = _listed(merged[dim], DIMENSIONS[section].layout, section, window, now_ms)
    if window == "month":
        _add_quota_attainment(values, reps, roster)
        _add_forecasts(values, reps, pairs)
        _add_quota_pace(values, reps, roster, span)  # type: ignore[arg-type]
    return Snapshot(window=window, now_ms=now_ms, values=values)


def _add_spend(overall: Row, layout: Layout, sources: dict[Any, Row]) -> None:
    """Spend is credited to no rep: overall's is the sum over the channels (every spend has one)."""
    source_layout = DIMENSIONS["sources"].layout
    for part in ("marketing_spend", "sales_spend"):
        mine, theirs = layout.index[part], source_layout.index[part]
        for row in sources.values():
            overall.v[mine] += row.v[theirs]


def _compute(row: Row, layout: Layout, keys: Iterable[str], now_ms: int, next_row: Row | None = None,
             month_fraction: tuple[int, int] | None = None) -> dict[str, Any]:
    inputs = Inputs(row, layout, now_ms, next_row, month_fraction)
    for key in keys:
        formula = BY_KEY[key].formula
        if formula is not None:  # cross-label KPIs are added by the section (quota attainment)
            inputs.values[key] = formula(inputs)
    return inputs.values


def _listed(rows: dict[str, Row], layout: Layout, section: str, window: str, now_ms: int,
            span: tuple[int, int] | None = None) -> dict[str, Any]:
    every, current = keys_of(section, window), now_keys(section)
    out = {}
    for name in sorted(rows):
        row = rows[name]
        v = row.v
        if any(v[i] for i in layout.activity):
            out[name] = _compute(row, layout, every, now_ms, month_fraction=span)
        elif any(v[i] for i in layout.state):
            out[name] = _compute(row, layout, current, now_ms, month_fraction=span)
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


_S = DIMENSIONS["scope"].layout.index


def _add_forecasts(values: dict[str, Any], reps: dict[str, Row], pairs: dict[tuple[str, str], Row]) -> None:
    """Forecast attainment (this month) and accuracy (the previous month): a rep's won revenue against
    their forecast; a team's, sums over its (team, rep) pairs with a forecast; overall, over the reps with one."""
    won_at, count_at, amount_at = _S["won_revenue"], _S["forecasts"], _S["forecast_amount"]
    won_prev_at, forecast_prev_at, forecasts_prev_at = (_S["won_prev_month"], _S["forecast_prev_month"],
                                                         _S["forecasts_prev_month"])
    # scope -> [won of those with a forecast, their forecasts, any?, the same for the previous month]
    sums: dict[tuple[str, str], list] = {}

    def add(scope: tuple[str, str], v: list) -> None:
        acc = sums.setdefault(scope, [0, 0, False, 0, 0, False])
        if v[count_at]:
            acc[0] += v[won_at]
            acc[1] += v[amount_at]
            acc[2] = True
        if v[forecasts_prev_at]:
            acc[3] += v[won_prev_at]
            acc[4] += v[forecast_prev_at]
            acc[5] = True

    for rep, row in reps.items():
        add(("reps", rep), row.v)
        add(("overall", ""), row.v)
    for (team, _rep), row in pairs.items():
        add(("teams", team), row.v)

    def results(scope: tuple[str, str]) -> tuple[float | None, float | None]:
        acc = sums.get(scope)
        if acc is None:
            return None, None
        attainment = float(acc[0] / acc[1]) if acc[2] and acc[1] else None
        accuracy = float(1 - abs(acc[3] - acc[4]) / acc[4]) if acc[5] and acc[4] else None
        return attainment, accuracy

    for section in ("reps", "teams"):
        for name, doc in values[section].items():
            if "won_revenue" in doc:
                doc["forecast_attainment"], doc["forecast_accuracy"] = results((section, name))
    values["overall"]["forecast_attainment"], values["overall"]["forecast_accuracy"] = results(("overall", ""))


def _add_quota_pace(values: dict[str, Any], reps: dict[str, Row], roster: Roster, span: tuple[int, int]) -> None:
    """won revenue ÷ (monthly quota × f); team and overall: sums over the roster's reps with a quota."""
    won_at = _S["won_revenue"]
    elapsed, length = span
    won: dict[str, Any] = {}
    quota: dict[str, float] = {}
    for rep in roster.reps:
        if rep.monthly_quota:
            row = reps.get(rep.rep_id)
            won[rep.rep_id] = row.v[won_at] if row is not None else 0
            quota[rep.rep_id] = float(rep.monthly_quota)

    def pace(members: list[str]) -> float | None:
        target = sum(quota[r] for r in members) * elapsed / length
        return float(sum(won[r] for r in members)) / target if members and target else None

    for name, doc in values["reps"].items():
        if "won_revenue" in doc:
            doc["quota_pace"] = pace([name]) if name in quota else None
    for name, doc in values["teams"].items():
        if "won_revenue" in doc:
            doc["quota_pace"] = pace([r.rep_id for r in roster.reps if r.team == name and r.rep_id in quota])
    values["overall"]["quota_pace"] = pace(list(quota))
