"""Per-entity state and what each entity contributes to the KPIs.

An entity (a lead with its calls, a lone call, or a deal) is stored as the compact list of the facts
it has received, ordered by (occurred_at, lifecycle rank, event_id). Everything the KPIs need is
*derived* from that list, so:

- arrival order does not matter (a touch before its lead, a won before its deal),
- a redelivered event is recognised by its event_id in the same stored value (dedup mark and state
  change are one table write, one changelog record),
- the contribution of an entity to the aggregates is a pure function of its facts: applying an event
  means "retract the old contributions, add the new ones", which keeps late corrections exact.

This module imports nothing from Faust, Kafka, Prometheus or HTTP.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import NamedTuple

import msgspec

from stream.kpi.catalogue import DIMENSIONS, SCOPE, STAGES
from stream.events import (
    CallLogged,
    DealCreated,
    DealStageChanged,
    DealWon,
    Event,
    LeadCreated,
    LIFECYCLE_RANK,
    ForecastSubmitted,
    SubscriptionChanged,
    SubscriptionStarted,
    epoch_ms,
)

UNASSIGNED = "unassigned"
TOUCH_KINDS = frozenset({"lead.touched", "call.logged"})


class Fact(msgspec.Struct, array_like=True, frozen=True, order=True):
    """One applied event, reduced to what the KPIs read. Field order is the sort order."""

    ts: int  # occurred_at, UTC milliseconds
    rank: int
    eid: str
    kind: str
    rep: str | None = None
    team: str | None = None
    stage: str | None = None
    amount: str | None = None  # exact decimal text
    connected: bool = False
    talk_ms: int = 0
    source: str | None = None  # lead.created's source, for alert messages
    product: str | None = None  # subscription.started's product


class Entity(msgspec.Struct, array_like=True):
    """The stored value of one entity: its partition (for rebuilds) and its ordered facts."""

    partition: int
    facts: list[Fact]


def fact_from_event(event: Event) -> Fact:
    kind = event.type
    stage = None
    amount = None
    connected = False
    talk_ms = 0
    if isinstance(event, DealCreated):
        stage, amount = event.stage, str(event.amount)
    elif isinstance(event, DealStageChanged):
        stage = event.to_stage
        amount = None if event.amount is None else str(event.amount)
    elif isinstance(event, DealWon):
        amount = None if event.amount is None else str(event.amount)
    elif isinstance(event, CallLogged):
        connected = event.outcome == "connected"
        talk_ms = round(event.duration_s * 1000) if connected else 0
    elif isinstance(event, (SubscriptionStarted, SubscriptionChanged)):
        amount = str(event.mrr)
    elif isinstance(event, ForecastSubmitted):
        amount = str(event.amount)
    source = event.source if isinstance(event, LeadCreated) else None
    product = event.product if isinstance(event, SubscriptionStarted) else None
    return Fact(
        ts=epoch_ms(event.occurred_at),
        rank=LIFECYCLE_RANK[kind],
        eid=event.event_id,
        kind=kind,
        rep=event.rep_id,
        team=event.team,
        stage=stage,
        amount=amount,
        connected=connected,
        talk_ms=talk_ms,
        source=source,
        product=product,
    )


# --- contributions --------------------------------------------------------------------------------
# A contribution is what one derived fact of an entity (a lead's response, a won deal, a call) moves in
# the aggregates: which parts of which dimension's label, in which bucket, by how much. ``rep``/``team``
# name who is credited (``team`` None: resolved from the roster when read, docs/kpis.md "Crediting");
# ``label`` is the label in dimensions other than scope (a stage). ``kind`` says what it is, for readers
# such as the alert engine; applying a contribution never looks at it.

WINDOWED, CURRENT, AWAITING = 0, 1, 2  # bucketed by ts / current state (no time) / a waiting lead's creation


class Contribution(NamedTuple):
    kind: str
    ts: int
    rep: str
    team: str | None
    dim: int
    label: str | None
    bucket: int
    adds: tuple = ()  # ((part index, amount), ...) in the dimension's layout
    hists: tuple = ()  # ((histogram index, value), ...)
    info: object = None  # for readers: a waiting lead's source


_S = DIMENSIONS["scope"].layout.index
_S_HIST = DIMENSIONS["scope"].layout.histograms
_G = DIMENSIONS["stages"].layout.index
_CREATED = ((_S["leads_created"], 1),)
_QUALIFIED = ((_S["leads_qualified"], 1),)
_CALL = ((_S["calls"], 1),)
_CALLS, _CONNECTED, _TALK = _S["calls"], _S["calls_connected"], _S["talk_ms"]
_RESPONDED, _RESPONSE_MS, _WITHIN_SLA = _S["leads_responded"], _S["response_ms"], _S["responses_within_sla"]
_MEETINGS, _MEETING_TOUCHES = _S["meetings"], _S["meeting_touches"]
_LOST = ((_S["deals_lost"], 1),)
_STAGE_ENTRY = ((_G["stage_entries"], 1),)
_RESPONSE_HIST = _S_HIST["response_hist"]


def diff_contributions(old: list[Contribution], new: list[Contribution]) -> tuple[list[Contribution], list[Contribution]]:
    """(removed, added): the multiset difference between an entity's old and new contributions.

    Both lists are derived in fact order, so an event usually changes a short stretch in the middle
    (a call appended, a response replacing an awaiting lead): the common head and tail are skipped
    before counting what is left (counting every contribution of every event was a tenth of the
    agent's time; bench/RESULTS.md).
    """
    if old == new:
        return [], []
    n = min(len(old), len(new))
    head = 0
    while head < n and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < n - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    old_mid = old[head:len(old) - tail]
    new_mid = new[head:len(new) - tail]
    if not old_mid or not new_mid:
        return old_mid, new_mid
    before, after = Counter(old_mid), Counter(new_mid)
    return list((before - after).elements()), list((after - before).elements())


def lead_contributions(facts: list[Fact], sla_ms: int) -> list[Contribution]:
    """What a lead entity (facts of leads + calls topics for one key) adds to the aggregates."""
    out: list[Contribution] = []
    created = first_touch = first_qualified = first_meeting = owner = None
    disqualified = False
    for f in facts:  # already in (ts, rank, eid) order
        kind = f.kind
        if kind == "call.logged":
            adds = ((_CALLS, 1), (_CONNECTED, 1), (_TALK, f.talk_ms)) if f.connected else _CALL
            out.append(Contribution("call", f.ts, f.rep or UNASSIGNED, f.team, SCOPE, None, WINDOWED, adds))
        if kind == "lead.created":
            if created is None:
                created = f
            if f.rep:
                owner = f
        elif kind == "lead.assigned":
            owner = f
        elif kind in TOUCH_KINDS:
            if first_touch is None:
                first_touch = f
        elif kind == "meeting.booked":
            if first_meeting is None:
                first_meeting = f
        elif kind == "lead.qualified":
            if first_qualified is None:
                first_qualified = f
        elif kind == "lead.disqualified":
            disqualified = True
    if created is None:
        # Held: facts wait for the defining lead.created (calls count regardless: they are calls).
        return out
    out.append(Contribution("created", created.ts, created.rep or UNASSIGNED, created.team, SCOPE, None, WINDOWED,
                            _CREATED))
    if first_touch is not None:
        response_ms = max(0, first_touch.ts - created.ts)
        if response_ms <= sla_ms:
            adds = ((_RESPONDED, 1), (_RESPONSE_MS, response_ms), (_WITHIN_SLA, 1))
        else:
            adds = ((_RESPONDED, 1), (_RESPONSE_MS, response_ms))
        out.append(Contribution("response", first_touch.ts, first_touch.rep or UNASSIGNED, first_touch.team, SCOPE,
                                None, WINDOWED, adds, ((_RESPONSE_HIST, response_ms),)))
    elif not disqualified:
        rep = owner.rep if owner is not None else None
        team = owner.team if owner is not None else created.team
        out.append(Contribution("awaiting", created.ts, rep or UNASSIGNED, team, SCOPE, None, AWAITING,
                                info=created.source))
    if first_qualified is not None:
        out.append(Contribution("qualified", first_qualified.ts, first_qualified.rep or UNASSIGNED, first_qualified.team,
                                SCOPE, None, WINDOWED, _QUALIFIED))
    if first_meeting is not None:
        touches = sum(1 for f in facts if f.kind in TOUCH_KINDS and f.ts <= first_meeting.ts)
        out.append(Contribution("meeting", first_meeting.ts, first_meeting.rep or UNASSIGNED, first_meeting.team, SCOPE,
                                None, WINDOWED, ((_MEETINGS, 1), (_MEETING_TOUCHES, touches))))
    return out


def deal_contributions(facts: list[Fact]) -> list[Contribution]:
    """What a deal entity adds: its outcome, or its open value and stage; first entries into stages."""
    created = next((f for f in facts if f.kind == "deal.created"), None)
    if created is None:
        return []  # held until deal.created arrives
    owner = created.rep or UNASSIGNED
    team = created.team
    outcome = next((f for f in facts if f.kind in ("deal.won", "deal.lost")), None)
    stage = None
    amount: str | None = None
    entered: dict[str, int] = {}
    out: list[Contribution] = []
    for f in facts:
        if outcome is not None and f > outcome:
            break  # events after the outcome change nothing: a second outcome, even a late deal.created's amount
        if f.stage is not None:
            stage = f.stage
            entered.setdefault(f.stage, f.ts)
        if f.amount is not None:
            amount = f.amount
    for entered_stage, ts in entered.items():
        out.append(Contribution("stage_entry", ts, owner, team, STAGES, entered_stage, WINDOWED, _STAGE_ENTRY))
    value = Decimal(amount) if amount is not None else Decimal(0)
    if outcome is None:
        out.append(Contribution("open", created.ts, owner, team, SCOPE, None, CURRENT,
                                ((_S["open_deals"], 1), (_S["open_value"], value))))
        out.append(Contribution("open", created.ts, owner, team, STAGES, stage or "", CURRENT,
                                ((_G["open_deals"], 1), (_G["open_value"], value))))
    elif outcome.kind == "deal.won":
        cycle_ms = max(0, outcome.ts - created.ts)
        out.append(Contribution("won", outcome.ts, owner, team, SCOPE, None, WINDOWED,
                                ((_S["deals_won"], 1), (_S["won_revenue"], value), (_S["cycle_ms"], cycle_ms))))
    else:
        out.append(Contribution("lost", outcome.ts, owner, team, SCOPE, None, WINDOWED, _LOST))
    return out
