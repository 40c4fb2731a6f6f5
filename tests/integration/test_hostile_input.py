"""Hostile and malformed input on the real broker (issue #6, point 5).

A corpus of >= 10,000 bad messages (tests/oracle/hostile_corpus.py: invalid UTF-8, truncated and deeply
nested JSON, messages up to the largest value a 1 MiB topic accepts, wrong types, NaN/Infinity, huge
numbers, negative and absurd amounts, years 1 and 9999, unknown types, missing keys, injection-like
strings, control characters, tombstones, ...) is produced mixed into a valid messy log whose extra events
carry hostile-but-legal ids and names. Then:

* the dead-letter topic holds exactly one record per bad message (matched by source topic, partition and
  offset) with the reason the corpus labels it with, its size and sha256, and nothing for valid events
  except the log's too-late ones;
* the dead-letter counter equals the count by reason, and consumed/duplicate counters add up;
* `/kpis` equals the batch oracle over the valid events in every window, and `/metrics` still parses
  (rep and team names become label values);
* the worker never restarted (same process throughout, no crash or restart in its log, healthy) and its
  peak RSS (VmHWM) stayed under 1 GiB.

The default variant runs in well under a minute, the worker taking messages as they arrive. `pytest -m slow`
runs a soak with 5x the bad messages and 200 messages of 256 KiB to 1 MiB, all on the broker before the
worker starts (it then fetches as fast as it can: the worst case for its memory).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BOOTSTRAP, PARTITIONS, wait_for
from tests.oracle.batch_kpis import compute_kpis, drop_too_late, event_clock_now, kafka_partition, load_roster_yaml
from tests.oracle.compare import assert_same
from stream.local.stack import TOPIC_NAMES
from tests.oracle.hostile_corpus import (
    MAX_VALUE_BYTES,
    BadMessage,
    interleave,
    make_bad_messages,
    with_hostile_valid_events,
)
from tests.oracle.messy_log import make_messy_log, roster_yaml

pytestmark = pytest.mark.integration

RSS_LIMIT_BYTES = 1024**3
WINDOWS = ("all", "1h", "24h", "today", "month")
DOCUMENT_KEYS = ("as_of", "window", "overall", "teams", "reps", "stages", "products", "sources", "campaigns")
# What a worker's log must never show: Faust logs "Crashed reason=..." for an agent that raised and
# "Restarting ..." when its supervisor starts it again; any traceback means an unhandled error.
CRASH_SIGNS = re.compile(r"Traceback|[Cc]rash|[Rr]estart|internal_error")


@dataclass
class Corpus:
    """One run's input, in arrival order, and everything the worker must make of it."""

    entries: list[tuple[str, bytes | None, bytes | None]]  # (topic suffix, key, value) as produced
    expected_reason: dict[int, str]  # index in entries -> dead-letter reason
    accepted: list[dict]  # valid events that must count (too-late ones dropped, duplicates kept)
    bad: list[BadMessage]
    too_late: int


def build_corpus(seed: int, bad_count: int, huge: int, n_leads: int, n_deals: int) -> Corpus:
    log = with_hostile_valid_events(make_messy_log(seed=seed, n_leads=n_leads, n_deals=n_deals), seed=seed)
    log = [(topic, key, dict(event)) for topic, key, event in log]  # one object per arrival (positions by id)
    bad = make_bad_messages(seed=seed, count=bad_count, huge=huge)
    entries: list[tuple[str, bytes | None, bytes | None]] = []
    expected: dict[int, str] = {}
    valid_positions: dict[int, int] = {}  # id() of a valid event -> index in entries
    for kind, item in interleave(log, bad, seed=seed):
        if kind == "bad":
            expected[len(entries)] = item.reason
            entries.append((item.topic, item.key, item.value))
        else:
            topic, key, event = item
            valid_positions[id(event)] = len(entries)
            # Raw UTF-8, not \u escapes: emoji, CJK, U+2028 and DEL in names reach the worker as they are.
            entries.append((topic, key.encode(), json.dumps(event, ensure_ascii=False).encode()))
    rejected: list[dict] = []
    accepted = drop_too_late([(t, kafka_partition(k, PARTITIONS), e) for t, k, e in log], rejected)
    for event in rejected:
        expected[valid_positions[id(event)]] = "too_late"
    return Corpus(entries, expected, accepted, bad, len(rejected))


# ------------------------------------------------------------------------------------------ kafka io --
# Headers are input too: the worker must ignore them, however odd (Faust reads some of its own by name).
HOSTILE_HEADERS = [("", b""), ("x-evil\u0000\n", b"\xff" * 64), ("X-Faust-Key-Type", b"\x00garbage"),
                   ("content-type", b"application/x-java-serialized-object"), ("h" * 300, b"v" * 4096)]


