"""The wall's display formats, as stream/worker/wall/tiles.py states them and wall.js implements them.

Written out here independently of the page so the browser test can say what a tile must show. JavaScript
rounds halves up (``Math.round``, ``toFixed`` on the exact binary value): so does this.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
NONE = "—"


def js_round(value: float) -> int:
    return math.floor(value + 0.5)


def fixed(value: float, digits: int) -> str:
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def count(v: float) -> str:
    return f"{js_round(v):,}"


def duration(v: float) -> str:
    t = math.floor(v)
    if t < 60:
        return f"{t}s"
    if t < 3600:
        return f"{t // 60}m {t % 60:02d}s"
    if t < 86400:
        return f"{t // 3600}h {t // 60 % 60:02d}m"
    return f"{t // 86400}d {t // 3600 % 24}h"


def percent(v: float) -> str:
    return f"{js_round(v * 100)}%"


def money(v: float, currency: str = "USD") -> str:
    sym = SYMBOLS.get(currency, f"{currency} ")
    if abs(v) < 1000:
        return f"{sym}{js_round(v)}"
    if abs(v) < 1e6:
        return f"{sym}{fixed(v / 1e3, 1)}k"
    return f"{sym}{fixed(v / 1e6, 2)}M"


def show(fmt: str, value: float | None, currency: str = "USD") -> str:
    if value is None:
        return NONE
    if fmt == "money":
        return money(value, currency)
    return {"count": count, "duration": duration, "percent": percent}[fmt](value)
