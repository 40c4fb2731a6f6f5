"""A Kafka broker of a test's own, started by `kpi-monitor stack up` in its own directory and ports, so a
test can stop and restart it without disturbing the shared broker other tests use."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO_ROOT, free_port


class PrivateBroker:
    def __init__(self, root: Path, extra_config: str = "") -> None:
        self.root = root
        self.port = free_port()
        self.controller_port = free_port()
        self.extra_port = free_port()  # for a second listener in extra_config
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "KPI_STACK_DIR": str(root),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KPI_KAFKA_CONTROLLER_PORT": str(self.controller_port),
        }
        if extra_config:  # broker properties with this broker's {port}, {controller_port} and {extra_port}
            root.mkdir(parents=True, exist_ok=True)
            (root / "extra.properties").write_text(
                extra_config.format(port=self.port, controller_port=self.controller_port, extra_port=self.extra_port))
            self.env["KPI_KAFKA_EXTRA_CONFIG"] = str(root / "extra.properties")
        shared_libs = REPO_ROOT / ".stack" / "kafka" / "libs"  # fetched by the shared stack's `up`
        (root / "kafka").mkdir(parents=True, exist_ok=True)
        if shared_libs.is_dir() and not (root / "kafka" / "libs").exists():
            (root / "kafka" / "libs").symlink_to(shared_libs)

    def start(self) -> float:
        """Start (or restart on the same data) and wait until it answers; returns the seconds it took."""
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "stream.cli", "stack", "up"], cwd=REPO_ROOT, env=self.env,
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, f"private broker did not start:\n{r.stdout}\n{r.stderr}"
        return time.monotonic() - t0

    @property
    def pid(self) -> int | None:
        try:
            return int((self.root / "kafka.pid").read_text())
        except (OSError, ValueError):
            return None

    def stop(self, hard: bool = False) -> None:
        """Stop the broker process (SIGTERM, or SIGKILL with hard=True) and wait until it is gone."""
        pid = self.pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        self.stop(hard=True)
