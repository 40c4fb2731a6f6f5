"""The metrics through a real Prometheus: a worker fed with live (wall-clock) events of a small sales
floor, scraped every second by Prometheus running the project's own config and rules. Then:

- every PromQL expression of every dashboard panel returns at least one series (template variables set
  to a real team and rep);
- the wall's headline numbers equal /kpis for the same window;
- `promtool check metrics` finds nothing to say about the live /metrics.
"""

from __future__ import annotations

import calendar
import json
import math
import re
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from grafana import wall
from grafana.common import panel_queries
from grafana.generate import build_all
from stream.local import promstack
from stream.config import PACKAGE_DIR
from tests.conftest import Deployment, wait_for

pytestmark = pytest.mark.integration

TEAM, REP, PRODUCT = "hunters", "hana", "pro"
REPS = ("hana", "hugo", "felix", "ines")  # from the bundled example roster (the worker's default)
ROSTER = PACKAGE_DIR / "roster.example.yaml"
SLA_S = 60  # the worker's KPI_SLA_SECONDS here: a short SLA keeps the floor's timeline short
SPAN_S = 130  # the events' time span, ending before now


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def floor_events(now: datetime) -> list[tuple[str, str, dict]]:
    """Two minutes of a floor, ending before ``now``: every KPI non-null for every rep in every window.

    Per rep: a lead answered in 6 s (then a meeting, then qualified; an MQL before that), one answered by a
    call after 80 s (past the test's 60 s SLA), one still waiting; a call without a lead; a new deal with a
    12-month term won after 20 s, an expansion lost, one open that skipped to negotiation. And spend.
    """
    base = now - timedelta(seconds=SPAN_S)
    out: list[tuple[str, str, dict]] = []

    def ev(topic: str, key: str, eid: str, etype: str, at_s: float, **fields) -> None:
        out.append((topic, key, {"event_id": eid, "type": etype, "occurred_at": _iso(base + timedelta(seconds=at_s)), **fields}))

    for i, rep in enumerate(REPS):
        l1, l2, l3, c, d1, d2, d3 = (f"{x}-{rep}" for x in ("L1", "L2", "L3", "C", "D1", "D2", "D3"))
        ev("leads", l1, f"{l1}-created", "lead.created", i, lead_id=l1, rep_id=rep, source="web", campaign="spring")
        ev("leads", l1, f"{l1}-mql", "lead.marketing_qualified", 5 + i, lead_id=l1)
        ev("leads", l1, f"{l1}-touched", "lead.touched", 6 + i, lead_id=l1, rep_id=rep, channel="email")
        ev("leads", l1, f"{l1}-meeting", "meeting.booked", 8 + i, lead_id=l1, rep_id=rep)
        ev("leads", l1, f"{l1}-qualified", "lead.qualified", 10 + i, lead_id=l1, rep_id=rep)
        ev("leads", l2, f"{l2}-created", "lead.created", 1 + i, lead_id=l2, rep_id=rep)
        ev("calls", l2, f"{l2}-call", "call.logged", 81 + i, call_id=f"{l2}-call", lead_id=l2, rep_id=rep,
           direction="outbound", outcome="connected", duration_s=120)
        ev("leads", l3, f"{l3}-created", "lead.created", 2 + i, lead_id=l3, rep_id=rep, source="event")
        ev("calls", c, f"{c}-call", "call.logged", 12 + i, call_id=c, rep_id=rep, direction="outbound",
           outcome="no_answer", duration_s=0)
        ev("deals", d1, f"{d1}-created", "deal.created", 20 + i, deal_id=d1, rep_id=rep, amount=5000 + 100 * i,
           stage="prospecting", kind="new", product=PRODUCT, source="web", campaign="spring", term_months=12,
           account_id=f"A-{rep}")
        ev("deals", d1, f"{d1}-q", "deal.stage_changed", 24 + i, deal_id=d1, to_stage="qualification")
        ev("deals", d1, f"{d1}-p", "deal.stage_changed", 28 + i, deal_id=d1, to_stage="proposal")
        ev("deals", d1, f"{d1}-won", "deal.won", 40 + i, deal_id=d1, amount=5200 + 100 * i)
        ev("deals", d2, f"{d2}-created", "deal.created", 22 + i, deal_id=d2, rep_id=rep, amount="3000.50",
           stage="qualification", kind="expansion", product="basic", account_id=f"A-{rep}")
        ev("deals", d2, f"{d2}-lost", "deal.lost", 42 + i, deal_id=d2, reason="price")
        ev("deals", d3, f"{d3}-created", "deal.created", 26 + i, deal_id=d3, rep_id=rep, amount=8000, stage="prospecting")
        ev("deals", d3, f"{d3}-n", "deal.stage_changed", 30 + i, deal_id=d3, to_stage="negotiation")
        # Customers and forecasts: a new account with an expansion; this month's and last month's forecast.
        a = f"A-{rep}"
        ev("subscriptions", a, f"{a}-start", "subscription.started", 14 + i, account_id=a, mrr=400 + 10 * i,
           product="pro", rep_id=rep)
        ev("subscriptions", a, f"{a}-up", "subscription.changed", 44 + i, account_id=a, mrr=500 + 10 * i)
        ev("forecasts", rep, f"F-{rep}-now", "forecast.submitted", 50 + i, rep_id=rep, period=_period(now), amount=9000)
        ev("forecasts", rep, f"F-{rep}-prev", "forecast.submitted", 52 + i, rep_id=rep, period=_period(now, back=1),
           amount=7000)
    # Spend (credited to no rep): the web channel's spring campaign, and sales spend on events.
    ev("spend", "web", "spend-web-spring", "spend.recorded", 0, channel="web", campaign="spring", amount="400.00")
    ev("spend", "event", "spend-event-sales", "spend.recorded", 1, channel="event", amount=120, category="sales")
    # Two accounts from before last month (an old book: the worker here takes events up to 70 days old),
    # one churned last month: customers at the start of the month and last month's churn rate, for CLV.
    prev_start = _month_start(now, back=1)
    for account, churned in (("A-old-1", True), ("A-old-2", False)):
        at = (prev_start - timedelta(days=1) - base).total_seconds()
        ev("subscriptions", account, f"{account}-start", "subscription.started", at, account_id=account, mrr=300,
           product="pro", rep_id=REP)
        if churned:
            ev("subscriptions", account, f"{account}-end", "subscription.cancelled",
               (prev_start + timedelta(days=2) - base).total_seconds(), account_id=account)
        ev("subscriptions", account, f"{account}-change", "subscription.changed", 46, account_id=account, mrr=280)
    return out


