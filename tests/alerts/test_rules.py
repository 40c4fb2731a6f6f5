"""The rules file: the bundled one is valid and matches the roster; errors name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.rules import RulesError, Scope, check_against_roster, load_rules, parse_duration, parse_rules
from stream.config import Settings
from tests.alerts.helpers import roster, rules

BUNDLED = Path(__file__).resolve().parents[2] / "alerts" / "rules.yaml"


def test_bundled_rules_are_valid_and_use_the_sla_setting():
    ruleset = load_rules(BUNDLED, Settings(kpi_sla_seconds=420))
    sla = ruleset.by_name["lead-first-touch-sla"]
    assert sla.type == "lead_sla" and sla.deadline == 420
    assert [s.notify for s in sla.escalation] == ["team_lead", "oncall"]
    assert {r.type for r in ruleset.rules} == {"lead_sla", "kpi", "no_activity"}
    assert "office" in ruleset.calendars
    assert check_against_roster(ruleset, roster()) == []


def test_sla_keyword_and_variables():
    text = """
rules:
  - {name: a, type: lead_sla, deadline: sla}
  - {name: b, type: lead_sla, deadline: "${MY_DEADLINE:-90s}"}
  - {name: c, type: kpi, kpi: calls, op: "<", threshold: "${CALL_FLOOR}"}
"""
    ruleset = parse_rules(text, "t.yaml", env={"KPI_SLA_SECONDS": "240", "CALL_FLOOR": "12"})
    assert ruleset.by_name["a"].deadline == 240
    assert ruleset.by_name["b"].deadline == 90
    assert ruleset.by_name["c"].threshold == 12


@pytest.mark.parametrize("text, expected", [
    ("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("250ms", 0.25), (15, 15),
])
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["5x", "m5", "-3", "", "1h 30", True])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def _error(text: str) -> str:
    with pytest.raises(RulesError) as exc:
        parse_rules(text, "rules.yaml", env={"KPI_SLA_SECONDS": "300"})
    return str(exc.value)


def test_errors_name_line_and_field():
    text = """\
version: 1
rules:
  - name: ok
    type: lead_sla
    deadline: 5m
  - name: ratio
    type: kpi
    kpi: lead_response_within_sla_ratio
    op: "<"
    threshold: high
    for: 5x
  - name: typo
    type: kpii
"""
    message = _error(text)
    assert "rules.yaml:10: rules[1].threshold: Input should be a valid number" in message
    assert "rules.yaml:11: rules[1].for: '5x' is not a duration" in message
    assert "rules.yaml:13: rules[2].type:" in message and "'kpii'" in message


def test_missing_field_points_at_the_rule():
    message = _error("rules:\n  - name: x\n    type: kpi\n    kpi: calls\n    op: '<'\n")
    assert "rules.yaml:2: rules[0].threshold: Field required" in message


def test_unknown_field_and_kpi():
    message = _error("rules:\n  - name: x\n    type: kpi\n    kpi: call_count\n    op: '<'\n    threshold: 1\n    treshold: 2\n")
    assert "rules.yaml:4: rules[0].kpi: unknown KPI 'call_count'" in message
    assert "rules.yaml:7: rules[0].treshold: Extra inputs are not permitted" in message


def test_kpi_names_windows_and_sections_come_from_the_catalogue():
    ok = parse_rules("rules: [{name: w, type: kpi, kpi: win_rate, window: quarter, op: '<', threshold: 0.2}]",
                     "rules.yaml", env={})
    assert ok.rules[0].window == "quarter"
    message = _error("rules:\n  - {name: w, type: kpi, kpi: win_rate, window: fortnight, op: '<', threshold: 1}\n"
                     "  - {name: q, type: kpi, kpi: quota_attainment, op: '<', threshold: 1}\n"
                     "  - {name: s, type: kpi, kpi: stage_conversion, op: '<', threshold: 1}\n"
                     "  - {name: t, type: kpi, kpi: won_revenue, scope: stage, op: '<', threshold: 1}\n")
    assert "rules.yaml:2: rules[0].window: unknown window 'fortnight'; one of 1h, 24h, today, week, month, quarter, all" in message
    assert "rules.yaml:3: rules[1]: quota_attainment is month to date: use window: month" in message
    assert "rules.yaml:4: rules[2]: stage_conversion is reported per stage" in message
    assert "rules.yaml:5: rules[3]: per-stage rules take one of deals_won, deals_lost, open_deals, open_pipeline_value, stage_entries, stage_conversion" in message


def test_cross_checks():
    text = """\
rules:
  - {name: a, type: lead_sla, deadline: 60}
  - {name: a, type: lead_sla, deadline: 60, calendar: nowhere}
"""
    message = _error(text)
    assert "rules.yaml:3: rules[1].name: rule name 'a' is already used by rules[0]" in message
    assert "rules.yaml:3: rules[1].calendar: no calendar named 'nowhere'" in message


def test_yaml_syntax_error_and_duplicate_keys():
    assert _error("rules:\n  - name: [unclosed\n").startswith("rules.yaml:")
    assert "rules.yaml:3: rules[0].name: duplicate key" in _error("rules:\n  - name: a\n    name: b\n    type: lead_sla\n    deadline: 1\n")


def test_unset_variable_is_an_error():
    assert "rules.yaml:1: rules[0].deadline: ${NOPE} is not set" in _error("rules: [{name: a, type: lead_sla, deadline: '${NOPE}'}]")


def test_escalation_steps_must_increase():
    message = _error("rules:\n  - name: a\n    type: lead_sla\n    deadline: 60\n    escalation:\n      - {after: 10m, notify: team_lead}\n      - {after: 5m, notify: oncall}\n")
    assert "rules.yaml:2: rules[0]: escalation steps must have increasing `after` values" in message


def test_scopes():
    ruleset = rules("""
rules:
  - {name: a, type: kpi, kpi: calls, op: "<", threshold: 1, scope: overall}
  - {name: b, type: kpi, kpi: calls, op: "<", threshold: 1, scope: team}
  - {name: c, type: kpi, kpi: calls, op: "<", threshold: 1, scope: each_rep}
  - {name: d, type: kpi, kpi: calls, op: "<", threshold: 1, scope: {rep: hana}}
  - {name: e, type: no_activity, for: 1h, scope: {team: hunters}}
""")
    assert [ruleset.by_name[n].scope for n in "abcde"] == [
        Scope("overall"), Scope("team"), Scope("rep"), Scope("rep", "hana"), Scope("team", "hunters")]
    assert "no_activity rules are per rep or per team" in _error("rules: [{name: x, type: no_activity, for: 1h, scope: overall}]")


def test_calendars_validated():
    message = _error("calendars:\n  office:\n    timezone: Mars/Olympus\n    hours: {mon-fri: '09:00-18:00'}\nrules: []\n")
    assert "rules.yaml:3: calendars.office.timezone: unknown time zone 'Mars/Olympus'" in message
    message = _error("calendars:\n  office:\n    hours: {mon-fri: '9-18'}\nrules: []\n")
    assert "rules.yaml:3: calendars.office.hours: hours '9-18' must look like 09:00-18:00" in message


def test_roster_warnings():
    ruleset = rules("rules: [{name: a, type: kpi, kpi: calls, op: '<', threshold: 1, scope: {rep: nobody}}]")
    assert check_against_roster(ruleset, roster()) == ["rule 'a': rep 'nobody' is not in the roster"]
