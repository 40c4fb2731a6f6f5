"""Business-hours calendars: when a team works, and deadlines counted in working time only.

A calendar is a time zone, weekly opening intervals (local wall-clock times) and holidays (local dates).
``due(start, seconds)`` walks the open intervals from ``start`` and spends ``seconds`` of open time in
them: with 09:00-18:00, a lead created Friday 17:58 with a 5-minute SLA is due Monday 09:03. Only alert
deadlines use this; the KPIs keep plain elapsed time (docs/kpis.md). Pure: no I/O, UTC-ms in/out.
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A calendar with hours has at least one open minute a week, so a deadline is always found; the bound
# only guards against a calendar whose every open day is a holiday.
_MAX_DAYS = 3 * 366

Interval = tuple[int, int]  # minutes after local midnight, start < end <= 1440


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


@dataclass(frozen=True)
class BusinessCalendar:
    name: str
    timezone: str = "UTC"
    weekly: tuple[tuple[Interval, ...], ...] = ((),) * 7  # index 0 = Monday
    holidays: frozenset[date] = field(default_factory=frozenset)
    # Open intervals per local date: a deadline is computed for every new lead (up to three per rule),
    # and building them from local times was a tenth of the worker's per-event CPU (bench/RESULTS.md).
    _days: dict[date, tuple[tuple[int, int], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _local_midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.tz)

    def _open_intervals(self, day: date) -> tuple[tuple[int, int], ...]:
        """Open intervals of a local day as UTC-ms pairs (a DST day is handled by the zone)."""
        cached = self._days.get(day)
        if cached is None:
            if len(self._days) > 4096:
                self._days.clear()
            cached = self._days[day] = tuple(self._compute_intervals(day))
        return cached

    def _compute_intervals(self, day: date) -> list[tuple[int, int]]:
        if day in self.holidays:
            return []
        out = []
        for start_min, end_min in self.weekly[day.weekday()]:
            # Wall-clock arithmetic: build the local time, then convert (24:00 is the next midnight).
            start = self._at(day, start_min)
            end = self._at(day, end_min)
            if end > start:
                out.append((start, end))
        return out

    def _at(self, day: date, minute: int) -> int:
        if minute >= 1440:
            return _ms(self._local_midnight(day + timedelta(days=1)))
        local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.tz)
        return _ms(local)

    def _local_date(self, ts_ms: int) -> date:
        return datetime.fromtimestamp(ts_ms / 1000, tz=self.tz).date()

    def is_open(self, ts_ms: int) -> bool:
        day = self._local_date(ts_ms)
        return any(start <= ts_ms < end for start, end in self._open_intervals(day))

    def due(self, start_ms: int, seconds: float) -> int:
        """The instant when ``seconds`` of open time have passed since ``start_ms``."""
        remaining = round(seconds * 1000)
        day = self._local_date(start_ms)
        for _ in range(_MAX_DAYS):
            for begin, end in self._open_intervals(day):
                begin = max(begin, start_ms)
                if end <= begin:
                    continue
                if remaining <= end - begin:
                    return begin + remaining
                remaining -= end - begin
            day += timedelta(days=1)
        raise ValueError(f"calendar {self.name!r} has no open time in {_MAX_DAYS} days after {start_ms}")

    def open_seconds(self, start_ms: int, end_ms: int) -> float:
        """Open time between two instants, in seconds (for "waited 12 min of business time")."""
        if end_ms <= start_ms:
            return 0.0
        total = 0
        day = self._local_date(start_ms)
        last = self._local_date(end_ms)
        while day <= last:
            for begin, end in self._open_intervals(day):
                lo, hi = max(begin, start_ms), min(end, end_ms)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total / 1000


def parse_range(text: str) -> Interval:
    """``"09:00-18:00"`` -> (540, 1080); ``24:00`` is allowed as an end."""
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not m:
        raise ValueError(f"hours {text!r} must look like 09:00-18:00")
    h1, m1, h2, m2 = map(int, m.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 1440:
        raise ValueError(f"hours {text!r}: not a time of day")
    if end <= start:
        raise ValueError(f"hours {text!r}: the end must be after the start (split a night shift in two)")
    return start, end


def parse_days(text: str) -> list[int]:
    """``"mon-fri"``, ``"sat,sun"``, ``"daily"`` -> weekday indexes (Monday = 0)."""
    text = text.strip().lower()
    if text in ("daily", "every day", "all"):
        return list(range(7))
    days: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            a, b = (p.strip()[:3] for p in part.split("-", 1))
            if a not in WEEKDAYS or b not in WEEKDAYS:
                raise ValueError(f"days {text!r}: use mon..sun, e.g. mon-fri")
            i, j = WEEKDAYS.index(a), WEEKDAYS.index(b)
            days.extend(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
        else:
            if part[:3] not in WEEKDAYS:
                raise ValueError(f"days {text!r}: use mon..sun, e.g. mon-fri")
            days.append(WEEKDAYS.index(part[:3]))
    return days


def parse_weekly(spec: dict) -> tuple[tuple[Interval, ...], ...]:
    """``{"mon-fri": "09:00-18:00", "sat": ["10:00-12:00", "13:00-15:00"]}`` -> intervals per weekday."""
    weekly: list[list[Interval]] = [[] for _ in range(7)]
    for days, hours in spec.items():
        if not isinstance(days, str):
            raise ValueError(f"day key {days!r} must be text such as mon-fri")
        ranges = [hours] if isinstance(hours, str) else hours
        if not isinstance(ranges, list) or not all(isinstance(r, str) for r in ranges):
            raise ValueError(f"hours of {days!r} must be \"HH:MM-HH:MM\" or a list of them (quote them in YAML)")
        for day in parse_days(days):
            weekly[day].extend(parse_range(r) for r in ranges)
    for intervals in weekly:
        intervals.sort()
        for (_, end), (start, _) in zip(intervals, intervals[1:]):
            if start < end:
                raise ValueError("opening hours of one day overlap")
    if not any(weekly):
        raise ValueError("a calendar needs at least one open interval")
    return tuple(tuple(i) for i in weekly)


class AlwaysOpen:
    """The calendar of rules without business hours: plain elapsed time."""

    name = "always"

    def is_open(self, ts_ms: int) -> bool:
        return True

    def due(self, start_ms: int, seconds: float) -> int:
        return start_ms + round(seconds * 1000)

    def open_seconds(self, start_ms: int, end_ms: int) -> float:
        return max(0, end_ms - start_ms) / 1000


ALWAYS = AlwaysOpen()
Calendar = BusinessCalendar | AlwaysOpen
