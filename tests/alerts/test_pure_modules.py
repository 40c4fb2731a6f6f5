"""STYLE.md rule 1 for alerts: rules, calendars, the state machine, evaluation and message building are
pure — no Faust, Kafka, Prometheus, Redis, HTTP or Slack client, directly or through other alerts modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = ("calendar", "rules", "model", "evaluate", "notification")
FORBIDDEN = {"faust", "mode", "aiokafka", "kafka", "prometheus_client", "aiohttp", "redis", "http", "requests",
             "httpx", "slack_sdk", "socket", "asyncio", "urllib.request"}


def imports(module: str) -> set[str]:
    path = ROOT / Path(*module.split(".")).with_suffix(".py")
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name in imports(current):
            if name.startswith("alerts."):
                todo.append(name)
            else:
                seen.add(name)
    return seen


@pytest.mark.parametrize("name", PURE)
def test_pure(name):
    used = closure(f"alerts.{name}")
    bad = {m for m in used if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN - {"urllib.request"}}
    assert not bad, f"alerts/{name}.py reaches {sorted(bad)}"
