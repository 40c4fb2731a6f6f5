"""Revenue targets: the roster's monthly quotas spread over the month's business days, in the reporting time zone."""

from __future__ import annotations

from datetime import datetime, timezone

from stream.kpi.targets import business_days, revenue_targets
from stream.roster import parse_roster

ROSTER = parse_roster("teams: [{name: red}]\n"
                      "reps: [{rep_id: ana, team: red, monthly_quota: 21000}, {rep_id: ben, team: red, monthly_quota: 42000}]")


def test_business_days_and_time_zone():
    assert business_days(2026, 11) == 21
    assert business_days(2026, 2) == 20
    # 2026-11-30T23:30Z is already December in Auckland.
    late = datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc)
    assert revenue_targets(ROSTER, late, "UTC")[("overall", "", "")][0] == 63000 / 21
    assert revenue_targets(ROSTER, late, "Pacific/Auckland")[("overall", "", "")][0] == 63000 / business_days(2026, 12)
