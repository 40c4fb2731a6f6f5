"""Time buckets and the report windows (docs/kpis.md, "Windows").

Windowed parts are kept in minute buckets (for ``1h``/``24h``) and local-day buckets (for ``today``,
``week``, ``month`` and ``quarter``), plus an all-time total. ``1h`` is ``[floor_minute(now) - 59 min,
now]``: whole minutes, so minute buckets answer it exactly; the others start at a local midnight, so day
buckets answer them exactly.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

WINDOWS = ("1h", "24h", "today", "week", "month", "quarter", "all")
MINUTE_MS = 60_000
MINUTE_WINDOWS = {"1h": 60, "24h": 1440}
# Minute buckets older than the 24 h window are never read again; day buckets cover the longest quarter
# (92 days), which also holds the previous calendar month.
MINUTES_KEPT = 1440
DAYS_KEPT = 93


def minute_of(ts_ms: int) -> int:
    return ts_ms // MINUTE_MS


class DayCalendar:
    """Maps UTC milliseconds to local day numbers (proleptic ordinals) in one time zone."""

    def __init__(self, tz: ZoneInfo | str = "UTC") -> None:
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self._cache: dict[int, int] = {}

    def day_of(self, ts_ms: int) -> int:
        # Cache per UTC hour: local midnights fall on whole hours in all but a handful of zones, and
        # those (e.g. Asia/Kathmandu) are handled by the fallback below.
        hour = ts_ms // 3_600_000
        day = self._cache.get(hour)
        if day is None:
            start = self._local(hour * 3_600_000)
            end = self._local(hour * 3_600_000 + 3_599_999)
            if start.date() != end.date():
                return self._local(ts_ms).date().toordinal()
            day = start.date().toordinal()
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[hour] = day
        return day

    def month_days(self, now_ms: int) -> range:
        """Day numbers from the first of now's local month to now's local day, inclusive."""
        return self.days_of("month", now_ms)

    def days_of(self, window: str, now_ms: int) -> range:
        """Day numbers of a day-aligned window (``today``, ``week``, ``month``, ``quarter``) at ``now_ms``."""
        today = self._local(now_ms).date()
        if window == "today":
            first = today
        elif window == "week":
            first = today.fromordinal(today.toordinal() - today.weekday())  # Monday
        elif window == "month":
            first = today.replace(day=1)
        elif window == "quarter":
            first = today.replace(month=3 * ((today.month - 1) // 3) + 1, day=1)
        else:
            raise ValueError(f"unknown window {window!r}")
        return range(first.toordinal(), today.toordinal() + 1)

    def previous_month_days(self, now_ms: int) -> range:
        """Day numbers of the calendar month before now's local month."""
        first = self._local(now_ms).date().replace(day=1)
        last = first.fromordinal(first.toordinal() - 1)
        return range(last.replace(day=1).toordinal(), first.toordinal())

    def month_span(self, now_ms: int) -> tuple[int, int]:
        """(ms since the start of now's local month, the month's length in ms): f = elapsed ÷ length."""
        start_ms, end_ms = self.period_bounds("month", now_ms)
        return now_ms - start_ms, end_ms - start_ms

    def period_bounds(self, window: str, now_ms: int) -> tuple[int, int]:
        """[start, end) in UTC ms of the calendar period (``today``, ``week``, ``month``, ``quarter``) of now."""
        first = date.fromordinal(self.days_of(window, now_ms).start)
        if window == "today":
            after = first + timedelta(days=1)
        elif window == "week":
            after = first + timedelta(days=7)
        else:
            index = first.year * 12 + first.month - 1 + (1 if window == "month" else 3)
            after = date(index // 12, index % 12 + 1, 1)
        return _ms(datetime(first.year, first.month, first.day, tzinfo=self.tz)), \
            _ms(datetime(after.year, after.month, after.day, tzinfo=self.tz))

    def _local(self, ts_ms: int) -> datetime:
        return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).astimezone(self.tz)


def _ms(local: datetime) -> int:
    # A local wall time as UTC ms (re-resolving the offset: a month may start in another DST period).
    local = local.replace(tzinfo=None).replace(tzinfo=local.tzinfo)
    return round(local.timestamp() * 1000)


def ms_to_datetime(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)