def _month_start(now: datetime, back: int = 0) -> datetime:
    index = now.year * 12 + now.month - 1 - back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=timezone.utc)


def _period(now: datetime, back: int = 0) -> str:
    start = _month_start(now, back)
    return f"{start.year:04d}-{start.month:02d}"


BAD = [("leads", "bad-1", b"{not json"), ("deals", "bad-2", b"[1]")]


@pytest.fixture(scope="module")
def scraped(stack, tmp_path_factory):
    """A worker with the floor's events, scraped every second by the project's Prometheus."""
    now = datetime.now(timezone.utc)
    day_age = now - now.replace(hour=0, minute=0, second=0, microsecond=0)
    if day_age < timedelta(seconds=SPAN_S + 30):  # every event must fall in `today`
        time.sleep((timedelta(seconds=SPAN_S + 30) - day_age).total_seconds())
    tmp = tmp_path_factory.mktemp("prometheus")
    dep = Deployment(tmp / "deployment", KPI_SLA_SECONDS=str(SLA_S), KPI_TOO_LATE_SECONDS=str(70 * 86400),
                     KPI_ENTITY_RETENTION_DAYS="80")
    prom = None
    try:
        worker = dep.start_worker()
        prom = promstack.start_prometheus(
            tmp / "prom", targets=[f"127.0.0.1:{worker.port}"], scrape_interval="1s", evaluation_interval="1s",
        )
        # Scrape once before any event, so counters and the latency histogram have a "before".
        wait_for(lambda: prom.query('up{job="kpi-monitor"} == 1'), 30, what="first scrape of the worker")
        events = floor_events(datetime.now(timezone.utc))
        messages = [(t, k, json.dumps(e).encode()) for t, k, e in events] + BAD
        dep.produce(messages)
        wait_for(
            lambda: worker.counter("kpi_events_consumed_total") + worker.counter("kpi_events_deadlettered_total") >= len(messages),
            60, what="events processed",
        )
        expected_leads = 3 * len(REPS)
        wait_for(
            lambda: [r for r in prom.query('kpi_leads_created{scope="overall",window="all"}')
                     if float(r["value"][1]) == expected_leads]
            and prom.query('sum(kpi_consumer_lag_messages) == 0'),
            30, what="Prometheus scraped the final numbers",
        )
        time.sleep(2.5)  # a couple more scrapes: rates and quantiles over moving counters
        yield dep, worker, prom, events
    finally:
        if prom is not None:
            prom.stop()
        dep.stop()


def _substitute(expr: str) -> str:
    out = expr.replace("$team", TEAM).replace("$rep", REP).replace("$product", PRODUCT)
    assert "$" not in out, f"unsubstituted variable in {expr}"
    return out


def test_every_dashboard_query_returns_series(scraped):
    _, _, prom, _ = scraped
    empty, checked = [], 0
    for name, dashboard in build_all().items():
        for panel, target in panel_queries(dashboard):
            expr = _substitute(target["expr"])
            result = prom.query(expr)
            checked += 1
            if not result:
                empty.append(f"{name} / {panel['title']}: {expr}")
    assert not empty, "queries without a series:\n" + "\n".join(empty)
    assert checked > 100


