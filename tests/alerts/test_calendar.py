"""Business-hours calendars: deadlines in open time only, across evenings, weekends, holidays and DST."""

from __future__ import annotations

from datetime import date

import pytest

from alerts.calendar import ALWAYS, BusinessCalendar, parse_days, parse_range, parse_weekly
from tests.alerts.helpers import ms

OFFICE = parse_weekly({"mon-fri": "09:00-18:00"})


def berlin(holidays=()) -> BusinessCalendar:
    return BusinessCalendar("office", "Europe/Berlin", OFFICE, frozenset(holidays))


@pytest.mark.parametrize(
    "created, seconds, due",
    [
        ("2026-11-27 17:58", 300, "2026-11-30 09:03"),  # Friday evening -> Monday morning (the example)
        ("2026-11-24 10:00", 300, "2026-11-24 10:05"),  # inside hours: plain time
        ("2026-11-24 07:30", 300, "2026-11-24 09:05"),  # before opening: counts from 09:00
        ("2026-11-28 12:00", 300, "2026-11-30 09:05"),  # Saturday
        ("2026-11-24 17:59", 120, "2026-11-25 09:01"),  # overnight
        ("2026-11-24 10:00", 9 * 3600, "2026-11-25 10:00"),  # a full business day
    ],
)
def test_due_counts_business_time_only(created, seconds, due):
    cal = berlin()
    assert cal.due(ms(created, "Europe/Berlin"), seconds) == ms(due, "Europe/Berlin")


def test_holiday_is_skipped():
    cal = berlin({date(2026, 12, 24), date(2026, 12, 25)})
    # Wednesday 23rd 17:58 + 5 min: 2 min on the 23rd, then Thu 24 and Fri 25 are holidays, weekend -> Mon 28.
    assert cal.due(ms("2026-12-23 17:58", "Europe/Berlin"), 300) == ms("2026-12-28 09:03", "Europe/Berlin")
    assert not cal.is_open(ms("2026-12-24 10:00", "Europe/Berlin"))


def test_dst_change_keeps_local_hours():
    cal = berlin()
    # Europe/Berlin leaves summer time on Sunday 2026-10-25: Friday 17:58 CEST + 5 min -> Monday 09:03 CET.
    assert cal.due(ms("2026-10-23 17:58", "Europe/Berlin"), 300) == ms("2026-10-26 09:03", "Europe/Berlin")
    assert cal.is_open(ms("2026-10-26 09:00", "Europe/Berlin"))
    assert not cal.is_open(ms("2026-10-26 08:59", "Europe/Berlin"))


def test_is_open_and_open_seconds():
    cal = berlin()
    assert cal.is_open(ms("2026-11-24 09:00", "Europe/Berlin"))
    assert not cal.is_open(ms("2026-11-24 18:00", "Europe/Berlin"))  # the end is exclusive
    assert not cal.is_open(ms("2026-11-29 12:00", "Europe/Berlin"))  # Sunday
    assert cal.open_seconds(ms("2026-11-27 17:58", "Europe/Berlin"), ms("2026-11-30 09:03", "Europe/Berlin")) == 300


def test_split_days_and_ranges():
    weekly = parse_weekly({"mon-fri": ["09:00-12:00", "13:00-17:30"], "sat": "10:00-14:00"})
    assert weekly[0] == ((540, 720), (780, 1050))
    assert weekly[5] == ((600, 840),)
    assert weekly[6] == ()
    cal = BusinessCalendar("split", "UTC", weekly)
    assert cal.due(ms("2026-11-24 11:58"), 300) == ms("2026-11-24 13:03")  # lunch break skipped
    assert parse_days("sat,sun") == [5, 6]
    assert parse_days("fri-mon") == [4, 5, 6, 0]
    assert parse_range("00:00-24:00") == (0, 1440)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"mon-fri": "9-18"}, "must look like 09:00-18:00"),
        ({"mon-fri": "18:00-09:00"}, "the end must be after the start"),
        ({"moon": "09:00-18:00"}, "use mon..sun"),
        ({"mon": ["09:00-12:00", "11:00-13:00"]}, "overlap"),
        ({"mon-fri": 540}, "quote them"),
        ({}, "at least one open interval"),
    ],
)
def test_bad_hours_say_why(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_weekly(spec)


def test_always_open_is_plain_time():
    assert ALWAYS.due(1_000, 5) == 6_000
    assert ALWAYS.is_open(0)
