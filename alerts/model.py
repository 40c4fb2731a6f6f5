"""Alert instances and their state machine, as pure functions of (instance, observation, now).

An instance is one rule applied to one scope (the whole floor, a team, a rep, a lead). It is keyed by a
stable fingerprint of the rule name and its scope labels, and moves

    inactive -> pending -> firing -> resolved     (and resolved -> pending/firing again: a new episode)

A transition that someone must hear about is a ``Transition``: ``firing`` (first notice of an episode),
``repeat`` (still firing after ``repeat_interval``), ``escalation`` (a lead SLA step) and ``resolved``.
Its identity ``fingerprint:episode:kind:seq`` is the notification's idempotency key. Times are UTC ms
on the alert clock (wall clock, or event time in replays); nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import NamedTuple

import msgspec

INACTIVE, PENDING, FIRING, RESOLVED = "inactive", "pending", "firing", "resolved"


def fingerprint(rule: str, scope: Mapping[str, str]) -> str:
    """Stable id of (rule, scope labels): the same on every worker, across restarts and releases."""
    raw = json.dumps([rule, sorted(scope.items())], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


class AlertInstance(msgspec.Struct, kw_only=True):
    fingerprint: str
    rule: str
    rule_type: str  # kpi | lead_sla | no_activity
    scope: dict[str, str]  # the labels the fingerprint is made of (team, rep, lead_id)
    state: str = INACTIVE
    episode: int = 0  # counts pending/firing episodes; part of every notification key
    pending_since: int | None = None
    firing_since: int | None = None
    resolved_at: int | None = None
    last_notified: int | None = None  # firing, repeat or escalation
    repeats: int = 0
    step: int = 0  # lead SLA: escalation steps notified (0: only the first firing)
    value: float | None = None
    severity: str = "warning"
    info: dict[str, object] = {}  # context for messages: threshold, owner, source, created_ms...
    updated_ms: int = 0  # wall clock of the last change: on reconcile the newer record wins


class Transition(NamedTuple):
    kind: str  # firing | repeat | escalation | resolved
    seq: int  # repeat count or escalation step; 0 otherwise
    at: int  # alert-clock ms the transition happened

    def key(self, inst: AlertInstance) -> str:
        return notification_key(inst.fingerprint, inst.episode, self.kind, self.seq)


def notification_key(fp: str, episode: int, kind: str, seq: int) -> str:
    return f"{fp}:{episode}:{kind}:{seq}"


def new_instance(rule: str, rule_type: str, scope: Mapping[str, str], severity: str = "warning") -> AlertInstance:
    return AlertInstance(
        fingerprint=fingerprint(rule, scope), rule=rule, rule_type=rule_type, scope=dict(scope), severity=severity
    )


def _copy(inst: AlertInstance, **changes) -> AlertInstance:
    return msgspec.structs.replace(inst, **changes)


def observe(
    inst: AlertInstance,
    breached: bool,
    now: int,
    *,
    for_ms: int = 0,
    repeat_ms: int | None = None,
    muted: bool = False,
    value: float | None = None,
) -> tuple[AlertInstance, list[Transition]]:
    """One evaluation of a threshold rule for one instance.

    ``breached`` holds now; ``for_ms`` is how long it must hold before firing; ``repeat_ms`` re-notifies a
    firing instance (not while ``muted``: acknowledged or snoozed). Resolving is always notified.
    """
    state = inst.state
    if breached:
        if state in (INACTIVE, RESOLVED):
            episode = inst.episode + 1
            pending = _copy(inst, state=PENDING, episode=episode, pending_since=now, firing_since=None,
                            resolved_at=None, repeats=0, step=0, last_notified=None, value=value)
            if for_ms <= 0:
                return _fire(pending, now)
            return pending, []
        if state == PENDING:
            assert inst.pending_since is not None
            if now - inst.pending_since >= for_ms:
                return _fire(_copy(inst, value=value), now)
            return _copy(inst, value=value), []
        # firing
        last = inst.last_notified if inst.last_notified is not None else inst.firing_since or now
        if repeat_ms and not muted and now - last >= repeat_ms:
            repeats = inst.repeats + 1
            return _copy(inst, repeats=repeats, last_notified=now, value=value), [Transition("repeat", repeats, now)]
        return _copy(inst, value=value), []
    if state == PENDING:
        return _copy(inst, state=INACTIVE, pending_since=None, value=value), []
    if state == FIRING:
        return resolve(_copy(inst, value=value), now)
    return inst, []


def _fire(inst: AlertInstance, now: int) -> tuple[AlertInstance, list[Transition]]:
    fired = _copy(inst, state=FIRING, firing_since=now, last_notified=now)
    return fired, [Transition("firing", 0, now)]


def fire(inst: AlertInstance, at: int, step: int = 0) -> tuple[AlertInstance, list[Transition]]:
    """Fire at once (a deadline passed): a new episode unless already firing."""
    if inst.state == FIRING:
        return inst, []
    fired = _copy(inst, state=FIRING, episode=inst.episode + 1, pending_since=at, firing_since=at,
                  resolved_at=None, last_notified=at, repeats=0, step=step)
    return fired, [Transition("firing", 0, at)]


def escalate(inst: AlertInstance, step: int, at: int, muted: bool = False) -> tuple[AlertInstance, list[Transition]]:
    """Reach escalation step ``step`` (1-based); steps already reached or a muted alert notify nothing."""
    if inst.state != FIRING or step <= inst.step:
        return inst, []
    moved = _copy(inst, step=step, last_notified=at)
    return moved, [] if muted else [Transition("escalation", step, at)]


def resolve(inst: AlertInstance, at: int) -> tuple[AlertInstance, list[Transition]]:
    if inst.state == PENDING:
        return _copy(inst, state=INACTIVE, pending_since=None), []
    if inst.state != FIRING:
        return inst, []
    return _copy(inst, state=RESOLVED, resolved_at=at), [Transition("resolved", 0, at)]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AlertInstance)


def dumps(inst: AlertInstance) -> bytes:
    return _encoder.encode(inst)


def loads(raw: bytes | str) -> AlertInstance:
    return _decoder.decode(raw)
