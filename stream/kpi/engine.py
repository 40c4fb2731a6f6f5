"""Applies validated events to entity state and keeps the aggregates of the partitions a worker owns.

The engine is pure: the entity table is anything with ``get(key)`` and ``table[key] = value`` for str keys
and bytes values (a Faust table behind an adapter in the worker, a dict in tests). Partitions are
identified by (group, partition) where group is ``leads`` (the leads and calls topics, co-partitioned by
lead_id) or ``deals``.
"""

from __future__ import annotations

import logging
from bisect import insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from stream.events import TOPIC_OF_TYPE, CallLogged, Event, ForecastSubmitted, InvalidEvent
from stream.kpi.accounts import (
    ACCOUNT_PREFIX,
    FORECAST_PREFIX,
    account_contributions,
    customer_retirable,
    forecast_contributions,
    forecast_key,
)
from stream.kpi.catalogue import DIMENSION_ORDER, DIMENSIONS
from stream.kpi.facts import (
    AWAITING,
    CURRENT,
    Contribution,
    Entity,
    deal_contributions,
    diff_contributions,
    fact_from_event,
    lead_contributions,
    spend_contributions,
)
from stream.kpi.parts import Row
from stream.kpi.store import LabelCap, PartitionAggregates
from stream.kpi.windows import DayCalendar, minute_of

log = logging.getLogger(__name__)

GROUP_OF_TOPIC = {"leads": "leads", "calls": "leads", "deals": "deals", "spend": "spend", "subscriptions": "customers",
                  "forecasts": "customers"}
TOPICS_OF_GROUP = {"leads": ("leads", "calls"), "deals": ("deals",), "spend": ("spend",),
                   "customers": ("subscriptions", "forecasts")}
SPEND_PREFIX = "M:"  # a spend.recorded: money spent (S: is an account, stream.kpi.accounts)
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Entity).decode
ARCHIVE_PREFIX = "A:"  # the per-partition record of retired entities' contributions
DAY_MS = 86_400_000


