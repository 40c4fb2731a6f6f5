"""The backtest and a live worker in KPI_CLOCK=event mode agree: the same simulator log (with its ~1 %
late deliveries) produced to Kafka yields exactly the lead SLA notifications — same idempotency keys,
same times — that `alerts backtest` computes from the file, business hours and escalations included."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from alerts.backtest import run_backtest
from alerts.rules import load_rules
from stream.config import load_settings
from stream.local.simulator import SalesFloor
from tests.alerts.conftest import forget_alert_state, receiver  # noqa: F401  (fixtures)
from tests.alerts.helpers import roster
from tests.conftest import wait_for

pytestmark = pytest.mark.integration
RULES = """
calendars:
  office: {timezone: UTC, hours: {mon-fri: "09:00-18:00"}}
defaults: {calendar: office}
rules:
  - name: lead-first-touch-sla
    type: lead_sla
    deadline: 5m
    escalation: [{after: 15m, notify: team_lead}, {after: 30m, notify: oncall}]
"""


def simulator_log() -> list[tuple[str, str, bytes]]:
    # A Monday morning a week or more ago: in the past for the worker's `future` check, and 08:00 so the
    # first hour's deadlines wait for the 09:00 opening.
    today = datetime.now(timezone.utc).date() - timedelta(days=7)
    monday = today - timedelta(days=today.weekday())
    start = datetime(monday.year, monday.month, monday.day, 8, 0, tzinfo=timezone.utc)
    floor = SalesFloor(roster(), 5, start, events_per_second=0.6)
    return [(e.topic, e.key, json.dumps(e.event).encode()) for e in floor.events(start + timedelta(hours=1, minutes=45))]


def test_backtest_matches_a_live_event_clock_run(forget_alert_state, make_deployment, receiver, tmp_path):  # noqa: F811
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES)
    messages = simulator_log()
    dep = make_deployment(KPI_CLOCK="event", KPI_ALERT_RULES=str(rules_file), KPI_ALERT_WEBHOOK_URL=f"{receiver.url}/webhook",
                          KPI_ALERT_QUEUE_SIZE="100000")  # a replay is a burst: keep every notification
    forget_alert_state.append(dep.app_id)
    settings = load_settings(kpi_partitions=4, kpi_app_id=dep.app_id)
    expected = asyncio.run(run_backtest(load_rules(rules_file, settings), [m[2] for m in messages], settings, roster()))
    want = sorted((n.key, n.at) for n in expected.notifications)
    kinds = {k: sum(1 for n in expected.notifications if n.kind == k) for k in ("firing", "escalation", "resolved")}
    assert kinds["firing"] > 20 and kinds["escalation"] > 5 and kinds["resolved"] > 10, kinds
    print(f"\n{len(messages)} events, {len(want)} notifications {kinds}")

    worker = dep.start_worker()
    dep.produce(messages)
    try:
        wait_for(lambda: len(receiver.on("/webhook")) >= len(want), 45, interval=0.5, what=f"{len(want)} notifications")
    except AssertionError:
        pass  # the comparison below says what differs
    time.sleep(1.5)  # nothing more should come
    got = sorted((r.json()["idempotency_key"], r.json()["at_ms"]) for r in receiver.on("/webhook"))
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, (
        f"{len(missing)} missing, e.g. {missing[:5]}; {len(extra)} extra, e.g. {extra[:5]}\n{worker.log_tail(10)}")
    assert got == want
