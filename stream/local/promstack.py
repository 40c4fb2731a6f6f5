"""Prometheus and Alertmanager as local processes (Debian's packages), for tests, `make demo` and alerts.

The project's own configuration (deploy/prometheus, deploy/alertmanager) is rendered for the occasion:
which workers to scrape, how often, which Alertmanager to notify, where the Slack webhook file is.
Nothing else is changed, so what runs here is what docker-compose.yml runs.

    with start_prometheus(workdir, targets=["127.0.0.1:6066"], scrape_interval="1s") as prom:
        prom.query('up{job="kpi-monitor"}')

Library: ``ensure_installed``, ``render_prometheus_config``, ``render_alertmanager_config``,
``start_prometheus``, ``start_alertmanager`` (each returns a started, ready ``Service``).
Command line (for the demo; state under .stack/prom/, pid files, stops only what it started):

    python -m stream.local.promstack up [--worker HOST:PORT ...] [--prometheus-port 9090] [--alertmanager-port 9093]
    python -m stream.local.promstack down | status
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from stream.durations import parse_duration
from stream.local.processes import log_tail, pid_from_file, stop_pid

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO_ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
WORKER_JOB = "kpi-monitor"
DEBIAN_PACKAGES = ("prometheus", "prometheus-alertmanager")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0

Echo = Callable[[str], None]


class PromStackError(RuntimeError):
    """Prometheus or Alertmanager could not be installed, started or reached; the message says why."""


# --- binaries ---------------------------------------------------------------------------------------
def _which(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
        if found:
            return found
    return None


BINARIES: dict[str, tuple[str, ...]] = {
    "prometheus": ("prometheus",),
    "promtool": ("promtool",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),  # Debian renames it
    "amtool": ("amtool",),
}


def binary(tool: str) -> str:
    """Path of ``prometheus``, ``promtool``, ``alertmanager`` or ``amtool``; installs them when missing."""
    path = _which(*BINARIES[tool])
    if path is None:
        ensure_installed()
        path = _which(*BINARIES[tool])
    if path is None:
        raise PromStackError(f"{tool} is not installed; run: apt-get install -y {' '.join(DEBIAN_PACKAGES)}")
    return path


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_installed(echo: Echo = _stderr) -> None:
    """Install Debian's prometheus and prometheus-alertmanager packages when a tool is missing."""
    if all(_which(*names) for names in BINARIES.values()):
        return
    apt_install(DEBIAN_PACKAGES, "Prometheus/Alertmanager", echo)


