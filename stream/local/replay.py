"""Replay a JSON Lines event log into Kafka: each line to its topic, with its key, in file order.

The topic comes from the line's ``type`` (``TOPIC_OF_TYPE``) and the key follows ``event_key``: the
``lead_id`` (lead events, calls with a lead), the ``call_id`` (calls without one), the ``deal_id``.
Replay does *not* validate events: the worker is the validator, so a line with, say, a negative
amount is still produced and gets dead-lettered there. Only lines that cannot be routed at all
(not JSON, not an object, no known ``type``, no usable key) are skipped and reported as bad lines
with their line numbers. The line's bytes are produced unchanged (no re-encoding).

By default lines are produced as fast as possible (batched send futures, ``acks=all``, idempotent
producer, all awaited at the end); ``speed`` X paces them by event time: a line whose
``occurred_at`` is D after the first line's goes out D / X after the start (1 = real time, 60 =
sixty times faster). Lines earlier than that schedule (out-of-order logs) go out at once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import orjson

from stream.events import TOPIC_OF_TYPE

MAX_BAD_SAMPLES = 10
_ENTITY_KEYS = {"leads": ("lead_id",), "calls": ("lead_id", "call_id"), "deals": ("deal_id",), "spend": ("channel",),
                "subscriptions": ("account_id",), "forecasts": ("rep_id",)}


class BadLine(ValueError):
    """A line that cannot be routed to a topic; ``str(exc)`` says why."""


def _usable_key(value: Any) -> str | None:
    # An int id is wrong but routable (the worker dead-letters it); anything else has no key.
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def route(obj: Any) -> tuple[str, str]:
    """(topic suffix, key) of a decoded event, or BadLine."""
    if not isinstance(obj, dict):
        raise BadLine(f"not a JSON object ({type(obj).__name__})")
    etype = obj.get("type")
    if etype is None:
        raise BadLine("no `type` field")
    topic = TOPIC_OF_TYPE.get(etype) if isinstance(etype, str) else None
    if topic is None:
        raise BadLine(f"unknown type {etype!r}")
    for name in _ENTITY_KEYS[topic]:
        key = _usable_key(obj.get(name))
        if key is not None:
            return topic, key
    raise BadLine(f"no usable key: {' or '.join(f'`{n}`' for n in _ENTITY_KEYS[topic])} missing or empty")


def parse_line(line: bytes) -> tuple[str, str, dict]:
    """(topic suffix, key, decoded object) of one line, or BadLine."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadLine(f"not JSON ({exc})") from None
    topic, key = route(obj)
    return topic, key, obj


def event_time(obj: dict) -> float | None:
    """occurred_at as epoch seconds, for pacing; None when missing or unreadable."""
    value = obj.get("occurred_at")
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).timestamp()


