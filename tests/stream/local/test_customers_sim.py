"""The simulated floor's customers and forecasts (stream.local.customers_sim): a book that churns a few
percent a month, subscriptions that follow won deals, weekly-revised forecasts with optimistic reps, and
the leads, calls and deals of a seed unchanged by them."""

from __future__ import annotations

import collections
from datetime import datetime, timedelta, timezone

import pytest

from stream.config import PACKAGE_DIR
from stream.events import TOPIC_OF_TYPE, EventValidator
from stream.local.simulator import SalesFloor
from stream.roster import load_roster

ROSTER = load_roster(PACKAGE_DIR / "roster.example.yaml")
START = datetime(2026, 9, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def month():
    floor = SalesFloor(ROSTER, 7, START)
    return floor, [e.event for e in floor.events(START + timedelta(days=35))]


def test_customer_events_are_valid_and_keyed(month):
    floor, events = month
    validator = EventValidator()
    kinds = collections.Counter(e["type"] for e in events if TOPIC_OF_TYPE[e["type"]] in ("subscriptions", "forecasts"))
    assert set(kinds) == {"subscription.started", "subscription.changed", "subscription.cancelled", "forecast.submitted"}
    for e in events:
        if TOPIC_OF_TYPE[e["type"]] in ("subscriptions", "forecasts"):
            validator.validate(__import__("orjson").dumps(e), TOPIC_OF_TYPE[e["type"]])


def test_churn_is_a_few_percent_a_month_and_won_deals_start_subscriptions(month):
    _, events = month
    book = sum(1 for e in events if e["type"] == "subscription.started"
               and e["occurred_at"] < (START + timedelta(hours=1)).isoformat().replace("+00:00", ""))
    assert book == 12 * len(ROSTER.reps)
    churned = sum(1 for e in events if e["type"] == "subscription.cancelled"
                  and e["occurred_at"] < (START + timedelta(days=30)).isoformat())
    assert 0.005 * book <= churned <= 0.08 * book
    assert sum(1 for e in events if e["type"] == "subscription.started") > book  # won deals start more


def test_forecasts_on_the_first_and_every_monday_with_optimists(month):
    floor, events = month
    forecasts = [e for e in events if e["type"] == "forecast.submitted"]
    days = {e["occurred_at"][:10] for e in forecasts}
    assert "2026-09-01" in days and "2026-09-07" in days and "2026-09-14" in days
    by_rep = collections.defaultdict(list)
    for e in forecasts:
        if e["period"] == "2026-09":
            by_rep[e["rep_id"]].append(e)
    assert len(by_rep) == len(ROSTER.reps) and all(len(v) >= 4 for v in by_rep.values())
    optimists = [r for r, f in floor._book.optimism.items() if f >= 1.3]
    assert len(optimists) == 2


def test_the_customer_book_leaves_the_other_events_of_a_seed_unchanged(month, monkeypatch):
    _, events = month
    # The same events (which ones arrive late may differ: the late-delivery draw is per event).
    def key(e):
        return e["event_id"]

    others = sorted((e for e in events if TOPIC_OF_TYPE[e["type"]] not in ("subscriptions", "forecasts")), key=key)
    import stream.local.simulator as sim

    class NoBook:
        started = True

        def __init__(self, *a, **k) -> None:
            pass

        def forecasts_until(self, t) -> None:
            pass

        def deal_won(self, *a) -> None:
            pass

    monkeypatch.setattr(sim, "CustomerBook", NoBook)
    plain = sorted((e.event for e in SalesFloor(ROSTER, 7, START).events(START + timedelta(days=35))), key=key)
    assert plain == others
