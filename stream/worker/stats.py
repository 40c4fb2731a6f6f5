"""Counters of the worker's own health, kept as plain numbers and exported at scrape time.

Nothing here imports Prometheus: ``stream.worker.metrics`` turns these numbers into metric families when
Prometheus scrapes, so a test can drive ``PipelineStats`` with a fake clock and read it back directly.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable

# Processing latency = wall clock when the event is applied − its occurred_at. In live operation it is
# the producers' delay plus Kafka plus our queueing: tens of milliseconds to seconds, and minutes when
# something lags. Replaying history makes it as large as the age of the events (days): those land in
# +Inf, which is honest — a replay is not live — and is why the buckets stop at an hour.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)


class Histogram:
    """A fixed-bucket histogram as plain counts (Prometheus ``le`` semantics: value ≤ bound)."""

    def __init__(self, bounds: Iterable[float] = LATENCY_BUCKETS_S) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)  # the last slot is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """``[(upper bound, observations ≤ bound), …, (inf, count)]``."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts):
            running += n
            out.append((bound, running))
        return out


class PipelineStats:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.consumed: Counter[tuple[str, str]] = Counter()  # (topic suffix, event type) -> applied events
        self.duplicates: Counter[str] = Counter()  # topic suffix -> redelivered events skipped
        self.deadlettered: Counter[str] = Counter()  # reason -> messages
        self.last_event_wall: float | None = None  # wall time of the last processed message (any outcome)
        self.max_event_ts_ms: int | None = None  # largest occurred_at applied (event-time progress)
        self.latency = Histogram(LATENCY_BUCKETS_S)  # seconds from occurred_at to applied
        # (full topic, partition) -> the next offset this worker has to process: what lag is measured from.
        self.positions: dict[tuple[str, int], int] = {}
        self.started = clock()

    def processed(self, topic: str, partition: int, offset: int) -> None:
        self.positions[(topic, partition)] = offset + 1

    def applied(self, topic: str, event_type: str, ts_ms: int) -> None:
        now = self.clock()
        self.consumed[(topic, event_type)] += 1
        self.last_event_wall = now
        if self.max_event_ts_ms is None or ts_ms > self.max_event_ts_ms:
            self.max_event_ts_ms = ts_ms
        # Up to 5 minutes of producer clock skew are accepted (dead-letter reason `future`): count those as 0.
        self.latency.observe(max(0.0, now - ts_ms / 1000))

    def duplicate(self, topic: str) -> None:
        self.duplicates[topic] += 1
        self.last_event_wall = self.clock()

    def dead_letter(self, reason: str) -> None:
        self.deadlettered[reason] += 1
        self.last_event_wall = self.clock()
