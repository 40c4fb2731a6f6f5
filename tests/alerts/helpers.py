"""Small builders shared by the alert unit tests (pure: no services)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from alerts.rules import RuleSet, parse_rules
from stream.kpi.catalogue import SCOPE
from stream.kpi.facts import AWAITING, WINDOWED, Contribution
from stream.roster import Roster, load_roster
from stream.local.simulator import SalesFloor, SimEvent

ROSTER_PATH = Path(__file__).resolve().parents[2] / "stream" / "roster.example.yaml"
UTC = ZoneInfo("UTC")


@lru_cache(maxsize=1)
def roster() -> Roster:
    return load_roster(ROSTER_PATH)


def rules(text: str, sla: float = 300) -> RuleSet:
    return parse_rules(text, "test.yaml", env={"KPI_SLA_SECONDS": str(sla), "KPI_TIMEZONE": "UTC"})


def ms(text: str, tz: str = "UTC") -> int:
    """'2026-11-27 17:58' (local to tz) -> UTC ms."""
    dt = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))
    return int(dt.timestamp() * 1000)


def awaiting(ts: int, rep: str = "hana", team: str | None = None, source: str | None = "web") -> Contribution:
    return Contribution("awaiting", ts, rep, team, SCOPE, None, AWAITING, info=source)


def response(ts: int, rep: str = "hana", created: int = 0) -> Contribution:
    return Contribution("response", ts, rep, None, SCOPE, None, WINDOWED, ((0, 1),), ((0, max(0, ts - created)),))


def created(ts: int, rep: str = "hana") -> Contribution:
    return Contribution("created", ts, rep, None, SCOPE, None, WINDOWED, ((0, 1),))


def call(ts: int, rep: str = "hana") -> Contribution:
    return Contribution("call", ts, rep, None, SCOPE, None, WINDOWED, ((0, 1),))


# A floor that alerts a lot: two simulated hours of the example roster, and lead SLA rules that fire,
# escalate twice and resolve hundreds of times over them (the broken-sink tests, in process and live).
BUSY_FLOOR_START = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
BUSY_FLOOR_RULES = """
rules:
  - name: sla
    type: lead_sla
    deadline: 2m
    calendar: none
    escalation: [{after: 4m, notify: team_lead}, {after: 6m, notify: oncall}]
"""


def busy_floor() -> list[SimEvent]:
    floor = SalesFloor(roster(), 11, BUSY_FLOOR_START, events_per_second=4.0)
    return list(floor.events(BUSY_FLOOR_START + timedelta(hours=2)))
