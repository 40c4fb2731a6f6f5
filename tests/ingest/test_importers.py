"""Importing the public data sets in ../shared/data: events by type match the source rows (counted here
straight from the CSV files), output is in event order and contract-valid, and the mappings hold."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone

import orjson
import pytest

from stream.config import Settings
from stream.events import LIFECYCLE_RANK, EventValidator
from stream.ingest.importers.common import Clock, ImportFailed, ImportReport, write_events
from tests.conftest import REPO_ROOT

OLIST_LEADS = "olist_marketing_qualified_leads_dataset.csv"
OLIST_DEALS = "olist_closed_deals_dataset.csv"


def _rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _import(*args: str, cwd=REPO_ROOT) -> tuple[list[dict], str]:
    proc = subprocess.run([sys.executable, "-m", "stream.cli", "import", *args], cwd=cwd, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    return [orjson.loads(line) for line in proc.stdout.splitlines()], proc.stderr.decode()


def _assert_time_ordered(events: list[dict]) -> None:
    keys = [(datetime.fromisoformat(e["occurred_at"]), LIFECYCLE_RANK[e["type"]], e["event_id"]) for e in events]
    assert keys == sorted(keys)
    assert len({e["event_id"] for e in events}) == len(events)


@pytest.fixture(scope="module")
def olist(shared_dir):
    return _import("olist", str(shared_dir / "data" / OLIST_LEADS), str(shared_dir / "data" / OLIST_DEALS))


@pytest.fixture(scope="module")
def maven(shared_dir):
    data = shared_dir / "data"
    return _import("maven-crm", str(data / "maven_sales_pipeline.csv"), str(data / "maven_sales_teams.csv"),
                   "--products", str(data / "maven_products.csv"))


def test_olist_counts_match_the_source_rows(olist, shared_dir):
    events, report = olist
    leads = _rows(shared_dir / "data" / OLIST_LEADS)
    deals = _rows(shared_dir / "data" / OLIST_DEALS)
    assert (len(leads), len(deals)) == (8000, 842)
    assert Counter(e["type"] for e in events) == {
        "lead.created": len(leads), "lead.marketing_qualified": len(leads), "lead.qualified": len(deals),
        "deal.created": len(deals), "deal.won": len(deals)}
    assert "18526 events written" in report
    _assert_time_ordered(events)


def test_olist_mapping(olist, shared_dir):
    events, _ = olist
    deal_row = _rows(shared_dir / "data" / OLIST_DEALS)[0]
    mql = deal_row["mql_id"]
    lead_row = next(r for r in _rows(shared_dir / "data" / OLIST_LEADS) if r["mql_id"] == mql)
    mine = {e["type"]: e for e in events if mql in e["event_id"]}
    first_contact = f"{lead_row['first_contact_date']}T00:00:00Z"
    assert mine["lead.created"] == {"event_id": f"olist-lead-{mql}", "type": "lead.created",
                                    "occurred_at": first_contact, "lead_id": mql, "source": lead_row["origin"]}
    assert mine["lead.marketing_qualified"] == {"event_id": f"olist-mql-{mql}", "type": "lead.marketing_qualified",
                                                "occurred_at": first_contact, "lead_id": mql}
    assert mine["lead.qualified"]["rep_id"] == deal_row["sdr_id"]
    assert mine["deal.created"] == {"event_id": f"olist-deal-{mql}", "type": "deal.created", "occurred_at": first_contact,
                                    "deal_id": mql, "rep_id": deal_row["sr_id"], "lead_id": mql, "amount": "0",
                                    "stage": "prospecting", "product": deal_row["business_segment"],
                                    "source": lead_row["origin"]}
    assert mine["deal.won"]["occurred_at"] == deal_row["won_date"].replace(" ", "T") + "Z"
    revenue = {e["deal_id"]: e["amount"] for e in events if e["type"] == "deal.won"}
    declared = {r["mql_id"]: float(r["declared_monthly_revenue"] or 0) for r in _rows(shared_dir / "data" / OLIST_DEALS)}
    assert {k: float(v) for k, v in revenue.items()} == declared
    assert sum(1 for v in revenue.values() if v != "0") == 45  # the data set's README: 45 deals declare revenue


def test_maven_counts_match_the_source_rows(maven, shared_dir):
    events, report = maven
    rows = _rows(shared_dir / "data" / "maven_sales_pipeline.csv")
    stages = Counter(r["deal_stage"] for r in rows)
    dated = sum(1 for r in rows if r["engage_date"])
    assert Counter(e["type"] for e in events) == {"deal.created": dated, "deal.won": stages["Won"],
                                                  "deal.lost": stages["Lost"]}
    assert len(rows) - dated == stages["Prospecting"] == 500  # undated Prospecting rows are skipped, and said so
    assert "skipped 500 rows: Prospecting without engage_date" in report
    _assert_time_ordered(events)


def test_maven_mapping(maven, shared_dir):
    events, _ = maven
    by_id = {e["event_id"]: e for e in events}
    # 1C1I7A6R,Moses Frase,GTX Plus Basic,Cancity,Won,2016-10-20,2017-03-01,1054
    assert by_id["maven-created-1C1I7A6R"] == {
        "event_id": "maven-created-1C1I7A6R", "type": "deal.created", "occurred_at": "2016-10-20T00:00:00Z",
        "deal_id": "1C1I7A6R", "rep_id": "Moses Frase", "amount": "1096", "stage": "qualification",
        "product": "GTX Plus Basic", "team": "Dustin Brinkmann", "account_id": "Cancity", "kind": "new"}
    assert by_id["maven-won-1C1I7A6R"]["amount"] == "1054"
    assert by_id["maven-won-1C1I7A6R"]["occurred_at"] == "2017-03-01T00:00:00Z"
    # Z063OYW0,Darcel Schlecht,GTXPro,…: GTXPro is products.csv's "GTX Pro" (4821)
    assert by_id["maven-created-Z063OYW0"]["amount"] == "4821"
    assert {e["team"] for e in events if e["type"] == "deal.created"} == {
        r["manager"] for r in _rows(shared_dir / "data" / "maven_sales_teams.csv")}


def test_time_of_day_and_time_zone_options(shared_dir):
    data = shared_dir / "data"
    events, _ = _import("olist", str(data / OLIST_LEADS), str(data / OLIST_DEALS), "--time-of-day", "12:00",
                        "--tz", "America/Sao_Paulo")
    lead = next(e for e in events if e["type"] == "lead.created")
    assert lead["occurred_at"] == "2017-06-14T15:00:00Z"  # noon in São Paulo (UTC-3 in 2017-06)


def test_bad_input_is_reported_with_file_and_line(tmp_path):
    leads = tmp_path / "leads.csv"
    leads.write_text("mql_id,first_contact_date,origin\nm1,2018-02-30,social\n")
    deals = tmp_path / "deals.csv"
    deals.write_text("mql_id,sdr_id,sr_id,won_date,business_segment\n")
    proc = subprocess.run([sys.executable, "-m", "stream.cli", "import", "olist", str(leads), str(deals)],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "deals.csv: missing column(s) declared_monthly_revenue" in proc.stderr
    deals.write_text("mql_id,sdr_id,sr_id,won_date,business_segment,declared_monthly_revenue\n")
    proc = subprocess.run([sys.executable, "-m", "stream.cli", "import", "olist", str(leads), str(deals)],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "leads.csv: line 2: first_contact_date '2018-02-30'" in proc.stderr


def test_an_event_the_worker_would_reject_is_never_written():
    bad = (datetime(2018, 1, 1, tzinfo=timezone.utc), {"event_id": "x", "type": "deal.created",
                                                       "occurred_at": "2018-01-01T00:00:00Z", "deal_id": "d",
                                                       "rep_id": "r", "amount": "5", "stage": "custom"})
    out = io.BytesIO()
    with pytest.raises(ImportFailed, match="unknown_stage"):
        write_events([bad], out, EventValidator(stages=Settings().kpi_stages), ImportReport("t"))
    assert out.getvalue() == b""


def test_date_only_fields_use_the_clock():
    clock = Clock.parse("UTC", "09:30")
    assert clock.instant("2018-02-01") == datetime(2018, 2, 1, 9, 30, tzinfo=timezone.utc)
    assert clock.instant("2018-02-26 19:58:54") == datetime(2018, 2, 26, 19, 58, 54, tzinfo=timezone.utc)


# --- revenue and marketing figures through the KPI engine (docs/ingest.md; the broker test is in
# tests/integration/test_real_data_revenue.py) --------------------------------------------------------------
def _engine_kpis(events: list[dict]) -> dict:
    from stream.events import TOPIC_OF_TYPE
    from stream.kpi.engine import GROUP_OF_TOPIC, EngineConfig, KpiEngine
    from stream.kpi.snapshot import build_snapshot, merge_partials
    from stream.roster import Roster

    engine, tables, validator = KpiEngine(EngineConfig(event_clock=True)), {}, EventValidator()
    for e in events:
        event = validator.validate(orjson.dumps(e))
        topic = TOPIC_OF_TYPE[event.type]
        engine.apply(tables.setdefault(GROUP_OF_TOPIC[topic], {}), topic, 0, event, 0)
    now = engine.now(0)
    return build_snapshot(merge_partials(engine.partials("all", now).values()), window="all", now_ms=now,
                          roster=Roster(), stages=Settings().kpi_stages).document()


def olist_source_figures(data) -> tuple[Counter, Counter]:
    """MQLs per origin and won deals per their lead's origin, straight from the CSVs ('' is unspecified)."""
    origin = {r["mql_id"]: r["origin"] or "unspecified" for r in _rows(data / OLIST_LEADS)}
    won = Counter(origin[r["mql_id"]] for r in _rows(data / OLIST_DEALS))
    return Counter(origin.values()), won