def test_dashboard_variables_list_the_team_and_rep(scraped):
    _, _, prom, _ = scraped
    dashboard = build_all()["drilldown.json"]
    for variable in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
        assert match, variable["query"]
        values = {r["metric"].get(match.group(2)) for r in prom.query(match.group(1))}
        assert {"team": TEAM, "rep": REP, "product": PRODUCT}[variable["name"]] in values


def _value(prom, expr: str) -> float:
    result = prom.query(expr)
    assert len(result) == 1, (expr, result)
    return float(result[0]["value"][1])


def test_wall_headlines_match_kpis(scraped):
    _, worker, prom, _ = scraped
    docs = {}
    for expr, window, key in wall.checked_against_kpis():
        got = _value(prom, expr)
        doc = docs.get(window) or docs.setdefault(window, worker.kpis(window))
        want = doc["overall"][key]
        assert want is not None, (window, key)
        # oldest_wait_seconds grows with the clock: Prometheus' sample and /kpis are a few seconds apart.
        # So does quota_pace (the share of the month elapsed): 1e-3 of it is over half a minute.
        tolerance = (10.0 if key == "oldest_wait_seconds" else 1e-3 * abs(want) if key == "quota_pace"
                     else 1e-9 * max(1.0, abs(want)))
        assert math.isclose(got, want, abs_tol=tolerance), (expr, got, want)
    assert docs["today"]["overall"]["oldest_wait_seconds"] > SLA_S  # past the SLA: the oldest-wait tile is red

    # Won today vs target: the roster's monthly quotas / the month's business days.
    roster = yaml.safe_load(ROSTER.read_text())
    today = datetime.now(timezone.utc)
    weekdays = sum(1 for week in calendar.monthcalendar(today.year, today.month) for d in week[:5] if d)
    target = sum(r["monthly_quota"] for r in roster["reps"]) / weekdays
    assert math.isclose(_value(prom, wall.TARGET_TODAY), target)
    won_today = worker.kpis("today")["overall"]["won_revenue"]
    assert math.isclose(_value(prom, f"{wall.WON_TODAY} / {wall.TARGET_TODAY}"), won_today / target)

    # The leaderboard is the month's won revenue per rep, best first.
    month = worker.kpis("month")["reps"]
    board = [(r["metric"]["rep"], float(r["value"][1])) for r in prom.query(wall.LEADERBOARD)]
    expected = sorted(((rep, v["won_revenue"]) for rep, v in month.items() if "won_revenue" in v), key=lambda x: -x[1])
    assert board == expected[:10]


def test_freshness_and_health_series(scraped):
    _, worker, prom, events = scraped
    assert _value(prom, 'sum(kpi_exporter_leader{job="kpi-monitor"})') == 1
    assert _value(prom, 'sum(kpi_events_consumed_total{job="kpi-monitor"})') == len(events)
    assert _value(prom, 'sum(kpi_events_deadlettered_total{job="kpi-monitor"})') == len(BAD)
    newest = max(datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) for _, _, e in events)
    assert _value(prom, 'max(kpi_last_event_timestamp_seconds{job="kpi-monitor"})') == newest.timestamp()
    assert 0 <= _value(prom, 'time() - max(kpi_last_processed_timestamp_seconds{job="kpi-monitor"})') < 60
    # The floor's oldest events were over two minutes old when applied (the p90 lands in the (120 s, 300 s]
    # bucket); the old book of accounts, weeks old, is in the top 3 %.
    p90 = _value(prom, 'histogram_quantile(0.90, sum by (le) (rate(kpi_processing_latency_seconds_bucket{job="kpi-monitor"}[5m])))')
    assert 60 < p90 <= 300
    assert _value(prom, 'max(kpi_lead_response_sla_seconds{job="kpi-monitor"})') == SLA_S
    assert _value(prom, 'count(kpi_consumer_lag_messages{job="kpi-monitor"})') == 6 * 4  # 6 topics x 4 partitions
    # No ops alert fires on a healthy pipeline (rules loaded from the project's config).
    rules = prom.get_json("/api/v1/rules")["data"]["groups"]
    assert {r["name"] for g in rules for r in g["rules"]} >= {"KpiWorkerDown", "KpiConsumerLagGrowing", "KpiNoEventsDuringBusinessHours"}
    firing = [a for a in prom.get_json("/api/v1/alerts")["data"]["alerts"] if a["state"] == "firing"]
    assert firing == []


def test_promtool_check_metrics_on_live_output(scraped):
    _, worker, prom, _ = scraped
    text = worker.metrics()
    proc = subprocess.run([promstack.binary("promtool"), "check", "metrics"], input=text, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE kpi_")}
    assert len(families) >= 45
    # Every scrape is quick, also on the leader that builds five snapshots.
    assert _value(prom, 'max(scrape_duration_seconds{job="kpi-monitor"})') < 0.5
