"""Local-day buckets (`DayCalendar`) around DST changes and in zones whose offset is not whole hours."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from stream.events import epoch_ms
from stream.kpi.windows import MINUTE_MS, DayCalendar, minute_of, ms_to_datetime

UTC = timezone.utc

# (zone, a UTC instant in the middle of the 3-day span checked minute by minute)
ZONES = [
    ("America/New_York", datetime(2026, 11, 1, 6, 0, tzinfo=UTC)),  # fall back 02:00 EDT -> 01:00 EST
    ("America/New_York", datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),  # spring forward
    ("Europe/Berlin", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # spring forward 02:00 CET -> 03:00 CEST
    ("Europe/Berlin", datetime(2026, 10, 25, 1, 0, tzinfo=UTC)),  # fall back
    ("Asia/Kolkata", datetime(2026, 11, 20, 18, 30, tzinfo=UTC)),  # +05:30: midnight at hh:30 UTC
    ("Asia/Kathmandu", datetime(2026, 11, 20, 18, 15, tzinfo=UTC)),  # +05:45: midnight at hh:15 UTC
    ("Australia/Lord_Howe", datetime(2026, 10, 3, 15, 30, tzinfo=UTC)),  # half-hour DST shift
    ("Pacific/Chatham", datetime(2026, 9, 26, 14, 0, tzinfo=UTC)),  # +12:45/+13:45
    ("UTC", datetime(2026, 12, 31, 12, 0, tzinfo=UTC)),  # year end
]


def _expected(ts_ms: int, tz: ZoneInfo) -> int:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).astimezone(tz).date().toordinal()


@pytest.mark.parametrize("zone, middle", ZONES, ids=[f"{z}-{m:%m-%d}" for z, m in ZONES])
def test_day_of_every_minute_of_three_days(zone, middle):
    tz = ZoneInfo(zone)
    calendar = DayCalendar(zone)
    start_ms = int(middle.timestamp() * 1000) - 36 * 3_600_000
    # Every minute, plus the last millisecond of each minute: a local midnight that is not on a UTC
    # hour must switch exactly at its minute, not at the hour the cache is keyed on.
    stamps = [start_ms + i * MINUTE_MS + off for i in range(3 * 1440) for off in (0, MINUTE_MS - 1)]
    got = [calendar.day_of(ts) for ts in stamps]
    want = [_expected(ts, tz) for ts in stamps]
    mismatches = [(ms_to_datetime(ts).isoformat(), g, w) for ts, g, w in zip(stamps, got, want) if g != w]
    assert not mismatches, mismatches[:5]
    # a second pass is answered from the cache and must agree too
    assert [calendar.day_of(ts) for ts in reversed(stamps)] == want[::-1]
    assert len(set(want)) >= 3


@pytest.mark.parametrize(
    "zone, local_midnight_utc",
    [
        ("Asia/Kathmandu", datetime(2026, 11, 20, 18, 15, tzinfo=UTC)),
        ("Asia/Kolkata", datetime(2026, 11, 20, 18, 30, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 11, 2, 5, 0, tzinfo=UTC)),  # first midnight in EST
        ("Europe/Berlin", datetime(2026, 3, 29, 22, 0, tzinfo=UTC)),  # first midnight in CEST
    ],
)
def test_day_switches_exactly_at_local_midnight(zone, local_midnight_utc):
    calendar = DayCalendar(ZoneInfo(zone))
    ms = int(local_midnight_utc.timestamp() * 1000)
    assert calendar.day_of(ms) - calendar.day_of(ms - 1) == 1
    assert date.fromordinal(calendar.day_of(ms)) == local_midnight_utc.astimezone(ZoneInfo(zone)).date()


@pytest.mark.parametrize(
    "zone, now, first, last",
    [
        ("UTC", datetime(2026, 11, 20, 12, 0, tzinfo=UTC), date(2026, 11, 1), date(2026, 11, 20)),
        ("UTC", datetime(2026, 11, 1, 0, 0, tzinfo=UTC), date(2026, 11, 1), date(2026, 11, 1)),
        # 2026-11-01 03:30 UTC is still October 31 in New York
        ("America/New_York", datetime(2026, 11, 1, 3, 30, tzinfo=UTC), date(2026, 10, 1), date(2026, 10, 31)),
        ("America/New_York", datetime(2026, 11, 1, 4, 0, tzinfo=UTC), date(2026, 11, 1), date(2026, 11, 1)),
        ("Asia/Kathmandu", datetime(2026, 11, 30, 18, 14, 59, tzinfo=UTC), date(2026, 11, 1), date(2026, 11, 30)),
        ("Asia/Kathmandu", datetime(2026, 11, 30, 18, 15, tzinfo=UTC), date(2026, 12, 1), date(2026, 12, 1)),
        ("Europe/Berlin", datetime(2026, 3, 31, 21, 59, tzinfo=UTC), date(2026, 3, 1), date(2026, 3, 31)),
        ("UTC", datetime(2028, 2, 29, 23, 59, tzinfo=UTC), date(2028, 2, 1), date(2028, 2, 29)),
    ],
)
def test_month_days(zone, now, first, last):
    days = DayCalendar(zone).month_days(int(now.timestamp() * 1000))
    assert (days.start, days.stop - 1) == (first.toordinal(), last.toordinal())
    assert len(days) == (last - first).days + 1


def test_minute_of_and_ms_to_datetime():
    assert minute_of(0) == 0 and minute_of(59_999) == 0 and minute_of(60_000) == 1 and minute_of(-1) == -1
    when = datetime(2026, 11, 18, 10, 53, 20, 123000, tzinfo=UTC)
    assert ms_to_datetime(epoch_ms(when)) == when
    assert ms_to_datetime(epoch_ms(datetime(1990, 1, 1, tzinfo=UTC))) == datetime(1990, 1, 1, tzinfo=UTC)
    assert ms_to_datetime(0).tzinfo is not None
