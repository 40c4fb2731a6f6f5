"""Pure evaluation with injected time: KPI thresholds over /kpis documents, lead SLA deadlines with
escalation and business hours, and no-activity rules that sleep outside business hours."""

from __future__ import annotations

from alerts.evaluate import ActivityTracker, LeadSlaTracker, evaluate_kpi_rule, evaluate_no_activity
from tests.alerts.helpers import awaiting, call, created as created_lead, ms, response, roster, rules

S, M = 1000, 60_000
GRACE = 60_000

KPI_RULES = rules("""
rules:
  - name: team-ratio
    type: kpi
    kpi: lead_response_within_sla_ratio
    scope: team
    window: 1h
    op: "<"
    threshold: 0.8
    for: 60s
    min_sample: {kpi: leads_responded, at_least: 5}
""")


def doc(ratios: dict[str, float | None], responded: int = 10) -> dict:
    return {"as_of": "x", "overall": {}, "reps": {},
            "teams": {t: {"lead_response_within_sla_ratio": r, "leads_responded": responded} for t, r in ratios.items()}}


def drive(rule_name: str, docs: list[tuple[int, dict]], ruleset=KPI_RULES):
    """Evaluate a rule at each (second, doc); returns [(second, kind, scope)] and the instances."""
    rule = ruleset.by_name[rule_name]
    instances: dict = {}
    out = []
    for second, d in docs:
        for inst, transitions in evaluate_kpi_rule(rule, ruleset, d, second * S, instances, roster()):
            instances[inst.fingerprint] = inst
            out += [(t.at // S, t.kind, dict(inst.scope)) for t in transitions]
    return out, instances


def test_kpi_rule_ignores_a_30s_blip_and_fires_on_a_sustained_breach():
    timeline = [(t, doc({"hunters": 0.9, "farmers": 0.9})) for t in range(0, 60, 2)]
    timeline += [(t, doc({"hunters": 0.5, "farmers": 0.9})) for t in range(60, 90, 2)]  # 30 s blip
    timeline += [(t, doc({"hunters": 0.9, "farmers": 0.9})) for t in range(90, 150, 2)]
    timeline += [(t, doc({"hunters": 0.9, "farmers": 0.6})) for t in range(150, 300, 2)]  # sustained
    timeline += [(t, doc({"hunters": 0.9, "farmers": 0.95})) for t in range(300, 320, 2)]
    transitions, instances = drive("team-ratio", timeline)
    assert transitions == [(210, "firing", {"team": "farmers"}), (300, "resolved", {"team": "farmers"})]
    firing = next(i for i in instances.values() if i.scope == {"team": "farmers"})
    assert firing.info["threshold"] == 0.8 and firing.value == 0.95


def test_min_sample_and_null_values_never_breach():
    transitions, _ = drive("team-ratio", [(t, doc({"hunters": 0.1}, responded=2)) for t in range(0, 200, 5)])
    assert transitions == []
    transitions, _ = drive("team-ratio", [(t, doc({"hunters": None})) for t in range(0, 200, 5)])
    assert transitions == []


def test_a_scope_that_disappears_resolves():
    timeline = [(t, doc({"hunters": 0.1})) for t in range(0, 100, 5)] + [(100, doc({}))]
    transitions, _ = drive("team-ratio", timeline)
    assert [k for _, k, _ in transitions] == ["firing", "resolved"]


def test_kpi_rule_with_calendar_sleeps_outside_hours():
    ruleset = rules("""
calendars:
  office: {timezone: UTC, hours: {mon-fri: "09:00-18:00"}}
rules:
  - {name: calls-low, type: kpi, kpi: calls, scope: overall, op: "<", threshold: 5, for: 0s, calendar: office}
""")
    night = ms("2026-11-24 02:00") // S
    morning = ms("2026-11-24 09:00") // S
    low = {"overall": {"calls": 0}, "teams": {}, "reps": {}}
    transitions, _ = drive("calls-low", [(night + i * 60, low) for i in range(60)] + [(morning, low)], ruleset)
    assert transitions == [(morning, "firing", {})]


# --- lead SLA ---------------------------------------------------------------------------------------
SLA_RULES = rules("""
rules:
  - name: sla
    type: lead_sla
    deadline: 5m
    calendar: none
    escalation:
      - {after: 15m, notify: team_lead}
      - {after: 30m, notify: oncall}
""")


def tracker(ruleset=SLA_RULES, event_time=False) -> LeadSlaTracker:
    return LeadSlaTracker(ruleset, roster, event_time=event_time)


def events(tr: LeadSlaTracker, now: int, grace: int = 0):
    return [(e.kind, e.lead.lead_id, e.step, e.at, e.reason) for e in tr.advance(lambda p: now, grace_ms=grace)]


T0 = ms("2026-11-24 10:00")


def test_lead_fires_at_the_deadline_and_escalates_in_order():
    tr = tracker()
    tr.on_change(1, "L:A", [], [awaiting(T0)], T0)
    assert events(tr, T0 + 5 * M - 1) == []
    assert events(tr, T0 + 5 * M) == [("fire", "A", 0, T0 + 5 * M, "")]
    assert events(tr, T0 + 5 * M + 10) == []  # once
    assert events(tr, T0 + 15 * M) == [("escalate", "A", 1, T0 + 15 * M, "")]
    assert events(tr, T0 + 30 * M) == [("escalate", "A", 2, T0 + 30 * M, "")]
    assert events(tr, T0 + 90 * M) == []
    tr.on_change(1, "L:A", [awaiting(T0)], [response(T0 + 40 * M)], T0 + 40 * M)
    assert events(tr, T0 + 40 * M) == [("resolve", "A", 0, T0 + 40 * M, "touched")]


def test_touched_in_time_never_fires():
    tr = tracker()
    tr.on_change(0, "L:A", [], [awaiting(T0)], T0)
    tr.on_change(0, "L:A", [awaiting(T0)], [response(T0 + 4 * M)], T0 + 4 * M)
    assert events(tr, T0 + 60 * M) == []


def test_overdue_steps_collapse_after_a_restart_in_wall_time():
    tr = tracker()
    tr.on_change(0, "L:A", [], [awaiting(T0)], T0 + 20 * M)  # seen for the first time 20 min after creation
    assert events(tr, T0 + 20 * M) == [("fire", "A", 1, T0 + 15 * M, "")]
    assert events(tr, T0 + 30 * M) == [("escalate", "A", 2, T0 + 30 * M, "")]


def test_event_time_is_strict_and_reports_every_step():
    tr = tracker(event_time=True)
    tr.on_change(0, "L:A", [], [awaiting(T0)], T0)
    assert events(tr, T0 + 5 * M) == []  # a touch stamped exactly at the deadline is in time
    assert events(tr, T0 + 31 * M) == [
        ("fire", "A", 0, T0 + 5 * M, ""), ("escalate", "A", 1, T0 + 15 * M, ""), ("escalate", "A", 2, T0 + 30 * M, "")]


def test_event_time_waits_for_the_grace_then_decides_from_the_touch_time():
    tr = tracker(event_time=True)
    tr.on_change(0, "L:A", [], [awaiting(T0)], T0)
    tr.on_change(0, "L:B", [], [awaiting(T0)], T0)
    # A's touch 7 min after creation arrives before any tick saw the deadline pass.
    tr.on_change(0, "L:A", [awaiting(T0)], [response(T0 + 7 * M)], T0 + 7 * M)
    assert events(tr, T0 + 5 * M + 30_000, grace=GRACE) == []  # within the grace: a late touch may still come
    # B is touched 4 min after creation, but that touch arrives late (after the deadline on the clock).
    tr.on_change(0, "L:B", [awaiting(T0)], [response(T0 + 4 * M)], T0 + 5 * M + 40_000)
    assert events(tr, T0 + 8 * M + 1, grace=GRACE) == [
        ("fire", "A", 0, T0 + 5 * M, ""), ("resolve", "A", 0, T0 + 7 * M, "touched")]
    assert tr.leads == {}


def test_event_time_lead_touched_before_it_was_created():
    tr = tracker(event_time=True)
    created = created_lead(T0, "hugo")
    # The call (calls topic) was applied before the lead.created (leads topic): the lead never waited here.
    tr.on_change(0, "L:C", [], [created, response(T0 + 9 * M)], T0)
    assert events(tr, T0 + 9 * M + 30_000, grace=GRACE) == [("fire", "C", 0, T0 + 5 * M, "")]
    assert events(tr, T0 + 12 * M, grace=GRACE) == [("resolve", "C", 0, T0 + 9 * M, "touched")]
    # ...and when an earlier touch shows up before the verdict, it wins.
    tr.on_change(0, "L:D", [], [created, response(T0 + 9 * M)], T0)
    tr.on_change(0, "L:D", [response(T0 + 9 * M)], [response(T0 + 2 * M)], T0 + 3 * M)
    assert events(tr, T0 + 20 * M, grace=GRACE) == []
    assert "L:D" not in tr.leads


def test_reassignment_keeps_the_alert_and_changes_the_owner():
    tr = tracker()
    tr.on_change(0, "L:A", [], [awaiting(T0, rep="hana")], T0)
    assert [e[0] for e in events(tr, T0 + 6 * M)] == ["fire"]
    tr.on_change(0, "L:A", [awaiting(T0, rep="hana")], [awaiting(T0, rep="felix")], T0 + 7 * M)
    assert events(tr, T0 + 8 * M) == []
    assert tr.leads["L:A"].rep == "felix" and tr.leads["L:A"].team == "farmers"
    escalated = tr.advance(lambda p: T0 + 15 * M)
    assert [(e.kind, e.lead.rep) for e in escalated] == [("escalate", "felix")]
    tr.on_change(0, "L:A", [awaiting(T0, rep="felix")], [response(T0 + 16 * M, rep="felix")], T0 + 16 * M)
    assert [e[0] for e in events(tr, T0 + 16 * M)] == ["resolve"]


def test_disqualified_resolves_and_a_dropped_partition_is_forgotten():
    tr = tracker()
    tr.on_change(0, "L:A", [], [awaiting(T0)], T0)
    tr.on_change(2, "L:B", [], [awaiting(T0)], T0)
    assert len(events(tr, T0 + 6 * M)) == 2
    tr.on_change(0, "L:A", [awaiting(T0)], [], T0 + 7 * M)
    assert events(tr, T0 + 7 * M) == [("resolve", "A", 0, T0 + 7 * M, "disqualified")]
    assert [lead.lead_id for lead in tr.drop_partition(2)] == ["B"]
    assert events(tr, T0 + 60 * M) == []  # the new owner of partition 2 carries on, not us


def test_stale_leads_do_not_fire():
    tr = tracker(rules("rules: [{name: sla, type: lead_sla, deadline: 5m, max_age: 1h, calendar: none}]"))
    tr.on_change(0, "L:OLD", [], [awaiting(T0)], T0 + 2 * 3600 * S)
    assert events(tr, T0 + 3 * 3600 * S) == []


BUSINESS_RULES = rules("""
calendars:
  office:
    timezone: Europe/Berlin
    hours: {mon-fri: "09:00-18:00"}
    holidays: [2026-12-24, 2026-12-25]
defaults: {calendar: office}
rules:
  - {name: sla, type: lead_sla, deadline: 5m}
""")


def test_business_hours_deadline_across_a_weekend_and_a_holiday():
    tr = tracker(BUSINESS_RULES)
    friday = ms("2026-11-27 17:58", "Europe/Berlin")
    tr.on_change(0, "L:W", [], [awaiting(friday)], friday)
    assert events(tr, ms("2026-11-30 09:02", "Europe/Berlin")) == []
    assert events(tr, ms("2026-11-30 09:03", "Europe/Berlin")) == [("fire", "W", 0, ms("2026-11-30 09:03", "Europe/Berlin"), "")]
    before_holiday = ms("2026-12-23 17:59", "Europe/Berlin")
    tr.on_change(0, "L:H", [], [awaiting(before_holiday)], before_holiday)
    assert tr.leads["L:H"].dues["sla"] == [ms("2026-12-28 09:04", "Europe/Berlin")]


# --- no activity ------------------------------------------------------------------------------------
IDLE_RULES = rules("""
calendars:
  office: {timezone: UTC, hours: {mon-fri: "09:00-18:00"}}
defaults: {calendar: office, repeat_interval: 0}
rules:
  - {name: idle, type: no_activity, scope: {rep: hana}, activity: calls, for: 60m}
""")


def idle_timeline(activity: ActivityTracker, baseline: int, start: int, end: int, step: int = 5 * M, calls=()):
    rule = IDLE_RULES.by_name["idle"]
    instances: dict = {}
    out = []
    for now in range(start, end, step):
        activity.on_change([call(ts) for ts in calls if now - step < ts <= now], roster().team_of)
        for inst, transitions in evaluate_no_activity(rule, IDLE_RULES, activity, baseline, now, instances, roster()):
            instances[inst.fingerprint] = inst
            out += [(t.kind, t.at) for t in transitions]
    return out


def test_no_activity_fires_in_business_hours_and_resolves_on_a_call():
    activity = ActivityTracker()
    out = idle_timeline(activity, ms("2026-11-24 09:00"), ms("2026-11-24 10:00"), ms("2026-11-24 13:00"),
                        calls=[ms("2026-11-24 10:00"), ms("2026-11-24 11:31")])
    assert out == [("firing", ms("2026-11-24 11:00")), ("resolved", ms("2026-11-24 11:35")),
                   ("firing", ms("2026-11-24 12:35"))]


def test_no_activity_is_silent_at_night_and_counts_business_time():
    activity = ActivityTracker()
    activity.on_change([call(ms("2026-11-24 17:30"))], roster().team_of)
    night = idle_timeline(activity, ms("2026-11-24 09:00"), ms("2026-11-24 17:30"), ms("2026-11-25 09:00"))
    assert night == []  # 30 min of business time left at 18:00; nothing at night
    morning = idle_timeline(activity, ms("2026-11-24 09:00"), ms("2026-11-25 09:00"), ms("2026-11-25 10:00"))
    assert morning == [("firing", ms("2026-11-25 09:30"))]


def test_activity_tracker_keeps_the_latest_per_rep_and_team():
    activity = ActivityTracker()
    activity.on_change([call(5_000, "hana"), call(3_000, "hana"), response(4_000, "hugo")], roster().team_of)
    assert activity.latest("calls", "rep:hana") == 5_000
    assert activity.latest("touches", "rep:hugo") == 4_000
    assert activity.latest("any", "team:hunters") == 5_000
    assert activity.latest("calls", "rep:hugo") is None
