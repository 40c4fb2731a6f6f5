"""The wall page in a real browser: a worker fed by a replayed log, /wall in headless Chromium at 1920x1080.

What a person in front of the TV would see: every tile shows the value /kpis has for it, formatted by the
page's rules; nothing overflows or is cut; the page turns "stale" within the advertised time once the
worker stops answering. The worker runs on the event clock (KPI_CLOCK=event, as replays do), so after the
replay every number holds still and the page and /kpis can be compared exactly.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from stream.config import PACKAGE_DIR
from stream.roster import load_roster
from stream.local.simulator import SalesFloor, backfill_start
from stream.worker.wall import tiles
from stream.local.browser import HEIGHT, WIDTH, chromium, ensure_chromium, wait_until
from tests.conftest import http_json, wait_for
from tests.stream.worker.wall import formats

pytestmark = pytest.mark.integration

ROSTER = load_roster(PACKAGE_DIR / "roster.example.yaml")
# Advertised: a worker that stops answering greys the page out within NO_ANSWER_S plus one refresh.
STALE_WITHIN_S = tiles.NO_ANSWER_S + tiles.REFRESH_S + 2


@pytest.fixture(scope="module")
def browser():
    ensure_chromium()  # installs Debian's chromium and chromium-driver when missing
    with chromium() as driver:
        yield driver


def replayed_floor(deployment) -> int:
    """Ten days of the simulated floor up to a minute ago, produced to the deployment's topics; the count.

    Ends with a lead nobody has called yet: whether the simulated floor leaves one waiting depends on the
    time of day, and the waiting tiles must show a number whenever the test runs."""
    now = datetime.now(timezone.utc) - timedelta(minutes=1)
    floor = SalesFloor(ROSTER, 18, backfill_start(now, "10d"))
    messages = [(m.topic, m.key, m.value) for m in floor.messages(now)]
    waiting = {"event_id": "wall-test-waiting", "type": "lead.created", "lead_id": "wall-test-waiting",
               "occurred_at": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
               "source": "web_form", "rep_id": "frank", "team": "farmers"}
    messages.append(("leads", waiting["lead_id"], json.dumps(waiting).encode()))
    deployment.produce(messages)
    return len(messages)


@pytest.fixture(scope="module")
def wall_worker(tmp_path_factory, stack):
    from tests.conftest import Deployment

    dep = Deployment(tmp_path_factory.mktemp("wall"), KPI_CLOCK="event")
    worker = dep.start_worker()
    sent = replayed_floor(dep)
    wait_for(lambda: worker.counter("kpi_events_consumed_total") == sent, 120, what="the replay applied")
    yield worker
    dep.stop()


def kpis(worker, window: str) -> dict:
    return worker.kpis(window)


def page_text(driver, selector: str) -> str:
    return driver.execute_script("return document.querySelector(arguments[0]).textContent;", selector)


def open_wall(driver, worker, query: str = "") -> None:
    driver.get(f"{worker.url}/wall{query}")
    wait_until(driver, "document.getElementById('freshness-state').textContent === 'live' && "
                       "document.querySelector('#trend path') !== null && "
                       "document.querySelectorAll('#leaderboard li[data-rep]').length > 0")


def expected_tiles(worker, scope: str | None) -> dict[str, str]:
    docs = {w: kpis(worker, w) for w in tiles.windows()}
    out = {}
    for tile in (*tiles.HEADLINES, tiles.WON_TODAY):
        doc = docs[tile.kpi_window]
        values = doc["overall"] if scope is None else doc["teams"][scope]
        out[tile.id] = formats.show(tile.format, values.get(tile.key))
    return out


def test_every_tile_shows_what_kpis_has(browser, wall_worker):
    open_wall(browser, wall_worker)
    assert browser.execute_script("return [window.innerWidth, window.innerHeight];") == [WIDTH, HEIGHT]
    expected = expected_tiles(wall_worker, None)
    shown = {tid: page_text(browser, f"#tile-{tid} .value") for tid in expected}
    assert shown == expected
    # A replayed floor has every headline: nothing shows the em dash of "no data".
    assert formats.NONE not in shown.values()

    # Won today against the day's target: the roster's monthly quotas over the month's business days.
    status = http_json(f"{wall_worker.url}/wall/status")[1]
    won = kpis(wall_worker, "today")["overall"]["won_revenue"]
    target = status["target"]["day"]
    quotas = sum(r.monthly_quota for r in ROSTER.reps)
    assert quotas / 23 <= target <= quotas / 20
    assert page_text(browser, f"#tile-{tiles.WON_TODAY.id} .sub") == \
        f"target {formats.money(target)} · {formats.percent(won / target)}"

    # The leaderboard: the month's won revenue by rep, highest first, as /kpis has it.
    reps = kpis(wall_worker, tiles.LEADERBOARD.window)["reps"]
    ranked = sorted(((r, v.get("won_revenue") or 0) for r, v in reps.items()
                     if r != "unassigned" and "won_revenue" in v), key=lambda rv: (-rv[1], rv[0]))
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#leaderboard li')].map(li => "
        "[li.querySelector('.name').textContent, li.querySelector('.amount').textContent]);")
    assert rows == [[r, formats.money(v)] for r, v in ranked[: tiles.LEADERBOARD.size]]
    assert len(rows) == tiles.LEADERBOARD.size

    # The trend's newest point is the rolling hour of /kpis?window=1h (same `now` on the event clock).
    trend = http_json(f"{wall_worker.url}/wall/trend")[1]
    hour = kpis(wall_worker, "1h")["overall"]
    assert trend["points"][-1]["median"] == hour["lead_response_seconds_p50"]
    assert trend["points"][-1]["p90"] == hour["lead_response_seconds_p90"]
    assert len(trend["points"]) == tiles.TREND.hours * 60 // tiles.TREND.step_minutes + 1
    assert sum(p["median"] is not None for p in trend["points"]) > len(trend["points"]) // 2


def test_colours_follow_the_thresholds(browser, wall_worker):
    open_wall(browser, wall_worker)
    today = kpis(wall_worker, "today")["overall"]
    sla = 300.0
    for tile in tiles.HEADLINES:
        value = (today if tile.window in (None, "today") else kpis(wall_worker, tile.kpi_window)["overall"])[tile.key]
        colour = "none" if value is None else [c for at, c in tile.thresholds(sla) if at is None or value >= at][-1]
        classes = browser.execute_script("return document.getElementById(arguments[0]).className;", f"tile-{tile.id}")
        assert f"is-{colour}" in classes.split(), (tile.id, value, classes)


def test_nothing_overflows_or_is_cut(browser, wall_worker):
    open_wall(browser, wall_worker)
    problems = browser.execute_script("""
        const out = [];
        const W = window.innerWidth, H = window.innerHeight;
        if (document.documentElement.scrollHeight > H || document.documentElement.scrollWidth > W)
            out.push(['page scrolls', document.documentElement.scrollWidth, document.documentElement.scrollHeight]);
        const boxes = document.querySelectorAll('.tile, .tile .title, .tile .value, .tile .sub, #leaderboard li, '
            + '#leaderboard .amount, #leaderboard .name, .legend, .badge, .badge .detail, header h1');
        for (const el of boxes) {
            const r = el.getBoundingClientRect();
            const id = (el.closest('.tile') || el).id + ' ' + el.className;
            if (r.left < 0 || r.top < 0 || r.right > W + 0.5 || r.bottom > H + 0.5) out.push(['outside', id, r.right, r.bottom]);
            if (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1)
                out.push(['cut', id, el.scrollWidth, el.clientWidth, el.scrollHeight, el.clientHeight]);
        }
        for (const li of document.querySelectorAll('#leaderboard li')) {
            const list = li.parentElement.getBoundingClientRect(), r = li.getBoundingClientRect();
            if (r.bottom > list.bottom + 0.5) out.push(['leaderboard row below its panel', li.dataset.rep]);
        }
        return out;
    """)
    assert problems == []
    # Big enough to read across a room: every headline number is at least 48 px high.
    sizes = browser.execute_script(
        "return [...document.querySelectorAll('#headlines .value')].map(e => parseFloat(getComputedStyle(e).fontSize));")
    assert len(sizes) == len(tiles.HEADLINES) + 1 and min(sizes) >= 48


def test_team_wall_shows_the_team(browser, wall_worker):
    open_wall(browser, wall_worker, "?team=inbound")
    expected = expected_tiles(wall_worker, "inbound")
    assert {tid: page_text(browser, f"#tile-{tid} .value") for tid in expected} == expected
    team_reps = {r.rep_id for r in ROSTER.reps if r.team == "inbound"}
    shown = browser.execute_script("return [...document.querySelectorAll('#leaderboard li')].map(li => li.dataset.rep);")
    assert shown and set(shown) <= team_reps
    assert page_text(browser, "#scope") == "team inbound"
    assert http_json(f"{wall_worker.url}/wall?team=nobody")[0] == 404


def test_the_page_turns_stale_when_the_worker_stops(browser, wall_worker):
    open_wall(browser, wall_worker)
    assert "stale" not in browser.execute_script("return document.body.className;")
    wall_worker.terminate()
    stopped = time.monotonic()
    wait_until(browser, "document.body.classList.contains('stale')", timeout=STALE_WITHIN_S + 5)
    took = time.monotonic() - stopped
    assert took <= STALE_WITHIN_S
    assert page_text(browser, "#freshness-state") == "stale"
    assert page_text(browser, "#freshness-detail").startswith("no answer from the worker")
    assert browser.execute_script("return !document.getElementById('stale-banner').hidden;")
