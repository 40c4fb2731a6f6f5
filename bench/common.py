"""What the benchmarks share: machine facts, a bench's own topics and app id, fast loading into Kafka,
worker processes (RSS, /metrics, /kpis), percentiles.

Benchmarks print figures; nothing here asserts. Every run gets its own ``KPI_APP_ID`` and
``KPI_TOPIC_PREFIX`` (``bench-<name>-<hex>``), so it never touches a demo, a test or another bench on the
same broker, and deletes its topics (sources, dead letters, changelogs) when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from stream.local.processes import log_tail
from stream.local.promstack import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / ".stack" / "bench"  # git-ignored (.stack/)
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PARTITIONS = 4
SUFFIXES = ("leads", "calls", "deals")


# --- output ------------------------------------------------------------------------------------------
def say(line: str = "") -> None:
    print(line, flush=True)


def machine() -> dict[str, Any]:
    """Facts to print next to every figure: the machine is shared and 2-core, so load matters."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = float("nan")
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "?"
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip() or "?"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_gb, 1),
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "faust": version("faust-streaming"),
        "aiokafka": version("aiokafka"),
        "commit": commit,
    }


def print_machine(title: str) -> dict[str, Any]:
    m = machine()
    say(f"== {title}")
    say(f"machine: {m['cpus']} cores ({m['cpu_model']}), {m['memory_gb']} GB RAM; "
        f"load average {m['loadavg'][0]:.2f} {m['loadavg'][1]:.2f} {m['loadavg'][2]:.2f}; "
        f"Python {m['python']}, faust-streaming {m['faust']}, aiokafka {m['aiokafka']}; commit {m['commit']}")
    return m


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest rank on an already sorted sequence (q in [0, 1])."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def summary_ms(values: Iterable[float]) -> str:
    """``p50 … p99 … max …`` of seconds, printed in milliseconds."""
    v = sorted(values)
    if not v:
        return "no samples"
    return (f"p50 {percentile(v, 0.5) * 1000:.0f} ms, p99 {percentile(v, 0.99) * 1000:.0f} ms, "
            f"max {v[-1] * 1000:.0f} ms (n={len(v)})")


# --- a bench's own names ------------------------------------------------------------------------------
@dataclass
class Run:
    """One bench run: its app id, topic prefix and working directory."""

    name: str
    bootstrap: str = BOOTSTRAP
    partitions: int = PARTITIONS
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def app_id(self) -> str:
        return f"bench-{self.name}-{self.tag}"

    @property
    def prefix(self) -> str:
        return f"bench-{self.name}-{self.tag}."

    @property
    def workdir(self) -> Path:
        return BENCH_DIR / self.app_id

    def topic(self, suffix: str) -> str:
        return self.prefix + suffix

    def source_topics(self) -> list[str]:
        return [self.topic(s) for s in SUFFIXES]

    async def create_topics(self) -> None:
        from aiokafka.errors import KafkaConnectionError

        from stream.local.stack import ensure_topics

        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            await ensure_topics(self.bootstrap, self.prefix, self.partitions)
        except KafkaConnectionError:
            raise SystemExit(f"bench: Kafka is not answering at {self.bootstrap}; start the local stack with "
                             "`kpi-monitor stack up` (the `make bench-*` targets do it for you)") from None

    async def delete_topics(self) -> None:
        """Delete every topic of this run (sources, dead letters, Faust changelogs and internals)."""
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=30_000)
        await admin.start()
        try:
            mine = [t for t in await admin.list_topics() if t.startswith((self.prefix, self.app_id + "-"))]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KPI_APP_ID": self.app_id,
            "KPI_TOPIC_PREFIX": self.prefix,
            "KPI_PARTITIONS": str(self.partitions),
            "KPI_DATA_DIR": str(self.workdir / "data"),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def cleanup(self, keep: bool = False) -> None:
        if keep:
            say(f"kept topics {self.prefix}* and {self.workdir}")
            return
        try:
            asyncio.run(self.delete_topics())
        except Exception as exc:  # the figures are printed already; say what is left behind
            say(f"could not delete topics {self.prefix}*: {exc!r}")
        shutil.rmtree(self.workdir / "data", ignore_errors=True)


# --- loading Kafka fast -------------------------------------------------------------------------------
class Partitioner:
    """The producer's default partitioner (murmur2 of the key), with a cache: a lead's key recurs."""

    def __init__(self, partitions: int) -> None:
        from aiokafka.partitioner import murmur2

        self.murmur2 = murmur2
        self.partitions = partitions
        self.cache: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        p = self.cache.get(key)
        if p is None:
            if len(self.cache) > 2_000_000:
                self.cache.clear()
            p = self.cache[key] = (self.murmur2(key) & 0x7FFFFFFF) % self.partitions
        return p


