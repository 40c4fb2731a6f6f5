"""The imported Maven CRM set replayed through the real broker into an event-clock worker: won revenue per
product and the new/expansion split equal a direct computation over the CSV with the importer's rule
(docs/ingest.md, "Deal kinds")."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from tests.ingest.helpers import import_and_replay
from tests.ingest.test_importers import maven_product_figures

pytestmark = pytest.mark.integration


def test_replayed_maven_set_gives_revenue_per_product_and_kind(make_deployment, shared_dir, tmp_path):
    deployment = make_deployment(KPI_CLOCK="event")
    worker = deployment.start_worker()
    events = tmp_path / "maven.jsonl"
    data = shared_dir / "data"
    report = import_and_replay(deployment, "maven-crm", (str(data / "maven_sales_pipeline.csv"),
                                                         str(data / "maven_sales_teams.csv")),
                               events, products=str(data / "maven_products.csv"))
    assert report.produced_total == events.read_bytes().count(b"\n") and report.bad == 0 and report.failed == 0
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