def apt_install(packages: Iterable[str], what: str, echo: Echo = _stderr) -> None:
    """``apt-get install`` Debian packages (as root); says how to do it by hand otherwise."""
    packages = list(packages)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PromStackError(f"{what} missing; install with: sudo apt-get install -y {' '.join(packages)}")
    echo(f"installing {' '.join(packages)} with apt-get ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise PromStackError(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


# --- configuration ----------------------------------------------------------------------------------
def render_prometheus_config(
    targets: Iterable[str],
    *,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    alertmanagers: Iterable[str] | None = None,
    self_target: str | None = None,
    base: Path = PROMETHEUS_CONFIG,
) -> str:
    """The project's prometheus.yml with these worker targets; rule files made absolute.

    ``alertmanagers=None`` keeps the configured ones, ``[]`` removes alerting; ``self_target`` is where
    this Prometheus listens (its own scrape job).
    """
    config: dict[str, Any] = yaml.safe_load(base.read_text())
    config.setdefault("global", {})
    if scrape_interval:
        config["global"]["scrape_interval"] = scrape_interval
        # A scrape may not take longer than its interval.
        timeout = config["global"].get("scrape_timeout")
        if timeout and parse_duration(timeout) > parse_duration(scrape_interval):
            config["global"]["scrape_timeout"] = scrape_interval
    if evaluation_interval:
        config["global"]["evaluation_interval"] = evaluation_interval
    config["rule_files"] = [str((base.parent / f).resolve()) for f in config.get("rule_files", [])]
    if alertmanagers is not None:
        targets_am = list(alertmanagers)
        if targets_am:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": targets_am}]}]}
        else:
            config.pop("alerting", None)
    jobs = []
    for job in config.get("scrape_configs", []):
        if job["job_name"] == WORKER_JOB:
            job = {k: v for k, v in job.items() if not k.endswith("_sd_configs")}
            job["static_configs"] = [{"targets": list(targets)}]
        elif job["job_name"] == "prometheus" and self_target:
            job["static_configs"] = [{"targets": [self_target]}]
        elif job["job_name"] == "alertmanager":
            if alertmanagers is None:
                pass
            elif list(alertmanagers):
                job["static_configs"] = [{"targets": list(alertmanagers)}]
            else:
                continue
        jobs.append(job)
    config["scrape_configs"] = jobs
    return yaml.safe_dump(config, sort_keys=False)


def render_alertmanager_config(slack_webhook_file: Path, base: Path = ALERTMANAGER_CONFIG,
                               group_wait: str | None = None) -> str:
    """The project's alertmanager.yml reading the Slack webhook from ``slack_webhook_file``; template
    files made absolute; ``group_wait`` (tests) replaces every route's."""
    config: dict[str, Any] = yaml.safe_load(base.read_text())
    config.setdefault("global", {})["slack_api_url_file"] = str(slack_webhook_file)
    config["templates"] = [str((base.parent / t).resolve()) for t in config.get("templates", [])]
    if group_wait is not None:
        routes = [config["route"]]
        while routes:
            route = routes.pop()
            route["group_wait"] = group_wait
            routes.extend(route.get("routes", []))
    return yaml.safe_dump(config, sort_keys=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- processes --------------------------------------------------------------------------------------
class Service:
    """A started Prometheus or Alertmanager process and its HTTP address."""

    def __init__(self, name: str, cmd: list[str], port: int, workdir: Path) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        # Own session: a Ctrl-C in the terminal does not reach it, and stop() ends exactly this process.
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> Service:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PromStackError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise PromStackError(f"{self.name} not ready on {self.url} after {timeout:.0f}s:\n{self.log_tail()}")

    def get_json(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(url, timeout=15) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            raise PromStackError(f"{self.name} {path} {params}: HTTP {exc.code}: {body}") from None

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query through /api/v1/query; returns the result list (vector or scalar as one item)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        doc = self.get_json("/api/v1/query", **params)
        if doc.get("status") != "success":
            raise PromStackError(f"query {expr!r} failed: {doc}")
        data = doc["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def start_prometheus(
    workdir: Path,
    *,
    targets: Iterable[str] = ("127.0.0.1:6066",),
    port: int | None = None,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    alertmanagers: Iterable[str] | None = (),
    retention: str = "2d",
    wait: bool = True,
) -> Service:
    """Prometheus with the project's config and rules, scraping ``targets``, storing under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    config = workdir / "prometheus.yml"
    config.write_text(render_prometheus_config(
        targets, scrape_interval=scrape_interval, evaluation_interval=evaluation_interval,
        alertmanagers=alertmanagers, self_target=f"127.0.0.1:{port}",
    ))
    cmd = [
        binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--storage.tsdb.retention.time={retention}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    service = Service("prometheus", cmd, port, workdir)
    return service.wait_ready() if wait else service


def start_alertmanager(
    workdir: Path,
    *,
    port: int | None = None,
    slack_webhook_url: str | None = None,
    group_wait: str | None = None,
    wait: bool = True,
) -> Service:
    """Alertmanager with the project's routing; Slack goes to ``slack_webhook_url`` (default $SLACK_WEBHOOK_URL);
    ``group_wait`` shortens every route's wait before the first notification (tests)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    secret = workdir / "slack_webhook_url"
    url = slack_webhook_url or os.environ.get("SLACK_WEBHOOK_URL") or "http://127.0.0.1:9/slack-webhook-not-configured"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(url)
    config = workdir / "alertmanager.yml"
    config.write_text(render_alertmanager_config(secret, group_wait=group_wait))
    cmd = [
        binary("alertmanager"),
        f"--config.file={config}",
        f"--storage.path={workdir / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip port: one instance, and no clash with another on 9094
    ]
    service = Service("alertmanager", cmd, port, workdir)
    return service.wait_ready() if wait else service


def check(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool/amtool; the completed process (stdout+stderr in stdout)."""
    return subprocess.run([binary(tool), *args], capture_output=True, text=True)


# --- command line for the demo ----------------------------------------------------------------------
def state_dir() -> Path:
    """Where `up` keeps pid files, configs, logs and data (under the local stack's directory)."""
    return Path(os.environ.get("KPI_STACK_DIR") or REPO_ROOT / ".stack") / "prom"


def _up(args: argparse.Namespace) -> int:
    ensure_installed()
    state = state_dir()
    state.mkdir(parents=True, exist_ok=True)
    am_dir, prom_dir = state / "alertmanager", state / "prometheus"
    for name, workdir, port, start in (
        ("alertmanager", am_dir, args.alertmanager_port,
         lambda: start_alertmanager(am_dir, port=args.alertmanager_port, wait=False)),
        ("prometheus", prom_dir, args.prometheus_port,
         lambda: start_prometheus(prom_dir, targets=args.worker or ["127.0.0.1:6066"], port=args.prometheus_port,
                                  alertmanagers=[f"127.0.0.1:{args.alertmanager_port}"], retention="15d", wait=False)),
    ):
        pidfile = state / f"{name}.pid"
        pid = pid_from_file(pidfile, (str(workdir),))
        if pid:
            print(f"{name}: already running (pid {pid}) on http://127.0.0.1:{port}")
            continue
        service = start()
        pidfile.write_text(str(service.proc.pid))
        service.wait_ready()
        print(f"{name}: started (pid {service.proc.pid}) on {service.url}, log {service.log_path}")
    return 0


def _down(args: argparse.Namespace) -> int:
    state = state_dir()
    for name in ("prometheus", "alertmanager"):
        pidfile = state / f"{name}.pid"
        pid = pid_from_file(pidfile, (str(state / name),))
        if pid:
            print(f"{name}: stopped ({stop_pid(pid, STOP_TIMEOUT_S)})")
        pidfile.unlink(missing_ok=True)
    return 0


def _status(args: argparse.Namespace) -> int:
    state = state_dir()
    running = 0
    for name in ("prometheus", "alertmanager"):
        pid = pid_from_file(state / f"{name}.pid", (str(state / name),))
        print(f"{name}: {'running (pid %d)' % pid if pid else 'stopped'}")
        running += bool(pid)
    return 0 if running == 2 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.local.promstack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Prometheus and Alertmanager (installs them when missing)")
    up.add_argument("--worker", action="append", help="HOST:PORT of a worker to scrape (repeatable; default 127.0.0.1:6066)")
    up.add_argument("--prometheus-port", type=int, default=9090)
    up.add_argument("--alertmanager-port", type=int, default=9093)
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="say what runs")
    args = parser.parse_args(argv)
    try:
        return {"up": _up, "down": _down, "status": _status}[args.command](args)
    except PromStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
