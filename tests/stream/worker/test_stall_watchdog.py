"""The stall watchdog: waiting messages and no progress -> unhealthy, and (by default) exit code 3."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from stream.worker.context import is_consuming
from stream.worker.health import check_progress


class Offsets:
    def __init__(self, behind: int) -> None:
        self.behind = behind

    async def refresh(self, ctx) -> None:
        pass

    def lag(self, ctx):
        yield "leads", "leads", 0, self.behind


def make_ctx(behind: int, last_event: float | None, exit_on_stall: bool = False):
    return SimpleNamespace(
        app=SimpleNamespace(rebalancing=False, tables=SimpleNamespace(
            recovery=SimpleNamespace(completed=SimpleNamespace(is_set=lambda: True)))),
        broker_ok=True, broker_checked=1.0, stalled=None, ready_since=0.0,
        stats=SimpleNamespace(last_event_wall=last_event, started=0.0),
        scrape=SimpleNamespace(offsets=Offsets(behind)),
        settings=SimpleNamespace(kpi_stall_seconds=90, kpi_exit_on_stall=exit_on_stall),
    )


def test_waiting_messages_and_no_progress_is_a_stall_until_progress_resumes():
    ctx = make_ctx(behind=500, last_event=1000.0)
    asyncio.run(check_progress(ctx, 1089.0))
    assert ctx.stalled is None  # 89 s: not yet
    asyncio.run(check_progress(ctx, 1091.0))
    assert is_consuming(ctx) == (False, "stalled: 500 messages waiting, none processed for 91s")
    ctx.stats.last_event_wall = 1095.0  # it moved again
    asyncio.run(check_progress(ctx, 1100.0))
    assert ctx.stalled is None and is_consuming(ctx) == (True, "consuming")


def test_the_quiet_time_starts_at_the_latest_recovery_at_the_earliest():
    # Quiet for 95 s, but the partitions of a dead peer were recovered 5 s ago: give them the full limit.
    ctx = make_ctx(behind=1934, last_event=1000.0)
    ctx.ready_since = 1090.0
    asyncio.run(check_progress(ctx, 1095.0))
    assert ctx.stalled is None
    asyncio.run(check_progress(ctx, 1181.0))
    assert ctx.stalled == "stalled: 1934 messages waiting, none processed for 91s"


def test_quiet_with_nothing_waiting_is_not_a_stall():
    ctx = make_ctx(behind=0, last_event=1000.0)
    asyncio.run(check_progress(ctx, 5000.0))
    assert ctx.stalled is None


def test_a_stall_exits_with_code_3_by_default(monkeypatch):
    ctx = make_ctx(behind=7, last_event=None, exit_on_stall=True)  # never processed anything since start (0.0)
    monkeypatch.setattr("stream.worker.durability.os._exit", lambda code: (_ for _ in ()).throw(SystemExit(code)))
    monkeypatch.setattr("stream.worker.durability.logging.shutdown", lambda: None)
    with pytest.raises(SystemExit) as exit_info:
        asyncio.run(check_progress(ctx, 100.0))
    assert exit_info.value.code == 3
