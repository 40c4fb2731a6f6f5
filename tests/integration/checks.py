"""Checks shared by the pipeline and reliability tests: a worker's global /kpis against the batch oracle."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PARTITIONS
from tests.oracle.batch_kpis import compute_kpis, drop_too_late, event_clock_now, kafka_partition, load_roster_yaml
from tests.oracle.compare import assert_same

DOCUMENT_KEYS = ("as_of", "window", "overall", "teams", "reps", "stages", "products")
WINDOWS = ("all", "1h", "24h", "today", "week", "month", "quarter")


def spec_part(doc: dict) -> dict:
    assert "incomplete" not in doc, doc.get("incomplete")
    return {k: doc[k] for k in DOCUMENT_KEYS}


def oracle_answers(log, roster_file, timezone: str = "UTC", windows=WINDOWS) -> dict[str, dict]:
    """What the independent batch oracle says for each window, given the log in arrival order."""
    accepted = drop_too_late([(topic, kafka_partition(key, PARTITIONS), event) for topic, key, event in log])
    now = event_clock_now(accepted)
    roster = load_roster_yaml(str(roster_file))
    return {w: compute_kpis(accepted, w, now, timezone=timezone, roster=roster) for w in windows}


def assert_workers_match(workers, expected: dict[str, dict], timeout: float = 120.0, percentile_rel: float = 1e-9) -> None:
    """Every worker answers every window with the oracle's numbers, once processing has caught up.

    Polls until the answers match (or time runs out), then asserts, so a failure shows the difference.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            for w in workers:
                for window, answer in expected.items():
                    assert_same(spec_part(w.kpis(window)), answer, path=f"{window}@{w.port}", percentile_rel=percentile_rel)
            return
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def exported_overall(workers, metric: str, window: str = "all") -> tuple[int, float | None]:
    """(number of workers exporting KPI series, the overall value of ``metric`` they export)."""
    leaders, value = 0, None
    for w in workers:
        families = {f.name: f for f in text_string_to_metric_families(w.metrics())}
        if families["kpi_exporter_leader"].samples[0].value != 1:
            continue
        leaders += 1
        for sample in families[metric].samples:
            if sample.labels.get("scope") == "overall" and sample.labels.get("window") == window:
                value = sample.value
    return leaders, value
