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

from stream.kpi.catalogue import CAMPAIGNS, DIMENSIONS, PRODUCTS, SCOPE, SOURCES, STAGES
from stream.events import (
    CallLogged,
    DealCreated,
    DealStageChanged,
    DealWon,
    Event,
    LeadCreated,
    LIFECYCLE_RANK,
    SpendRecorded,
    ForecastSubmitted,
    SubscriptionChanged,
    SubscriptionStarted,
    epoch_ms,
)

UNASSIGNED = "unassigned"
UNSPECIFIED = "unspecified"  # the product or source label of a deal or lead without one
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
    source: str | None = None  # lead.created's and deal.created's source, spend.recorded's channel
    # Appended fields (entities stored before them decode with the defaults).
    campaign: str | None = None
    category: str | None = None  # deal.created's `kind`; spend.recorded's `category`
    product: str | None = None  # deal.created's and subscription.started's product
    account: str | None = None
    term: int | None = None  # term_months of deal.created / deal.won


class Entity(msgspec.Struct, array_like=True):
    """The stored value of one entity: its partition (for rebuilds) and its ordered facts."""

    partition: int
    facts: list[Fact]


def fact_from_event(event: Event) -> Fact:
    # One branch per type, positional fields in Fact's order: this runs for every event (bench/RESULTS.md).
    kind = event.type
    ts, rank, eid, rep, team = epoch_ms(event.occurred_at), LIFECYCLE_RANK[kind], event.event_id, event.rep_id, event.team
    if isinstance(event, CallLogged):
        connected = event.outcome == "connected"
        return Fact(ts, rank, eid, kind, rep, team, None, None, connected,
                    round(event.duration_s * 1000) if connected else 0)
    if isinstance(event, LeadCreated):
        return Fact(ts, rank, eid, kind, rep, team, None, None, False, 0, event.source, event.campaign)
    if isinstance(event, DealCreated):
        return Fact(ts, rank, eid, kind, rep, team, event.stage, str(event.amount), False, 0, event.source,
                    event.campaign, event.kind, event.product, event.account_id, event.term_months)
    if isinstance(event, DealStageChanged):
        amount = event.amount
        return Fact(ts, rank, eid, kind, rep, team, event.to_stage, None if amount is None else str(amount))
    if isinstance(event, DealWon):
        amount = event.amount
        return Fact(ts, rank, eid, kind, rep, team, None, None if amount is None else str(amount), False, 0,
                    None, None, None, None, None, event.term_months)
    if isinstance(event, SpendRecorded):
        return Fact(ts, rank, eid, kind, rep, team, None, str(event.amount), False, 0, event.channel, event.campaign,
                    event.category)
    if isinstance(event, SubscriptionStarted):
        return Fact(ts, rank, eid, kind, rep, team, None, str(event.mrr), False, 0, None, None, None, event.product)
    if isinstance(event, SubscriptionChanged):
        return Fact(ts, rank, eid, kind, rep, team, None, str(event.mrr))
    if isinstance(event, ForecastSubmitted):
        return Fact(ts, rank, eid, kind, rep, team, None, str(event.amount))
    return Fact(ts, rank, eid, kind, rep, team)


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
_STAGE_ENTRY = ((_G["stage_entries"], 1),)
_RESPONSE_HIST = _S_HIST["response_hist"]
_P = DIMENSIONS["products"].layout.index
_SRC = DIMENSIONS["sources"].layout.index
_CMP = DIMENSIONS["campaigns"].layout.index
_SRC_CREATED, _CMP_CREATED = ((_SRC["leads_created"], 1),), ((_CMP["leads_created"], 1),)
_SRC_QUALIFIED, _CMP_QUALIFIED = ((_SRC["leads_qualified"], 1),), ((_CMP["leads_qualified"], 1),)
_MQL, _SRC_MQL, _CMP_MQL = ((_S["mqls"], 1),), ((_SRC["mqls"], 1),), ((_CMP["mqls"], 1),)
_G_WON, _G_LOST = ((_G["deals_won"], 1),), ((_G["deals_lost"], 1),)
# Per dimension of a deal's outcome and open state: scope, products, sources, campaigns.
_DEAL_INDEXES = ((SCOPE, _S), (PRODUCTS, _P), (SOURCES, _SRC), (CAMPAIGNS, _CMP))
_KIND_PART = {"new": "won_revenue_new", "expansion": "won_revenue_expansion", "renewal": "won_revenue_renewal"}
_ACV_QUANTUM = Decimal("1e-8")  # annualised amounts are kept to 1e-8 so their sums stay exact


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
    created = first_touch = first_qualified = first_meeting = owner = first_mql = None
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
        elif kind == "lead.marketing_qualified":
            if first_mql is None:
                first_mql = f
    if created is None:
        # Held: facts wait for the defining lead.created (calls count regardless: they are calls).
        return out
    out.append(Contribution("created", created.ts, created.rep or UNASSIGNED, created.team, SCOPE, None, WINDOWED,
                            _CREATED))
    # Per channel and campaign: those of the defining lead.created (docs/kpis.md, "Revenue and marketing").
    source, campaign = created.source or UNSPECIFIED, created.campaign
    out.append(Contribution("created", created.ts, UNASSIGNED, None, SOURCES, source, WINDOWED, _SRC_CREATED))
    if campaign is not None:
        out.append(Contribution("created", created.ts, UNASSIGNED, None, CAMPAIGNS, campaign, WINDOWED, _CMP_CREATED))
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
        ts = first_qualified.ts
        out.append(Contribution("qualified", ts, UNASSIGNED, None, SOURCES, source, WINDOWED, _SRC_QUALIFIED))
        if campaign is not None:
            out.append(Contribution("qualified", ts, UNASSIGNED, None, CAMPAIGNS, campaign, WINDOWED, _CMP_QUALIFIED))
    if first_mql is not None:
        # Credited to the MQL event's rep, else the lead's owner (the latest lead.created/lead.assigned with a
        # rep), else `unassigned`; the team is the crediting event's.
        if first_mql.rep:
            rep, team = first_mql.rep, first_mql.team
        elif owner is not None:
            rep, team = owner.rep, owner.team
        else:
            rep, team = UNASSIGNED, first_mql.team or created.team
        ts = first_mql.ts
        out.append(Contribution("mql", ts, rep, team, SCOPE, None, WINDOWED, _MQL))
        out.append(Contribution("mql", ts, UNASSIGNED, None, SOURCES, source, WINDOWED, _SRC_MQL))
        if campaign is not None:
            out.append(Contribution("mql", ts, UNASSIGNED, None, CAMPAIGNS, campaign, WINDOWED, _CMP_MQL))
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
    # Product, source, campaign and kind: those of the defining deal.created; no campaign: in none.
    labels = (None, created.product or UNSPECIFIED, created.source or UNSPECIFIED, created.campaign)
    if outcome is None:
        out.append(Contribution("open", created.ts, owner, team, STAGES, stage or "", CURRENT,
                                ((_G["open_deals"], 1), (_G["open_value"], value))))
        for (dim, idx), label in zip(_DEAL_INDEXES, labels):
            if dim == SCOPE or label is not None:
                out.append(Contribution("open", created.ts, owner, team, dim, label, CURRENT,
                                        ((idx["open_deals"], 1), (idx["open_value"], value))))
    elif outcome.kind == "deal.won":
        cycle_ms = max(0, outcome.ts - created.ts)
        kind_part = _KIND_PART[created.category or "new"]
        term = outcome.term or created.term  # the outcome's term when given, else the deal.created's
        acv = None if term is None else (value * 12 / term).quantize(_ACV_QUANTUM)
        out.append(Contribution("won", outcome.ts, owner, team, STAGES, stage or "", WINDOWED, _G_WON))
        for (dim, idx), label in zip(_DEAL_INDEXES, labels):
            if dim != SCOPE and label is None:
                continue
            adds = [(idx["deals_won"], 1), (idx["won_revenue"], value), (idx["cycle_ms"], cycle_ms), (idx[kind_part], value)]
            if kind_part == "won_revenue_new":
                adds.append((idx["new_customers_won"], 1))
            if acv is not None:
                adds += ((idx["acv_sum"], acv), (idx["acv_deals"], 1))
            out.append(Contribution("won", outcome.ts, owner, team, dim, label, WINDOWED, tuple(adds)))
    else:
        out.append(Contribution("lost", outcome.ts, owner, team, STAGES, stage or "", WINDOWED, _G_LOST))
        for (dim, idx), label in zip(_DEAL_INDEXES, labels):
            if dim == SCOPE or label is not None:
                out.append(Contribution("lost", outcome.ts, owner, team, dim, label, WINDOWED, ((idx["deals_lost"], 1),)))
    return out


def spend_contributions(facts: list[Fact]) -> list[Contribution]:
    """What a spend.recorded adds: its amount per channel and campaign (overall is the sum of the channels)."""
    out: list[Contribution] = []
    for f in facts:  # one fact: a spend entity is keyed by its event_id
        part = "sales_spend" if f.category == "sales" else "marketing_spend"
        value = Decimal(f.amount or 0)
        out.append(Contribution("spend", f.ts, UNASSIGNED, None, SOURCES, f.source or UNSPECIFIED, WINDOWED,
                                ((_SRC[part], value), (_SRC["spend_records"], 1))))
        if f.campaign is not None:
            out.append(Contribution("spend", f.ts, UNASSIGNED, None, CAMPAIGNS, f.campaign, WINDOWED,
                                    ((_CMP[part], value), (_CMP["spend_records"], 1))))
    return out