async def _produce(prefix: str, entries) -> list[tuple[str, int, int]]:
    """Produce in order (acks=all, idempotent), every 7th message with hostile headers; (topic, partition,
    offset) of each message."""
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True, linger_ms=20,
        max_request_size=2 * 1024 * 1024,  # a 1 MiB value plus the request's own overhead
    )
    await producer.start()
    try:
        futures = [
            await producer.send(prefix + topic, value, key=key, headers=HOSTILE_HEADERS if i % 7 == 3 else None)
            for i, (topic, key, value) in enumerate(entries)
        ]
        sent = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.topic, m.partition, m.offset) for m in sent]


async def _read_all(topic: str, expected: int, timeout: float, settle: float = 3.0) -> list:
    """Every record of `topic` once it holds `expected` and has stopped growing for `settle` seconds."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, max_partition_fetch_bytes=2 * 1024 * 1024
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        deadline = time.monotonic() + timeout
        ends = await consumer.end_offsets(tps)
        while sum(ends.values()) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            ends = await consumer.end_offsets(tps)
        await asyncio.sleep(settle)  # anything extra the worker still had in flight lands now
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        records = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def _delete_topics(names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


# ------------------------------------------------------------------------------------- worker watch --
class ProcessWatch(threading.Thread):
    """Samples a process's RSS and notices if it ever stops running (a restart would be a new pid)."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.max_rss = 0
        self.died = False
        self._halt = threading.Event()

    def status(self) -> dict[str, int]:
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[name] = int(value.split()[0]) * 1024
        return fields

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.max_rss = max(self.max_rss, self.status()["VmRSS"])
            except (OSError, KeyError):
                self.died = True
                return
            self._halt.wait(self.interval)

    def stop(self) -> int:
        """Stop sampling; the kernel's peak RSS of the process (VmHWM), which also covers between samples."""
        self._halt.set()
        self.join()
        return self.status()["VmHWM"]


def _samples(metrics_text: str, name: str) -> dict[tuple, float]:
    """{label values: value} of every sample called `name` (parsed as Prometheus does)."""
    out = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _total(metrics_text: str, name: str) -> float:
    return sum(_samples(metrics_text, name).values())


