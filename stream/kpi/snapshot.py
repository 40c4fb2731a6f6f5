"""KPI formulas: merged partial aggregates → the ``/kpis`` document of SPEC.md section 4.

A scope (rep or team) is listed with every key when some windowed KPI counted anything for it in the
window, with only the *now* keys when it has only current state (waiting leads, open deals), and not
at all otherwise. ``overall`` always has every key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal

from stream.kpi.aggregates import Agg
from stream.kpi.facts import UNASSIGNED
from stream.kpi.store import ScopeKey
from stream.kpi.windows import ms_to_datetime
from stream.roster import Roster

NOW_KEYS = ("leads_awaiting_response", "oldest_wait_seconds", "open_deals", "open_pipeline_value", "pipeline_velocity_per_day")
CENT = Decimal("0.01")


def money(value: Decimal) -> float:
    return float(value.quantize(CENT, rounding=ROUND_HALF_EVEN))


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def scope_kpis(agg: Agg, now_ms: int) -> dict[str, object]:
    """Every KPI of SPEC.md section 3 for one scope's merged aggregate."""
    won = agg.deals_won
    avg_deal = agg.won_revenue / won if won else None
    win_rate = _ratio(won, won + agg.deals_lost)
    cycle_days = agg.cycle_ms_sum / won / 86_400_000 if won else None
    p50 = agg.hist.quantile(0.5)
    p90 = agg.hist.quantile(0.9)
    if avg_deal is None or win_rate is None or not cycle_days:
        velocity = None
    else:
        velocity = agg.open_deals * float(avg_deal) * win_rate / cycle_days
    return {
        "leads_created": agg.leads_created,
        "leads_responded": agg.leads_responded,
        "lead_response_seconds_mean": _ratio(agg.response_ms_sum / 1000, agg.leads_responded),
        "lead_response_seconds_p50": None if p50 is None else p50 / 1000,
        "lead_response_seconds_p90": None if p90 is None else p90 / 1000,
        "lead_response_within_sla_ratio": _ratio(agg.responses_within_sla, agg.leads_responded),
        "leads_awaiting_response": agg.awaiting,
        "oldest_wait_seconds": None if agg.oldest_created is None else (now_ms - agg.oldest_created) / 1000,
        "leads_qualified": agg.leads_qualified,
        "lead_to_opportunity_ratio": _ratio(agg.leads_qualified, agg.leads_created),
        "touches_to_meeting_mean": _ratio(agg.meeting_touches, agg.meetings),
        "calls": agg.calls,
        "calls_connected": agg.calls_connected,
        "connect_rate": _ratio(agg.calls_connected, agg.calls),
        "talk_seconds_total": agg.talk_ms / 1000,
        "deals_won": won,
        "deals_lost": agg.deals_lost,
        "win_rate": win_rate,
        "won_revenue": money(agg.won_revenue),
        "avg_deal_size": None if avg_deal is None else money(avg_deal),
        "sales_cycle_days_mean": cycle_days,
        "open_deals": agg.open_deals,
        "open_pipeline_value": money(agg.open_value),
        "pipeline_velocity_per_day": velocity,
    }


def merge_partials(partials: Iterable[Mapping[ScopeKey, Agg]]) -> dict[ScopeKey, Agg]:
    merged: dict[ScopeKey, Agg] = {}
    for partial in partials:
        for key, agg in partial.items():
            target = merged.get(key)
            if target is None:
                target = merged[key] = Agg()
            target.merge(agg)
    return merged


def build_snapshot(
    merged: Mapping[ScopeKey, Agg],
    *,
    window: str,
    now_ms: int,
    roster: Roster,
    stages: tuple[str, ...],
) -> dict[str, object]:
    overall = Agg()
    reps: dict[str, Agg] = {}
    teams: dict[str, Agg] = {}
    for (rep, event_team), agg in merged.items():
        team = event_team or roster.team_of(rep) or UNASSIGNED
        overall.merge(agg)
        for name, table in ((rep, reps), (team, teams)):
            target = table.get(name)
            if target is None:
                target = table[name] = Agg()
            target.merge(agg)

    def listed(aggs: dict[str, Agg]) -> dict[str, dict[str, object]]:
        out = {}
        for name in sorted(aggs):
            agg = aggs[name]
            if agg.is_active():
                out[name] = scope_kpis(agg, now_ms)
            elif agg.has_current_state():
                values = scope_kpis(agg, now_ms)
                out[name] = {key: values[key] for key in NOW_KEYS}
        return out

    doc_overall = scope_kpis(overall, now_ms)
    doc_reps = listed(reps)
    doc_teams = listed(teams)
    if window == "month":
        _add_quota_attainment(doc_overall, doc_teams, doc_reps, reps, roster)
    return {
        "as_of": ms_to_datetime(now_ms).isoformat(),
        "window": window,
        "overall": doc_overall,
        "teams": doc_teams,
        "reps": doc_reps,
        "stages": _stages(overall, stages),
    }


def _stages(overall: Agg, stages: tuple[str, ...]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for i, stage in enumerate(stages):
        count, value = overall.open_by_stage.get(stage, (0, Decimal(0)))
        entries = overall.stage_entries.get(stage, 0)
        nxt = overall.stage_entries.get(stages[i + 1], 0) if i + 1 < len(stages) else None
        out[stage] = {
            "open_deals": count,
            "open_pipeline_value": money(value),
            "stage_entries": entries,
            "stage_conversion": None if nxt is None else _ratio(nxt, entries),
        }
    return out


def _add_quota_attainment(overall: dict, teams: dict, reps: dict, rep_aggs: dict[str, Agg], roster: Roster) -> None:
    """Rep: won revenue this month ÷ monthly quota; team/overall: share of quota-carrying reps at ≥ 1.0."""
    attainment: dict[str, float] = {}
    for rep in roster.reps:
        if rep.monthly_quota:
            agg = rep_aggs.get(rep.rep_id)
            won = float(agg.won_revenue) if agg is not None else 0.0
            attainment[rep.rep_id] = won / rep.monthly_quota
    for name, doc in reps.items():
        if "won_revenue" in doc:
            doc["quota_attainment"] = attainment.get(name)
    for name, doc in teams.items():
        if "won_revenue" in doc:
            members = [r.rep_id for r in roster.reps if r.team == name and r.rep_id in attainment]
            doc["quota_attainment"] = _ratio(sum(attainment[r] >= 1.0 for r in members), len(members))
    overall["quota_attainment"] = _ratio(sum(a >= 1.0 for a in attainment.values()), len(attainment))
