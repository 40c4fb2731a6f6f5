"""Early-warning rules (docs/alerts.md "Pace and period rules"): `after` and `in_last` gate a KPI rule on
how far its calendar period has run. A month of deals through the real KPI engine on a fake clock: the rep
who falls behind gets one pace alert, only once the first week is over, and it resolves when they catch up."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from alerts.evaluate import in_period
from alerts.rules import RulesError, parse_rules
from alerts.state import MemoryAlertStore
from stream.config import PACKAGE_DIR
from stream.kpi.snapshot import Snapshot, build_snapshot, merge_partials
from tests.alerts.helpers import roster, rules
from tests.alerts.test_runtime import Recorder, Worker, settle

HOUR = 3_600_000
NOV1 = int(datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp() * 1000)
PACE = rules("""
rules:
  - {name: pace, type: kpi, kpi: quota_pace, scope: rep, window: month, op: "<", threshold: 0.7, after: 7d,
     calendar: none, repeat_interval: 0, notify: rep}
""")


def day(d: float) -> int:
    return NOV1 + round((d - 1) * 24 * HOUR)


def test_after_and_in_last_gates():
    rule = parse_rules("rules: [{name: a, type: kpi, kpi: quota_pace, window: month, op: '<', threshold: 1, "
                       "after: 25%, in_last: 10d}]", env={"KPI_TIMEZONE": "UTC"}).rules[0]
    assert rule.after == ("share", 0.25) and rule.in_last == 10 * 86400
    assert not in_period(rule, day(8))        # 7 of 30 days: under 25 %
    assert not in_period(rule, day(20.5))     # 25 % run, but 10.5 days left
    assert in_period(rule, day(21) + 1)       # the last 10 days
    berlin = parse_rules("rules: [{name: b, type: kpi, kpi: quota_pace, window: month, op: '<', threshold: 1, "
                         "after: 7d}]", env={"KPI_TIMEZONE": "Europe/Berlin"})
    assert not in_period(berlin.rules[0], day(8) - HOUR - 1, berlin.timezone)  # Berlin's month began at 23:00 UTC
    assert in_period(berlin.rules[0], day(8) - HOUR, berlin.timezone)


def test_period_gates_need_a_calendar_period_window():
    with pytest.raises(RulesError, match="calendar-period window"):
        parse_rules("rules: [{name: a, type: kpi, kpi: calls, window: 1h, op: '<', threshold: 1, after: 50%}]")
    with pytest.raises(RulesError, match="0%..100%"):
        parse_rules("rules: [{name: a, type: kpi, kpi: quota_pace, window: month, op: '<', threshold: 1, after: 150%}]")


def test_shipped_rules_parse():
    shipped = parse_rules((PACKAGE_DIR.parent / "alerts" / "rules.yaml").read_text(), env={"KPI_SLA_SECONDS": "300"})
    names = {r.name for r in shipped.rules}
    assert {"rep-quota-pace-behind", "team-churn-high", "rep-forecast-attainment-low"} <= names


async def test_one_rep_falls_behind_fires_once_after_the_first_week_and_resolves_on_catching_up():
    clock, store, rec = [NOV1], MemoryAlertStore(clock=lambda: NOV1), Recorder()
    w = Worker(store, rec, clock, "w", PACE)
    w.dispatcher.start()
    floor = roster()
    n = 0

    def won(rep: str, at: int, amount: float) -> None:
        nonlocal n
        n += 1
        for etype, extra in (("deal.created", {"rep_id": rep, "amount": amount, "stage": "prospecting"}),
                             ("deal.won", {})):
            raw = json.dumps({"event_id": f"d{n}-{etype}", "type": etype, "deal_id": f"D{n}",
                              "occurred_at": datetime.fromtimestamp(at / 1000, timezone.utc).isoformat(), **extra})
            w.engine.apply(w.tables["deals"], "deals", 0, w.validator.validate(raw.encode(), "deals"), clock[0])

    async def snapshot(window: str) -> Snapshot:
        merged = merge_partials(w.engine.partials(window, clock[0]).values())
        return build_snapshot(merged, window=window, now_ms=clock[0], roster=floor, stages=("prospecting",))

    fired_at = resolved_at = None
    while clock[0] < day(14):
        if clock[0] == day(1) + 9 * HOUR:  # everyone but hugo wins their whole month's quota on the 1st
            for rep in floor.reps:
                if rep.monthly_quota and rep.rep_id != "hugo":
                    won(rep.rep_id, clock[0], rep.monthly_quota)
            # hugo works (a rep with nothing at all this month is not listed: the no-activity rules cover that)
            w.apply("calls", 0, event_id="c1", type="call.logged", occurred_at=datetime.fromtimestamp(
                clock[0] / 1000, timezone.utc).isoformat(), call_id="C1", rep_id="hugo", direction="outbound",
                outcome="busy", duration_s=0)
        if clock[0] == day(12) + 10 * HOUR:  # hugo catches up
            won("hugo", clock[0], 40_000)
        before = len(rec.sent)
        await w.runtime.evaluate_global(snapshot)
        await settle(w)
        if len(rec.sent) > before:
            kinds = [x.kind for x in rec.sent[before:]]
            if "firing" in kinds:
                fired_at = clock[0]
            if "resolved" in kinds:
                resolved_at = clock[0]
        clock[0] += HOUR
    assert [(x.kind, x.labels.get("rep")) for x in rec.sent] == [("firing", "hugo"), ("resolved", "hugo")]
    assert fired_at == day(8)  # behind from the start, but judged only once 7 days have run
    assert resolved_at == day(12) + 10 * HOUR
    await w.dispatcher.stop()


async def test_backtest_replays_the_pace_rule():
    """The same story as a JSON Lines log through `alerts backtest`: one firing for hugo on the 8th, resolved
    when his deal is won on the 12th."""
    from alerts.backtest import run_backtest
    from stream.config import Settings

    floor = roster()
    lines, n = [], 0

    def line(**event) -> None:
        nonlocal n
        n += 1
        lines.append(json.dumps({"event_id": f"b{n}", **event}).encode())

    def iso(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()

    for rep in floor.reps:
        if rep.monthly_quota and rep.rep_id != "hugo":
            line(type="deal.created", deal_id=f"D-{rep.rep_id}", rep_id=rep.rep_id, amount=rep.monthly_quota,
                 stage="prospecting", occurred_at=iso(day(1) + 9 * HOUR))
            line(type="deal.won", deal_id=f"D-{rep.rep_id}", occurred_at=iso(day(1) + 9 * HOUR))
    for h in range(9, 13 * 24):  # hugo's hourly calls, the 1st 09:00 to the 13th
        line(type="call.logged", call_id=f"C{h}", rep_id="hugo", direction="outbound", outcome="busy", duration_s=0,
             occurred_at=iso(NOV1 + h * HOUR))
        if h == 11 * 24 + 10:
            line(type="deal.created", deal_id="D-hugo", rep_id="hugo", amount=40_000, stage="prospecting",
                 occurred_at=iso(NOV1 + h * HOUR))
            line(type="deal.won", deal_id="D-hugo", occurred_at=iso(NOV1 + h * HOUR))
    result = await run_backtest(PACE, lines, Settings(), floor)
    got = [(x.kind, x.labels.get("rep"), x.at) for x in result.notifications]
    assert got[0] == ("firing", "hugo", day(8)) and [g[:2] for g in got] == [("firing", "hugo"), ("resolved", "hugo")]
    # evaluated as event time enters a minute, before that minute's events: the next event (11:00) resolves it
    assert day(12) + 10 * HOUR <= got[1][2] <= day(12) + 11 * HOUR
