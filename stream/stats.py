"""Counters of the worker's own health, kept as plain numbers and exported at scrape time."""

from __future__ import annotations

import time
from collections import Counter


class PipelineStats:
    def __init__(self) -> None:
        self.consumed: Counter[tuple[str, str]] = Counter()  # (topic suffix, event type) -> applied events
        self.duplicates: Counter[str] = Counter()  # topic suffix -> redelivered events skipped
        self.deadlettered: Counter[str] = Counter()  # reason -> messages
        self.last_event_wall: float | None = None  # time.time() of the last processed message
        self.last_event_ts_ms: int | None = None  # occurred_at of the last applied event
        self.started = time.time()

    def applied(self, topic: str, event_type: str, ts_ms: int) -> None:
        self.consumed[(topic, event_type)] += 1
        self.last_event_wall = time.time()
        self.last_event_ts_ms = ts_ms

    def duplicate(self, topic: str) -> None:
        self.duplicates[topic] += 1
        self.last_event_wall = time.time()

    def dead_letter(self, reason: str) -> None:
        self.deadlettered[reason] += 1
        self.last_event_wall = time.time()
