"""The local services' processes: pid files, stopping, log tails (stream.local.stack, stream.local.promstack,
the benchmarks and the tests share these)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


class StopError(RuntimeError):
    """A process survived SIGKILL."""


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` of a log file, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (our own exited child is reaped here)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def pid_from_file(pidfile: Path, needles: tuple[str, ...]) -> int | None:
    """The pid in ``pidfile`` if that process lives and its command line has every needle (pids get reused)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) and all(n in cmdline(pid) for n in needles) else None


def stop_pid(pid: int, timeout: float) -> str:
    """SIGTERM, then SIGKILL after ``timeout``; the name of the signal that ended it."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return sig.name
            time.sleep(0.1)
    raise StopError(f"pid {pid} survived SIGKILL")