# ------------------------------------------------------------------------------------------- the run --
def run_hostile_corpus(make_deployment, tmp_path, *, seed, bad_count, huge, n_leads, n_deals, timeout, backlog=False):
    """Produce the corpus to a fresh deployment and check everything the module docstring lists.

    backlog=False: the worker runs first and takes messages as they arrive. backlog=True: the whole corpus
    is on the broker before the worker starts, so it fetches as fast as it can: the worst case for memory.
    """
    corpus = build_corpus(seed, bad_count, huge, n_leads, n_deals)
    roster_file = tmp_path / "roster.yaml"
    roster_file.write_text(roster_yaml())
    dep = make_deployment(KPI_CLOCK="event", KPI_ROSTER=str(roster_file))
    started = time.monotonic()
    if backlog:
        positions = asyncio.run(_produce(dep.prefix, corpus.entries))
        produced_s = time.monotonic() - started
    worker = dep.start_worker()
    pid = worker.proc.pid
    watch = ProcessWatch(pid)
    watch.start()
    try:
        if not backlog:
            positions = asyncio.run(_produce(dep.prefix, corpus.entries))
            produced_s = time.monotonic() - started

        def processed() -> bool:
            assert worker.proc.poll() is None, f"worker exited:\n{worker.log_tail()}"
            text = worker.metrics()
            done = sum(_total(text, n) for n in ("kpi_events_consumed_total", "kpi_events_duplicate_total",
                                                 "kpi_events_deadlettered_total"))
            return done >= len(corpus.entries)

        wait_for(processed, timeout, interval=1.0, what=f"{len(corpus.entries)} messages processed")
        processed_s = time.monotonic() - started
        records = asyncio.run(_read_all(dep.prefix + "deadletter", len(corpus.expected_reason), timeout=60))

        # Exactly one dead letter per bad (or too-late) message, with its reason, size and hash.
        expected_at = {positions[i]: (i, reason) for i, reason in corpus.expected_reason.items()}
        seen: set[tuple[str, int, int]] = set()
        wrong = []
        for message in records:
            record = json.loads(message.value)
            where = (record["topic"], record["partition"], record["offset"])
            assert where not in seen, f"two dead letters for {where}"
            seen.add(where)
            assert where in expected_at, f"a valid event was dead-lettered: {record}"
            index, reason = expected_at[where]
            _, key, value = corpus.entries[index]
            raw = value or b""
            if (record["reason"], record["size"], record["sha256"]) != (reason, len(raw), hashlib.sha256(raw).hexdigest()):
                wrong.append((reason, record["reason"], record["detail"], raw[:100]))
            assert message.key == key  # the dead letter keeps the message key as received
            assert record["detail"] and record["detail"].isprintable()
            assert record["payload_truncated"] == (len(raw) > 64 * 1024)
        assert not wrong, f"{len(wrong)} dead letters with the wrong reason, e.g. {wrong[:5]}"
        assert len(seen) == len(records) == len(expected_at), (len(records), len(expected_at))

        # Counters: by reason, and consumed/duplicates for the valid events.
        text = worker.metrics()
        by_reason = collections.Counter(corpus.expected_reason.values())
        counted = {dict(labels)["reason"]: value for labels, value in _samples(text, "kpi_events_deadlettered_total").items()}
        assert {r: v for r, v in counted.items() if v} == dict(by_reason)
        unique = len({e["event_id"] for e in corpus.accepted})
        assert _total(text, "kpi_events_consumed_total") == unique
        assert _total(text, "kpi_events_duplicate_total") == len(corpus.accepted) - unique

        # The valid events count exactly, hostile names included; and /metrics (names as labels) parses.
        now = event_clock_now(corpus.accepted)
        roster = load_roster_yaml(str(roster_file))
        for window in WINDOWS:
            doc = worker.kpis(window)
            assert "incomplete" not in doc, doc.get("incomplete")
            expected = compute_kpis(corpus.accepted, window, now, timezone="UTC", roster=roster)
            assert_same({k: doc[k] for k in DOCUMENT_KEYS}, expected, path=window)
        reps_in_metrics = {s.labels.get("rep") for f in text_string_to_metric_families(text) for s in f.samples}
        hostile_reps = {e["rep_id"] for e in corpus.accepted if e["event_id"].startswith("hv-")}
        assert hostile_reps <= reps_in_metrics, sorted(hostile_reps - reps_in_metrics)[:5]

        # Never restarted, never crashed, healthy; peak memory bounded.
        status, health = worker.health()
        assert status == 200 and health["state"] == "consuming", health
        assert worker.proc.poll() is None and worker.proc.pid == pid and not watch.died
        log = worker.log_path.read_text(errors="replace")
        assert not CRASH_SIGNS.search(log), CRASH_SIGNS.search(log) and log[-3000:]
        peak = max(watch.stop(), watch.max_rss)  # the kernel updates VmHWM lazily: a sample may be higher
        assert peak < RSS_LIMIT_BYTES, f"peak RSS {peak / 2**20:.0f} MiB"
        return {
            "bad": len(corpus.bad), "valid": len(corpus.entries) - len(corpus.bad), "too_late": corpus.too_late,
            "bytes": sum(len(v or b"") for _, _, v in corpus.entries), "by_reason": dict(by_reason),
            "by_category": dict(collections.Counter(m.category for m in corpus.bad)),
            "largest": max(len(v or b"") for _, _, v in corpus.entries),
            "peak_rss_mib": round(peak / 2**20), "sampled_max_rss_mib": round(watch.max_rss / 2**20),
            "produce_s": round(produced_s, 1), "processed_s": round(processed_s, 1),
        }
    finally:
        if watch.is_alive():
            watch.stop()
        worker.kill()
        # The corpus is tens (soak: hundreds) of MiB: don't leave it on the shared broker.
        asyncio.run(_delete_topics([dep.prefix + n for n in TOPIC_NAMES]))


def test_topics_take_values_up_to_max_value_bytes_and_no_more(deployment):
    """The corpus's largest message is the largest the 1 MiB topics accept (so "up to the broker's maximum")."""
    from aiokafka.errors import MessageSizeTooLargeError

    async def send(size: int):
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", max_request_size=2 * 1024 * 1024)
        await producer.start()
        try:
            return await (await producer.send(deployment.prefix + "leads", b"x" * size))
        finally:
            await producer.stop()

    assert asyncio.run(send(MAX_VALUE_BYTES)).offset >= 0
    with pytest.raises(MessageSizeTooLargeError):
        asyncio.run(send(MAX_VALUE_BYTES + 1))


def test_hostile_corpus_is_dead_lettered_and_valid_events_count_exactly(make_deployment, tmp_path, record_property):
    figures = run_hostile_corpus(make_deployment, tmp_path, seed=7, bad_count=10_000, huge=4, n_leads=300, n_deals=120,
                                 timeout=180)
    assert figures["bad"] >= 10_000 and figures["largest"] == MAX_VALUE_BYTES
    for name, value in figures.items():
        record_property(name, value)
    print(f"\nhostile corpus figures: {json.dumps(figures)}")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_hostile_corpus_soak_50k_bad_and_200_max_size_messages(make_deployment, tmp_path, record_property):
    figures = run_hostile_corpus(make_deployment, tmp_path, seed=8, bad_count=50_000, huge=200, n_leads=1500,
                                 n_deals=600, timeout=1200, backlog=True)
    assert figures["bad"] >= 50_000 and figures["largest"] == MAX_VALUE_BYTES
    for name, value in figures.items():
        record_property(name, value)
    print(f"\nhostile corpus soak figures: {json.dumps(figures)}")
