"""Bench data: seeded simulator events (cached on disk) and compact generators for state and latency runs.

``simulated(n)`` is what the throughput bench pre-loads: the first ``n`` messages of the simulator's sales
floor from a fixed seed and start, so every run (and every machine) gets byte-identical data. Generating
is slower than loading (~50 k messages/s), so the messages are cached under ``.stack/bench/data``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from bench.common import BENCH_DIR, say

SIM_SEED = 7
# A Monday, in the past (a worker dead-letters events from the future), replayed with KPI_CLOCK=event.
SIM_START = datetime(2026, 3, 2, tzinfo=timezone.utc)
DATA_DIR = BENCH_DIR / "data"

Message = tuple[str, bytes, bytes]  # (topic suffix, key, value)


def _floor(n: int):
    from stream.config import load_settings
    from stream.roster import load_roster
    from stream.local.simulator import SalesFloor

    roster = load_roster(load_settings().kpi_roster)
    # Floor size: about n messages over two simulated days (lifecycles run for hours to days).
    return SalesFloor(roster, SIM_SEED, SIM_START, events_per_second=max(20.0, n / 172_800 * 2))


def simulated(n: int) -> list[Message]:
    """The first ``n`` simulator messages (cached: generated once per n)."""
    path = DATA_DIR / f"sim-s{SIM_SEED}-{SIM_START:%Y%m%d}-{n}.tsv"
    if path.exists():
        t0 = time.monotonic()
        out = [_split(line) for line in path.read_bytes().splitlines()]
        say(f"data: {len(out):,} simulator messages read from {path.relative_to(BENCH_DIR.parent.parent)} "
            f"in {time.monotonic() - t0:.1f}s")
        return out
    t0 = time.monotonic()
    out = [(m.topic, m.key.encode(), m.value) for m in itertools.islice(_floor(n).messages(), n)]
    took = time.monotonic() - t0
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for topic, key, value in out:
            f.write(b"%s\t%s\t%s\n" % (topic.encode(), key, value))
    tmp.rename(path)
    say(f"data: generated {len(out):,} simulator messages in {took:.1f}s ({len(out) / took:,.0f}/s), "
        f"cached in {path.relative_to(BENCH_DIR.parent.parent)}")
    return out


def _split(line: bytes) -> Message:
    topic, key, value = line.split(b"\t", 2)
    return topic.decode(), key, value


def with_prefix(messages: list[Message], prefix: str) -> Iterator[tuple[str, bytes, bytes]]:
    topics = {s: prefix + s for s in ("leads", "calls", "deals")}
    return ((topics[t], k, v) for t, k, v in messages)


def counts_by_topic(messages: list[Message]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t, _, _ in messages:
        out[t] = out.get(t, 0) + 1
    return out


def data_path_note(path: Path) -> str:
    return str(path)
