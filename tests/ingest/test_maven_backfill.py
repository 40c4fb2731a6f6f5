"""The imported Maven CRM set replayed through the real broker into an event-clock worker: won revenue per
product and the new/expansion split equal a direct computation over the CSV with the importer's rule
(docs/ingest.md, "Deal kinds")."""

from __future__ import annotations

import asyncio

import pytest

from stream.config import load_settings
from stream.ingest.importers.run import import_main
from stream.local.replay import replay
from tests.conftest import BOOTSTRAP, wait_for
from tests.ingest.test_importers import maven_product_figures

pytestmark = pytest.mark.integration


def test_replayed_maven_set_gives_revenue_per_product_and_kind(make_deployment, shared_dir, tmp_path):
    deployment = make_deployment(KPI_CLOCK="event")
    worker = deployment.start_worker()
    events = tmp_path / "maven.jsonl"
    settings = load_settings(kafka_bootstrap_servers=BOOTSTRAP, kpi_topic_prefix=deployment.prefix)
    data = shared_dir / "data"
    assert import_main(settings, "maven-crm", (str(data / "maven_sales_pipeline.csv"), str(data / "maven_sales_teams.csv")),
                       out=str(events), tz="UTC", time_of_day="00:00",
                       products=str(data / "maven_products.csv")) == 0
    lines = events.read_bytes().count(b"\n")
    report = asyncio.run(replay(events, settings, echo=lambda line: None))
    assert report.produced_total == lines and report.bad == 0 and report.failed == 0
    won = sum(1 for line in events.read_text().splitlines() if '"deal.won"' in line)

    def settled():
        doc = worker.kpis("all")
        return doc if doc["overall"]["deals_won"] == won else None

    doc = wait_for(settled, timeout=180, interval=1.0, what=f"{won} won deals in window=all")
    by_product, by_kind = maven_product_figures(data)
    assert {p: v["won_revenue"] for p, v in doc["products"].items()} == pytest.approx(by_product)
    overall = doc["overall"]
    assert overall["won_revenue_new"] == pytest.approx(by_kind["new"])
    assert overall["won_revenue_expansion"] == pytest.approx(by_kind["expansion"])
    assert overall["won_revenue_renewal"] == 0.0
    assert overall["new_customers_won"] == sum(v["new_customers_won"] for v in doc["products"].values())
    assert worker.counter("kpi_events_deadlettered_total") == 0
