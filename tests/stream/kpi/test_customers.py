"""Accounts and forecasts in the KPI engine (docs/kpis.md "Customers", "Forecasts"): every transition of an
account, reactivation, out-of-order and duplicated events, the KPIs' edge cases, the latest forecast, the
month boundary for CLV and forecast accuracy, and the golden example of section 6 (../shared/golden6)."""

from __future__ import annotations

import itertools
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from stream.events import EVENT_TYPES, TOPIC_OF_TYPE, EventValidator, epoch_ms
from stream.kpi.accounts import Account
from stream.kpi.engine import GROUP_OF_TOPIC, TOPICS_OF_GROUP, EngineConfig, KpiEngine
from stream.kpi.facts import Entity
from stream.kpi.snapshot import build_snapshot, merge_partials
from stream.roster import parse_roster
from tests.oracle.batch_kpis import compute_kpis
from tests.oracle.compare import assert_same

import msgspec

UTC = timezone.utc
REPO_ROOT = Path(__file__).resolve().parents[3]
GOLDEN6 = Path(os.environ.get("KPI_SHARED_DIR", REPO_ROOT.parent / "shared")) / "golden6"
STAGES = ("prospecting", "qualification", "proposal", "negotiation")
ROSTER_YAML = """
teams:
  - name: red
reps:
  - {rep_id: ana, team: red, monthly_quota: 3000}
  - {rep_id: ben, team: red}
"""
ROSTER = parse_roster(ROSTER_YAML)
ORACLE_ROSTER = {"ana": {"team": "red", "monthly_quota": 3000}, "ben": {"team": "red"}}
_ids = itertools.count()


def ev(etype: str, at: str, **fields) -> dict:
    return {"event_id": fields.pop("event_id", f"e{next(_ids)}"), "type": etype,
            "occurred_at": at if "-" in at else f"2026-11-{at}Z", **fields}


def start(account, at, mrr, **kw):
    return ev("subscription.started", at, account_id=account, mrr=mrr, **kw)


def change(account, at, mrr, **kw):
    return ev("subscription.changed", at, account_id=account, mrr=mrr, **kw)


def cancel(account, at, **kw):
    return ev("subscription.cancelled", at, account_id=account, **kw)


def forecast(rep, at, period, amount, **kw):
    return ev("forecast.submitted", at, rep_id=rep, period=period, amount=amount, **kw)


class Run:
    """Events through the validator and one event-clock engine, as a worker applies them."""

    def __init__(self, docs, partitions: int = 1, tz: str = "UTC") -> None:
        self.engine = KpiEngine(EngineConfig(event_clock=True, too_late_seconds=10**9, timezone=tz))
        self.tables: dict[str, dict] = {group: {} for group in TOPICS_OF_GROUP}
        self.tz = tz
        validator = EventValidator()
        self.applied = []
        for doc in docs:
            if doc["type"] not in EVENT_TYPES:
                continue
            topic = TOPIC_OF_TYPE[doc["type"]]
            event = validator.validate(orjson.dumps(doc), topic)
            key = doc.get("account_id") or doc.get("deal_id") or doc.get("lead_id") or doc.get("rep_id")
            self.applied.append(self.engine.apply(self.tables[GROUP_OF_TOPIC[topic]], topic,
                                                  hash(key) % partitions, event, 0))

    def doc(self, window: str, now: str | None = None) -> dict:
        now_ms = self.engine.now(0) if now is None else epoch_ms(datetime.fromisoformat(now.replace("Z", "+00:00")))
        merged = merge_partials(self.engine.partials(window, now_ms).values())
        return build_snapshot(merged, window=window, now_ms=now_ms, roster=ROSTER, stages=STAGES,
                              timezone=self.tz).document()


def account(docs) -> Account:
    run = Run(docs)
    (raw,) = [v for k, v in run.tables["customers"].items() if k.startswith("S:")]
    return Account(msgspec.msgpack.decode(raw, type=Entity).facts)


# ------------------------------------------------------------------------------------ account state --
def test_transitions_start_change_cancel():
    a = account([start("A", "02T00:00:00", 100), change("A", "03T00:00:00", 150), cancel("A", "04T00:00:00")])
    (p,) = a.periods
    assert (p.start_mrr, p.mrr, p.end is not None) == (100, 150, True) and not a.active


def test_a_start_while_active_is_a_change():
    a = account([start("A", "02T00:00:00", 100), start("A", "03T00:00:00", 80, product="pro")])
    (p,) = a.periods
    assert p.mrr == 80 and [d for _, d in p.changes] == [-20] and a.active and a.product == "pro"


