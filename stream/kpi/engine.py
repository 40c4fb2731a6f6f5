"""Applies validated events to entity state and keeps the aggregates of the partitions a worker owns.

The engine is pure: the entity table is anything with ``get(key)`` and ``table[key] = value`` for str keys
and bytes values (a Faust table behind an adapter in the worker, a dict in tests). Partitions are identified by (group, partition) where group is ``leads`` (the leads
and calls topics, co-partitioned by lead_id) or ``deals``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol
from dataclasses import dataclass

import msgspec

from stream.events import CallLogged, Event, InvalidEvent, TOPIC_OF_TYPE
from stream.kpi.aggregates import Agg
from stream.kpi.facts import Contribution, Entity, add_fact, deal_contributions, diff_contributions, fact_from_event, lead_contributions
from stream.kpi.store import PartitionAggregates, ScopeKey
from stream.kpi.windows import DayCalendar, minute_of

log = logging.getLogger(__name__)

GROUP_OF_TOPIC = {"leads": "leads", "calls": "leads", "deals": "deals"}
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Entity).decode


class EntityTable(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def __setitem__(self, key: str, value: bytes) -> None: ...


@dataclass(frozen=True)
class EngineConfig:
    sla_seconds: float = 300.0
    timezone: str = "UTC"
    lead_max_age_seconds: float = 7 * 86400
    too_late_seconds: float = 25 * 3600
    event_clock: bool = False  # True: `now` is the event-time watermark (replay); False: the wall clock


def entity_key(event: Event) -> str:
    """Table key: leads and lone calls share the leads group's table, so they get distinct prefixes."""
    if isinstance(event, CallLogged) and event.lead_id is None:
        return "C:" + event.call_id
    if TOPIC_OF_TYPE[event.type] == "deals":
        return "D:" + event.deal_id  # type: ignore[attr-defined]
    return "L:" + event.lead_id  # type: ignore[attr-defined]


def contributions_of(key: str, entity: Entity):
    return deal_contributions(entity.facts) if key.startswith("D:") else lead_contributions(entity.facts)


class PartitionState:
    """Aggregates and per-topic event-time watermarks of one (group, partition)."""

    def __init__(self, config: EngineConfig, calendar: DayCalendar) -> None:
        self.aggregates = PartitionAggregates(
            calendar, round(config.sla_seconds * 1000), round(config.lead_max_age_seconds * 1000)
        )
        self.watermarks: dict[str, int] = {}  # topic suffix -> largest occurred_at applied (ms)
        self.entities = 0

    def watermark(self) -> int | None:
        return max(self.watermarks.values(), default=None)


# Called with (group, partition, entity key, retracted contributions, added contributions) whenever an
# entity's contributions change, including when a partition is rebuilt (everything "added") or dropped
# (everything "retracted"). The alert engine follows waiting leads this way.
ChangeListener = Callable[[str, int, str, list[Contribution], list[Contribution]], None]


class KpiEngine:
    def __init__(self, config: EngineConfig = EngineConfig()) -> None:
        self.config = config
        self.calendar = DayCalendar(config.timezone)
        self.partitions: dict[tuple[str, int], PartitionState] = {}
        self.listeners: list[ChangeListener] = []
        self._too_late_ms = round(config.too_late_seconds * 1000)

    # --- partition lifecycle ----------------------------------------------------------------------
    def partition(self, group: str, partition: int) -> PartitionState:
        state = self.partitions.get((group, partition))
        if state is None:
            state = self.partitions[(group, partition)] = PartitionState(self.config, self.calendar)
        return state

    def rebuild(self, group: str, partitions: Iterable[int], items: Iterable[tuple[str, bytes]], wall_ms: int) -> int:
        """Recompute the aggregates of ``partitions`` from the entity table's items; returns entities read."""
        wanted = set(partitions)
        for p in wanted:
            self.partitions[(group, p)] = PartitionState(self.config, self.calendar)
        count = 0
        for key, raw in items:
            entity = _decode(raw)
            if entity.partition not in wanted:
                continue
            state = self.partitions[(group, entity.partition)]
            state.entities += 1
            count += 1
            for fact in entity.facts:
                topic = TOPIC_OF_TYPE[fact.kind]
                if fact.ts > state.watermarks.get(topic, -(2**62)):
                    state.watermarks[topic] = fact.ts
            added = contributions_of(key, entity)
            state.aggregates.apply(added, +1)
            for listener in self.listeners:
                listener(group, entity.partition, key, [], added)
        for p in wanted:
            self.expire_partition(self.partitions[(group, p)], wall_ms)
        return count

    def drop(self, group: str, partitions: Iterable[int]) -> None:
        for p in partitions:
            if self.partitions.pop((group, p), None) is not None:
                for listener in self.listeners:
                    listener(group, p, "", [], [])  # empty key: the whole partition is gone

    # --- applying events --------------------------------------------------------------------------
    def apply(
        self,
        table: EntityTable,
        topic_suffix: str,
        partition: int,
        event: Event,
        wall_ms: int,
    ) -> bool:
        """Apply one valid event; False for a redelivered event_id. Raises InvalidEvent("too_late")."""
        group = GROUP_OF_TOPIC[topic_suffix]
        state = self.partition(group, partition)
        fact = fact_from_event(event)
        reference = state.watermarks.get(topic_suffix) if self.config.event_clock else wall_ms
        if reference is not None and fact.ts < minute_of(reference) * 60_000 - self._too_late_ms:
            raise InvalidEvent(
                "too_late",
                f"`occurred_at` is more than {self._too_late_ms // 3_600_000} h older than the partition's "
                f"{'watermark' if self.config.event_clock else 'wall clock'}",
            )
        key = entity_key(event)
        raw = table.get(key)
        if raw is None:
            entity = Entity(partition=partition, facts=[])
            state.entities += 1
        else:
            entity = _decode(raw)
        old = contributions_of(key, entity)
        if not add_fact(entity, fact):
            return False
        new = contributions_of(key, entity)
        removed, added = self._apply_diff(state.aggregates, old, new)
        if removed or added:
            for listener in self.listeners:
                listener(group, partition, key, removed, added)
        table[key] = _encode(entity)
        if fact.ts > state.watermarks.get(topic_suffix, -(2**62)):
            state.watermarks[topic_suffix] = fact.ts
        return True

    @staticmethod
    def _apply_diff(aggregates: PartitionAggregates, old: list, new: list) -> tuple[list, list]:
        removed, added = diff_contributions(old, new)
        if removed:
            aggregates.apply(removed, -1)
        if added:
            aggregates.apply(added, +1)
        return removed, added

    # --- clock and reading ------------------------------------------------------------------------
    def watermark(self) -> int | None:
        """Largest occurred_at applied on this worker's partitions."""
        return max((w for s in self.partitions.values() if (w := s.watermark()) is not None), default=None)

    def now(self, wall_ms: int) -> int:
        if self.config.event_clock:
            mark = self.watermark()
            return mark if mark is not None else wall_ms
        return wall_ms

    def expire_partition(self, state: PartitionState, wall_ms: int) -> None:
        now = state.watermark() if self.config.event_clock else wall_ms
        if now is not None:
            state.aggregates.expire(now)

    def expire(self, wall_ms: int) -> None:
        for state in self.partitions.values():
            self.expire_partition(state, wall_ms)

    def partials(self, window: str, now_ms: int) -> dict[tuple[str, int], dict[ScopeKey, Agg]]:
        """Window-reduced aggregates per owned partition, ready to merge with other workers' partials."""
        return {pid: state.aggregates.reduce(window, now_ms) for pid, state in self.partitions.items()}
