"""KPIs through the real broker and worker(s), in event-clock mode, against hand-checked and batch answers.

- the golden example gives exactly ../shared/golden/expected.json, also after a kill -9 and restart;
- a messy log (out of order, late, too late, duplicates, won-before-created, reassigned, disqualified)
  gives, in every window, what the independent batch oracle computes from the same log, with one worker
  and with two workers sharing the partitions.
"""

from __future__ import annotations

import json

import pytest

from stream.kpi.engine import TOPICS_OF_GROUP
from tests.conftest import PARTITIONS, wait_for
from tests.integration.checks import oracle_answers, spec_part as _spec_part
from tests.oracle.compare import assert_same, without_section6
from tests.oracle.messy_log import make_messy_log, roster_yaml

GROUPS = len(TOPICS_OF_GROUP)  # leads, deals, customers: each has PARTITIONS partitions
pytestmark = pytest.mark.integration


def _processed(workers) -> float:
    return sum(
        w.counter("kpi_events_consumed_total") + w.counter("kpi_events_duplicate_total") + w.counter("kpi_events_deadlettered_total")
        for w in workers
    )


def _golden_messages(shared_dir):
    from tests.oracle.batch_kpis import topic_and_key

    lines = (shared_dir / "golden" / "events.jsonl").read_bytes().splitlines()
    return [(*topic_and_key(json.loads(line)), line) for line in lines if line.strip()]


def test_golden_example_exact_and_after_crash(make_deployment, shared_dir):
    expected = json.loads((shared_dir / "golden" / "expected.json").read_text())
    dep = make_deployment(KPI_CLOCK="event")
    worker = dep.start_worker()
    messages = _golden_messages(shared_dir)
    dep.produce(messages)
    wait_for(lambda: _processed([worker]) >= len(messages), 60, what="golden events processed")
    for window in ("all", "1h"):
        assert_same(without_section6(_spec_part(worker.kpis(window))), expected[window])

    worker.kill()  # kill -9: no graceful leave, no final commit
    restarted = dep.start_worker()
    for window in ("all", "1h"):
        assert_same(without_section6(_spec_part(restarted.kpis(window))), expected[window])


@pytest.mark.parametrize(
    "workers, timezone",
    [(1, "UTC"), (2, "America/New_York")],
    ids=["one-worker-utc", "two-workers-new-york"],
)
def test_messy_log_matches_batch_oracle(make_deployment, tmp_path, workers, timezone):
    log = make_messy_log(seed=7)
    roster_file = tmp_path / f"roster-{workers}.yaml"
    roster_file.write_text(roster_yaml())
    dep = make_deployment(KPI_CLOCK="event", KPI_TIMEZONE=timezone, KPI_ROSTER=str(roster_file))
    running = [dep.start_worker(wait=False) for _ in range(workers)]
    for w in running:
        w.wait_healthy()
    wait_for(
        lambda: all(sum(len(p) for p in w.health()[1]["partitions"].values()) > 0 for w in running)
        and sum(sum(len(p) for p in w.health()[1]["partitions"].values()) for w in running) == GROUPS * PARTITIONS,
        60, what="partitions shared by the workers",
    )
    dep.produce([(topic, key, json.dumps(event).encode()) for topic, key, event in log])
    wait_for(lambda: _processed(running) >= len(log), 120, what="messy log processed")

    for window, expected in oracle_answers(log, roster_file, timezone).items():
        for w in running:  # every worker answers with the global numbers
            assert_same(_spec_part(w.kpis(window)), expected, path=f"{window}@{w.port}")
