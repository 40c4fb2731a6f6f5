"""Shared fixtures: the real local stack, per-test topic prefixes and app ids, worker processes.

Integration tests never share topics, tables or Redis keys with a running demo: each gets its own
KPI_APP_ID and KPI_TOPIC_PREFIX.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from stream.local.processes import log_tail
from stream.local.promstack import free_port  # noqa: F401  (tests import it from here)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("KPI_SHARED_DIR", REPO_ROOT.parent / "shared"))
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PARTITIONS = 4
# Partitions a deployment's workers share in all: every table group (leads, deals, spend) has PARTITIONS.


def _request(url: str, token: str | None) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})


def http_json(url: str, timeout: float = 10.0, token: str | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(_request(url, token), timeout=timeout) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def http_text(url: str, timeout: float = 10.0, token: str | None = None) -> str:
    with urllib.request.urlopen(_request(url, token), timeout=timeout) as resp:
        return resp.read().decode()


def wait_for(predicate, timeout: float, interval: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent (a user's clone has no ../shared); set KPI_SHARED_DIR to run this")
    return SHARED_DIR


@pytest.fixture(scope="session")
def stack():
    """The real local Kafka + Redis, started when not running (idempotent)."""
    from stream.local import stack as local_stack
    from stream.config import load_settings

    local_stack.up(load_settings(), echo=lambda *a, **k: None)
    return BOOTSTRAP


class Deployment:
    """A test's own app id and topics, and the workers it runs."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.app_id = f"test-{tag}"
        self.prefix = f"test-{tag}."
        self.tmp = tmp_path
        self.bootstrap = env.pop("KAFKA_BOOTSTRAP_SERVERS", BOOTSTRAP)  # a test's private broker, if any
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KPI_APP_ID": self.app_id,
            "KPI_TOPIC_PREFIX": self.prefix,
            "KPI_PARTITIONS": str(PARTITIONS),
            "KPI_STORE": "rocksdb://",  # the product as shipped; a test that needs memory:// says why
            "KPI_DATA_DIR": str(tmp_path / "data"),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.workers: list[WorkerProcess] = []
        asyncio.run(_ensure_topics(self.prefix, self.bootstrap))

    def start_worker(self, wait: bool = True, supervised: bool = False, port: int | None = None,
                     loglevel: str | None = None, **env: str) -> WorkerProcess:
        """A worker on a new port, or on ``port`` again: the same data directory, as a restart on the same
        machine. ``loglevel="debug"`` for tests that read the log for what must never be in it."""
        worker = WorkerProcess(self, port or free_port(), {**self.env, **env}, supervised=supervised,
                               loglevel=loglevel)
        self.workers.append(worker)
        if wait:
            worker.wait_healthy()
        return worker

    def produce(self, messages: list[tuple[str, str | None, bytes]]) -> None:
        """Produce (topic suffix, key, value) in order, acks=all."""
        asyncio.run(_produce(self.prefix, messages, self.bootstrap))

    def consume_deadletters(self, expected: int, timeout: float = 30.0) -> list[dict]:
        return asyncio.run(_consume(self.prefix + "deadletter", expected, timeout, self.bootstrap))

    def stop(self) -> None:
        for worker in self.workers:
            worker.kill()
        # A test's topics and changelogs go with it: a broker left with tens of thousands of partitions
        # by a day of test runs takes minutes to restart.
        try:
            asyncio.run(_delete_topics(self.prefix, self.app_id, self.bootstrap))
        except Exception as exc:  # a private broker may be gone already; nothing to clean then
            print(f"topics of {self.prefix} not deleted: {exc!r}")


STALL_EXIT_CODE = 3  # the stall watchdog's exit (stream.worker.app.check_progress): "restart me"


class WorkerProcess:
    """A worker on its own port. ``supervised`` does what a supervisor does in production (docker-compose's
    restart policy, deploy/supervise.sh): a worker that exits with the stall watchdog's code 3 is started
    again, on the same port and data directory, the next time the test looks at it. Faust's consumer can
    stop fetching after a rebalance (faust-streaming #175/#523); tests with many rebalances meet it."""

    def __init__(self, deployment: Deployment, port: int, env: dict[str, str], supervised: bool = False,
                 loglevel: str | None = None) -> None:
        self.port = port
        self.loglevel = loglevel or os.environ.get("KPI_TEST_WORKER_LOGLEVEL", "warning")
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = deployment.tmp / f"worker-{port}.log"
        self.env = {**env, "KPI_WEB_PORT": str(port)}
        self.supervised = supervised
        self.restarts = 0
        self._log = open(self.log_path, "ab")  # a restart on the same port appends
        self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker", "--loglevel", self.loglevel],
            cwd=REPO_ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def _revive(self) -> None:
        if self.supervised and self.proc.poll() == STALL_EXIT_CODE:
            self.restarts += 1
            self._start()

    def health(self) -> tuple[int, dict]:
        self._revive()
        return http_json(f"{self.url}/healthz", timeout=3)

    def wait_healthy(self, timeout: float = 90.0) -> None:
        def healthy():
            self._revive()
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            return self.health()[0] == 200

        try:
            wait_for(healthy, timeout, what=f"worker {self.url} healthy")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log ---\n{self.log_tail()}") from None

    @property
    def token(self) -> str | None:
        """KPI_WEB_TOKEN of this worker: sent with every request but /healthz."""
        return self.env.get("KPI_WEB_TOKEN") or None

    def kpis(self, window: str = "all") -> dict:
        self._revive()
        status, doc = http_json(f"{self.url}/kpis?window={window}", timeout=20, token=self.token)
        assert status == 200, doc
        return doc

    def metrics(self) -> str:
        self._revive()
        return http_text(f"{self.url}/metrics", token=self.token)

    def counter(self, name: str) -> float:
        """Sum of all samples of a metric family on this worker."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def terminate(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def deployment(stack, tmp_path):
    dep = Deployment(tmp_path)
    yield dep
    dep.stop()


@pytest.fixture
def make_deployment(stack, tmp_path):
    made: list[Deployment] = []

    def make(**env: str) -> Deployment:
        dep = Deployment(tmp_path / f"d{len(made)}", **env)
        made.append(dep)
        return dep

    yield make
    for dep in made:
        dep.stop()


async def _ensure_topics(prefix: str, bootstrap: str = BOOTSTRAP) -> None:
    from stream.local.stack import ensure_topics

    await ensure_topics(bootstrap, prefix, PARTITIONS)


async def _delete_topics(prefix: str, app_id: str, bootstrap: str = BOOTSTRAP) -> None:
    from stream.local.stack import delete_topics

    await asyncio.wait_for(delete_topics(bootstrap, [prefix, f"{app_id}-"]), 20)


async def _produce(prefix: str, messages, bootstrap: str = BOOTSTRAP) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        futures = [
            await producer.send(prefix + suffix, value, key=None if key is None else key.encode())
            for suffix, key, value in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _consume(topic: str, expected: int, timeout: float, bootstrap: str = BOOTSTRAP) -> list[dict]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[dict] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend(json.loads(m.value) for m in messages)
    finally:
        await consumer.stop()
    return records
