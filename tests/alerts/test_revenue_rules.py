"""KPI rules on the revenue and marketing sections (docs/alerts.md): a scope of product, source or campaign,
the keys those sections carry, and the bundled cost-per-lead example."""

from __future__ import annotations

import pytest

from alerts.evaluate import evaluate_kpi_rule
from alerts.rules import RulesError, load_rules
from stream.config import REPO_ROOT
from tests.alerts.helpers import roster, rules

S = 1000
RULES = rules("""
rules:
  - name: cpl
    type: kpi
    kpi: cost_per_lead
    scope: source
    window: week
    op: ">"
    threshold: 150
    for: 60s
    min_sample: {kpi: leads_created, at_least: 20}
    calendar: none
    notify: none
""")


def _doc(cpl: dict[str, float | None], leads: int = 40) -> dict:
    return {"overall": {}, "teams": {}, "reps": {},
            "sources": {s: {"cost_per_lead": v, "leads_created": leads} for s, v in cpl.items()}}


def test_a_source_rule_fires_per_source_and_resolves():
    rule, instances, seen = RULES.by_name["cpl"], {}, []
    timeline = [(t, _doc({"paid_search": 120.0, "linkedin": 90.0})) for t in range(0, 30, 5)]
    timeline += [(t, _doc({"paid_search": 180.0, "linkedin": 90.0})) for t in range(30, 200, 5)]
    timeline += [(t, _doc({"paid_search": 140.0, "linkedin": None})) for t in range(200, 220, 5)]
    for second, d in timeline:
        for inst, transitions in evaluate_kpi_rule(rule, RULES, d, second * S, instances, roster()):
            instances[inst.fingerprint] = inst
            seen += [(t.at // S, t.kind, dict(inst.scope)) for t in transitions]
    assert seen == [(90, "firing", {"source": "paid_search"}), (200, "resolved", {"source": "paid_search"})]


@pytest.mark.parametrize("scope, kpi, ok", [
    ("source", "cost_per_lead", True),
    ("{campaign: spring}", "marketing_roi", True),
    ("product", "won_revenue_new", True),
    ("product", "cost_per_lead", False),  # spend is not per product
    ("team", "marketing_spend", False),  # spend is credited to no rep
    ("source", "calls", False),
])
def test_rules_accept_the_keys_of_the_scope_only(scope, kpi, ok):
    text = f"rules:\n  - {{name: r, type: kpi, kpi: {kpi}, scope: {scope}, window: week, op: '>', threshold: 1}}\n"
    if ok:
        assert rules(text).by_name["r"].kpi == kpi
    else:
        with pytest.raises(RulesError, match="not reported per"):
            rules(text)


def test_the_bundled_cost_per_lead_rule_is_off_unless_enabled(monkeypatch):
    path = REPO_ROOT / "alerts" / "rules.yaml"
    assert "paid-search-cost-per-lead-over-budget" not in [r.name for r in load_rules(path).rules]
    monkeypatch.setenv("KPI_ALERT_CPL_ENABLED", "true")
    rule = next(r for r in load_rules(path).rules if r.name == "paid-search-cost-per-lead-over-budget")
    assert (rule.kpi, str(rule.scope), rule.window, rule.threshold) == ("cost_per_lead", "source paid_search", "week", 150)
