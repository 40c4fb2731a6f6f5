"""Fixtures for the alert tests: a local HTTP receiver that answers like Slack / a webhook / a broken sink,
a real Alertmanager, and a private redis-server that a test may stop and start again.

The receiver runs its own event loop in a thread, so synchronous tests (workers in subprocesses) and
async tests (the runtime in-process) can both use it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web

from tests.conftest import free_port, wait_for


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes
    t: float  # time.time() when it arrived

    def json(self) -> Any:
        ctype = self.headers.get("Content-Type", "")
        if "application/x-www-form-urlencoded" in ctype:
            return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every request. Paths: /slack/webhook (incoming webhook), /slack/api/<method> (Web API),
    /webhook (generic), /hang (never answers), /fail (HTTP 500)."""

    port: int = 0
    requests: list[Recorded] = field(default_factory=list)
    fail_next: int = 0  # answer the next N requests on any path with 500
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def on(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        with self._lock:
            self.requests.append(Recorded(path, dict(request.headers), body, time.time()))
            failing = self.fail_next > 0
            if failing:
                self.fail_next -= 1
        if path == "/hang":
            await asyncio.sleep(3600)
        if path == "/fail" or failing:
            return web.Response(status=500, text="internal_error")
        if path == "/slack/webhook":
            return web.Response(text="ok")
        if path.startswith("/slack/api/"):
            method = path.rsplit("/", 1)[1]
            doc = Recorded(path, dict(request.headers), body, 0).json()
            if method == "chat.postMessage":
                with self._lock:
                    self._ts += 1
                    ts = f"{int(time.time())}.{self._ts:06d}"
                return web.json_response({"ok": True, "ts": ts, "channel": doc.get("channel", "C0TEST")})
            if method == "chat.update":
                return web.json_response({"ok": True, "ts": doc.get("ts"), "channel": doc.get("channel")})
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response({"ok": True})


def _serve(receiver: Receiver, ready: threading.Event, stop: list) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", receiver.port)
    loop.run_until_complete(site.start())
    stop.append(loop)
    ready.set()
    loop.run_forever()
    loop.run_until_complete(runner.cleanup())
    loop.close()


@pytest.fixture
def receiver():
    rec = Receiver(port=free_port())
    ready, stop = threading.Event(), []
    thread = threading.Thread(target=_serve, args=(rec, ready, stop), daemon=True)
    thread.start()
    assert ready.wait(10), "receiver did not start"
    yield rec
    loop = stop[0]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def alertmanager(tmp_path):
    """A real Alertmanager (Debian's prometheus-alertmanager, installed by stream.local.promstack when missing)."""
    from stream.local import promstack

    service = promstack.start_alertmanager(tmp_path / "am", port=free_port())
    yield service
    service.stop()


class RedisServer:
    """A private redis-server on a free port: tests may stop and start it; the shared one is never touched."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for(self.answers, 10, 0.05, what=f"redis-server on {self.port}")

    def answers(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None and not os.path.exists("/usr/bin/redis-server"):
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def shared_redis_url():
    """The shared Redis (REDIS_URL, default 127.0.0.1:6379) when it answers; tests use their own app id."""
    import redis

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:
        pytest.skip("no Redis at REDIS_URL (run `kpi-monitor stack up`)")
    return url


@pytest.fixture
def forget_alert_state():
    """Register app ids whose alert state (``<app id>:alerts:*`` in the shared Redis) is deleted afterwards."""
    import redis

    app_ids: list[str] = []
    yield app_ids
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), socket_connect_timeout=2)
    try:
        for app_id in app_ids:
            keys = list(client.scan_iter(f"{app_id}:alerts:*"))
            if keys:
                client.delete(*keys)
    except redis.RedisError:
        pass
    finally:
        client.close()
