"""The sales floor wall, defined once: what the wall page (``/wall``) and the Grafana wall (grafana/wall.py) show.

Each tile is data — title, the ``/kpis`` key it shows, its window, how it is formatted and when it turns
orange or red — so the page, the Grafana dashboard and the tests read the same list and never drift.
The Prometheus metric of a tile comes from the KPI catalogue (``stream.kpi.catalogue``), by key.

Formats (the page's ``wall.js`` implements them; the browser test checks the page against them):
``count`` 1,234; ``duration`` 45s, 2m 05s, 1h 04m, 2d 3h; ``percent`` 87%; ``money`` $980, $12.3k, $1.24M
(the currency's symbol for USD/EUR/GBP, else the code: ``CHF 12.3k``). ``null`` shows as an em dash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stream.kpi.catalogue import BY_KEY, Metric

GREEN, ORANGE, RED, BLUE = "green", "orange", "red", "blue"
FORMATS = ("count", "duration", "percent", "money")

# Freshness: seconds since any worker processed a message, and how far the newest event time lags the wall
# clock. Orange from FRESH_S; from STALE_S (or when no worker answered for NO_ANSWER_S) the page greys
# out and says "stale": the numbers on it are not live.
FRESH_S = 120
STALE_S = 600
NO_ANSWER_S = 15
REFRESH_S = 5  # how often the page asks /kpis
TREND_REFRESH_S = 60


@dataclass(frozen=True)
class Step:
    """From ``at`` upward the tile has ``colour``; ``at`` is a multiple of the SLA when ``per_sla``."""

    at: float | None
    colour: str
    per_sla: bool = False

    def value(self, sla_seconds: float) -> float | None:
        return None if self.at is None else self.at * sla_seconds if self.per_sla else self.at


# Red past the SLA, orange from 80 % of it: a wait visibly about to breach.
WAIT = (Step(None, GREEN), Step(0.8, ORANGE, per_sla=True), Step(1.0, RED, per_sla=True))
SHARE_IN_SLA = (Step(None, RED), Step(0.8, ORANGE), Step(0.9, GREEN))
NEUTRAL = (Step(None, BLUE),)
# Won ÷ (quota × share of the month elapsed): behind from under 100 %, well behind (the pace alert) under 70 %.
PACE = (Step(None, RED), Step(0.7, ORANGE), Step(1.0, GREEN))


@dataclass(frozen=True)
class Tile:
    """One number of the wall: ``overall[key]`` (or ``teams[team][key]``) of ``/kpis?window=…``."""

    id: str  # DOM id on the page, panel identity in Grafana
    title: str
    key: str
    window: str | None  # None: a *now* KPI, the same in every window
    format: str
    steps: tuple[Step, ...] = NEUTRAL
    note: str = ""  # the line under the number; {sla} is the SLA as a duration

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"tile {self.id}: unknown format {self.format!r}")

    @property
    def kpi_window(self) -> str:
        """The window to ask /kpis for (a *now* key is in every document; ``today`` is fetched anyway)."""
        return self.window or "today"

    @property
    def metric(self) -> Metric:
        return metric_of(self.key)

    def thresholds(self, sla_seconds: float) -> list[tuple[float | None, str]]:
        return [(s.value(sla_seconds), s.colour) for s in self.steps]

    def to_json(self, sla_seconds: float) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "key": self.key, "window": self.kpi_window,
                "format": self.format, "steps": self.thresholds(sla_seconds), "note": self.note}


@dataclass(frozen=True)
class Leaderboard:
    title: str
    key: str
    window: str
    size: int


@dataclass(frozen=True)
class Trend:
    """Rolling-window response times sampled over the last hours (the worker computes them: /wall/trend)."""

    title: str
    keys: tuple[tuple[str, str], ...]  # (label, /kpis key)
    window: str
    hours: int
    step_minutes: int


# The lead-response band (what the floor acts on now), then the money band.
HEADLINES: tuple[Tile, ...] = (
    Tile("waiting", "Leads waiting now", "leads_awaiting_response", None, "count", note="not touched yet"),
    Tile("oldest-wait", "Oldest wait", "oldest_wait_seconds", None, "duration", WAIT, note="red past the SLA, {sla}"),
    Tile("response-p50", "Median response today", "lead_response_seconds_p50", "today", "duration", WAIT,
         note="to the first touch"),
    Tile("response-p90", "p90 response today", "lead_response_seconds_p90", "today", "duration", WAIT,
         note="to the first touch"),
    Tile("within-sla", "Within SLA today", "lead_response_within_sla_ratio", "today", "percent", SHARE_IN_SLA,
         note="touched within {sla}"),
    Tile("win-rate", "Win rate this month", "win_rate", "month", "percent", note="won / (won + lost)"),
    Tile("velocity", "Pipeline velocity", "pipeline_velocity_per_day", "month", "money", note="per day, this month"),
    Tile("open-pipeline", "Open pipeline", "open_pipeline_value", None, "money", note="open deals, now"),
    Tile("quota-pace", "Quota pace this month", "quota_pace", "month", "percent", PACE,
         note="100% = on pace"),
)
# Won today against the daily target (the roster's monthly quotas / the month's business days).
WON_TODAY = Tile("won-today", "Won today vs target", "won_revenue", "today", "money")
TARGET_STEPS = (Step(None, RED), Step(0.5, ORANGE), Step(1.0, GREEN))  # share of the daily target
LEADERBOARD = Leaderboard("Leaderboard: won this month", "won_revenue", "month", 10)
TREND = Trend("Lead response time (rolling hour)",
              (("median", "lead_response_seconds_p50"), ("p90", "lead_response_seconds_p90")), "1h", 8, 20)


def metric_of(key: str) -> Metric:
    metric = BY_KEY[key].metric if key in BY_KEY else None
    if metric is None:
        raise KeyError(f"no exported metric for /kpis key {key!r}")
    return metric


def windows() -> list[str]:
    """The /kpis windows the page fetches every refresh."""
    return sorted({t.kpi_window for t in (*HEADLINES, WON_TODAY)} | {LEADERBOARD.window})


def page_config(sla_seconds: float, currency: str, team: str | None, team_reps: list[str] | None) -> dict[str, Any]:
    """What ``wall.js`` needs, embedded in the page as JSON."""
    return {
        "team": team,
        "team_reps": team_reps,
        "sla_seconds": sla_seconds,
        "currency": currency,
        "refresh_seconds": REFRESH_S,
        "trend_refresh_seconds": TREND_REFRESH_S,
        "fresh_seconds": FRESH_S,
        "stale_seconds": STALE_S,
        "no_answer_seconds": NO_ANSWER_S,
        "windows": windows(),
        "headlines": [t.to_json(sla_seconds) for t in HEADLINES],
        "won_today": {**WON_TODAY.to_json(sla_seconds), "target_steps": [(s.at, s.colour) for s in TARGET_STEPS]},
        "leaderboard": {"title": LEADERBOARD.title, "key": LEADERBOARD.key, "window": LEADERBOARD.window,
                        "size": LEADERBOARD.size},
        "trend": {"title": TREND.title, "keys": [list(k) for k in TREND.keys], "window": TREND.window,
                  "hours": TREND.hours, "step_minutes": TREND.step_minutes},
    }
