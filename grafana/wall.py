"""The sales floor wall: one screen on a TV, readable from across the room, no scrolling.

Layout assumption (checked by tests/grafana/test_dashboards.py): Grafana in kiosk mode (`?kiosk`, no
menu or header) on a 1920×1080 screen. A grid unit is 30 px high plus an 8 px gap, so the wall's 28
units are 28 × 38 − 8 = 1056 px and fit 1080 px. Three bands: the lead-response tiles (what the floor acts on
now), the money tiles, then the leaderboard and the response-time trend.

Every headline is an *instant* query: if the exporter disappears a tile says "no data" instead of
repeating its last value, and the freshness badge turns red when no event has been processed lately or
when event time lags the wall clock (a replay or a stalled producer), so stale numbers never pass as live.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from grafana.common import (
    BLUE, GREEN, ORANGE, RED, SLA_SECONDS_DEFAULT, Pos, bargauge_panel, fixed, gauge_panel, kpi, new_dashboard,
    now, overall, series, stat_panel, thresholds, timeseries_panel, trend,
)

UID = "kpi-wall"
TITLE = "Sales floor wall"
FRESH_S = 60  # no event processed for a minute during business hours: something is off
STALE_S = 300


@dataclass(frozen=True)
class Headline:
    """A tile showing one overall KPI; the test compares it with /kpis (``overall[key]`` of ``window``)."""

    title: str
    metric: str
    key: str
    window: str | None  # None: a *now* KPI (the same in every window)
    unit: str
    pos: Pos

    def expr(self) -> str:
        return overall(self.metric, window=self.window) if self.window else overall(self.metric)


def headlines(currency: str = "USD") -> tuple[Headline, ...]:
    money = f"currency{currency}"
    return (
        Headline("Leads waiting now", "kpi_leads_awaiting_response", "leads_awaiting_response", None, "short", Pos(0, 0, 4, 8)),
        Headline("Oldest wait", "kpi_oldest_wait_seconds", "oldest_wait_seconds", None, "s", Pos(4, 0, 4, 8)),
        Headline("Median response today", "kpi_lead_response_p50_seconds", "lead_response_seconds_p50", "today", "s", Pos(8, 0, 4, 8)),
        Headline("p90 response today", "kpi_lead_response_p90_seconds", "lead_response_seconds_p90", "today", "s", Pos(12, 0, 4, 8)),
        Headline("Within SLA today", "kpi_lead_response_within_sla_ratio", "lead_response_within_sla_ratio", "today", "percentunit", Pos(16, 0, 4, 8)),
        Headline("Win rate today", "kpi_win_ratio", "win_rate", "today", "percentunit", Pos(10, 8, 4, 8)),
        Headline("Pipeline velocity / day (month)", "kpi_pipeline_velocity_per_day", "pipeline_velocity_per_day", "month", money, Pos(14, 8, 5, 8)),
        Headline("Open pipeline", "kpi_open_pipeline_value", "open_pipeline_value", None, money, Pos(19, 8, 5, 8)),
    )


WON_TODAY = overall("kpi_won_revenue", window="today")
TARGET_TODAY = overall("kpi_revenue_target", period="day")
LEADERBOARD = f"sort_desc(topk(10, {kpi('kpi_won_revenue', by=['rep'], scope='rep', window='month')}))"


def build(sla_seconds: float = SLA_SECONDS_DEFAULT, currency: str = "USD") -> dashboard_builders.Dashboard:
    sla = float(sla_seconds)
    money = f"currency{currency}"
    # Red past the SLA; orange from 80 % of it, so a wait is visibly about to breach.
    wait_colours = thresholds((None, GREEN), (0.8 * sla, ORANGE), (sla, RED))
    colours = {
        "kpi_leads_awaiting_response": fixed(BLUE),
        "kpi_oldest_wait_seconds": wait_colours,
        "kpi_lead_response_p50_seconds": wait_colours,
        "kpi_lead_response_p90_seconds": wait_colours,
        "kpi_lead_response_within_sla_ratio": thresholds((None, RED), (0.8, ORANGE), (0.9, GREEN)),
        "kpi_win_ratio": fixed(BLUE),
        "kpi_pipeline_velocity_per_day": fixed(BLUE),
        "kpi_open_pipeline_value": fixed(BLUE),
    }
    backgrounds = {"kpi_oldest_wait_seconds", "kpi_lead_response_within_sla_ratio"}
    dash = new_dashboard(
        TITLE, UID, tags=["wall"], refresh="10s", time_from="now-8h",
        description="TV / kiosk view of the sales floor: open it with ?kiosk. Numbers are global (all workers).",
    ).timepicker(dashboard_builders.TimePicker().hidden(True))
    for h in headlines(currency):
        dash = dash.with_panel(stat_panel(
            h.title, [now(h.expr())], h.pos, unit=h.unit, steps=colours[h.metric],
            background=h.metric in backgrounds,
            decimals=0 if h.unit in ("s", "short", money) else 1,
            description=f"/kpis overall.{h.key}" + (f", window {h.window}" if h.window else " (now)"),
        ))
    dash = dash.with_panel(stat_panel(
        "Freshness", [
            now(f"time() - max({series('kpi_last_processed_timestamp_seconds')})", "since last event"),
            now(f"time() - max({series('kpi_last_event_timestamp_seconds')})", "event-time lag"),
        ],
        Pos(20, 0, 4, 8), unit="s", decimals=0, background=True, horizontal=True,
        steps=thresholds((None, GREEN), (FRESH_S, ORANGE), (STALE_S, RED)),
        no_value="NO WORKER",
        description="Seconds since any worker processed a message, and how far the newest event time lags the "
                    "wall clock. Red: the numbers on this wall are not live.",
    ))
    dash = dash.with_panel(stat_panel(
        "Won today vs target", [now(WON_TODAY, "won today"), now(TARGET_TODAY, "daily target")],
        Pos(0, 8, 6, 8), unit=money, decimals=0, horizontal=True, steps=fixed(BLUE),
        description="Target: the roster's monthly quotas / the month's business days (Mon-Fri).",
    ))
    dash = dash.with_panel(gauge_panel(
        "% of today's target", [now(f"{WON_TODAY} / {TARGET_TODAY}")], Pos(6, 8, 4, 8),
        unit="percentunit", minimum=0, maximum=1.5,
        steps=thresholds((None, RED), (0.5, ORANGE), (1.0, GREEN)),
    ))
    dash = dash.with_panel(bargauge_panel(
        "Leaderboard: won this month", [now(LEADERBOARD, "{{rep}}")], Pos(0, 16, 10, 12), unit=money,
        steps=fixed(GREEN), description="Top 10 reps by won revenue, month to date.",
    ))
    dash = dash.with_panel(timeseries_panel(
        "Lead response time (rolling hour)", [
            trend(overall("kpi_lead_response_p50_seconds", window="1h"), "median"),
            trend(overall("kpi_lead_response_p90_seconds", window="1h"), "p90"),
            trend(f"max({series('kpi_lead_response_sla_seconds')})", "SLA"),
        ],
        Pos(10, 16, 14, 12), unit="s", steps=thresholds((None, GREEN), (sla, RED)), show_thresholds=True,
        description="Median and p90 time to first touch of the leads responded in the last hour.",
    ))
    return dash


# Every query of the wall that must agree with /kpis, for the tests: (expr, window, overall key).
def checked_against_kpis(currency: str = "USD") -> list[tuple[str, str, str]]:
    return [(h.expr(), h.window or "all", h.key) for h in headlines(currency)] + [(WON_TODAY, "today", "won_revenue")]