def test_change_or_cancel_while_inactive_changes_nothing():
    a = account([change("A", "01T00:00:00", 999), cancel("A", "01T01:00:00"), start("A", "02T00:00:00", 100),
                 cancel("A", "03T00:00:00"), change("A", "04T00:00:00", 500), cancel("A", "05T00:00:00")])
    (p,) = a.periods
    assert (p.start_mrr, p.mrr, p.changes) == (100, 100, [])


def test_reactivation_is_a_new_active_period():
    a = account([start("A", "02T00:00:00", 100), cancel("A", "03T00:00:00"), start("A", "05T00:00:00", 70)])
    assert [(p.start_mrr, p.end is None) for p in a.periods] == [(100, False), (70, True)] and a.active


def test_out_of_order_start_and_cancel_follow_occurred_at():
    # the cancellation arrives first, but happened after the start: the account churned
    late = account([cancel("A", "03T00:00:00"), start("A", "02T00:00:00", 100)])
    assert len(late.periods) == 1 and not late.active
    # a cancellation that happened before the start is a cancel while inactive: still active
    early = account([start("A", "02T00:00:00", 100), cancel("A", "01T00:00:00")])
    assert early.active


def test_same_instant_start_then_cancel_by_rank():
    a = account([cancel("A", "02T00:00:00"), start("A", "02T00:00:00", 100)])
    assert not a.active and len(a.periods) == 1


def test_owner_is_the_latest_event_carrying_a_rep_and_product_the_latest_start_carrying_one():
    a = account([start("A", "02T00:00:00", 100, rep_id="ana", product="pro"), change("A", "03T00:00:00", 120),
                 start("A", "04T00:00:00", 130, rep_id="ben", team="blue")])
    assert (a.owner, a.team, a.product) == ("ben", "blue", "pro")


def test_duplicates_are_applied_once():
    s = start("A", "02T00:00:00", 100, rep_id="ana")
    run = Run([s, dict(s), change("A", "03T00:00:00", 150), dict(s)])
    assert run.applied == [True, False, True, False]
    o = run.doc("all")["overall"]
    assert (o["customers_new"], o["mrr"], o["mrr_expansion"]) == (1, 150.0, 50.0)


def test_state_size_per_account_is_small():
    docs = [start("A", "02T00:00:00", 100, rep_id="ana", product="pro")]
    docs += [change("A", f"{d:02d}T00:00:00", 100 + d, rep_id="ana") for d in range(3, 20)]
    run = Run(docs)
    (raw,) = run.tables["customers"].values()
    assert len(raw) < 60 * len(docs)  # msgpack facts: ~50 bytes an event


# ----------------------------------------------------------------------------------------- KPIs --
def test_no_customers_at_window_start_gives_null_rates():
    run = Run([start("A", "10T00:00:00", 100, rep_id="ana")])
    o = run.doc("month")["overall"]
    assert (o["customers_at_window_start"], o["churn_rate"], o["customer_retention_rate"]) == (0, None, None)
    assert (o["customers_new"], o["customers_active"], o["mrr"], o["arr"]) == (1, 1, 100.0, 1200.0)


def test_a_cancellation_exactly_at_the_window_start_is_at_start_and_churned():
    run = Run([start("A", "2026-10-20T00:00:00Z", 200, rep_id="ben"), cancel("A", "01T00:00:00"),
               start("B", "2026-10-01T00:00:00Z", 50, rep_id="ana"), ev("lead.created", "20T00:00:00", lead_id="L")])
    o = run.doc("month")["overall"]
    assert (o["customers_at_window_start"], o["customers_churned"], o["mrr_churned"]) == (2, 1, 200.0)
    assert (o["churn_rate"], o["customer_retention_rate"]) == (0.5, 0.5)
    # a start exactly at the window start is new in it, not at its start
    run = Run([start("A", "01T00:00:00", 100), ev("lead.created", "20T00:00:00", lead_id="L")])
    o = run.doc("month")["overall"]
    assert (o["customers_at_window_start"], o["customers_new"]) == (0, 1)


def test_a_change_while_inactive_moves_no_mrr():
    run = Run([start("A", "02T00:00:00", 100), cancel("A", "03T00:00:00"), change("A", "04T00:00:00", 300)])
    o = run.doc("month")["overall"]
    assert (o["mrr_expansion"], o["mrr_contraction"], o["mrr"], o["mrr_churned"]) == (0.0, 0.0, 0.0, 100.0)