def maven_product_figures(data) -> tuple[dict, dict]:
    """Won revenue per product, and per kind with the importer's rule (docs/ingest.md, "Deal kinds")."""
    from decimal import Decimal

    rows = [r for r in _rows(data / "maven_sales_pipeline.csv") if r["engage_date"]]
    first_won: dict[str, str] = {}
    for r in rows:
        if r["deal_stage"] == "Won" and r["account"]:
            first_won[r["account"]] = min(first_won.get(r["account"], r["close_date"]), r["close_date"])
    by_product: dict[str, Decimal] = {}
    by_kind = {"new": Decimal(0), "expansion": Decimal(0)}
    for r in rows:
        if r["deal_stage"] != "Won":
            continue
        value = Decimal(r["close_value"])
        by_product[r["product"] or "unspecified"] = by_product.get(r["product"] or "unspecified", Decimal(0)) + value
        expansion = r["account"] in first_won and first_won[r["account"]] < r["engage_date"]  # ISO dates sort
        by_kind["expansion" if expansion else "new"] += value
    return {p: float(v) for p, v in by_product.items()}, {k: float(v) for k, v in by_kind.items()}


def test_olist_mqls_and_won_deals_per_source_equal_the_csv(olist, shared_dir):
    events, _ = olist
    doc = _engine_kpis(events)
    mqls, won = olist_source_figures(shared_dir / "data")
    assert doc["overall"]["mqls"] == 8000 and doc["overall"]["mql_to_sql_ratio"] == 842 / 8000
    assert {s: v["mqls"] for s, v in doc["sources"].items()} == dict(mqls)
    assert {s: v["deals_won"] for s, v in doc["sources"].items() if v["deals_won"]} == dict(won)


def test_maven_won_revenue_per_product_and_the_new_expansion_split_equal_the_csv(maven, shared_dir):
    events, _ = maven
    doc = _engine_kpis(events)
    by_product, by_kind = maven_product_figures(shared_dir / "data")
    assert {p: v["won_revenue"] for p, v in doc["products"].items()} == pytest.approx(by_product)
    o = doc["overall"]
    assert (o["won_revenue_new"], o["won_revenue_expansion"]) == (pytest.approx(by_kind["new"]),
                                                                 pytest.approx(by_kind["expansion"]))
    assert o["won_revenue_renewal"] == 0 and o["avg_contract_value_annual"] is None
    assert by_kind["new"] > 0 and by_kind["expansion"] > 0
