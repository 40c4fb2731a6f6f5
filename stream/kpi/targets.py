"""Revenue targets from the roster's monthly quotas (docs/kpis.md, "Targets")."""

from __future__ import annotations

import calendar
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from stream.roster import Roster


def business_days(year: int, month: int) -> int:
    """Monday-to-Friday days of the month (no holiday calendar)."""
    return sum(1 for week in calendar.monthcalendar(year, month) for day in week[:5] if day)


def revenue_targets(roster: Roster, as_of: datetime, tz: str = "UTC") -> dict[tuple[str, str, str], tuple[float, float]]:
    """``{(scope, team, rep): (daily target, monthly target)}`` from the roster's monthly quotas.

    Daily target = monthly quota / business days (Mon-Fri) of the month ``as_of`` falls in, in ``tz``.
    """
    local = as_of.astimezone(ZoneInfo(tz))
    days = business_days(local.year, local.month)
    monthly: dict[tuple[str, str, str], float] = {}
    for rep in roster.reps:
        if rep.monthly_quota and rep.monthly_quota > 0:
            quota = float(rep.monthly_quota)
            for key in (("rep", "", rep.rep_id), ("team", rep.team, ""), ("overall", "", "")):
                monthly[key] = monthly.get(key, 0.0) + quota
    return {key: (quota / days, quota) for key, quota in monthly.items()}