async def load(bootstrap: str, messages: Iterable[tuple[str, bytes, bytes]], partitions: int = PARTITIONS,
               progress_every: float = 10.0) -> tuple[int, float]:
    """Produce ``(topic, key, value)`` as fast as one process can: record batches built by hand per
    partition (no per-message futures), no compression, ``acks=1``. Same partition as ``send(key=…)``,
    so leads and calls stay co-partitioned. Per-partition order is the iteration order.

    Returns (messages, seconds).
    """
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0, max_batch_size=1024 * 1024,
                                max_request_size=4 * 1024 * 1024)
    await producer.start()
    part = Partitioner(partitions)
    batches: dict[tuple[str, int], Any] = {}
    inflight: set[asyncio.Future] = set()
    count = 0
    t0 = last = time.monotonic()

    async def ship(topic: str, partition: int, batch: Any) -> None:
        batch.close()
        fut = await producer.send_batch(batch, topic, partition=partition)
        inflight.add(fut)
        fut.add_done_callback(inflight.discard)
        if len(inflight) > 64:
            await asyncio.wait(set(inflight), return_when=asyncio.FIRST_COMPLETED)

    try:
        for topic, key, value in messages:
            tp = (topic, part(key))
            batch = batches.get(tp)
            if batch is None:
                batch = batches[tp] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                await ship(topic, tp[1], batch)
                batch = batches[tp] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
            count += 1
            if count % 50_000 == 0 and time.monotonic() - last > progress_every:
                last = time.monotonic()
                say(f"  loaded {count:,} ({count / (last - t0):,.0f}/s)")
        for (topic, partition), batch in batches.items():
            if batch.record_count():
                await ship(topic, partition, batch)
        while inflight:
            done = set(inflight)
            await asyncio.wait(done)
            for fut in done:
                fut.result()  # raise a delivery failure
    finally:
        await producer.stop()
    return count, time.monotonic() - t0


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        if not tps:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
            tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def committed(bootstrap: str, group: str, topics: Sequence[str]) -> int:
    """Sum of the committed offsets of ``group`` on ``topics``: progress, read from the broker (the
    workers are not asked, so watching costs them nothing; Faust commits every 2.8 s)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return sum(meta.offset for tp, meta in offsets.items() if tp.topic in topics and meta.offset > 0)
    finally:
        await admin.close()


# --- worker processes ---------------------------------------------------------------------------------
def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Worker:
    """``kpi-monitor worker`` in a subprocess, optionally under ``py-spy record``."""

    def __init__(self, run: Run, env: dict[str, str] | None = None, profile: str | None = None,
                 name: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = name or f"worker-{self.port}"
        run.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = run.workdir / f"{self.name}.log"
        env = {**run.env(), **(env or {}), "KPI_WEB_PORT": str(self.port)}
        cmd = [sys.executable, "-m", "stream.cli", "worker", "--loglevel", "warning"]
        self.profile_path: Path | None = None
        if profile:
            # py-spy launches the worker itself: no ptrace permission needed to attach.
            self.profile_path = Path(profile)
            py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
            if py_spy is None:
                raise SystemExit("--profile needs py-spy: pip install -e '.[bench]'")
            fmt = {".json": "speedscope", ".txt": "raw"}.get(self.profile_path.suffix, "flamegraph")
            cmd = [py_spy, "record", "--rate", "200", "--format", fmt, "-o", str(self.profile_path), "--", *cmd]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.python_pid: int | None = None if profile else self.proc.pid

    def pid(self) -> int | None:
        """The worker's Python process (under py-spy: py-spy's child)."""
        if self.python_pid is None:
            with contextlib.suppress(OSError, ValueError):
                children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
                if children:
                    self.python_pid = int(children[0])
        return self.python_pid

    def rss_bytes(self) -> int:
        pid = self.pid()
        if pid is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker process so far (all its threads)."""
        pid = self.pid()
        if pid is None:
            return 0.0
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return 0.0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def health(self) -> tuple[int, dict]:
        try:
            status, body = http_get(f"{self.url}/healthz", timeout=3)
            return status, json.loads(body or b"{}")
        except (OSError, ValueError):
            return 0, {}

    def wait_healthy(self, timeout: float = 120.0, partitions: int | None = None) -> float:
        """Block until /healthz answers 200 (and, if given, this many partitions per group); returns when."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            status, body = self.health()
            if status == 200 and (partitions is None or all(
                    len(body.get("partitions", {}).get(g, ())) == partitions for g in ("leads", "deals"))):
                return time.time()
            time.sleep(0.1)
        raise SystemExit(f"{self.name} not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        status, body = http_get(f"{self.url}/metrics", timeout=30)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return parse_metrics(body.decode())

    def kpis(self, window: str = "all", timeout: float = 30.0) -> dict:
        status, body = http_get(f"{self.url}/kpis?window={window}", timeout=timeout)
        if status != 200:
            raise RuntimeError(f"/kpis answered {status}: {body[:200]!r}")
        return json.loads(body)

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (py-spy then writes its profile), SIGKILL after ``timeout``."""
        if self.alive():
            pid = self.pid() if self.profile_path else self.proc.pid
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(pid, signal.SIGTERM)  # type: ignore[arg-type]
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text → {sample name: [(labels, value), …]}."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def metric(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for lab, v in samples.get(name, ()) if all(lab.get(k) == want for k, want in labels.items()))


def processed(worker: Worker) -> tuple[float, float | None]:
    """(messages this worker processed: applied + duplicates + dead letters, wall time of the last one)."""
    m = worker.metrics()
    count = (metric(m, "kpi_events_consumed_total") + metric(m, "kpi_events_duplicate_total")
             + metric(m, "kpi_events_deadlettered_total"))
    last = m.get("kpi_last_processed_timestamp_seconds")
    return count, (last[0][1] if last else None)


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, f))
    return total


def quiet_kafka_logs() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)


def chunks(it: Iterable[Any], n: int) -> Iterator[list[Any]]:
    buf: list[Any] = []
    for x in it:
        buf.append(x)
        if len(buf) >= n:
            yield buf
            buf = []
    if buf:
        yield buf
