"""Splitting a request body into the byte strings it holds, counting them before copying anything.

A 4 MiB body can hold 1.4 M tiny JSON values; turning each into a Python object first (as a plain
``json.loads`` does) costs gigabytes before any limit could be checked. So the elements of an array, or
the lines of JSON Lines, are *counted* first, with work and memory bounded by the body's size, and a
body with more than ``limit`` of them raises ``TooManyElements``. Only then is it split, and each
element comes out as the exact bytes that were sent: nothing is decoded and re-encoded, so a number is
never rounded through a float.
"""

from __future__ import annotations

import contextvars
import re

import msgspec


class TooManyElements(Exception):
    """The body holds more than ``limit`` elements (HTTP 413); nothing was copied."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit}")
        self.limit = limit


class NotJson(ValueError):
    """The body is not one valid JSON document."""


# ---------------------------------------------------------------- arrays

_budget: contextvars.ContextVar[list[int]] = contextvars.ContextVar("json_split_budget")


class _CountedObject(msgspec.Struct):
    """Any JSON object, read without building it (msgspec skips unknown fields unread); counts itself."""

    def __post_init__(self) -> None:
        left = _budget.get()
        left[0] -= 1
        if left[0] < 0:
            raise TooManyElements(0)  # the limit is filled in by the caller


_count_objects = msgspec.json.Decoder(list[_CountedObject])
_elements = msgspec.json.Decoder(list[msgspec.Raw])
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"')
_FLAT_CONTAINER = re.compile(rb"\{[^\[\]{}]*+\}|\[[^\[\]{}]*+\]")
_BRACKETS = re.compile(rb"[\[\]{}]")
MAX_DEPTH = 64  # nesting levels the exact count follows; events are flat, so this is generous


def _check_count(body: bytes, limit: int) -> None:
    """TooManyElements when the JSON array ``body`` has more than ``limit`` elements; NotJson when unreadable."""
    token = _budget.set([limit])
    try:
        _count_objects.decode(body)  # every element an object (the usual case): stops at element limit + 1
        return
    except TooManyElements:
        raise TooManyElements(limit) from None
    except msgspec.ValidationError:
        pass  # an element is not an object: count exactly below
    except (msgspec.DecodeError, RecursionError) as exc:
        raise NotJson(str(exc)) from None
    finally:
        _budget.reset(token)
    # Exact count with C-speed passes over copies of the body (never one object per element): strings
    # become 0, then innermost containers do, level by level, until the commas left are the array's own.
    inner = _STRING.sub(b"0", body.strip())[1:-1]
    for _ in range(MAX_DEPTH):
        if not _BRACKETS.search(inner):
            break
        inner, replaced = _FLAT_CONTAINER.subn(b"0", inner)
        if not replaced:
            raise NotJson("unbalanced brackets")
    else:
        raise NotJson(f"nested more than {MAX_DEPTH} levels deep")
    count = inner.count(b",") + 1 if inner.strip() else 0
    if count > limit:
        raise TooManyElements(limit)


def array_elements(body: bytes, limit: int) -> list[bytes]:
    """The elements of the JSON array ``body``, each exactly as sent; TooManyElements past ``limit``, or NotJson."""
    _check_count(body, limit)
    try:
        return [bytes(raw) for raw in _elements.decode(body)]
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise NotJson(str(exc)) from None


def check_one_value(body: bytes) -> None:
    """NotJson unless the body is one JSON document (validated without building it)."""
    try:
        msgspec.json.decode(body, type=msgspec.Raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise NotJson(str(exc)) from None


# ---------------------------------------------------------------- JSON Lines

# A line holding something other than white space. Anchored at line starts, so a long blank run is
# looked at once, not once per position in it.
_NON_BLANK_LINE = re.compile(rb"^[^\S\n]*+\S[^\n]*", re.MULTILINE)


def lines(body: bytes, limit: int) -> list[tuple[int, bytes]]:
    """(1-based line number, stripped line) of every non-blank line; TooManyElements past ``limit``."""
    out: list[tuple[int, bytes]] = []
    number, counted_to = 1, 0
    for match in _NON_BLANK_LINE.finditer(body):
        if len(out) == limit:
            raise TooManyElements(limit)
        number += body.count(b"\n", counted_to, match.start())
        counted_to = match.start()
        out.append((number, match.group().strip()))
    return out


def has_several_lines(body: bytes) -> bool:
    """More than one non-blank line (JSON Lines sent as ``application/json``)."""
    found = _NON_BLANK_LINE.finditer(body)
    return next(found, None) is not None and next(found, None) is not None
