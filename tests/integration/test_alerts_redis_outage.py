"""Redis stopped under two real workers (a private redis-server, never the shared one): lead alerts still
fire, once each, from in-process state; when Redis comes back empty (no persistence) the workers write
their alert state into it again; then one worker is killed and the other adopts its partitions and alerts
— and sends nothing twice. Touching the leads resolves each alert once."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone

import pytest

from alerts.state import RedisAlertStore
from tests.alerts.conftest import private_redis, receiver  # noqa: F401  (fixtures)
from tests.conftest import wait_for

pytestmark = pytest.mark.integration
LEADS = [f"R{i}" for i in range(12)]
RULES = "rules: [{name: sla, type: lead_sla, deadline: 4s, calendar: none}]\n"


def _event(lead: str, kind: str) -> tuple[str, str, bytes]:
    doc = {"event_id": f"{kind}-{lead}", "type": f"lead.{kind}", "lead_id": lead, "rep_id": "hana",
           "occurred_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    if kind == "touched":
        doc["channel"] = "sms"
    return "leads", lead, json.dumps(doc).encode()


def _firing_in_redis(url: str, app_id: str) -> set[str]:
    async def read() -> set[str]:
        store = RedisAlertStore.from_url(url, app_id)
        try:
            return {i.scope["lead_id"] for i in await store.list_instances() if i.state == "firing"}
        finally:
            await store.close()
    return asyncio.run(read())


def test_two_workers_alert_through_a_redis_outage_and_an_adoption_without_a_duplicate(
        make_deployment, receiver, private_redis, tmp_path):  # noqa: F811
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    dep = make_deployment(KPI_ALERT_RULES=str(rules), KPI_ALERT_WEBHOOK_URL=f"{receiver.url}/webhook",
                          REDIS_URL=private_redis.url, KPI_ALERT_EVAL_SECONDS="0.5")
    w1, w2 = dep.start_worker(), dep.start_worker()
    wait_for(lambda: sorted(p for w in (w1, w2) for p in w.health()[1]["partitions"].get("leads", [])) == [0, 1, 2, 3]
             and all(w.health()[0] == 200 for w in (w1, w2)), 60, what="both workers assigned")
    owned = {w: w.health()[1]["partitions"]["leads"] for w in (w1, w2)}
    assert all(owned.values()), owned  # each worker owns lead partitions, so each sends some alerts

    def kinds() -> list[tuple[str, str]]:
        return sorted((d["labels"]["lead_id"], d["kind"]) for d in (r.json() for r in receiver.on("/webhook")))

    private_redis.stop()
    dep.produce([_event(lead, "created") for lead in LEADS])
    wait_for(lambda: len(kinds()) == len(LEADS), 30, what="every lead alert, with Redis down")
    assert all("kpi_alert_state_redis_up 0.0" in w.metrics() for w in (w1, w2))

    private_redis.start()  # back, and empty
    wait_for(lambda: all("kpi_alert_state_redis_up 1.0" in w.metrics() for w in (w1, w2)), 30, what="Redis up again")
    wait_for(lambda: _firing_in_redis(private_redis.url, dep.app_id) == set(LEADS), 30,
             what="the firing alerts written back into the fresh Redis")

    victim = max((w1, w2), key=lambda w: len(owned[w]))
    survivor = w2 if victim is w1 else w1
    victim.kill()  # kill -9: its alerts are adopted by the survivor
    wait_for(lambda: survivor.health()[0] == 200 and len(survivor.health()[1]["partitions"]["leads"]) == 4, 60,
             what="the survivor owns every partition")
    time.sleep(3)  # several evaluations of the adopted alerts: a re-send would arrive now
    assert kinds() == sorted((lead, "firing") for lead in LEADS)

    dep.produce([_event(lead, "touched") for lead in LEADS])
    wait_for(lambda: len(kinds()) == 2 * len(LEADS), 30, what="every resolve")
    time.sleep(2)
    assert kinds() == sorted((lead, kind) for lead in LEADS for kind in ("firing", "resolved"))
    keys = [r.json()["idempotency_key"] for r in receiver.on("/webhook")]
    assert len(keys) == len(set(keys))
