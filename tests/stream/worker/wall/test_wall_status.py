"""/wall/status across workers: freshness is the latest over every worker (the pipeline is live if any
worker moves), a worker that does not answer is named, and the day's target comes from the roster."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import http_json, wait_for

pytestmark = pytest.mark.integration


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_freshness_is_the_latest_over_all_workers(deployment):
    first = deployment.start_worker()
    second = deployment.start_worker()
    now = datetime.now(timezone.utc)
    newest = now - timedelta(seconds=40)
    events = [(f"L{i}", now - timedelta(minutes=30 - i)) for i in range(20)] + [("L-newest", newest)]
    deployment.produce([("leads", lead, json.dumps({
        "event_id": f"e-{lead}", "type": "lead.created", "lead_id": lead, "rep_id": "hana",
        "occurred_at": _iso(at)}).encode()) for lead, at in events])

    def status(worker) -> dict:
        code, doc = http_json(f"{worker.url}/wall/status?team=hunters")
        assert code == 200, doc
        return doc

    # Both workers own partitions and answer: each reports the same global freshness.
    wait_for(lambda: all(status(w)["freshness"]["newest_event_at"] == _iso(newest) for w in (first, second)),
             60, what="both workers report the newest event")
    for worker in (first, second):
        doc = status(worker)
        fresh = doc["freshness"]
        assert fresh["workers"] == 2 and fresh["unreachable_workers"] == []
        assert 40 <= fresh["event_time_lag_seconds"] < 100
        assert fresh["seconds_since_last_event"] < 60
        # hunters' monthly quotas (hana 60k, hugo 50k, heidi 50k, henry 45k) over the month's business days.
        assert doc["target"]["month"] == 205_000 and 205_000 / 23 <= doc["target"]["day"] <= 205_000 / 20

    # Killed: until the group notices (a 10 s session timeout) the assignment still names it, and the
    # status says it did not answer rather than pass one worker's view off as the whole pipeline's.
    second.kill()
    fresh = status(first)["freshness"]
    assert fresh["workers"] == 1 and fresh["unreachable_workers"] == [second.url]
