"""Durations as people write them in settings, rules and on the command line: ``90``, ``90s``, ``5m``,
``1h30m``, ``2d``, ``5w``, ``250ms`` (a bare number is seconds)."""

from __future__ import annotations

import math
import re
from typing import Any

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
HINT = "a duration is a number of seconds or text like 30s, 5m, 1h30m, 2d"


def parse_duration(value: Any) -> float:
    """Seconds, >= 0; ValueError naming the value otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(HINT)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 1h30m, 2d)")
            seconds = sum(float(n) * UNITS[u] for n, u in parts)
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration cannot be negative or infinite, got {value!r}")
    return seconds


def parse_positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds
