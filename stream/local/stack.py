"""Local development stack: a single-node Kafka (KRaft) and a Redis, run as plain processes.

`kpi-monitor stack up|down|status` calls up(), down() and status(). No Docker: Kafka's jars come from
Maven Central through deploy/kafka/pom.xml (cached in ~/.m2), Redis is Debian's `redis-server`.
Everything the stack writes lives in <repo>/.stack/ (override with KPI_STACK_DIR):

    kafka/libs/  jars            kafka/data/  log dirs         kafka/logs/  server.log, kafka.out
    kafka.pid    redis.pid       redis/       Redis working dir (no persistence)      .lock

Rules:
- up() is idempotent: on a running stack it starts nothing. A broker already answering the Kafka
  protocol at KAFKA_BOOTSTRAP_SERVERS, or a Redis answering PING at REDIS_URL, is reused ("external").
- down() stops only processes whose pid file this module wrote and whose command line still matches;
  never anything found by name. It keeps the data unless purge=True.
- The KRaft controller listens on 19093 (env KPI_KAFKA_CONTROLLER_PORT), not Kafka's customary 9093,
  because 9093 is Alertmanager's default port.

`settings` is any object with kafka_bootstrap_servers, redis_url, topic_prefix and partitions
(stream.config.Settings fits); a missing attribute takes the default. up/down/status are synchronous
(they run their own event loop, in a worker thread when called from inside a running loop);
ensure_topics is async.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from redis.exceptions import AuthenticationError, RedisError

from stream.local.processes import StopError, alive, cmdline, pid_from_file, stop_pid

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy" / "kafka"
TOPIC_NAMES = ("leads", "calls", "deals", "deadletter", "spend", "subscriptions", "forecasts")
MAX_MESSAGE_BYTES = 1048576
DEFAULT_CONTROLLER_PORT = 19093
KAFKA_READY_TIMEOUT_S = 60.0
REDIS_READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 20.0
_LOCAL_HOSTS = {"127.0.0.1", "localhost"}
_TOPIC_ALREADY_EXISTS = 36
_START_MARK = "===== kpi-monitor stack up: starting Kafka"

Echo = Callable[[str], None]
_print: Echo = functools.partial(print, flush=True)


class StackError(RuntimeError):
    """A stack operation failed; the message says what to do about it."""


@dataclass
class ServiceStatus:
    name: str
    state: str  # "running" (ours) | "external" (reused) | "unresponsive" (our pid, not answering) | "stopped"
    address: str
    pid: int | None = None

    def __str__(self) -> str:
        return {
            "running": f"{self.name}: running (ours, pid {self.pid}) on {self.address}",
            "external": f"{self.name}: running (external) on {self.address}",
            "unresponsive": f"{self.name}: pid {self.pid} alive but not answering on {self.address}",
        }.get(self.state, f"{self.name}: stopped")


@dataclass
class StackStatus:
    kafka: ServiceStatus
    redis: ServiceStatus
    topics: dict[str, int | None] = field(default_factory=dict)  # name -> partitions; None = missing

    @property
    def healthy(self) -> bool:
        """Both services answer and every topic exists."""
        up_ = ("running", "external")
        return self.kafka.state in up_ and self.redis.state in up_ and all(self.topics.values())

    def __str__(self) -> str:
        if self.kafka.state in ("running", "external"):
            topics = "topics: " + ", ".join(
                f"{n} ({p} partitions)" if p else f"{n} MISSING" for n, p in self.topics.items())
        else:
            topics = "topics: unknown (kafka not answering)"
        return "\n".join((str(self.kafka), str(self.redis), topics))


class _Paths:
    def __init__(self) -> None:
        self.root = Path(os.environ.get("KPI_STACK_DIR") or REPO_ROOT / ".stack").resolve()
        self.kafka = self.root / "kafka"
        self.libs, self.data, self.logs = self.kafka / "libs", self.kafka / "data", self.kafka / "logs"
        self.server_props = self.kafka / "server.properties"
        self.cluster_id = self.kafka / "cluster.id"
        self.kafka_pid, self.redis_pid = self.root / "kafka.pid", self.root / "redis.pid"
        self.redis_dir = self.root / "redis"

    def kafka_needles(self) -> tuple[str, ...]:
        # The properties path ties a live pid to *this* stack dir (another checkout's broker is not ours).
        return ("kafka.Kafka", str(self.server_props))


class _Cfg:
    def __init__(self, settings: Any) -> None:
        def get(name: str, default: Any) -> Any:
            value = getattr(settings, name, None)
            if hasattr(value, "get_secret_value"):  # pydantic SecretStr (redis_url may hold a password)
                value = value.get_secret_value()
            return default if value in (None, "") else value

        self.bootstrap = str(get("kafka_bootstrap_servers", "127.0.0.1:9092"))
        self.redis_url = str(get("redis_url", "redis://127.0.0.1:6379/0"))
        self.prefix = str(get("topic_prefix", "sales."))
        self.partitions = int(get("partitions", 4))
        first = self.bootstrap.split(",")[0].strip().split("://")[-1]
        host, sep, port = first.rpartition(":")
        if not sep:  # "localhost" without a port
            host, port = port, ""
        self.kafka_host, self.kafka_port = host.strip("[]") or "127.0.0.1", int(port or 9092)
        self.controller_port = int(os.environ.get("KPI_KAFKA_CONTROLLER_PORT") or DEFAULT_CONTROLLER_PORT)
        url = urlsplit(self.redis_url)
        self.redis_host, self.redis_port = url.hostname or "127.0.0.1", url.port or 6379

    @property
    def topics(self) -> list[str]:
        return [self.prefix + n for n in TOPIC_NAMES]


# ---------------------------------------------------------------- public API

def up(settings: Any = None, echo: Echo = _print) -> StackStatus:
    """Start (or reuse) Redis and Kafka, create the topics; return the resulting status."""
    cfg, paths = _Cfg(settings), _Paths()

    async def go() -> StackStatus:
        for d in (paths.libs.parent, paths.data, paths.logs, paths.redis_dir):
            d.mkdir(parents=True, exist_ok=True)
        await _redis_up(cfg, paths, echo)
        await _kafka_up(cfg, paths, echo)
        t0 = time.monotonic()
        result = await ensure_topics(cfg.bootstrap, cfg.prefix, cfg.partitions)
        created = [n for n, s in result.items() if s == "created"]
        echo(f"topics: created {', '.join(created)} in {time.monotonic() - t0:.1f}s" if created
             else f"topics: all {len(result)} present ({cfg.prefix}*)")
        st = await _status(cfg, paths)
        odd = {n: p for n, p in st.topics.items() if p and p != cfg.partitions}
        if odd:  # existing topics are never altered: tell the user instead
            echo(f"topics: note: existing partition counts differ from {cfg.partitions}: {odd}")
        return st

    with _locked(paths):
        return _run(go())


def down(purge: bool = False, echo: Echo = _print) -> dict[str, str]:
    """Stop what up() started (by pid file). purge=True also deletes the Kafka data and Redis dir."""
    paths = _Paths()
    result: dict[str, str] = {}
    with _locked(paths):
        for name, pidfile, needles in (("kafka", paths.kafka_pid, paths.kafka_needles()),
                                       ("redis", paths.redis_pid, ("redis-server",))):
            pid = pid_from_file(pidfile, needles)
            if pid is None:
                result[name] = "not running (not started by kpi-monitor stack)"
            else:
                t0 = time.monotonic()
                try:
                    how = stop_pid(pid, STOP_TIMEOUT_S)
                except StopError as exc:
                    raise StackError(f"{name}: {exc}") from None
                result[name] = f"stopped (pid {pid}, {how}) in {time.monotonic() - t0:.1f}s"
            pidfile.unlink(missing_ok=True)  # also clears a stale file left by a crash
            echo(f"{name}: {result[name]}")
        if purge:
            for path in (paths.data, paths.redis_dir):
                shutil.rmtree(path, ignore_errors=True)
            paths.cluster_id.unlink(missing_ok=True)
            echo(f"purged {paths.data} and {paths.redis_dir}")
    return result


def status(settings: Any = None, echo: Echo = _print) -> StackStatus:
    """What is running now: ours (with pid), external, or stopped; and which topics exist.

    Echoes the report (one line per service, one for the topics) and returns it.
    """
    st = _run(_status(_Cfg(settings), _Paths()))
    for line in str(st).splitlines():
        echo(line)
    return st


async def ensure_topics(bootstrap: str, prefix: str, partitions: int = 4) -> dict[str, str]:
    """Create the TOPIC_NAMES topics (<prefix>leads, calls, deals, deadletter, spend, subscriptions, forecasts) if missing (replication 1, 1 MiB max message).

    Returns {topic: "created" | "exists"}; existing topics are left as they are. Returns once every
    topic has a leader for each partition, so callers can produce immediately.
    """
    names = [prefix + n for n in TOPIC_NAMES]
    async with _admin(bootstrap, 10_000) as admin:
        existing = set(await admin.list_topics())
        result = {n: "exists" for n in names if n in existing}
        missing = [n for n in names if n not in existing]
        if missing:
            configs = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
            resp = await admin.create_topics([NewTopic(n, partitions, 1, topic_configs=configs)
                                              for n in missing])
            for name, code, *detail in resp.topic_errors:
                if code and code != _TOPIC_ALREADY_EXISTS:  # "already exists" = created concurrently
                    raise StackError(f"creating topic {name} failed: error {code} {detail}")
                result[name] = "exists" if code else "created"
        deadline = time.monotonic() + 15
        while not all((await _topic_partitions(admin, names)).values()):
            if time.monotonic() > deadline:
                raise StackError(f"topics {names} have no leaders after 15 s; see the broker log")
            await asyncio.sleep(0.1)
    return {n: result[n] for n in names}


async def delete_topics(bootstrap: str, prefixes: list[str]) -> list[str]:
    """Delete the topics whose names start with one of ``prefixes`` (a finished demo run's own); their names."""
    prefixes = [p for p in prefixes if p]
    async with _admin(bootstrap, 10_000) as admin:
        doomed = sorted(t for t in await admin.list_topics() if any(t.startswith(p) for p in prefixes))
        if doomed:
            await admin.delete_topics(doomed)
    return doomed


DEMO_RUN_PREFIX = "demo-"  # deploy/demo.sh names each run's topics and app id demo-<time>


def forget_run(settings: Any = None, echo: Echo = _print) -> list[str]:
    """Delete a demo run's topics (KPI_TOPIC_PREFIX) and changelogs (KPI_APP_ID), for ``make stop``.

    Only a demo run's (both named ``demo-…``): never a deployment's topics.
    """
    cfg = _Cfg(settings)
    app_id = getattr(settings, "kpi_app_id", None)
    if not (cfg.prefix.startswith(DEMO_RUN_PREFIX) and str(app_id).startswith(DEMO_RUN_PREFIX)):
        raise StackError(f"not a demo run ({cfg.prefix!r}, {app_id!r}): its topics are not deleted")
    doomed = _run(delete_topics(cfg.bootstrap, [cfg.prefix, f"{app_id}-" if app_id else ""]))
    echo(f"topics: deleted {len(doomed)} of this run ({cfg.prefix}*, {app_id}-*)")
    return doomed


# ---------------------------------------------------------------- kafka

async def _kafka_up(cfg: _Cfg, paths: _Paths, echo: Echo) -> None:
    host, port, addr = cfg.kafka_host, cfg.kafka_port, f"{cfg.kafka_host}:{cfg.kafka_port}"
    pid = pid_from_file(paths.kafka_pid, paths.kafka_needles())
    if pid:
        running = re.search(r"^advertised\.listeners=\S+:(\d+)$", _read(paths.server_props), re.M)
        if running and int(running.group(1)) != port:  # settings changed since `up`: don't guess
            raise StackError(f"the Kafka started by `stack up` (pid {pid}) listens on port {running.group(1)}, "
                             f"not {port}; run `kpi-monitor stack down` first")
        await _wait_kafka_ready(cfg, paths, pid)  # returns at once unless it is still starting
        echo(f"kafka: already running (pid {pid}) on {addr}")
        return
    if _speaks_kafka(host, port):
        echo(f"kafka: reusing the broker already answering on {addr} (not started by kpi-monitor stack)")
        return
    if host not in _LOCAL_HOSTS:
        raise StackError(f"no Kafka answers at {addr}; `stack up` only starts a broker on 127.0.0.1 "
                         "(unset KAFKA_BOOTSTRAP_SERVERS or point it at 127.0.0.1:<port>)")
    for p, var in ((port, "KAFKA_BOOTSTRAP_SERVERS"), (cfg.controller_port, "KPI_KAFKA_CONTROLLER_PORT")):
        if _port_taken(p):
            raise StackError(f"port {p} is taken by another process (not a Kafka broker); "
                             f"stop it or set {var}")
    java = _require("java", "openjdk-17-jre-headless")
    _ensure_jars(paths, echo)
    t0 = time.monotonic()  # the jar fetch reports its own time
    template = (DEPLOY_DIR / "server.properties.in").read_text()
    rendered = (template.replace("@HOST@", "127.0.0.1").replace("@BROKER_PORT@", str(port))
                .replace("@CONTROLLER_PORT@", str(cfg.controller_port))
                .replace("@LOG_DIRS@", str(paths.data)))
    extra = os.environ.get("KPI_KAFKA_EXTRA_CONFIG")  # e.g. a SASL listener next to the plaintext one
    if extra:
        rendered += "\n# from KPI_KAFKA_EXTRA_CONFIG (later keys win)\n" + Path(extra).read_text()
    paths.server_props.write_text(rendered)
    _format_storage(java, paths, echo)
    with open(paths.logs / "server.log", "a") as log:  # log4j appends; the error tail starts here
        log.write(f"{_START_MARK} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    cmd = [java, "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
           *_log_props(paths), "-cp", f"{paths.libs}/*", "kafka.Kafka", str(paths.server_props)]
    pid = await _launch(cmd, paths.kafka, paths.logs / "kafka.out", paths.kafka_pid,
                        lambda pid: _wait_kafka_ready(cfg, paths, pid))
    echo(f"kafka: ready on {addr} in {time.monotonic() - t0:.1f}s (pid {pid})")


async def _launch(cmd: list[str], cwd: Path, out_path: Path, pidfile: Path,
                  ready: Callable[[int], Awaitable[None]]) -> int:
    """Start cmd detached, record its pid, await ready(pid). On failure kill it: never leave a
    half-started server holding the ports."""
    with open(out_path, "wb") as out:  # truncated: an error tail must come from this start
        # Own session: a Ctrl-C in the shell that ran `stack up` must not reach the servers.
        proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    pidfile.write_text(f"{proc.pid}\n")
    try:
        await ready(proc.pid)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        pidfile.unlink(missing_ok=True)
        raise
    return proc.pid


def _log_props(paths: _Paths) -> list[str]:
    return [f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'log4j2.properties'}", f"-Dkafka.logs.dir={paths.logs}"]


def _ensure_jars(paths: _Paths, echo: Echo) -> None:
    pom = DEPLOY_DIR / "pom.xml"
    if not pom.exists():
        raise StackError(f"{pom} not found: `stack up` runs from a source checkout of kpi-monitor")
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom.read_text()).group(1)
    if (paths.libs / f"kafka_2.13-{version}.jar").exists():
        return
    mvn = _require("mvn", "maven")
    echo(f"fetching Kafka {version} jars from Maven Central (first run only)…")
    t0 = time.monotonic()
    # Fetch into a side dir and rename, so an interrupted fetch never looks like a complete one.
    partial = paths.kafka / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    r = subprocess.run([mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
                        f"-DoutputDirectory={partial}"], capture_output=True, text=True)
    if r.returncode != 0:
        raise StackError("mvn could not fetch the Kafka jars (the first run needs Maven Central, "
                         "repo.maven.apache.org):\n" + _tail_text(r.stdout + r.stderr))
    shutil.rmtree(paths.libs, ignore_errors=True)  # jars of another Kafka version must not mix in
    partial.rename(paths.libs)
    echo(f"kafka: {len(list(paths.libs.glob('*.jar')))} jars in {time.monotonic() - t0:.1f}s")