@dataclass
class ReplayReport:
    path: str
    lines: int = 0  # lines read, blank ones included
    blank: int = 0
    sent: int = 0
    produced: dict[str, int] = field(default_factory=dict)  # full topic name -> acknowledged messages
    failed: int = 0
    first_error: str | None = None
    bad: int = 0
    bad_samples: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason), first 10
    elapsed: float = 0.0

    @property
    def produced_total(self) -> int:
        return sum(self.produced.values())

    @property
    def rate(self) -> float:
        return self.produced_total / self.elapsed if self.elapsed > 0 else 0.0

    def add_bad(self, lineno: int, reason: str) -> None:
        self.bad += 1
        if len(self.bad_samples) < MAX_BAD_SAMPLES:
            self.bad_samples.append((lineno, reason))

    def format(self) -> str:
        topics = ", ".join(f"{t} {n}" for t, n in sorted(self.produced.items())) or "nothing"
        out = [f"replay {self.path}: {self.lines} lines read, {self.produced_total} produced ({topics}) in "
               f"{self.elapsed:.2f} s ({self.rate:.0f} events/s); {self.bad} bad lines skipped"]
        if self.failed:
            out.append(f"  FAILED to deliver {self.failed} messages: {self.first_error}")
        out += [f"  line {n}: {reason}" for n, reason in self.bad_samples]
        if self.bad > len(self.bad_samples):
            out.append(f"  ... and {self.bad - len(self.bad_samples)} more bad lines")
        return "\n".join(out)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def replay(path: str | Path, settings, speed: float | None = None, producer=None, *,
                 echo: Callable[[str], None] = _stderr, progress_every: float = 5.0) -> ReplayReport:
    """Produce every routable line of ``path``; ``producer`` (already started) is used if given."""
    if speed is not None and speed <= 0:
        raise ValueError("speed must be positive")
    own = producer is None
    if own:
        from aiokafka import AIOKafkaProducer

        from stream.kafka_security import aiokafka_security

        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                    enable_idempotence=True, linger_ms=20, max_batch_size=512 * 1024,
                                    max_request_size=2 * 1024 * 1024, **aiokafka_security(settings))
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
    report = ReplayReport(str(path))
    pending: set[asyncio.Future] = set()

    def delivered(fut: asyncio.Future, topic: str) -> None:
        pending.discard(fut)
        error = "cancelled" if fut.cancelled() else fut.exception()
        if error is None:
            report.produced[topic] = report.produced.get(topic, 0) + 1
        else:
            report.failed += 1
            report.first_error = report.first_error or f"{type(error).__name__}: {error}"

    t0 = last_progress = time.monotonic()
    first_ts: float | None = None
    try:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                report.lines += 1
                line = raw.strip()
                if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):  # a BOM some editors write
                    line = line[3:].strip()
                if not line:
                    report.blank += 1
                    continue
                try:
                    topic, key, obj = parse_line(line)
                except BadLine as exc:
                    report.add_bad(lineno, str(exc))
                    continue
                if speed is not None and (ts := event_time(obj)) is not None:
                    first_ts = ts if first_ts is None else first_ts
                    wait = t0 + (ts - first_ts) / speed - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                full_topic = settings.topic(topic)
                fut = await producer.send(full_topic, value=line, key=key.encode())
                report.sent += 1
                pending.add(fut)
                fut.add_done_callback(lambda f, t=full_topic: delivered(f, t))
                if time.monotonic() - last_progress >= progress_every:
                    last_progress = time.monotonic()
                    echo(f"replay: line {lineno}, {report.produced_total} produced "
                         f"({report.produced_total / (last_progress - t0):.0f}/s), {report.bad} bad")
        if pending:
            await asyncio.wait(set(pending))
        await asyncio.sleep(0)  # done callbacks run on the next loop pass
    finally:
        if own:
            await producer.stop()
        report.elapsed = time.monotonic() - t0
    return report


# ---------------------------------------------------------------- CLI hooks
# Click-free spec: (flags, dest, type, default, help); FILE is a positional argument.
REPLAY_ARGUMENTS = (("path", str, "JSON Lines file: one event per line"),)
REPLAY_OPTIONS = (
    (("--speed",), "speed", float, None, "Pace by event time x SPEED (1 = real time); default: as fast as possible."),
)


def replay_main(settings, path: str, speed: float | None = None) -> int:
    """Entry point for ``kpi-monitor replay FILE``: 0 ok, 1 delivery failed / no broker, 2 bad input."""
    from aiokafka.errors import KafkaError

    if speed is not None and speed <= 0:
        _stderr("replay: --speed must be positive")
        return 2
    if not Path(path).is_file():
        _stderr(f"replay: no such file: {path}")
        return 2
    try:
        report = asyncio.run(replay(path, settings, speed))
    except KafkaError as exc:
        _stderr(f"replay: Kafka at {settings.kafka_bootstrap_servers}: {exc}")
        return 1
    except OSError as exc:
        _stderr(f"replay: {exc}")
        return 2
    except KeyboardInterrupt:
        _stderr("replay: interrupted")
        return 130
    _stderr(report.format())
    return 1 if report.failed else 0
