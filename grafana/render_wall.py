"""Render the sales floor wall to a PNG without Grafana: the generated dashboard's grid (titles, panel
kinds, positions, units, threshold colours) filled with live numbers from a worker.

    python -m grafana.render_wall --url http://127.0.0.1:6066 [--prometheus http://127.0.0.1:9090] \
        [--trend-range 8h] --out docs/wall.png

Values: the headline tiles from the worker's /kpis (the same overall keys and windows the dashboard's
queries read), freshness and the daily target from its /metrics (the target from the roster when this
worker is not the KPI exporter), the response-time trend from Prometheus when ``--prometheus`` is
given (else the current rolling-hour values). The picture is 1920×1080 with Grafana's kiosk geometry
(30 px grid rows, 8 px gaps), so it also shows whether the wall fits a TV.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from grafana import wall  # noqa: E402

WIDTH, HEIGHT = 1920, 1080
ROW_PX, GAP_PX, PAD_PX = 30, 8, 8
BACKGROUND, PANEL, BORDER, TEXT, MUTED = "#111217", "#181b1f", "#2c3235", "#d8d9da", "#8e8e8e"
COLOURS = {"green": "#73bf69", "orange": "#ff9830", "red": "#f2495c", "blue": "#5794f2", "text": "#d8d9da"}
SERIES_COLOURS = ["#73bf69", "#f2cc0c", "#f2495c", "#5794f2"]
FONT_FILES = {
    True: ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "DejaVuSans-Bold.ttf"),
    False: ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "DejaVuSans.ttf"),
}


# --- data -------------------------------------------------------------------------------------------
@dataclass
class WallData:
    kpis: dict[str, dict[str, Any]]  # window -> /kpis document
    metrics: dict[str, list[tuple[dict[str, str], float]]]  # sample name -> [(labels, value)]
    now: float
    trend: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # legend -> [(t, value)]
    trend_range_s: float = 8 * 3600
    target: float | None = None


def _get(url: str, timeout: float = 20) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def fetch(dashboard: dict[str, Any], url: str, prometheus: str | None = None, trend_range_s: float = 8 * 3600) -> WallData:
    from prometheus_client.parser import text_string_to_metric_families

    url = url.rstrip("/")
    kpis = {w: json.loads(_get(f"{url}/kpis?window={w}")) for w in ("1h", "today", "month", "all")}
    metrics: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(_get(f"{url}/metrics").decode()):
        for sample in family.samples:
            metrics.setdefault(sample.name, []).append((sample.labels, sample.value))
    data = WallData(kpis=kpis, metrics=metrics, now=time.time(), trend_range_s=trend_range_s)
    data.target = _daily_target(data)
    if prometheus:
        data.trend = _trend(dashboard, prometheus.rstrip("/"), data.now, trend_range_s)
    return data


def _daily_target(data: WallData) -> float | None:
    for labels, value in data.metrics.get("kpi_revenue_target", []):
        if labels.get("scope") == "overall" and labels.get("period") == "day":
            return value
    # Not the exporter: the same computation from the roster the worker uses.
    from datetime import datetime, timezone

    from stream.config import load_settings
    from stream.kpi_metrics import revenue_targets
    from stream.roster import load_roster

    settings = load_settings()
    targets = revenue_targets(load_roster(settings.kpi_roster), datetime.now(timezone.utc), settings.kpi_timezone)
    return targets.get(("overall", "", ""), (None, None))[0]


def _trend(dashboard: dict[str, Any], prometheus: str, now: float, range_s: float) -> dict[str, list[tuple[float, float]]]:
    panel = next(p for p in _panels(dashboard) if p["type"] == "timeseries")
    step = max(1.0, range_s / 300)
    out = {}
    for target in panel["targets"]:
        query = urllib.parse.urlencode({"query": target["expr"], "start": now - range_s, "end": now, "step": step})
        doc = json.loads(_get(f"{prometheus}/api/v1/query_range?{query}"))
        for series in doc["data"]["result"]:
            out[target.get("legendFormat") or target["expr"]] = [(float(t), float(v)) for t, v in series["values"]]
    return out


def _metric_max(data: WallData, name: str) -> float | None:
    values = [v for _, v in data.metrics.get(name, []) if not math.isnan(v)]
    return max(values) if values else None


def panel_values(panel: dict[str, Any], data: WallData) -> list[tuple[str, float | None]]:
    """The (name, value) pairs a panel shows, from the same KPIs its queries select."""
    title = panel["title"]
    for h in wall.headlines():
        if h.title == title:
            return [(title, data.kpis[h.window or "all"]["overall"].get(h.key))]
    won = data.kpis["today"]["overall"].get("won_revenue")
    if title == "Freshness":
        processed = _metric_max(data, "kpi_last_processed_timestamp_seconds")
        event = _metric_max(data, "kpi_last_event_timestamp_seconds")
        return [("since last event", None if processed is None else data.now - processed),
                ("event-time lag", None if event is None else data.now - event)]
    if title == "Won today vs target":
        return [("won today", won), ("daily target", data.target)]
    if title.startswith("% of today"):
        return [(title, None if won is None or not data.target else won / data.target)]
    if title.startswith("Leaderboard"):
        reps = data.kpis["month"]["reps"]
        board = sorted(((r, v["won_revenue"]) for r, v in reps.items() if v.get("won_revenue") is not None),
                       key=lambda rv: -rv[1])
        return board[:10]
    if title.startswith("Lead response time"):
        hour = data.kpis["1h"]["overall"]
        return [("median", hour.get("lead_response_seconds_p50")), ("p90", hour.get("lead_response_seconds_p90"))]
    return [(title, None)]


# --- formatting -------------------------------------------------------------------------------------
def fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "no data"
    if unit == "s":
        return duration(value)
    if unit == "percentunit":
        return f"{value * 100:.0f}%"
    if unit.startswith("currency"):
        symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(unit[8:], unit[8:] + " ")
        return symbol + compact(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def compact(value: float) -> str:
    size = abs(value)
    if size >= 1e9:
        return f"{value / 1e9:.2f}B"
    if size >= 1e6:
        return f"{value / 1e6:.2f}M"
    if size >= 1e4:
        return f"{value / 1e3:.1f}K" if size < 1e5 else f"{value / 1e3:.0f}K"
    return f"{value:,.0f}"


def duration(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def colour_of(value: float | None, steps: list[dict[str, Any]]) -> str:
    if value is None:
        return MUTED
    chosen = steps[0]["color"]
    for step in steps:
        if step["value"] is None or value >= step["value"]:
            chosen = step["color"]
    return COLOURS.get(chosen, chosen)


# --- drawing ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def font(size: int, bold: bool = True) -> ImageFont.FreeTypeFont:
    for name in FONT_FILES[bold]:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def fit(draw: ImageDraw.ImageDraw, text: str, max_w: float, max_h: float, bold: bool = True, cap: int = 220) -> ImageFont.FreeTypeFont:
    lo, hi = 8, cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        l, t, r, b = draw.textbbox((0, 0), text, font=font(mid, bold))
        if r - l <= max_w and b - t <= max_h:
            lo = mid
        else:
            hi = mid - 1
    return font(lo, bold)


def centered(draw, box, text, fill, max_h_ratio=0.8, bold=True, cap=220):
    x0, y0, x1, y1 = box
    f = fit(draw, text, (x1 - x0) * 0.92, (y1 - y0) * max_h_ratio, bold, cap)
    l, t, r, b = draw.textbbox((0, 0), text, font=f)
    draw.text(((x0 + x1 - (r - l)) / 2 - l, (y0 + y1 - (b - t)) / 2 - t), text, font=f, fill=fill)


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return dashboard["panels"]


def panel_box(grid: dict[str, int]) -> tuple[float, float, float, float]:
    col = (WIDTH - PAD_PX) / 24
    x0 = PAD_PX + grid["x"] * col
    y0 = PAD_PX + grid["y"] * (ROW_PX + GAP_PX)
    return x0, y0, x0 + grid["w"] * col - GAP_PX, y0 + grid["h"] * (ROW_PX + GAP_PX) - GAP_PX


def _dim(hex_colour: str, factor: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#%02x%02x%02x" % tuple(int(c * factor) for c in (r, g, b))


def draw_panel(img: Image.Image, panel: dict[str, Any], data: WallData) -> None:
    draw = ImageDraw.Draw(img)
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit", "short")
    steps = defaults.get("thresholds", {}).get("steps", [{"color": "blue", "value": None}])
    values = panel_values(panel, data)
    x0, y0, x1, y1 = panel_box(panel["gridPos"])
    background = panel["type"] == "stat" and panel.get("options", {}).get("colorMode") == "background"
    fill = PANEL
    if background and len(values) == 1:
        fill = _dim(colour_of(values[0][1], steps), 0.75) if values[0][1] is not None else PANEL
    if background and len(values) > 1:  # the worst value colours the tile
        worst = max((v for _, v in values if v is not None), default=None)
        fill = _dim(colour_of(worst, steps), 0.75) if worst is not None else _dim(COLOURS["red"], 0.75)
    draw.rounded_rectangle((x0, y0, x1, y1), radius=6, fill=fill, outline=BORDER, width=2)
    title_font = fit(draw, panel["title"], x1 - x0 - 28, 30, cap=26)
    draw.text((x0 + 14, y0 + 10), panel["title"], font=title_font, fill=TEXT)
    body = (x0 + 10, y0 + 50, x1 - 10, y1 - 10)
    kind = panel["type"]
    if kind == "stat":
        _draw_stat(draw, body, values, unit, steps, on_colour=background)
    elif kind == "gauge":
        _draw_gauge(draw, body, values[0][1], unit, steps, defaults.get("min", 0), defaults.get("max", 1))
    elif kind == "bargauge":
        _draw_bars(draw, body, values, unit, steps)
    elif kind == "timeseries":
        _draw_trend(draw, body, data, values, unit, steps)


def _draw_stat(draw, box, values, unit, steps, on_colour: bool) -> None:
    x0, y0, x1, y1 = box
    rows = len(values)
    height = (y1 - y0) / rows
    for i, (name, value) in enumerate(values):
        top = y0 + i * height
        colour = "#ffffff" if on_colour else colour_of(value, steps)
        text = fmt(value, unit)
        if rows > 1:
            centered(draw, (x0, top, x1, top + height * 0.3), name, TEXT, 0.9, bold=False, cap=30)
            centered(draw, (x0, top + height * 0.3, x1, top + height), text, colour, 0.85)
        else:
            centered(draw, (x0, y0, x1, y1), text, colour, 0.6)


def _draw_gauge(draw, box, value, unit, steps, lo, hi) -> None:
    x0, y0, x1, y1 = box
    size = min(x1 - x0, (y1 - y0) * 1.6)
    cx, cy = (x0 + x1) / 2, y0 + size / 2 + 4
    r = size / 2 - 6
    arc = (cx - r, cy - r, cx + r, cy + r)
    start, sweep = 150, 240

    def angle(v: float) -> float:
        return start + sweep * (min(max(v, lo), hi) - lo) / (hi - lo)

    draw.arc(arc, start, start + sweep, fill="#2c3235", width=int(r * 0.22))
    for i, step in enumerate(steps):  # threshold markers on the rim
        a = step["value"] if step["value"] is not None else lo
        b = steps[i + 1]["value"] if i + 1 < len(steps) else hi
        draw.arc((cx - r - 10, cy - r - 10, cx + r + 10, cy + r + 10), angle(a), angle(b),
                 fill=COLOURS.get(step["color"], step["color"]), width=6)
    if value is not None:
        draw.arc(arc, start, angle(value), fill=colour_of(value, steps), width=int(r * 0.22))
    centered(draw, (cx - r * 0.6, cy - r * 0.35, cx + r * 0.6, cy + r * 0.35), fmt(value, unit), colour_of(value, steps), 0.9)


def _draw_bars(draw, box, values, unit, steps) -> None:
    x0, y0, x1, y1 = box
    if not values:
        centered(draw, box, "no data", MUTED, 0.3)
        return
    rows = max(len(values), 5)
    h = (y1 - y0) / rows
    top = max((v for _, v in values if v is not None), default=0) or 1
    name_w = (x1 - x0) * 0.22
    value_w = (x1 - x0) * 0.22
    label_font = fit(draw, "Wg", name_w, h * 0.55, bold=True, cap=34)
    for i, (name, value) in enumerate(values):
        y = y0 + i * h
        draw.text((x0 + 4, y + h * 0.2), name, font=label_font, fill=TEXT)
        bx0, bx1 = x0 + name_w, x1 - value_w
        draw.rounded_rectangle((bx0, y + h * 0.15, bx1, y + h * 0.85), radius=4, fill="#22252b")
        if value:
            draw.rounded_rectangle((bx0, y + h * 0.15, bx0 + (bx1 - bx0) * value / top, y + h * 0.85),
                                   radius=4, fill=colour_of(value, steps))
        text = fmt(value, unit)
        f = fit(draw, text, value_w - 10, h * 0.6, cap=34)
        draw.text((bx1 + 10, y + h * 0.18), text, font=f, fill=TEXT)


def _draw_trend(draw, box, data: WallData, values, unit, steps) -> None:
    x0, y0, x1, y1 = box
    legend_h = 40
    plot = (x0 + 110, y0 + 10, x1 - 20, y1 - legend_h - 30)
    series = data.trend
    sla = next((s["value"] for s in steps if s["value"] is not None), None)
    if not series:  # no Prometheus: the current rolling-hour values as flat references
        series = {name: [(data.now - data.trend_range_s, v), (data.now, v)] for name, v in values if v is not None}
    points = [v for pts in series.values() for _, v in pts if not math.isnan(v)]
    top = max(points + ([sla * 1.2] if sla else []), default=1) or 1
    t0, t1 = data.now - data.trend_range_s, data.now
    px0, py0, px1, py1 = plot
    small = font(20, bold=False)
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        y = py1 - (py1 - py0) * frac
        draw.line((px0, y, px1, y), fill="#2c3235", width=1)
        draw.text((x0 + 6, y - 12), duration(top * frac), font=small, fill=MUTED)
    for frac in (0, 0.5, 1.0):
        t = t0 + (t1 - t0) * frac
        label = time.strftime("%H:%M", time.localtime(t))
        draw.text((px0 + (px1 - px0) * frac - 28, py1 + 6), label, font=small, fill=MUTED)

    def xy(t: float, v: float) -> tuple[float, float]:
        return px0 + (px1 - px0) * (t - t0) / (t1 - t0), py1 - (py1 - py0) * min(v, top) / top

    for i, (name, pts) in enumerate(series.items()):
        colour = COLOURS["red"] if name == "SLA" else SERIES_COLOURS[i % len(SERIES_COLOURS)]
        line = [xy(t, v) for t, v in pts if t >= t0 and not math.isnan(v)]
        if len(line) >= 2:
            draw.line(line, fill=colour, width=4 if name != "SLA" else 2, joint="curve")
        elif line:
            draw.ellipse((line[0][0] - 4, line[0][1] - 4, line[0][0] + 4, line[0][1] + 4), fill=colour)
    if sla:
        y = xy(t0, sla)[1]
        for x in range(int(px0), int(px1), 24):
            draw.line((x, y, min(x + 12, px1), y), fill=COLOURS["red"], width=2)
    lx = px0
    legend = [(n, pts[-1][1] if pts else None) for n, pts in series.items()]
    for i, (name, last) in enumerate(legend):
        colour = COLOURS["red"] if name == "SLA" else SERIES_COLOURS[i % len(SERIES_COLOURS)]
        draw.rectangle((lx, y1 - legend_h + 12, lx + 28, y1 - legend_h + 20), fill=colour)
        label = f"{name}  {fmt(last, unit)}"
        draw.text((lx + 38, y1 - legend_h), label, font=font(26, bold=False), fill=TEXT)
        lx += 60 + draw.textlength(label, font=font(26, bold=False))


def render(dashboard: dict[str, Any], data: WallData) -> Image.Image:
    img = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    for panel in _panels(dashboard):
        draw_panel(img, panel, data)
    return img


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:6066", help="a worker's base URL")
    parser.add_argument("--prometheus", default=None, help="Prometheus base URL, for the response-time trend")
    parser.add_argument("--trend-range", default="8h", help="time range of the trend (the dashboard's: 8h)")
    parser.add_argument("--dashboard", type=Path, default=Path(__file__).resolve().parent / "dashboards" / "wall.json")
    parser.add_argument("--out", type=Path, default=Path("docs/wall.png"))
    args = parser.parse_args(argv)
    units = {"m": 60, "h": 3600, "d": 86400}
    range_s = float(args.trend_range[:-1]) * units[args.trend_range[-1]]
    dashboard = json.loads(args.dashboard.read_text())
    data = fetch(dashboard, args.url, args.prometheus, range_s)
    image = render(dashboard, data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
