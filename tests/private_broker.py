"""A Kafka broker of a test's own (never the shared one on 9092), to kill and restart at will.

It is ``stream.local.stack.up`` with its own stack directory (``KPI_STACK_DIR``), broker port and controller
port; Redis is the running one (``up`` reuses it). ``extra_config`` adds broker properties (e.g. a SASL
listener on ``extra_port``) through ``KPI_KAFKA_EXTRA_CONFIG``. The Kafka jars are linked from the checkout's
``.stack`` when it has them, otherwise ``up`` fetches them (from ``~/.m2`` once Maven has them).
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from tests.conftest import REPO_ROOT, free_port


@contextmanager
def _env(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _checkout_jars() -> Path:
    """The checkout's Kafka jars (``.stack/kafka/libs``), fetched once like ``kpi-monitor stack up`` does."""
    from stream.local import stack

    with _env(KPI_STACK_DIR=str(REPO_ROOT / ".stack")):
        paths = stack._Paths()
        stack._ensure_jars(paths, echo=lambda *a, **k: None)  # no-op when present (CI's `stack up` made them)
    return paths.libs


class PrivateBroker:
    def __init__(self, root: Path, prefix: str = "sales.", partitions: int = 2, extra_config: str = "") -> None:
        self.root = root
        self.port, self.controller_port, self.extra_port = free_port(), free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = {"KPI_STACK_DIR": str(root), "KPI_KAFKA_CONTROLLER_PORT": str(self.controller_port)}
        if extra_config:  # broker properties with this broker's {port}, {controller_port} and {extra_port}
            root.mkdir(parents=True, exist_ok=True)
            extra = root / "extra.properties"
            extra.write_text(extra_config.format(port=self.port, controller_port=self.controller_port,
                                                 extra_port=self.extra_port))
            self.env["KPI_KAFKA_EXTRA_CONFIG"] = str(extra)
        self.settings = SimpleNamespace(kafka_bootstrap_servers=self.bootstrap, topic_prefix=prefix,
                                        partitions=partitions)
        own_libs = root / "kafka" / "libs"
        if not own_libs.exists():
            own_libs.parent.mkdir(parents=True, exist_ok=True)
            own_libs.symlink_to(_checkout_jars(), target_is_directory=True)

    def start(self) -> None:
        """Start (or restart, keeping its data) the broker and create the topics; returns when it answers."""
        from stream.local import stack

        with _env(**self.env):
            stack.up(self.settings, echo=lambda *a, **k: None)

    @property
    def pid(self) -> int | None:
        try:
            return int((self.root / "kafka.pid").read_text())
        except (OSError, ValueError):
            return None

    def freeze(self) -> None:
        """SIGSTOP: the broker hangs (a network partition, a stuck disk) — connections stay open, nothing answers."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.pid is not None:
            os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM: a clean broker shutdown (a maintenance restart); returns when the process is gone."""
        pid = self.pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        self._wait_gone(pid, 60)

    def kill(self) -> None:
        """SIGKILL: the broker vanishes mid-flight, as in a crash."""
        pid = self.pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGCONT)  # a frozen broker must not stay stopped-but-alive
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self._wait_gone(pid, 10)

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our child (stack.up started it): reap it
                    return
            except ChildProcessError:  # not our child: wait for /proc to forget it
                if not Path(f"/proc/{pid}").exists():
                    return
            time.sleep(0.05)
        raise AssertionError(f"private broker pid {pid} still running after {timeout}s")
