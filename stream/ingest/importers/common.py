"""What the importers share: reading CSV files, placing dates in time, writing events in time order.

Every event an importer makes is checked with the worker's ``EventValidator`` before it is written, so a
file that imports cleanly replays without dead letters (except ``too_late`` for events that are out of
order by more than 25 h, which time-ordered output avoids by construction).
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

import orjson

from stream.events import LIFECYCLE_RANK, EventValidator, InvalidEvent


class ImportFailed(ValueError):
    """The input cannot be imported; the message names the file (and row or column)."""


@dataclass
class ImportReport:
    source: str
    rows: dict[str, int] = field(default_factory=dict)  # file name -> data rows read
    events: Counter = field(default_factory=Counter)  # event type -> events written
    skipped: Counter = field(default_factory=Counter)  # reason -> rows not imported
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        rows = ", ".join(f"{name} {n}" for name, n in self.rows.items())
        events = ", ".join(f"{t} {n}" for t, n in sorted(self.events.items()))
        lines = [f"import {self.source}: rows read: {rows}; {sum(self.events.values())} events written ({events})"]
        lines += [f"  skipped {n} rows: {reason}" for reason, n in self.skipped.items()]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class Clock:
    """How CSV dates become instants: naive values are local to ``tz``; a date alone is at ``time_of_day``."""

    tz: tzinfo = timezone.utc
    time_of_day: time = time(0, 0)

    @classmethod
    def parse(cls, tz_name: str = "UTC", time_of_day: str = "00:00") -> Clock:
        try:
            tz = ZoneInfo(tz_name)
        except Exception:
            raise ImportFailed(f"--tz: unknown time zone {tz_name!r}") from None
        try:
            tod = time.fromisoformat(time_of_day)
        except ValueError:
            raise ImportFailed(f"--time-of-day: {time_of_day!r} is not HH:MM") from None
        return cls(tz, tod)

    def instant(self, text: str) -> datetime:
        """A CSV date (``2018-02-01``) or datetime (``2018-02-26 19:58:54``) as a UTC instant."""
        text = text.strip()
        if len(text) == 10:
            local = datetime.combine(date.fromisoformat(text), self.time_of_day)
        else:
            local = datetime.fromisoformat(text)
        if local.tzinfo is None:
            local = local.replace(tzinfo=self.tz)
        return local.astimezone(timezone.utc)


def read_csv(path: str | Path, required: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts; CRLF or LF, optional BOM; ImportFailed naming a missing column."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise ImportFailed(f"{path}: missing column(s) {', '.join(missing)} "
                                   f"(found: {', '.join(reader.fieldnames or []) or 'nothing'})")
            return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    except OSError as exc:
        raise ImportFailed(f"{path}: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ImportFailed(f"{path}: not a readable UTF-8 CSV file ({exc})") from None


def row_instant(clock: Clock, path: str | Path, lineno: int, column: str, text: str) -> datetime:
    try:
        return clock.instant(text)
    except ValueError:
        raise ImportFailed(f"{path}: line {lineno}: {column} {text!r} is not a date or datetime") from None


def money(text: str) -> str:
    """A CSV amount as a decimal string; empty means 0."""
    if not text:
        return "0"
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    return format(value.to_integral_value() if value == value.to_integral_value() else value, "f")


def rfc3339(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def write_events(events: Iterable[tuple[datetime, dict]], out: IO[bytes], validator: EventValidator,
                 report: ImportReport) -> None:
    """Sort by (occurred_at, lifecycle rank, event_id) — event order — validate, and write one JSON line each."""
    ordered = sorted(events, key=lambda pair: (pair[0], LIFECYCLE_RANK[pair[1]["type"]], pair[1]["event_id"]))
    lines = []
    for _, event in ordered:  # all checked before the first is written: no half-written file on error
        raw = orjson.dumps(event)
        try:
            validator.validate(raw)
        except InvalidEvent as exc:  # a mapping bug or a deployment whose stages differ: never write it
            raise ImportFailed(f"event {event['event_id']} would be dead-lettered ({exc.reason}: {exc.detail})") from None
        lines.append(raw)
        report.events[event["type"]] += 1
    out.write(b"\n".join(lines) + b"\n" if lines else b"")


def line_numbers(rows: list[dict[str, str]]) -> Iterator[tuple[int, dict[str, str]]]:
    """(file line number, row): the header is line 1."""
    return enumerate(rows, 2)


def open_output(path: str | None):
    """A binary stream for ``--out`` (``-`` or None: standard output)."""
    if path in (None, "-"):
        return _NoClose(sys.stdout.buffer)
    return open(path, "wb")


class _NoClose:
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def __enter__(self) -> IO[bytes]:
        return self.stream

    def __exit__(self, *exc: object) -> None:
        self.stream.flush()
