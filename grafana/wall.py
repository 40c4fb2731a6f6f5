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
from stream.kpi.catalogue import BY_KEY, MONTH, NOW
from stream.worker.wall import tiles as wall_tiles

UID = "kpi-wall"
TITLE = "Sales floor wall"
# The same freshness thresholds as the wall page (stream/worker/wall/tiles.py).
FRESH_S = wall_tiles.FRESH_S
STALE_S = wall_tiles.STALE_S
# Where each headline tile of the shared wall definition sits on Grafana's 24-column grid.
POSITIONS = {
    "waiting": Pos(0, 0, 4, 8), "oldest-wait": Pos(4, 0, 4, 8), "response-p50": Pos(8, 0, 4, 8),
    "response-p90": Pos(12, 0, 4, 8), "within-sla": Pos(16, 0, 4, 8),
    "win-rate": Pos(10, 8, 3, 8), "velocity": Pos(13, 8, 4, 8), "open-pipeline": Pos(17, 8, 4, 8),
    "quota-pace": Pos(21, 8, 3, 8),
}
BACKGROUND = {"oldest-wait", "within-sla"}  # tiles coloured as a whole, not just their number


def unit_of(fmt: str, currency: str) -> str:
    return {"count": "short", "duration": "s", "percent": "percentunit", "money": f"currency{currency}"}[fmt]


@dataclass(frozen=True)
class Headline:
    """A tile showing one overall KPI; the test compares it with /kpis (``overall[key]`` of ``window``)."""

    tile: wall_tiles.Tile
    unit: str
    pos: Pos

    @property
    def title(self) -> str:
        return self.tile.title

    @property
    def metric(self) -> str:
        return self.tile.metric.name

    @property
    def key(self) -> str:
        return self.tile.key

    @property
    def window(self) -> str | None:
        return self.tile.window

    def expr(self) -> str:
        # *now* and month-only KPIs are exported without a window label (stream.kpi.catalogue.Kpi.labels)
        windowed = self.window and BY_KEY[self.key].timing not in (NOW, MONTH)
        return overall(self.metric, window=self.window) if windowed else overall(self.metric)


def headlines(currency: str = "USD") -> tuple[Headline, ...]:
    return tuple(Headline(t, unit_of(t.format, currency), POSITIONS[t.id]) for t in wall_tiles.HEADLINES)


WON_TODAY = overall(wall_tiles.WON_TODAY.metric.name, window=wall_tiles.WON_TODAY.window)
TARGET_TODAY = overall("kpi_revenue_target", period="day")
BOARD = wall_tiles.LEADERBOARD
LEADERBOARD = (f"sort_desc(topk({BOARD.size}, "
               f"{kpi(wall_tiles.metric_of(BOARD.key).name, by=['rep'], scope='rep', window=BOARD.window)}))")


def build(sla_seconds: float = SLA_SECONDS_DEFAULT, currency: str = "USD") -> dashboard_builders.Dashboard:
    sla = float(sla_seconds)
    money = f"currency{currency}"
    dash = new_dashboard(
        TITLE, UID, tags=["wall"], refresh="10s", time_from="now-8h",
        description="TV / kiosk view of the sales floor: open it with ?kiosk. Numbers are global (all workers).",
    ).timepicker(dashboard_builders.TimePicker().hidden(True))
    for h in headlines(currency):
        dash = dash.with_panel(stat_panel(
            h.title, [now(h.expr())], h.pos, unit=h.unit, steps=thresholds(*h.tile.thresholds(sla)),
            background=h.tile.id in BACKGROUND,
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
        wall_tiles.WON_TODAY.title, [now(WON_TODAY, "won today"), now(TARGET_TODAY, "daily target")],
        Pos(0, 8, 6, 8), unit=money, decimals=0, horizontal=True, steps=fixed(BLUE),
        description="Target: the roster's monthly quotas / the month's business days (Mon-Fri).",
    ))
    dash = dash.with_panel(gauge_panel(
        "% of today's target", [now(f"{WON_TODAY} / {TARGET_TODAY}")], Pos(6, 8, 4, 8),
        unit="percentunit", minimum=0, maximum=1.5,
        steps=thresholds(*((s.at, s.colour) for s in wall_tiles.TARGET_STEPS)),
    ))
    dash = dash.with_panel(bargauge_panel(
        BOARD.title, [now(LEADERBOARD, "{{rep}}")], Pos(0, 16, 10, 12), unit=money,
        steps=fixed(GREEN), description=f"Top {BOARD.size} reps by won revenue, month to date.",
    ))
    dash = dash.with_panel(timeseries_panel(
        wall_tiles.TREND.title, [
            *(trend(overall(wall_tiles.metric_of(key).name, window=wall_tiles.TREND.window), label)
              for label, key in wall_tiles.TREND.keys),
            trend(f"max({series('kpi_lead_response_sla_seconds')})", "SLA"),
        ],
        Pos(10, 16, 14, 12), unit="s", steps=thresholds((None, GREEN), (sla, RED)), show_thresholds=True,
        description="Median and p90 time to first touch of the leads responded in the last hour.",
    ))
    return dash


# Every query of the wall that must agree with /kpis, for the tests: (expr, window, overall key).
def checked_against_kpis(currency: str = "USD") -> list[tuple[str, str, str]]:
    return [(h.expr(), h.window or "all", h.key) for h in headlines(currency)] + [(WON_TODAY, "today", "won_revenue")]

