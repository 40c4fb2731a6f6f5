"""The worker's HTTP server, on real workers: it serves /kpis, /metrics, /healthz and what workers ask each
other (/internal/partials), and nothing else — none of Faust's own views (/table/… holds lead and deal
rows, /router/… the cluster's addresses). KPI_WEB_TOKEN guards all but /healthz (and, if a setting says
so, /metrics); workers send it to each other; a non-loopback KPI_WEB_HOST without it is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import REPO_ROOT, wait_for

pytestmark = pytest.mark.integration
TOKEN = "web-test-token-5b1f"


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=20) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _leads(n: int) -> list[tuple[str, str, bytes]]:
    at = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat(timespec="seconds").replace("+00:00", "Z")
    return [("leads", f"L{i}", json.dumps({"event_id": f"e{i}", "type": "lead.created", "occurred_at": at,
                                            "lead_id": f"L{i}", "rep_id": "hana"}).encode()) for i in range(n)]


# Faust registers these views unless told not to: tables (keys and values), routing (every worker's
# URL), statistics, the assignment, the service graph, the index page.
FAUST_PATHS = ["/", "/table/", "/table/leads_entities/", "/table/leads_entities/L1/", "/router/",
               "/router/leads_entities/", "/router/leads_entities/L1/", "/router/topics", "/stats/",
               "/assignment/", "/graph/", "/performance/"]


def test_a_worker_serves_its_own_endpoints_and_none_of_faust(deployment):
    worker = deployment.start_worker()
    deployment.produce(_leads(3))
    wait_for(lambda: worker.kpis()["overall"]["leads_created"] == 3, 30, what="3 leads counted")
    seen = {path: get(worker.url + path)[0] for path in FAUST_PATHS}
    seen.update({path: get(worker.url + path)[0] for path in (
        "/kpis", "/healthz", "/metrics", "/internal/partials?window=all", "/internal/partials?now=abc",
        "/internal/partials?window=forever", "/wall", "/wall/wall.js", "/wall/status", "/wall/trend")})
    assert seen == {**{path: 404 for path in FAUST_PATHS}, "/kpis": 200, "/healthz": 200, "/metrics": 200,
                    "/wall": 200, "/wall/wall.js": 200, "/wall/status": 200, "/wall/trend": 200,
                    "/internal/partials?window=all": 200, "/internal/partials?now=abc": 400,
                    "/internal/partials?window=forever": 400}
    status, body = get(worker.url + "/internal/partials?now=abc")
    assert json.loads(body) == {"error": "`now` must be milliseconds since the epoch, got 'abc'"}


def test_the_web_token_guards_all_but_health_and_workers_pass_it_to_each_other(make_deployment):
    dep = make_deployment(KPI_WEB_TOKEN=TOKEN)
    w1 = dep.start_worker(loglevel="debug")  # its log is read for the token below: every line of it
    w2 = dep.start_worker(KPI_WEB_METRICS_PUBLIC="true")  # a scraper without the token may read its /metrics
    wait_for(lambda: sum(len(w.health()[1]["partitions"].get("leads", [])) for w in (w1, w2)) == 4
             and all(w.health()[0] == 200 for w in (w1, w2)), 60, what="both workers assigned")
    dep.produce(_leads(40))

    def complete_on(worker) -> bool:  # needs the other worker's partials, fetched with the token
        doc = worker.kpis()
        return "incomplete" not in doc and doc["overall"]["leads_created"] == 40
    wait_for(lambda: complete_on(w1) and complete_on(w2), 30, what="both workers' /kpis complete")

    seen = {}
    for name, worker in (("w1", w1), ("w2", w2)):
        for path in ("/healthz", "/kpis", "/metrics", "/internal/partials?window=all", "/table/leads_entities/",
                     "/wall/status", "/wall/wall.js"):
            seen[name, path] = tuple(get(worker.url + path, token)[0] for token in (None, "wrong-token", TOKEN))
    guarded = (401, 401, 200)
    # A TV's browser opens the wall by URL (no header); its script then sends the token as a header.
    assert [get(f"{w1.url}/wall{query}")[0] for query in ("", "?token=wrong-token", f"?token={TOKEN}")] == [401, 401, 200]
    assert seen == {
        ("w1", "/healthz"): (200, 200, 200), ("w1", "/kpis"): guarded, ("w1", "/metrics"): guarded,
        ("w1", "/internal/partials?window=all"): guarded, ("w1", "/table/leads_entities/"): (404, 404, 404),
        ("w2", "/healthz"): (200, 200, 200), ("w2", "/kpis"): guarded, ("w2", "/metrics"): (200, 200, 200),
        ("w2", "/internal/partials?window=all"): guarded, ("w2", "/table/leads_entities/"): (404, 404, 404),
        **{(name, "/wall/status"): guarded for name in ("w1", "w2")},
        **{(name, "/wall/wall.js"): (200, 200, 200) for name in ("w1", "w2")},
    }
    status, body = get(w1.url + "/kpis")
    assert json.loads(body)["error"] == "unauthorized"
    # `kpi-monitor kpis` sends KPI_WEB_TOKEN when it is set, and says what is missing when it is not.
    cli = [sys.executable, "-m", "stream.cli", "kpis", "--json", "--window", "all", "--url", w1.url]
    env = {k: v for k, v in dep.env.items() if k != "KPI_WEB_TOKEN"}
    shown = subprocess.run(cli, cwd=REPO_ROOT, env={**env, "KPI_WEB_TOKEN": TOKEN}, capture_output=True, text=True)
    assert shown.returncode == 0 and json.loads(shown.stdout)["overall"]["leads_created"] == 40, shown.stderr
    refused = subprocess.run(cli, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode == 1 and refused.stderr.strip() == (
        f"Error: the worker at {w1.url} answered 401 (set KPI_WEB_TOKEN to its token)"), refused.stderr
    for worker in (w1, w2):
        assert TOKEN not in worker.log_path.read_text()
    assert "web auth: bearer token)" in w1.log_path.read_text()
    assert "web auth: bearer token (/metrics open))" in w2.log_path.read_text()


def _exit_of(worker, timeout: float = 60) -> tuple[int | None, str]:
    try:
        worker.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    return worker.proc.poll(), worker.log_path.read_text()


def test_a_worker_reachable_from_other_machines_needs_a_token(make_deployment):
    dep = make_deployment()
    refused = dep.start_worker(wait=False, KPI_WEB_HOST="0.0.0.0")
    code, log = _exit_of(refused)
    if code is None:  # it started: say what anyone on the network gets
        status = get(refused.url + "/kpis")[0]
        raise AssertionError(f"a worker on 0.0.0.0 without KPI_WEB_TOKEN started; /kpis answered {status} to anyone")
    assert code != 0 and log.strip().splitlines()[-1] == (
        "Error: KPI_WEB_TOKEN: required when KPI_WEB_HOST (0.0.0.0) is not a loopback address "
        "(or KPI_WEB_ALLOW_OPEN=true on a network you trust)"), log
    opted_out = dep.start_worker(KPI_WEB_HOST="0.0.0.0", KPI_WEB_ALLOW_OPEN="true")  # it starts: the user said so
    assert get(opted_out.url + "/kpis")[0] == 200
    assert "web auth: open (KPI_WEB_ALLOW_OPEN))" in opted_out.log_path.read_text()
