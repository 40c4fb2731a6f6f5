"""KPI export: typed snapshots → gauge families named by the catalogue, read back through a fresh CollectorRegistry."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from stream.kpi.catalogue import KPIS, NOW, WINDOW, WINDOW_AND_NOW, exported_per_scope, now_keys
from stream.kpi.snapshot import Snapshot
from stream.kpi.windows import WINDOWS
from stream.worker.kpi_export import KpiCache, KpiCollector, kpi_families, refresh_kpis
from stream.roster import parse_roster

ROSTER = parse_roster(
    """
teams: [{name: red}, {name: blue}]
reps:
  - {rep_id: ana, team: red, monthly_quota: 21000}
  - {rep_id: ben, team: red, monthly_quota: 42000}
  - {rep_id: cal, team: blue}
"""
)


def scope(**values):
    """A full-key scope object as /kpis has it: every windowed key null/0 unless given."""
    doc = {k.key: None for k in exported_per_scope(WINDOW, WINDOW_AND_NOW, NOW)}
    doc.update({k: 0 for k in ("leads_created", "leads_responded", "leads_qualified", "calls", "calls_connected",
                               "talk_seconds_total", "deals_won", "deals_lost", "won_revenue", "open_deals",
                               "open_pipeline_value", "leads_awaiting_response")})
    doc.update(values)
    return doc


def snapshot_of(doc: dict) -> Snapshot:
    """A /kpis document as the typed snapshot the exporter reads."""
    now = datetime.fromisoformat(doc["as_of"])
    return Snapshot(window=doc["window"], now_ms=int(now.timestamp() * 1000),
                    values={k: doc[k] for k in ("overall", "teams", "reps", "stages") if k in doc},
                    incomplete=doc.get("incomplete"))


def document(window: str, *, incomplete: bool = False, **overall) -> dict:
    doc = {
        "as_of": "2026-11-20T12:30:00+00:00",
        "window": window,
        "overall": scope(**overall),
        "teams": {"red": scope(leads_created=2, won_revenue=1500.5), "blue": {k: 0 for k in now_keys("teams")} | {"oldest_wait_seconds": None, "pipeline_velocity_per_day": None}},
        "reps": {"ana": scope(leads_created=2, lead_response_seconds_p50=42.0), "cal": {
            "leads_awaiting_response": 1, "oldest_wait_seconds": 600.0, "open_deals": 0,
            "open_pipeline_value": 0.0, "pipeline_velocity_per_day": None}},
        "stages": {
            "prospecting": {"open_deals": 1, "open_pipeline_value": 4500.0, "stage_entries": 2, "stage_conversion": 0.5},
            "qualification": {"open_deals": 0, "open_pipeline_value": 0.0, "stage_entries": 1, "stage_conversion": None},
        },
    }
    if incomplete:
        doc["incomplete"] = {"missing_partitions": ["leads:1"], "unreachable_workers": []}
    return doc


class Static:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


def registry_of(families) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(Static(families))
    return registry


def labels(scope_="overall", team="", rep="", **extra):
    return {"scope": scope_, "team": team, "rep": rep, **extra}


@pytest.fixture
def docs():
    return {w: snapshot_of(d) for w, d in {
        "1h": document("1h", leads_created=3, lead_response_seconds_p50=61.5, lead_response_seconds_p90=None,
                       won_revenue=2250.5, sales_cycle_days_mean=0.5, win_rate=1.0,
                       leads_awaiting_response=1, oldest_wait_seconds=10800.0, open_deals=1, open_pipeline_value=4500.0),
        "month": document("month", leads_created=9, quota_attainment=0.5, incomplete=True,
                          leads_awaiting_response=1, oldest_wait_seconds=10800.0),
    }.items()}


def test_windowed_kpis_by_scope_and_window(docs):
    reg = registry_of(kpi_families(docs))
    assert reg.get_sample_value("kpi_leads_created", labels(window="1h")) == 3
    assert reg.get_sample_value("kpi_leads_created", labels(window="month")) == 9
    assert reg.get_sample_value("kpi_leads_created", labels("team", team="red", window="1h")) == 2
    assert reg.get_sample_value("kpi_leads_created", labels("rep", rep="ana", window="1h")) == 2
    assert reg.get_sample_value("kpi_lead_response_p50_seconds", labels(window="1h")) == 61.5
    assert reg.get_sample_value("kpi_lead_response_p50_seconds", labels("rep", rep="ana", window="1h")) == 42.0
    assert reg.get_sample_value("kpi_won_revenue", labels(window="1h", currency="USD")) == 2250.5
    assert reg.get_sample_value("kpi_won_revenue", labels("team", team="red", window="1h", currency="USD")) == 1500.5
    # Days are exported in the base unit.
    assert reg.get_sample_value("kpi_sales_cycle_mean_seconds", labels(window="1h")) == 43200.0
    assert reg.get_sample_value("kpi_win_ratio", labels(window="1h")) == 1.0


def test_nulls_and_absent_windows_have_no_sample(docs):
    reg = registry_of(kpi_families(docs))
    assert reg.get_sample_value("kpi_lead_response_p90_seconds", labels(window="1h")) is None
    assert reg.get_sample_value("kpi_leads_created", labels(window="24h")) is None  # window not fetched
    # A now-only scope has no windowed series at all.
    assert reg.get_sample_value("kpi_leads_created", labels("rep", rep="cal", window="1h")) is None
    assert reg.get_sample_value("kpi_oldest_wait_seconds", labels("team", team="blue")) is None
    text = generate_latest(reg).decode()
    assert "NaN" not in text and "kpi_lead_response_p90_seconds{" not in text


def test_now_kpis_have_no_window_and_cover_now_only_scopes(docs):
    reg = registry_of(kpi_families(docs))
    assert reg.get_sample_value("kpi_leads_awaiting_response", labels()) == 1
    assert reg.get_sample_value("kpi_oldest_wait_seconds", labels()) == 10800.0
    assert reg.get_sample_value("kpi_open_pipeline_value", labels(currency="USD")) == 4500.0
    assert reg.get_sample_value("kpi_leads_awaiting_response", labels("rep", rep="cal")) == 1
    assert reg.get_sample_value("kpi_oldest_wait_seconds", labels("rep", rep="cal")) == 600.0


def test_quota_stages_targets_and_snapshot_state(docs):
    reg = registry_of(kpi_families(docs, roster=ROSTER))
    assert reg.get_sample_value("kpi_quota_attainment_ratio", labels()) == 0.5
    assert reg.get_sample_value("kpi_stage_entries", {"stage": "prospecting", "window": "1h"}) == 2
    assert reg.get_sample_value("kpi_stage_conversion_ratio", {"stage": "prospecting", "window": "1h"}) == 0.5
    assert reg.get_sample_value("kpi_stage_conversion_ratio", {"stage": "qualification", "window": "1h"}) is None
    assert reg.get_sample_value("kpi_stage_open_deals", {"stage": "prospecting"}) == 1
    assert reg.get_sample_value("kpi_stage_open_pipeline_value", {"stage": "prospecting", "currency": "USD"}) == 4500.0
    # November 2026 has 21 weekdays; quotas 21000 + 42000 (cal has none).
    assert reg.get_sample_value("kpi_revenue_target", labels(period="month", currency="USD")) == 63000
    assert reg.get_sample_value("kpi_revenue_target", labels(period="day", currency="USD")) == 3000
    assert reg.get_sample_value("kpi_revenue_target", labels("team", team="red", period="day", currency="USD")) == 3000
    assert reg.get_sample_value("kpi_revenue_target", labels("rep", rep="ana", period="day", currency="USD")) == 1000
    assert reg.get_sample_value("kpi_revenue_target", labels("rep", rep="cal", period="day", currency="USD")) is None
    assert reg.get_sample_value("kpi_snapshot_complete", {"window": "1h"}) == 1
    assert reg.get_sample_value("kpi_snapshot_complete", {"window": "month"}) == 0
    as_of = datetime(2026, 11, 20, 12, 30, tzinfo=timezone.utc).timestamp()
    assert reg.get_sample_value("kpi_snapshot_timestamp_seconds", {"window": "1h"}) == as_of


def test_every_kpi_is_exported_under_a_conventional_name():
    names = [m.name for k in KPIS for m in k.metrics.values()]
    assert {k.key for k in KPIS if k.metrics} == {k.key for k in KPIS}
    assert len(names) == len(set(names))
    for name in names:  # Prometheus conventions (promtool lints the live output too)
        assert name.startswith("kpi_") and not name.endswith("_total") and "days" not in name.split("_")


def test_golden_expected_documents_export_their_overall_values(shared_dir):
    expected = json.loads((shared_dir / "golden" / "expected.json").read_text())
    docs = {w: snapshot_of({"window": w, **expected[w]}) for w in WINDOWS if w in expected}
    reg = registry_of(kpi_families(docs))
    for window, snapshot in docs.items():
        for spec in exported_per_scope(WINDOW, WINDOW_AND_NOW):
            if spec.key not in snapshot.values["overall"]:
                continue  # a key golden/ (sections 1-5) predates: revenue and marketing, customers, forecasts (golden6)
            value = snapshot.values["overall"][spec.key]
            extra = {"currency": "USD"} if spec.unit == "money" else {}
            got = reg.get_sample_value(spec.metric.name, labels(window=window, **extra))
            assert got == (None if value is None else value * (86_400 if spec.unit == "days" else 1)), (window, spec.key)


# --- the collector and the refresh on a worker ------------------------------------------------------
def fake_ctx(leader: bool = True):
    return SimpleNamespace(
        built={"leads": {0, 1} if leader else {2, 3}, "deals": {0}},
        settings=SimpleNamespace(kpi_currency="USD", kpi_timezone="UTC", kpi_sla_seconds=300.0),
        roster=SimpleNamespace(current=lambda: ROSTER),
    )


def test_only_the_leader_exports_kpis(docs):
    for leader in (True, False):
        ctx, cache = fake_ctx(leader), KpiCache(docs=docs, leader=True)
        registry = CollectorRegistry()
        registry.register(KpiCollector(ctx, cache))
        assert registry.get_sample_value("kpi_exporter_leader") == (1 if leader else 0)
        value = registry.get_sample_value("kpi_leads_created", labels(window="1h"))
        assert value == (3 if leader else None)
        assert registry.get_sample_value("kpi_lead_response_sla_seconds") == (300.0 if leader else None)


def test_refresh_fetches_every_window_caches_and_drops_failures():
    calls: list[str] = []
    clock = [100.0]

    async def snapshot(ctx, window):
        calls.append(window)
        if window == "24h":
            raise RuntimeError("peer timed out")
        return Snapshot(window=window, now_ms=0, values={"overall": {}})

    ctx, cache = fake_ctx(), KpiCache()

    async def run():
        await refresh_kpis(ctx, cache, snapshot=snapshot, clock=lambda: clock[0])
        assert set(cache.docs) == set(WINDOWS) - {"24h"}
        assert len(calls) == len(WINDOWS)
        clock[0] += 1.0  # within REFRESH_S: served from the cache
        await refresh_kpis(ctx, cache, snapshot=snapshot, clock=lambda: clock[0])
        assert len(calls) == len(WINDOWS)
        clock[0] += 5.0
        await asyncio.gather(*(refresh_kpis(ctx, cache, snapshot=snapshot, clock=lambda: clock[0]) for _ in range(3)))
        assert len(calls) == 2 * len(WINDOWS)  # concurrent scrapes share one refresh
        ctx.built["leads"] = {3}  # partition 0 moved away: nothing is exported any more
        await refresh_kpis(ctx, cache, snapshot=snapshot, clock=lambda: clock[0])
        assert cache.docs == {} and not cache.leader

    asyncio.run(run())


# --- products, sources, campaigns ------------------------------------------------------------------------
def _labelled_snapshots(products: int, sources: int, campaigns: int) -> dict[str, Snapshot]:
    """Every window's snapshot with that many products, sources and campaigns, every key non-null."""
    from stream.kpi.catalogue import keys_of

    def section(name: str, n: int, window: str) -> dict:
        return {f"{name}-{i}": {k: 1.0 for k in keys_of(name, window)} for i in range(n)}

    return {w: Snapshot(window=w, now_ms=1_795_597_200_000, values={
        "overall": {}, "teams": {}, "reps": {}, "stages": {},
        "products": section("products", products, w), "sources": section("sources", sources, w),
        "campaigns": section("campaigns", campaigns, w)}) for w in WINDOWS}


# docs/metrics.md, "Size": the product, source and campaign series at 20 x 10 x 50 labels.
LABELLED_SERIES_20_10_50 = 12_280


def test_product_source_campaign_series_count_and_labels():
    families = kpi_families(_labelled_snapshots(20, 10, 50))
    labelled = [f for f in families if f.name.startswith(("kpi_product_", "kpi_source_", "kpi_campaign_"))]
    assert sum(len(f.samples) for f in labelled) == LABELLED_SERIES_20_10_50
    reg = registry_of(families)
    assert reg.get_sample_value("kpi_source_cost_per_lead", {"source": "sources-3", "window": "week",
                                                             "currency": "USD"}) == 1.0
    assert reg.get_sample_value("kpi_product_won_revenue_new", {"product": "products-0", "window": "quarter",
                                                                "currency": "USD"}) == 1.0
    assert reg.get_sample_value("kpi_campaign_mqls", {"campaign": "campaigns-49", "window": "1h"}) == 1.0
    assert reg.get_sample_value("kpi_product_open_deals", {"product": "products-19"}) == 1.0  # now: no window