def test_mrr_movement_in_the_window():
    run = Run([start("A", "2026-10-02T00:00:00Z", 100), change("A", "03T00:00:00", 160), change("A", "04T00:00:00", 120),
               start("B", "05T00:00:00", 40), change("B", "06T00:00:00", 40), cancel("B", "07T00:00:00")])
    o = run.doc("month")["overall"]
    assert (o["mrr_new"], o["mrr_expansion"], o["mrr_contraction"], o["mrr_churned"]) == (40.0, 60.0, 40.0, 40.0)
    assert o["mrr"] == 120.0 and o["customers_at_window_start"] == 1


def test_cancelled_accounts_retire_without_changing_any_window_and_active_ones_stay():
    docs = [start("A", "2026-08-02T00:00:00Z", 100, rep_id="ana"), cancel("A", "2026-09-20T00:00:00Z"),
            start("B", "2026-08-03T00:00:00Z", 70, rep_id="ana"),
            start("C", "2026-09-10T00:00:00Z", 30, rep_id="ben"), cancel("C", "2026-10-25T00:00:00Z"),
            start("D", "2026-11-24T00:00:00Z", 10, rep_id="ben"), forecast("ana", "2026-11-25T00:00:00Z", "2026-11", 9)]
    later = [ev("lead.created", "2026-11-25T00:00:00Z", lead_id="L", rep_id="ana"),
             ev("lead.created", "2026-11-25T00:00:00Z", lead_id="M", rep_id="ana")]
    run = Run(docs + later)
    before = {w: run.doc(w) for w in ("week", "month", "quarter", "all")}
    engine, table = run.engine, run.tables["customers"]
    assert engine.plan_retirement("customers", list(table.items()), 0) == 1  # A; C is too recent, B active
    for (group, p) in list(engine.partitions):
        if group == "customers":
            engine.retire(table, group, p)
    assert set(table) == {"S:B", "S:C", "S:D", "F:2026-11:ana", "A:0"}
    assert {w: run.doc(w) for w in before} == before
    rebuilt = KpiEngine(engine.config)
    rebuilt.rebuild("customers", [0], list(table.items()), 0, table)
    for group in ("leads", "deals"):
        rebuilt.rebuild(group, [0], list(run.tables[group].items()), 0, run.tables[group])
    run.engine = rebuilt
    assert {w: run.doc(w) for w in before} == before


def test_products_section():
    run = Run([start("A", "02T00:00:00", 100, product="pro"), start("B", "03T00:00:00", 50),
               start("A", "04T00:00:00", 90, product="basic")])
    products = run.doc("all")["products"]
    assert products["basic"]["mrr"] == 90.0 and products["unspecified"]["mrr"] == 50.0 and "pro" not in products


# ------------------------------------------------------------------------------------ forecasts --
def test_latest_forecast_wins_by_occurred_at_rank_and_event_id():
    docs = [forecast("ana", "08T09:00:00", "2026-11", 1000), forecast("ana", "01T09:00:00", "2026-11", 2000),
            forecast("ana", "10T09:00:00", "2026-11", 700, event_id="f-b"),
            forecast("ana", "10T09:00:00", "2026-11", 900, event_id="f-a"),  # same instant: event_id b wins
            ev("lead.created", "20T00:00:00", lead_id="L", rep_id="ana")]
    assert Run(docs).doc("month")["reps"]["ana"]["forecast_amount"] == 700.0
    assert Run(list(reversed(docs))).doc("month")["reps"]["ana"]["forecast_amount"] == 700.0


def test_a_forecast_for_another_month_is_ignored():
    docs = [forecast("ana", "01T09:00:00", "2026-12", 5000), forecast("ana", "01T09:00:00", "2026-09", 100),
            ev("lead.created", "20T00:00:00", lead_id="L", rep_id="ana")]
    doc = Run(docs).doc("month")
    assert doc["reps"]["ana"]["forecast_amount"] is None and doc["overall"]["forecast_amount"] is None
    assert doc["overall"]["forecast_accuracy"] is None  # no forecast for October either


def test_forecast_keys_are_month_only():
    doc = Run([forecast("ana", "01T09:00:00", "2026-11", 5000)]).doc("week")
    assert "forecast_amount" not in doc["overall"] and "quota_pace" not in doc["overall"]


