"""A sink that hangs and one that answers 500 do not slow a real worker: two deployments on the real broker
and Redis replay the same two hours of a simulated sales floor with the event clock, so their alert
engines fire, escalate and resolve hundreds of lead alerts on the way. One worker's sinks are healthy,
the other's hang (webhook) and fail (Slack). Both run at the same time, so both meet the same load on
the machine; the broken one must consume the log about as fast, stay healthy, count the same KPIs, and
bound what it could not send (dropped, failed)."""

from __future__ import annotations

import json
import time

import pytest

from tests.alerts.conftest import forget_alert_state, receiver  # noqa: F401  (fixtures)
from tests.alerts.helpers import BUSY_FLOOR_RULES, busy_floor
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


def _log() -> list[tuple[str, str, bytes]]:
    return [(e.topic, e.key, json.dumps(e.event).encode()) for e in busy_floor()]


def test_broken_sinks_do_not_slow_a_real_worker(forget_alert_state, make_deployment, receiver, tmp_path):  # noqa: F811
    rules = tmp_path / "rules.yaml"
    rules.write_text(BUSY_FLOOR_RULES)
    common = {"KPI_CLOCK": "event", "KPI_ALERT_RULES": str(rules), "KPI_ALERT_EVAL_SECONDS": "0.5"}
    healthy = make_deployment(**common, KPI_ALERT_WEBHOOK_URL=f"{receiver.url}/webhook",
                              SLACK_WEBHOOK_URL=f"{receiver.url}/slack/webhook")
    broken = make_deployment(**common, KPI_ALERT_WEBHOOK_URL=f"{receiver.url}/hang",
                             SLACK_WEBHOOK_URL=f"{receiver.url}/fail", KPI_ALERT_QUEUE_SIZE="200",
                             KPI_ALERT_SINK_TIMEOUT_SECONDS="0.5", KPI_ALERT_SINK_ATTEMPTS="3")
    forget_alert_state.extend([healthy.app_id, broken.app_id])
    log = _log()
    for dep in (healthy, broken):  # the whole log is on the topics before either worker starts
        dep.produce(log)
    workers = {"healthy": healthy.start_worker(wait=False), "broken": broken.start_worker(wait=False)}
    for worker in workers.values():
        worker.wait_healthy()
    started = time.monotonic()
    done: dict[str, float] = {}

    def all_consumed() -> bool:
        for name, worker in workers.items():
            if name not in done and worker.counter("kpi_events_consumed_total") >= len(log):
                done[name] = time.monotonic() - started
        return len(done) == 2

    wait_for(all_consumed, 180, interval=0.2, what=f"both workers consumed the {len(log)} events")
    time.sleep(2)  # let the alert engines catch up with the last events
    metrics = {name: w.metrics() for name, w in workers.items()}

    def sample(name: str, family: str, sink: str) -> float:
        line = next((line for line in metrics[name].splitlines() if line.startswith(f'{family}{{sink="{sink}"}}')), None)
        return float(line.rsplit(" ", 1)[1]) if line else 0.0

    sent = sample("healthy", "kpi_alerts_sent_total", "webhook")
    dropped = sample("broken", "kpi_alerts_dropped_total", "webhook")
    failed = sample("broken", "kpi_alerts_failed_total", "slack")
    print(f"\n{len(log)} events: healthy sinks consumed in {done['healthy']:.1f} s ({sent:.0f} webhooks sent); "
          f"hanging + 500 sinks in {done['broken']:.1f} s ({dropped:.0f} dropped, {failed:.0f} failed)")
    assert sent > 100  # the replay does alert a lot
    assert done["broken"] <= 1.5 * done["healthy"] + 3.0
    assert dropped > 0 and failed > 0  # what could not be sent was bounded and counted, not queued forever
    assert receiver.on("/hang") and receiver.on("/fail")
    assert all(w.health()[0] == 200 and w.proc.poll() is None for w in workers.values())
    kpis = {name: w.kpis("all")["overall"] for name, w in workers.items()}
    assert kpis["broken"] == kpis["healthy"] and kpis["healthy"]["leads_created"] > 100
