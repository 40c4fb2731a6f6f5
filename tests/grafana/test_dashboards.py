"""Dashboards as code: the committed JSON is what the builders generate, the wall fits one screen,
every query goes through the one selector, and the drilldown covers every exported KPI."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
import yaml

from grafana import generate
from grafana.common import DATASOURCE, WORKER_JOB, panel_queries
from stream.kpi.catalogue import exported_per_scope, MONTH, NOW, WINDOW, WINDOW_AND_NOW

REPO_ROOT = Path(__file__).resolve().parents[2]
GRAFANA = REPO_ROOT / "grafana"
# Kiosk mode at 1920x1080: a grid unit is 30 px plus an 8 px gap, so 28 units (28*38-8 = 1056 px) are
# the most that fit without scrolling.
WALL_MAX_ROWS = 28


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    return generate.build_all()


def test_committed_json_is_what_the_code_generates(dashboards):
    for name, doc in dashboards.items():
        committed = (generate.DASHBOARD_DIR / name).read_text()
        assert committed == generate.render(doc), f"{name} is stale: run python -m grafana.generate"
    assert sorted(p.name for p in generate.DASHBOARD_DIR.glob("*.json")) == sorted(dashboards)
    assert generate.main(["--check"]) == 0


def test_generation_is_deterministic():
    assert generate.build_all() == generate.build_all()


def _cells(panel: dict) -> set[tuple[int, int]]:
    g = panel["gridPos"]
    return {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}


def test_panels_stay_in_the_grid_and_never_overlap(dashboards):
    for name, doc in dashboards.items():
        panels = doc["panels"]
        assert len({p["id"] for p in panels}) == len(panels), name
        for panel in panels:
            g = panel["gridPos"]
            assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, (name, panel["title"], g)
        for a, b in itertools.combinations(panels, 2):
            assert not (_cells(a) & _cells(b)), (name, a["title"], b["title"])


def test_wall_fits_one_1080p_screen(dashboards):
    wall = dashboards["wall.json"]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in wall["panels"])
    assert bottom <= WALL_MAX_ROWS
    assert all(p["type"] != "row" for p in wall["panels"])  # no collapsible rows on a TV
    covered = set().union(*(_cells(p) for p in wall["panels"]))
    assert len(covered) == 24 * bottom  # the whole screen is used, no holes
    titles = {p["title"] for p in wall["panels"]}
    for required in ("Leads waiting now", "Oldest wait", "Freshness", "Median response today", "p90 response today",
                     "Within SLA today", "Won today vs target", "Win rate this month", "Leaderboard: won this month",
                     "Lead response time (rolling hour)"):
        assert required in titles
    assert any(t.startswith("Pipeline velocity") for t in titles)
    # Headline tiles are instant queries: a vanished series shows "no data", not its last value.
    for panel, target in panel_queries(wall):
        if panel["type"] in ("stat", "gauge", "bargauge"):
            assert target.get("instant") is True, panel["title"]


def test_oldest_wait_turns_red_at_the_sla(dashboards):
    wall = dashboards["wall.json"]
    panel = next(p for p in wall["panels"] if p["title"] == "Oldest wait")
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": 300.0}
    other = generate.build_all(sla_seconds=120)["wall.json"]
    panel = next(p for p in other["panels"] if p["title"] == "Oldest wait")
    assert panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 120.0


def test_every_query_uses_the_worker_job_and_the_provisioned_datasource(dashboards):
    for name, doc in dashboards.items():
        for panel, target in panel_queries(doc):
            assert f'job="{WORKER_JOB}"' in target["expr"], (name, panel["title"], target["expr"])
            assert target["datasource"] == {"type": "prometheus", "uid": DATASOURCE.uid}
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert provisioned["datasources"][0]["uid"] == DATASOURCE.uid


def test_the_selector_is_defined_once():
    for path in GRAFANA.glob("*.py"):
        if path.name != "common.py":
            assert not re.search(r"job\s*=", path.read_text()), f"{path.name} builds its own selector"


def test_drilldown_covers_every_kpi_with_team_and_rep_variables(dashboards):
    doc = dashboards["drilldown.json"]
    assert [v["name"] for v in doc["templating"]["list"]] == ["team", "rep", "product"]
    exprs = [t["expr"] for _, t in panel_queries(doc)]
    for spec in exported_per_scope(WINDOW, WINDOW_AND_NOW, NOW, MONTH):
        if "teams" not in spec.sections:
            continue  # overall only (spend): on the revenue dashboard
        for var in ("$team", "$rep"):
            assert any(spec.metric.name + "{" in e and var in e for e in exprs), (spec.metric.name, var)
    windowed = [e for e in exprs if "window=~" in e]
    assert windowed and all('window=~"1h|24h|today"' in e for e in windowed)
    assert any("kpi_stage_entries" in e for e in exprs)  # the funnel by stage
    assert any("kpi_call_connect_ratio" in e for e in exprs)


def test_ops_dashboard_has_the_on_call_panels(dashboards):
    exprs = " ".join(t["expr"] for _, t in panel_queries(dashboards["ops.json"]))
    for metric in ("kpi_events_consumed_total", "kpi_events_deadlettered_total", "kpi_processing_latency_seconds_bucket",
                   "kpi_consumer_lag_messages", "up{", "kpi_alerts_failed_total", "kpi_worker_partitions"):
        assert metric in exprs, metric
    assert "histogram_quantile(0.99" in exprs


def test_dashboards_json_is_valid_for_provisioning():
    for path in generate.DASHBOARD_DIR.glob("*.json"):
        doc = json.loads(path.read_text())
        assert doc["uid"] and doc["title"] and doc["schemaVersion"] >= 36
        assert "id" not in doc  # provisioning assigns database ids
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "kpi.yaml").read_text())
    assert provider["providers"][0]["type"] == "file"


def test_the_wall_page_and_the_grafana_wall_show_the_same_tiles(dashboards):
    from stream.kpi.catalogue import BY_KEY, MONTH
    from stream.worker.wall import tiles

    wall = {p["title"]: p for p in dashboards["wall.json"]["panels"]}
    for tile in tiles.HEADLINES:
        panel = wall[tile.title]
        [target] = panel["targets"]
        # month-only KPIs (quota_pace) are exported without a window label, like the *now* ones
        windowed = tile.window is not None and BY_KEY[tile.key].timing != MONTH
        assert tile.metric.name in target["expr"] and (not windowed or f'window="{tile.window}"' in target["expr"])
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [(s["value"], s["color"]) for s in steps] == tile.thresholds(300.0)
    for title in (tiles.WON_TODAY.title, tiles.LEADERBOARD.title, tiles.TREND.title):
        assert title in wall


def test_revenue_dashboard_has_the_split_products_sources_campaigns_and_leakage(dashboards):
    doc = dashboards["revenue.json"]
    assert doc["title"] == "Revenue & marketing" and doc["uid"] == "kpi-revenue"
    exprs = " ".join(t["expr"] for _, t in panel_queries(doc))
    for metric in ("kpi_won_revenue_new", "kpi_won_revenue_expansion", "kpi_won_revenue_renewal",
                   "kpi_contract_value_annual_mean", "kpi_product_won_revenue", "kpi_stage_deals_lost"):
        assert metric + "{" in exprs, metric
    tables = {p["title"]: p for p in doc["panels"] if p.get("type") == "table"}
    sources = tables["Sources (month)"]
    columns = sources["transformations"][1]["options"]["renameByName"].values()
    assert list(columns) == ["leads", "MQLs", "SQLs", "won", "won revenue", "spend", "CPL", "CPO", "CAC", "ROI"]
    for name, panel in tables.items():
        assert all(t["instant"] and t["format"] == "table" for t in panel["targets"]), name
    assert "Campaigns (month)" in tables and "Products (month)" in tables