def _format_storage(java: str, paths: _Paths, echo: Echo) -> None:
    if (paths.data / "meta.properties").exists():
        return  # formatted before; skipping saves a JVM start on every `up`

    def tool(*args: str) -> str:
        r = subprocess.run([java, "-Xmx256m", *_log_props(paths), "-cp", f"{paths.libs}/*",
                            "kafka.tools.StorageTool", *args], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise StackError(f"kafka-storage {args[0]} failed:\n{_tail_text(r.stdout + r.stderr)}")
        return r.stdout.strip()

    cluster_id = paths.cluster_id.read_text().strip() if paths.cluster_id.exists() else ""
    if not cluster_id:
        cluster_id = tool("random-uuid").splitlines()[-1].strip()
        paths.cluster_id.write_text(cluster_id + "\n")
    # Static controller.quorum.voters in server.properties: no --standalone needed.
    tool("format", "-t", cluster_id, "-c", str(paths.server_props), "--ignore-formatted")
    echo(f"kafka: formatted {paths.data} (cluster id {cluster_id})")


async def _wait_kafka_ready(cfg: _Cfg, paths: _Paths, pid: int) -> None:
    """Ready = the broker answers a metadata request listing itself; not 'the port is open'."""
    deadline = time.monotonic() + KAFKA_READY_TIMEOUT_S
    while True:
        if not alive(pid):
            raise StackError(f"kafka (pid {pid}) exited during startup. Last log lines:\n{_kafka_tail(paths)}")
        if _speaks_kafka(cfg.kafka_host, cfg.kafka_port, 1.0) and await _broker_count(cfg.bootstrap):
            return
        if time.monotonic() > deadline:
            raise StackError(f"kafka (pid {pid}) did not answer on {cfg.kafka_host}:{cfg.kafka_port} "
                             f"within {KAFKA_READY_TIMEOUT_S:.0f}s. Last log lines:\n{_kafka_tail(paths)}")
        await asyncio.sleep(0.25)


def _kafka_tail(paths: _Paths) -> str:
    # kafka.out holds what happens before log4j starts (JVM errors, bad classpath); server.log the rest.
    parts = [f"--- {f}\n{_tail_text(_read(f).rpartition(_START_MARK)[2])}"
             for f in (paths.logs / "kafka.out", paths.logs / "server.log") if _read(f).strip()]
    return "\n".join(parts) or "(no log output)"


def _speaks_kafka(host: str, port: int, timeout: float = 2.0) -> bool:
    """Send an ApiVersions v0 request; any broker answers it (with error 35 if it dislikes v0)."""
    client_id = b"kpi-stack"
    body = struct.pack(">hhih", 18, 0, 0x4B50, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            head = b""
            while len(head) < 10:
                chunk = s.recv(10 - len(head))
                if not chunk:
                    return False
                head += chunk
    except OSError:
        return False
    size, correlation, error = struct.unpack(">iih", head)
    return correlation == 0x4B50 and 0 < size < 1 << 20 and error in (0, 35)


async def _broker_count(bootstrap: str) -> int:
    try:
        async with _admin(bootstrap, 3000) as admin:
            return len((await admin.describe_cluster())["brokers"])
    except Exception:  # not up yet: any failure just means "try again"
        return 0


@contextlib.asynccontextmanager
async def _admin(bootstrap: str, timeout_ms: int):
    # aiokafka logs every refused connection at ERROR; while probing a starting broker that is noise.
    log = logging.getLogger("aiokafka")
    level = log.level
    log.setLevel(logging.CRITICAL)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()
        log.setLevel(level)


async def _topic_partitions(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int | None]:
    """{topic: partition count} for topics whose partitions all have a leader, else None."""
    found = {t["topic"]: t for t in await admin.describe_topics(names)}
    out: dict[str, int | None] = {}
    for n in names:
        t = found.get(n)
        ok = t and t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
        out[n] = len(t["partitions"]) if ok else None
    return out


# ---------------------------------------------------------------- redis

async def _redis_up(cfg: _Cfg, paths: _Paths, echo: Echo) -> None:
    addr = f"{cfg.redis_host}:{cfg.redis_port}"
    pid = pid_from_file(paths.redis_pid, ("redis-server",))
    if pid and f":{cfg.redis_port}" not in cmdline(pid):  # redis shows "host:port" in its process title
        raise StackError(f"the Redis started by `stack up` (pid {pid}) is not on port {cfg.redis_port}; "
                         "run `kpi-monitor stack down` first")
    if pid:
        await _wait_redis(cfg, paths, pid)
        echo(f"redis: already running (pid {pid}) on {addr}")
        return
    if await _redis_answers(cfg.redis_url):
        echo(f"redis: reusing the server already answering on {addr} (not started by kpi-monitor stack)")
        return
    if cfg.redis_host not in _LOCAL_HOSTS:
        raise StackError(f"no Redis answers at {addr}; `stack up` only starts one on 127.0.0.1 (check REDIS_URL)")
    if _port_taken(cfg.redis_port):
        raise StackError(f"port {cfg.redis_port} is taken by another process (not Redis); stop it or set REDIS_URL")
    binary = shutil.which("redis-server") or _install_redis(echo)
    if await _redis_answers(cfg.redis_url):  # the Debian package may have started its own service
        echo(f"redis: reusing the redis-server service the package started on {addr}")
        return
    t0 = time.monotonic()
    # Persistence off: a throwaway dev Redis (down + up starts empty).
    cmd = [binary, "--port", str(cfg.redis_port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--daemonize", "no", "--dir", str(paths.redis_dir)]
    pid = await _launch(cmd, paths.redis_dir, paths.redis_dir / "redis.out", paths.redis_pid,
                        lambda pid: _wait_redis(cfg, paths, pid))
    echo(f"redis: ready on {addr} in {time.monotonic() - t0:.1f}s (pid {pid})")


async def _wait_redis(cfg: _Cfg, paths: _Paths, pid: int) -> None:
    deadline = time.monotonic() + REDIS_READY_TIMEOUT_S
    while not await _redis_answers(cfg.redis_url):
        if not alive(pid) or time.monotonic() > deadline:
            tail = _tail_text(_read(paths.redis_dir / "redis.out"))
            raise StackError(f"redis (pid {pid}) did not answer PING on {cfg.redis_host}:{cfg.redis_port}:\n{tail}")
        await asyncio.sleep(0.1)


async def _redis_answers(url: str) -> bool:
    client = aioredis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(await client.ping())
    except AuthenticationError:
        return True  # a Redis that wants a password is still a Redis
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


def _install_redis(echo: Echo) -> str:
    if not shutil.which("apt-get") or os.geteuid() != 0:
        raise StackError("redis-server not found; install it (Debian/Ubuntu: sudo apt-get install -y redis-server)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def apt(*args: str) -> subprocess.CompletedProcess:
        echo(f"redis: running apt-get {' '.join(args)}")
        return subprocess.run(["apt-get", *args], capture_output=True, text=True, env=env)

    r = apt("install", "-y", "redis-server")
    if r.returncode != 0 and "Unable to locate" in r.stdout + r.stderr:
        apt("update")  # only when the package lists are stale: an update is slow
        r = apt("install", "-y", "redis-server")
    if r.returncode != 0:
        raise StackError(f"apt-get install redis-server failed:\n{_tail_text(r.stdout + r.stderr)}")
    binary = shutil.which("redis-server")
    if not binary:
        raise StackError("apt-get installed redis-server, but `redis-server` is not on PATH (add /usr/bin)")
    return binary


# ---------------------------------------------------------------- status, processes, helpers

async def _status(cfg: _Cfg, paths: _Paths) -> StackStatus:
    def state(pid: int | None, answers: bool) -> str:
        return ("running" if answers else "unresponsive") if pid else ("external" if answers else "stopped")

    kpid = pid_from_file(paths.kafka_pid, paths.kafka_needles())
    k_answers = _speaks_kafka(cfg.kafka_host, cfg.kafka_port, 1.0)
    topics: dict[str, int | None] = dict.fromkeys(cfg.topics)
    if k_answers:
        with contextlib.suppress(Exception):  # a broker mid-shutdown: report topics as unknown/missing
            async with _admin(cfg.bootstrap, 5000) as admin:
                topics = await _topic_partitions(admin, cfg.topics)
    rpid = pid_from_file(paths.redis_pid, ("redis-server",))
    return StackStatus(
        kafka=ServiceStatus("kafka", state(kpid, k_answers), f"{cfg.kafka_host}:{cfg.kafka_port}", kpid),
        redis=ServiceStatus("redis", state(rpid, await _redis_answers(cfg.redis_url)),
                            f"{cfg.redis_host}:{cfg.redis_port}", rpid),
        topics=topics)


@contextlib.contextmanager
def _locked(paths: _Paths):
    """Serialise up/down on one stack dir: two concurrent `up`s would otherwise both see free
    ports and both start a broker."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _port_taken(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers don't count
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if not path:
        raise StackError(f"`{binary}` not found on PATH; install it (Debian/Ubuntu: sudo apt-get install -y {package})")
    return path


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail_text(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _run(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:  # called from async code: don't nest event loops
        return pool.submit(asyncio.run, coro).result()
