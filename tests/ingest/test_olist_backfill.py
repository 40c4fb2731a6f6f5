"""Backfilling the wall: the imported Olist set replayed through the real broker into a worker with the
event clock gives, in window=all, 842 won deals and the sales-cycle figures computed here straight from
the CSV files (with the importer's documented assumption: a first_contact_date is at 00:00 UTC), and the
MQLs and won deals per source (origin) a direct count over the CSV gives."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import wait_for
from tests.ingest.helpers import import_and_replay
from tests.ingest.test_importers import olist_source_figures

pytestmark = pytest.mark.integration
DAY_MS = 86_400_000


def _expected(data) -> dict:
    """Per closing rep (sr_id) and overall: won deals, mean sales cycle in days, won revenue — from the CSVs."""
    with open(data / "olist_marketing_qualified_leads_dataset.csv", newline="") as f:
        contact = {r["mql_id"]: datetime.fromisoformat(r["first_contact_date"]).replace(tzinfo=timezone.utc)
                   for r in csv.DictReader(f)}
    cycles: dict[str, list[int]] = defaultdict(list)
    revenue: dict[str, float] = defaultdict(float)
    with open(data / "olist_closed_deals_dataset.csv", newline="") as f:
        for row in csv.DictReader(f):
            won = datetime.fromisoformat(row["won_date"]).replace(tzinfo=timezone.utc)
            elapsed_ms = (won - contact[row["mql_id"]]) // timedelta(milliseconds=1)
            for scope in (row["sr_id"], "*overall*"):
                cycles[scope].append(max(0, elapsed_ms))  # the cycle is floored at 0
                revenue[scope] += float(row["declared_monthly_revenue"] or 0)
    return {scope: (len(ms), sum(ms) / len(ms) / DAY_MS, revenue[scope]) for scope, ms in cycles.items()}


def test_replayed_olist_set_gives_the_csv_figures(make_deployment, shared_dir, tmp_path):
    deployment = make_deployment(KPI_CLOCK="event")
    worker = deployment.start_worker()
    events = tmp_path / "olist.jsonl"
    data = shared_dir / "data"
    report = import_and_replay(deployment, "olist", (str(data / "olist_marketing_qualified_leads_dataset.csv"),
                                                     str(data / "olist_closed_deals_dataset.csv")), events)
    assert report.produced_total == 18_526 and report.bad == 0 and report.failed == 0

    def settled():
        doc = worker.kpis("all")
        return doc if doc["overall"]["deals_won"] == 842 and doc["overall"]["leads_created"] == 8000 else None

    doc = wait_for(settled, timeout=120, interval=1.0, what="842 won deals and 8000 leads in window=all")
    expected = _expected(data)
    overall = doc["overall"]
    won, cycle_days, revenue = expected.pop("*overall*")
    assert overall["deals_won"] == won == 842
    assert overall["sales_cycle_days_mean"] == pytest.approx(cycle_days, rel=1e-12)
    assert overall["won_revenue"] == pytest.approx(revenue)
    assert overall["leads_qualified"] == 842 and overall["deals_lost"] == 0 and overall["win_rate"] == 1.0
    assert worker.counter("kpi_events_deadlettered_total") == 0
    for rep, (rep_won, rep_cycle, rep_revenue) in expected.items():
        got = doc["reps"][rep]
        assert (got["deals_won"], got["won_revenue"]) == (rep_won, pytest.approx(rep_revenue)), rep
        assert got["sales_cycle_days_mean"] == pytest.approx(rep_cycle, rel=1e-12), rep
    # Revenue and marketing: every lead is an MQL, counted under its origin; won deals under their lead's origin.
    mqls, won_by_source = olist_source_figures(data)
    assert overall["mqls"] == 8000
    assert {s: v["mqls"] for s, v in doc["sources"].items()} == dict(mqls)
    assert {s: v["deals_won"] for s, v in doc["sources"].items() if v["deals_won"]} == dict(won_by_source)