def won_deal(deal, at, amount, rep="ana"):
    return [ev("deal.created", at, deal_id=deal, rep_id=rep, amount=amount, stage="prospecting"),
            ev("deal.won", at, deal_id=deal)]


# --------------------------------------------------------------------------------- month boundary --
def test_month_boundary_forecast_accuracy_and_clv_on_both_sides():
    """An event-clock replay across 31 Oct -> 1 Nov: October's numbers move to `forecast_accuracy` and
    CLV's churn, September's before; the engine equals the oracle at every step."""
    docs = [start("S9", "2026-08-20T00:00:00Z", 100, rep_id="ana"), start("S8", "2026-08-21T00:00:00Z", 100, rep_id="ana"),
            start("S7", "2026-08-22T00:00:00Z", 100, rep_id="ana"), start("S6", "2026-08-23T00:00:00Z", 100, rep_id="ana"),
            cancel("S9", "2026-09-15T00:00:00Z"),  # September: 1 of 4 churned
            forecast("ana", "2026-09-01T09:00:00Z", "2026-09", 1000), *won_deal("D9", "2026-09-20T10:00:00Z", 900),
            forecast("ana", "2026-10-01T09:00:00Z", "2026-10", 2000), *won_deal("D10", "2026-10-20T10:00:00Z", 2500),
            cancel("S8", "2026-10-10T00:00:00Z"), cancel("S7", "2026-10-30T00:00:00Z"),  # October: 2 of 3
            ]
    steps = [("2026-10-31T23:59:59Z", {"forecast_accuracy": 0.9, "customer_lifetime_value": 100 / (1 / 4)}),
             ("2026-11-01T00:00:00Z", {"forecast_accuracy": 0.75, "customer_lifetime_value": 100 / (2 / 3)}),
             ("2026-11-01T08:00:00Z", {"forecast_accuracy": 0.75, "customer_lifetime_value": 150.0})]
    events = list(docs)
    for at, expected in steps:
        events.append(ev("lead.created", at, lead_id=f"L{at}", rep_id="ana"))
        run = Run(events)
        month = run.doc("month")
        for key, value in expected.items():
            assert month["overall"][key] == pytest.approx(value), (at, key)
            assert month["reps"]["ana"][key] == pytest.approx(value), (at, key)
        now = datetime.fromisoformat(at.replace("Z", "+00:00"))
        for window in ("month", "all", "quarter"):
            assert_same(run.doc(window), compute_kpis(events, window, now, roster=ORACLE_ROSTER), path=f"{at} {window}")


# --------------------------------------------------------------------------------------- golden6 --
@pytest.fixture(scope="module")
def golden6():
    if not (GOLDEN6 / "events.jsonl").is_file() or not (GOLDEN6 / "expected.json").is_file():
        pytest.skip(f"golden example of section 6 not found at {GOLDEN6} (set KPI_SHARED_DIR to the shared/ directory)")
    events = [json.loads(line) for line in (GOLDEN6 / "events.jsonl").read_text().splitlines() if line.strip()]
    return events, json.loads((GOLDEN6 / "expected.json").read_text())


CUSTOMER_KEYS = ("mrr", "arr", "customers_active", "customers_new", "customers_churned", "customers_at_window_start",
                 "churn_rate", "customer_retention_rate", "mrr_new", "mrr_expansion", "mrr_contraction", "mrr_churned",
                 "customer_lifetime_value", "forecast_amount", "forecast_attainment", "forecast_accuracy", "quota_pace",
                 "projected_won_revenue")


def _mine(doc: dict, sections=("overall", "teams", "reps", "products")) -> dict:
    out = {}
    for section in sections:
        value = doc.get(section, {})
        if section == "overall":
            out[section] = {k: v for k, v in value.items() if k in CUSTOMER_KEYS}
        else:
            labels = {label: {k: v for k, v in keys.items() if k in CUSTOMER_KEYS} for label, keys in value.items()}
            out[section] = {label: keys for label, keys in labels.items() if keys}
    return out


@pytest.mark.parametrize("window", ["month", "all"])
def test_golden6_engine_and_oracle(golden6, window):
    events, expected = golden6
    want = _mine(expected[window])  # `basic`, a product only a deal carries, is listed with zero customers
    run = Run(events, partitions=3)
    assert_same(_mine(run.doc(window)), want)
    known = [e for e in events if e["type"] in EVENT_TYPES]
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert_same(_mine(compute_kpis(known, window, now, roster=ORACLE_ROSTER)), want)