class EntityTable(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def __setitem__(self, key: str, value: bytes) -> None: ...
    def __delitem__(self, key: str) -> None: ...


def archive_key(partition: int) -> str:
    return f"{ARCHIVE_PREFIX}{partition}"


@dataclass(frozen=True)
class EngineConfig:
    sla_seconds: float = 300.0
    timezone: str = "UTC"
    lead_max_age_seconds: float = 7 * 86400
    too_late_seconds: float = 25 * 3600
    event_clock: bool = False  # True: `now` is the event-time watermark (replay); False: the wall clock
    # Bounded state (see KpiEngine.retire and LabelCap): entities quiet for this long leave the table;
    # their contributions stay in the partition's archive (all-time, and per day for the day windows).
    entity_retention_seconds: float = 40 * 86400
    max_facts_per_entity: int = 2000
    max_reps: int = 5000
    max_teams: int = 500
    max_products: int = 200
    max_sources: int = 100
    max_campaigns: int = 500


def engine_config(settings: Any, **overrides: Any) -> EngineConfig:
    """The engine configuration of a deployment's settings (``stream.config.Settings``): what the worker
    runs, and what a backtest must run to give the same answers."""
    values = dict(
        sla_seconds=settings.kpi_sla_seconds,
        timezone=settings.kpi_timezone,
        lead_max_age_seconds=settings.kpi_lead_max_age_seconds,
        too_late_seconds=settings.kpi_too_late_seconds,
        event_clock=settings.kpi_clock == "event",
        entity_retention_seconds=settings.kpi_entity_retention_days * 86400,
        max_facts_per_entity=settings.kpi_max_facts_per_entity,
        max_reps=settings.kpi_max_reps,
        max_teams=settings.kpi_max_teams,
        max_products=settings.kpi_max_products,
        max_sources=settings.kpi_max_sources,
        max_campaigns=settings.kpi_max_campaigns,
    )
    return EngineConfig(**{**values, **overrides})


def entity_key(event: Event) -> str:
    """Table key: leads and lone calls share the leads group's table, so they get distinct prefixes."""
    if isinstance(event, CallLogged) and event.lead_id is None:
        return "C:" + event.call_id
    topic = TOPIC_OF_TYPE[event.type]
    if topic == "deals":
        return "D:" + event.deal_id  # type: ignore[attr-defined]
    if topic == "spend":
        return SPEND_PREFIX + event.event_id  # each spend is its own entity: nothing else ever refers to it
    if topic == "subscriptions":
        return ACCOUNT_PREFIX + event.account_id  # type: ignore[attr-defined]
    if isinstance(event, ForecastSubmitted):
        return forecast_key(event.period, event.rep_id)
    return "L:" + event.lead_id  # type: ignore[attr-defined]


def contributions_of(key: str, entity: Entity, sla_ms: int, tz: str = "UTC") -> list[Contribution]:
    if key.startswith("D:"):
        return deal_contributions(entity.facts)
    if key.startswith(SPEND_PREFIX):
        return spend_contributions(entity.facts)
    if key.startswith(ACCOUNT_PREFIX):
        return account_contributions(entity.facts)
    if key.startswith(FORECAST_PREFIX):
        return forecast_contributions(key, entity.facts, tz)
    return lead_contributions(entity.facts, sla_ms)


def retirable(key: str, entity: Entity, cutoff_ms: int) -> bool:
    """An entity leaves the table once its last event is older than the cutoff, unless it is an open deal
    (open deals are *now* state: they stay until their outcome arrives; so do active accounts, and forecasts
    until their month is over)."""
    if not entity.facts or entity.facts[-1].ts >= cutoff_ms:
        return False
    if key.startswith((ACCOUNT_PREFIX, FORECAST_PREFIX)):
        return customer_retirable(key, entity.facts, cutoff_ms)
    if key.startswith("D:"):
        kinds = {f.kind for f in entity.facts}
        return "deal.created" not in kinds or bool(kinds & {"deal.won", "deal.lost"})
    return True


class Archive(msgspec.Struct, array_like=True):
    """The contributions of the entities retired from one partition, and the cutoff they were retired at.

    Every retirable entity whose last event is older than ``cutoff`` is in it, whether or not its table
    row is deleted yet: writing the archive first and deleting rows after makes a crash between the two
    harmless (the rebuild skips those rows). ``totals`` are all-time rows per (dimension, label); ``days``
    the local-day rows still inside the kept day buckets, so `week`, `month` and `quarter` stay exact with
    entities retired after 40 days. (``days`` is None in an archive written before it existed, whose
    totals were scope rows in another shape: see ``_upgrade_archive``.)
    """

    cutoff: int
    totals: list[tuple[Any, Any, Any]]  # (dimension name, label, row wire)
    days: list[tuple[str, Any, int, list]] | None = None  # (dimension name, label, local day, row wire)


_decode_archive = msgspec.msgpack.Decoder(Archive).decode
NO_CUTOFF = -(2**62)


def _label(dim: str, label: Any) -> Any:
    return tuple(label) if dim == "scope" else label  # msgpack gives a (rep, team) label back as a list


# The additive fields of the first archive format, in order (one fused aggregate per rep and team).
_V1_COUNTS = ("leads_created", "leads_responded", "response_ms", "responses_within_sla", "leads_qualified",
              "meetings", "meeting_touches", "calls", "calls_connected", "talk_ms", "deals_won", "deals_lost",
              "cycle_ms", "open_deals", "leads_awaiting")


def _upgrade_archive(archive: Archive) -> Archive:
    """An archive of the first format, in today's: its scope totals, and its stage entries per stage."""
    if archive.days is not None:
        return archive
    scope, stages = DIMENSIONS["scope"].layout, DIMENSIONS["stages"].layout
    totals: list[tuple[Any, Any, Any]] = []
    entries: dict[str, int] = {}
    for rep, team, (counts, won, _open_value, hist, stage_entries, _by_stage, _oldest) in archive.totals:
        row = scope.row()
        for name, count in zip(_V1_COUNTS, counts):
            row.v[scope.index[name]] = count
        row.v[scope.index["won_revenue"]] = won
        if hist[1]:
            row.hists = {scope.histograms["response_hist"]: _hist_from_wire(hist)}
        totals.append(("scope", [rep, team], row.to_wire(scope)))
        for stage, n in stage_entries.items():
            entries[stage] = entries.get(stage, 0) + n
    for stage, n in entries.items():
        row = stages.row()
        row.v[stages.index["stage_entries"]] = n
        totals.append(("stages", stage, row.to_wire(stages)))
    return Archive(cutoff=archive.cutoff, totals=totals, days=[])


def _hist_from_wire(wire: Any) -> Any:
    from stream.kpi.parts import ResponseHistogram

    return ResponseHistogram.from_wire(wire)


def decode_archive(raw: bytes) -> Archive:
    return _upgrade_archive(_decode_archive(raw))


def merge_changelog_record(
    key: str, stored: bytes | None, incoming: bytes | None, archive_of: Callable[[int], bytes | None]
) -> bytes | None:
    """What a table recovering from its changelog keeps for ``key``: the same whatever order records came in.

    A killed worker's last produce requests can reach the broker after its successor's writes (they
    were in flight, or queued in a slow broker), so the changelog may end with an older value of an
    entity. Entities only ever gain facts, so the union of the two is the newest; the archive of a
    partition only moves to later cutoffs. A deletion (retirement) is applied only to a row the
    partition's archive covers: a row that gained facts since is not retired. ``archive_of(partition)``
    gives the partition's archive record as known at this point of the recovery.
    """
    if key.startswith(ARCHIVE_PREFIX):
        if incoming is None or stored is None:
            return stored if incoming is None else incoming
        return stored if _decode_archive(stored).cutoff > _decode_archive(incoming).cutoff else incoming
    if stored is None:
        return incoming
    old = _decode(stored)
    if incoming is None:
        archive = archive_of(old.partition)
        cutoff = NO_CUTOFF if archive is None else _decode_archive(archive).cutoff
        return None if retirable(key, old, cutoff) else stored
    new = _decode(incoming)
    if len(new.facts) >= len(old.facts) and {f.eid for f in old.facts} <= {f.eid for f in new.facts}:
        return incoming  # the usual case: a later value of the entity
    known = {f.eid for f in new.facts}
    merged = sorted([*new.facts, *(f for f in old.facts if f.eid not in known)])
    return _encode(Entity(partition=new.partition, facts=merged))


class PartitionState:
    """Aggregates and per-topic event-time watermarks of one (group, partition)."""

    def __init__(self, config: EngineConfig, calendar: DayCalendar, caps: dict[str, LabelCap]) -> None:
        self.aggregates = PartitionAggregates(calendar, round(config.lead_max_age_seconds * 1000), caps)
        self.watermarks: dict[str, int] = {}  # topic suffix -> largest occurred_at applied (ms)
        self.entities = 0
        self.archive = Archive(cutoff=NO_CUTOFF, totals=[], days=[])
        self.pending_retirement: tuple[int, list[str]] | None = None  # (cutoff, keys) found by plan_retirement
        self.scanned_cutoff = -(2**62)

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
        self._retention_ms = round(config.entity_retention_seconds * 1000)
        self._sla_ms = round(config.sla_seconds * 1000)
        self._tz = config.timezone
        # One cap per worker, shared by its partitions, so an id maps to one label everywhere here.
        self.caps = {"reps": LabelCap(config.max_reps), "teams": LabelCap(config.max_teams),
                     "products": LabelCap(config.max_products), "sources": LabelCap(config.max_sources),
                     "campaigns": LabelCap(config.max_campaigns)}
        self.retired = 0  # entities removed from the table by retire()
        self.archived_rows_skipped = 0  # rows a rebuild found already archived (a crash hit between the two writes)

    # --- partition lifecycle ----------------------------------------------------------------------
    def partition(self, group: str, partition: int) -> PartitionState:
        state = self.partitions.get((group, partition))
        if state is None:
            state = self.partitions[(group, partition)] = self._new_state()
        return state

    def _new_state(self) -> PartitionState:
        return PartitionState(self.config, self.calendar, self.caps)

    def rebuild(
        self,
        group: str,
        partitions: Iterable[int],
        items: Iterable[tuple[str, bytes]],
        wall_ms: int,
        table: EntityTable | None = None,
    ) -> int:
        """Recompute the aggregates of ``partitions`` from the entity table's items; returns entities read.

        ``table`` gives the partitions' archive records (retired entities' totals); without it the items
        are searched for them.
        """
        wanted = set(partitions)
        for p in wanted:
            self.partitions[(group, p)] = self._new_state()
        if table is not None:
            for p in wanted:
                self._load_archive(group, p, table.get(archive_key(p)))
        else:
            items = list(items)
            for key, raw in items:
                if key.startswith(ARCHIVE_PREFIX) and int(key[len(ARCHIVE_PREFIX):]) in wanted:
                    self._load_archive(group, int(key[len(ARCHIVE_PREFIX):]), raw)
        count = 0
        for key, raw in items:
            if key.startswith(ARCHIVE_PREFIX):
                continue
            entity = _decode(raw)
            if entity.partition not in wanted:
                continue
            state = self.partitions[(group, entity.partition)]
            for fact in entity.facts:
                topic = TOPIC_OF_TYPE[fact.kind]
                if fact.ts > state.watermarks.get(topic, -(2**62)):
                    state.watermarks[topic] = fact.ts
            if retirable(key, entity, state.archive.cutoff):
                self.archived_rows_skipped += 1
                continue  # already in the archive; its row is deleted by the next retirement
            state.entities += 1
            count += 1
            added = contributions_of(key, entity, self._sla_ms, self._tz)
            state.aggregates.apply(added, +1)
            for listener in self.listeners:
                listener(group, entity.partition, key, [], added)
        for p in wanted:
            self.expire_partition(self.partitions[(group, p)], wall_ms)
        return count

    def _load_archive(self, group: str, partition: int, raw: bytes | None) -> None:
        if raw is None:
            return
        state = self.partitions[(group, partition)]
        state.archive = decode_archive(raw)
        days: dict[tuple[str, Any], dict[int, Row]] = {}
        for dim, label, day, wire in state.archive.days or ():
            days.setdefault((dim, _label(dim, label)), {})[day] = Row.from_wire(wire, DIMENSIONS[dim].layout)
        for dim, label, wire in state.archive.totals:
            label = _label(dim, label)
            total = Row.from_wire(wire, DIMENSIONS[dim].layout)
            state.aggregates.add_archived(DIMENSION_ORDER.index(dim), label, total, days.get((dim, label), {}))

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
        key = entity_key(event)
        raw = table.get(key)
        if raw is None:
            entity = Entity(partition=partition, facts=[])
        else:
            entity = _decode(raw)
            if any(f.eid == fact.eid for f in entity.facts):
                # A redelivery: the event_id is in the entity's own stored value. Written again because
                # a local store (RocksDB) survives a kill -9 with writes whose changelog records were
                # lost; the event is redelivered precisely because they were, and this puts the entity
                # back in the changelog. Checked before "too late": the watermark rebuilt after a crash
                # includes this very batch, and an event applied once must not be refused the second time.
                table[key] = raw
                return False
        reference = state.watermarks.get(topic_suffix) if self.config.event_clock else wall_ms
        if reference is not None and fact.ts < minute_of(reference) * 60_000 - self._too_late_ms:
            raise InvalidEvent(
                "too_late",
                f"`occurred_at` is more than {self._too_late_ms // 3_600_000} h older than the partition's "
                f"{'watermark' if self.config.event_clock else 'wall clock'}",
            )
        if len(entity.facts) >= self.config.max_facts_per_entity:
            raise InvalidEvent(
                "entity_full",
                f"{key[2:]} already has {len(entity.facts)} events, the most one entity keeps "
                "(KPI_MAX_FACTS_PER_ENTITY)",
            )
        if raw is None:
            state.entities += 1
        old = contributions_of(key, entity, self._sla_ms, self._tz)
        insort(entity.facts, fact)
        new = contributions_of(key, entity, self._sla_ms, self._tz)
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
    def watermarks_of(self, group: str, partition: int) -> dict[str, int] | None:
        """Newest applied ``occurred_at`` per topic of one owned partition; None when not owned."""
        state = self.partitions.get((group, partition))
        return None if state is None else state.watermarks

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

    # --- retiring quiet entities (bounded state) ----------------------------------------------------
    # Two steps, because a Faust table can only be written while processing an event of the partition:
    # a timer scans the table for candidates (plan_retirement), then the agent retires them on the next
    # event of that partition (retire).
    def retirement_targets(self, group: str, wall_ms: int) -> dict[int, int]:
        """Partitions of ``group`` whose retirement cutoff moved since their last scan -> new cutoff."""
        targets = {}
        for (g, p), state in self.partitions.items():
            if g != group or state.pending_retirement is not None:
                continue
            if self.config.event_clock:
                # The slowest topic's watermark: an event it still accepts (too_late allows 25 h back
                # from its own watermark) must never meet an entity already retired. A topic not seen
                # yet in this partition could still deliver anything, so nothing retires until it is.
                marks = [state.watermarks.get(t) for t in TOPICS_OF_GROUP[group]]
                if None in marks:
                    continue
                now = min(marks)
            else:
                now = wall_ms
            cutoff = (now - self._retention_ms) // DAY_MS * DAY_MS  # whole days: at most one scan a day
            # Once per cutoff and after every rebuild (which resets scanned_cutoff): the rows a crash
            # left behind after their archive was written are found again and deleted.
            if cutoff > state.scanned_cutoff and cutoff >= state.archive.cutoff:
                targets[p] = cutoff
        return targets

    def retirement_scan(self, group: str, wall_ms: int) -> RetirementScan | None:
        """A pass over ``group``'s table that finds the entities to retire; None when no cutoff moved."""
        targets = self.retirement_targets(group, wall_ms)
        return RetirementScan(self, group, targets) if targets else None

    def plan_retirement(self, group: str, items: Iterable[tuple[str, bytes]], wall_ms: int) -> int:
        """One whole scan at once; returns how many entities were found."""
        scan = self.retirement_scan(group, wall_ms)
        if scan is None:
            return 0
        for key, raw in items:
            scan.offer(key, raw)
        return scan.finish()

    def retire(self, table: EntityTable, group: str, partition: int) -> int:
        """Remove the planned entities of one partition from the table; returns how many were removed.

        Their contributions move into the partition's archive record (written before the rows are
        deleted): all-time totals, and the day rows that a day window can still read. The in-memory
        aggregates keep them, so no KPI changes.
        """
        state = self.partitions.get((group, partition))
        if state is None or state.pending_retirement is None:
            return 0
        cutoff, keys = state.pending_retirement
        state.pending_retirement = None
        aggregates = state.aggregates
        layouts = [DIMENSIONS[name].layout for name in DIMENSION_ORDER]
        totals: dict[tuple[int, Any], Row] = {}
        days: dict[tuple[int, Any, int], Row] = {}
        for dim, label, wire in state.archive.totals:
            d = DIMENSION_ORDER.index(dim)
            totals[(d, _label(dim, label))] = Row.from_wire(wire, layouts[d])
        for dim, label, day, wire in state.archive.days or ():
            if day >= aggregates.day_floor:
                d = DIMENSION_ORDER.index(dim)
                days[(d, _label(dim, label), day)] = Row.from_wire(wire, layouts[d])
        retired: list[tuple[str, list[Contribution]]] = []
        for key in keys:
            raw = table.get(key)
            entity = None if raw is None else _decode(raw)
            if entity is None or not retirable(key, entity, cutoff):
                continue  # gone or active again since the scan
            archived = retirable(key, entity, state.archive.cutoff)  # left behind by a crash: counted already
            waiting = []
            for c in contributions_of(key, entity, self._sla_ms, self._tz):
                if c.bucket == AWAITING:
                    waiting.append(c)
                elif c.bucket != CURRENT and not archived:
                    label = aggregates.label_of(c)
                    total = totals.get((c.dim, label))
                    if total is None:
                        total = totals[(c.dim, label)] = layouts[c.dim].row()
                    total.add(c.adds, c.hists, +1)
                    day = self.calendar.day_of(c.ts)
                    if day >= aggregates.day_floor:
                        row = days.get((c.dim, label, day))
                        if row is None:
                            row = days[(c.dim, label, day)] = layouts[c.dim].row()
                        row.add(c.adds, c.hists, +1)
            retired.append((key, waiting))
        state.archive = Archive(
            cutoff=max(cutoff, state.archive.cutoff),
            totals=[(DIMENSION_ORDER[d], label, row.to_wire(layouts[d])) for (d, label), row in totals.items()],
            days=[(DIMENSION_ORDER[d], label, day, row.to_wire(layouts[d])) for (d, label, day), row in days.items()],
        )
        table[archive_key(partition)] = _encode(state.archive)
        for key, waiting in retired:
            del table[key]
            if waiting:  # a lead waiting longer than lead_max_age: already out of every KPI
                aggregates.apply(waiting, -1)
                for listener in self.listeners:
                    listener(group, partition, key, waiting, [])
        state.entities -= len(retired)
        self.retired += len(retired)
        return len(retired)

    def partials(self, window: str, now_ms: int) -> dict[tuple[str, int], list[dict[Any, Row]]]:
        """Window-reduced aggregates per owned partition, ready to merge with other workers' partials."""
        return {pid: state.aggregates.reduce(window, now_ms) for pid, state in self.partitions.items()}


class RetirementScan:
    """Offered every ``(key, value)`` of a table, it notes the retirable entities of the target partitions;
    ``finish()`` hands them to the engine, which retires them on the partition's next event."""

    def __init__(self, engine: KpiEngine, group: str, targets: dict[int, int]) -> None:
        self.engine, self.group, self.targets = engine, group, targets
        self.found: dict[int, list[str]] = {p: [] for p in targets}

    def offer(self, key: str, raw: bytes) -> None:
        if key.startswith(ARCHIVE_PREFIX):
            return
        entity = _decode(raw)
        cutoff = self.targets.get(entity.partition)
        if cutoff is not None and retirable(key, entity, cutoff):
            self.found[entity.partition].append(key)

    def finish(self) -> int:
        for p, cutoff in self.targets.items():
            state = self.engine.partitions.get((self.group, p))
            if state is None:
                continue  # revoked while scanning
            state.scanned_cutoff = cutoff
            if self.found[p]:
                state.pending_retirement = (cutoff, self.found[p])
        return sum(len(keys) for keys in self.found.values())
