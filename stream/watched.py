"""A configuration file that follows its edits: the roster and the alert rules reload without a restart.

The file is stat'ed at most once per ``check_every_s`` (or at once after ``reload_now()``, e.g. on
SIGHUP); a changed file is loaded again. A broken edit is logged, counted in ``failures`` and ignored:
the last good value stays in force, so a typo never takes a worker's roster or rules away.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("kpi_monitor.config")


class WatchedFile(Generic[T]):
    def __init__(self, path: str | Path, load: Callable[[Path], T], *, what: str,
                 errors: tuple[type[Exception], ...], describe: Callable[[T], str],
                 value: T | None = None, check_every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._load, self._what, self._errors, self._describe = load, what, errors, describe
        self._mtime = self._stat()
        self.value: T = load(self.path) if value is None else value
        self.failures = 0  # edits that could not be loaded
        self._check_every_s, self._clock = check_every_s, clock
        self._checked = clock()
        self._now = False

    def _stat(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    def reload_now(self) -> None:
        """Load the file on the next look even if it looks unchanged (SIGHUP)."""
        self._now = True

    def poll(self) -> T | None:
        """The new value when the file changed (or ``reload_now``) and loads; None otherwise."""
        if not self._now and self._clock() - self._checked < self._check_every_s:
            return None
        self._checked = self._clock()
        mtime = self._stat()
        if not self._now and mtime == self._mtime:
            return None
        self._now, self._mtime = False, mtime
        try:
            value = self._load(self.path)
        except self._errors as exc:
            self.failures += 1
            log.error("%s not reloaded from %s, keeping the previous one:\n%s", self._what, self.path, exc)
            return None
        self.value = value
        log.info("%s reloaded from %s: %s", self._what, self.path, self._describe(value))
        return value

    def current(self) -> T:
        """The value in force, after a reload if the file changed."""
        self.poll()
        return self.value
