"""A deterministic, valid-only, deliberately messy event log in ARRIVAL order, for oracle-vs-stream tests.

`make_messy_log(seed)` returns `[(topic_suffix, key, event), ...]`: topic_suffix in {"leads", "calls",
"deals", "spend", "subscriptions", "forecasts"}; key = lead_id (leads, calls with a lead), call_id (calls
without a lead), deal_id (deals), channel (spend), account_id (subscriptions), rep_id (forecasts). The
customers' events (`_customers`) come from a random stream of their own, merged by arrival, and include a
history of up to 70 days before the span (in arrival order, first).
Every event is valid per docs/events.md; nothing here should be dead-lettered except the events whose event_id
contains TOO_LATE_MARK, which are too late (docs/kpis.md, "Time") whatever the partition count and partitioner:

* each too-late event is emitted LAST, with occurred_at in the first 12 h of the span, and its own key
  already carries an event on the same topic at least 26 h newer (same key => same partition), so its
  partition's watermark W makes it too late however keys are spread over partitions;
* every other event arrives at most ~21 h after its occurred_at (18 h "late" delivery + 3 h duplicate
  re-send), and W never exceeds the arrival time, so it is always inside the 25 h retention.

Hard cases covered: out-of-order arrival within a key (every event is delayed 0-4 min at random), hours-late
events, too-late events, duplicates (same event_id, identical payload), deal.won arriving before its
deal.created, touches arriving before lead.created, a touch whose occurred_at precedes lead.created
(response floored at 0), touch at the same millisecond as lead.created, leads created without an owner
(assigned later or never), reassigned leads, disqualified leads, calls with and without lead_id, deals
skipping stages and moving back, a stage change at the same instant as the outcome, stage_changed after an
outcome, second outcomes, held events of entities that are never created, amounts as strings, floats with
cents and ints, `team` present on some events and missing on others (present only for roster reps, and
then equal to the roster team, so attribution is unambiguous), a rep off the roster (team `unassigned`).
Revenue and marketing (contract section 6): campaigns on leads, MQLs (before, at and after lead.created,
arriving before it, with and without a rep, twice), deal kinds, accounts, sources, campaigns and terms, a
deal.won carrying term_months (always when it arrives before its deal.created), daily spend per channel and
campaign (late, duplicated, of both categories, on a channel without leads, and one too late).

The span is 3 days ending exactly at `start + 3 days` (the last event's occurred_at, i.e. the event clock).
The default start puts the end right after a month boundary and on the day US DST ends (2026-11-01), so
`today` / `month` differ between UTC and America/New_York.
"""

from __future__ import annotations

import copy
import heapq
import random
from datetime import datetime, timedelta, timezone

UTC = timezone.utc
DEFAULT_START = datetime(2026, 10, 30, 6, 0, tzinfo=UTC)  # end = 2026-11-02T06:00:00.000Z
DEFAULT_ROSTER: dict[str, dict] = {
    "ana": {"team": "red", "monthly_quota": 8000},
    "ben": {"team": "red", "monthly_quota": 40000},
    "cal": {"team": "blue", "monthly_quota": "12000.00"},
    "dee": {"team": "blue", "monthly_quota": 5000},
    "eve": {"team": "green"},  # on the roster, no quota
    "fay": {"team": "green", "monthly_quota": 1000000},
}
DEFAULT_REPS = (*DEFAULT_ROSTER, "zed")  # zed is not on the roster: its team is `unassigned`
DEFAULT_STAGES = ("prospecting", "qualification", "proposal", "negotiation")
TOO_LATE_MARK = "-toolate-"
DUPLICATE_FRACTION = 0.02

_MIN = 60_000
_HOUR = 60 * _MIN
_SPAN = 72 * _HOUR
_CHANNELS = ("email", "sms", "chat", "social", "other")
_SOURCES = ("web", "referral", "event", "partner", None)
_CAMPAIGNS = ("spring", "retarget", None, None)
_OUTCOMES = ("connected",) * 9 + ("no_answer",) * 5 + ("voicemail",) * 3 + ("busy",) * 2 + ("failed",)


def roster_yaml(roster: dict[str, dict] = DEFAULT_ROSTER) -> str:
    """The roster as a YAML document (teams + reps, as in stream/roster.example.yaml) for the worker's KPI_ROSTER."""
    lines = ["teams:"]
    for team in sorted({v["team"] for v in roster.values()}):
        lines.append(f"  - name: {team}")
    lines.append("reps:")
    for rep, v in roster.items():
        lines.append(f"  - rep_id: {rep}")
        lines.append(f"    team: {v['team']}")
        if v.get("monthly_quota") is not None:
            lines.append(f"    monthly_quota: {v['monthly_quota']}")
    return "\n".join(lines) + "\n"


class _Builder:
    def __init__(self, seed: int, start: datetime, reps, roster):
        self.rng = random.Random(seed)
        self.seed = seed
        self.start = start
        self.reps = tuple(reps)
        self.roster = roster
        self.records: list[list] = []  # [arrival_ms, seq, topic, key, event]
        self.n = 0
        # The revenue and marketing side (campaigns, MQLs, deal kinds and terms, spend) draws from its own
        # stream, so the rest of the log is what it was before it existed.
        self.mrng = random.Random(f"{seed}:revenue")

    # -- primitives --------------------------------------------------------------------------------------
    def ts(self, ms: int) -> str:
        dt = self.start + timedelta(milliseconds=ms)
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"

    def next_id(self, mark: str = "") -> str:
        self.n += 1
        return f"m{self.seed}{mark}-{self.n:06d}"

    def delay(self) -> int:
        if self.rng.random() < 0.03:
            return self.rng.randint(_HOUR, 18 * _HOUR)  # late, but inside retention
        return self.rng.randint(0, 4 * _MIN)  # shuffled within a few minutes

    def who(self, rep: str) -> dict:
        out = {"rep_id": rep}
        if rep in self.roster and self.rng.random() < 0.6:
            out["team"] = self.roster[rep]["team"]
        return out

    def amount(self, lo_cents=50_000, hi_cents=2_000_000):
        cents = self.rng.randint(lo_cents, hi_cents)
        kind = self.rng.random()
        if kind < 0.35:
            return f"{cents // 100}.{cents % 100:02d}"
        if kind < 0.7:
            return cents / 100  # JSON number with cents
        return cents // 100  # integer

    def emit(self, topic, key, ms, etype, *, delay=None, mark="", **fields):
        """Queue one event; events beyond the end of the span are not generated (returns None)."""
        if ms > _SPAN:
            return None
        ms = max(ms, 0)
        ev = {"event_id": self.next_id(mark), "type": etype, "occurred_at": self.ts(ms)}
        ev.update({k: v for k, v in fields.items() if v is not None})
        arrival = ms + (self.delay() if delay is None else delay)
        self.records.append([arrival, len(self.records), topic, key, ev])
        return ev

    # -- revenue and marketing (contract section 6) -------------------------------------------------------
    def mdelay(self) -> int:
        if self.mrng.random() < 0.05:
            return self.mrng.randint(_HOUR, 18 * _HOUR)
        return self.mrng.randint(0, 4 * _MIN)

    def mwho(self, rep: str) -> dict:
        out = {"rep_id": rep}
        if rep in self.roster and self.mrng.random() < 0.6:
            out["team"] = self.roster[rep]["team"]
        return out

    def mql(self, lead_id: str, created_ms: int, owner: str) -> None:
        """Some leads are scored MQLs: usually after creation, sometimes at the same millisecond or (a CRM
        clock) before it, some arriving before their lead.created; some carry a rep, most not; a few twice."""
        m = self.mrng
        if m.random() >= 0.45:
            return
        r = m.random()
        offset = 0 if r < 0.08 else -m.randint(1_000, 90_000) if r < 0.14 else m.randint(_MIN, 20 * _HOUR)
        who = self.mwho(m.choice(self.reps)) if m.random() < 0.3 else {}
        delay = m.randint(0, 20_000) if m.random() < 0.1 else self.mdelay()
        self.emit("leads", lead_id, created_ms + offset, "lead.marketing_qualified", delay=delay, lead_id=lead_id, **who)
        if m.random() < 0.06:  # scored again: only the first counts
            self.emit("leads", lead_id, created_ms + offset + m.randint(_MIN, 5 * _HOUR), "lead.marketing_qualified",
                      delay=self.mdelay(), lead_id=lead_id, **(self.mwho(owner) if m.random() < 0.5 else {}))

    def deal_fields(self) -> dict:
        """A deal.created's kind, account, attribution and term (each sometimes absent)."""
        m = self.mrng
        out = {"kind": m.choice(("new", "new", "expansion", "renewal", None)),
               "account_id": m.choice((f"A{self.seed}-{m.randint(1, 40):03d}", None)),
               "source": m.choice(_SOURCES), "campaign": m.choice(_CAMPAIGNS),
               "term_months": m.choice((12, 24, 36, 7, 1, None, None))}
        return {k: v for k, v in out.items() if v is not None}

    def spend(self, days: int) -> None:
        """Each day's spend per channel and campaign at the day's start (some hours late); a channel with no
        leads at all (`tv`); sales spend; a zero amount; amounts as strings, floats with cents and ints."""
        m = self.mrng
        for day in range(days):
            for channel in ("web", "referral", "event", "tv"):
                for campaign in (None, "spring", "retarget"):
                    if m.random() < 0.35:
                        continue
                    cents = m.randint(0, 300_000)
                    amount = m.choice((f"{cents // 100}.{cents % 100:02d}", cents / 100, cents // 100))
                    fields = {"channel": channel, "campaign": campaign, "amount": amount}
                    if m.random() < 0.2:
                        fields["category"] = "sales"
                    elif m.random() < 0.3:
                        fields["category"] = "marketing"
                    ms = day * 24 * _HOUR + (0 if m.random() < 0.8 else m.randint(_MIN, 12 * _HOUR))
                    self.emit("spend", channel, ms, "spend.recorded", delay=self.mdelay(), **fields)

    def pick_rep(self, usual: str | None = None) -> str:
        if usual is not None and self.rng.random() < 0.8:
            return usual
        return self.rng.choice(self.reps)

    # -- entities ----------------------------------------------------------------------------------------
    def touch(self, lead_id, ms, rep, *, delay=None, mark="", call_outcome=None):
        if self.rng.random() < 0.6 and call_outcome is None:
            return self.emit("leads", lead_id, ms, "lead.touched", delay=delay, mark=mark, lead_id=lead_id,
                             channel=self.rng.choice(_CHANNELS), **self.who(rep))
        return self.call(ms, rep, lead_id=lead_id, delay=delay, mark=mark, outcome=call_outcome)

    def call(self, ms, rep, *, lead_id=None, delay=None, mark="", outcome=None):
        self.n_calls = getattr(self, "n_calls", 0) + 1
        call_id = f"C{self.seed}-{self.n_calls:05d}"
        outcome = outcome or self.rng.choice(_OUTCOMES)
        if outcome == "connected":
            dur = self.rng.randint(20, 1800) + (0.5 if self.rng.random() < 0.3 else 0)
        elif outcome == "voicemail":
            dur = self.rng.randint(5, 40)  # talk time of a non-connected call: never counted
        else:
            dur = 0
        return self.emit("calls", lead_id or call_id, ms, "call.logged", delay=delay, mark=mark,
                         call_id=call_id, lead_id=lead_id, direction=self.rng.choice(("outbound", "inbound")),
                         outcome=outcome, duration_s=dur, **self.who(rep))

    def lead(self, idx: int, *, created_ms=None, created_delay=None, untouched=False, first_touch_offset=None,
             owner_on_create=None):
        rng = self.rng
        lead_id = f"L{self.seed}-{idx:05d}"
        c = created_ms if created_ms is not None else rng.randint(0, _SPAN - 40 * _MIN)
        owner = rng.choice(self.reps)
        has_owner = owner_on_create if owner_on_create is not None else rng.random() > 0.15
        if created_delay is None and rng.random() < 0.06:
            created_delay = rng.randint(20 * _MIN, 6 * _HOUR)  # touches arrive before lead.created
        self.emit("leads", lead_id, c, "lead.created", delay=created_delay, lead_id=lead_id,
                  source=rng.choice(("web", "referral", "event", None)), campaign=self.mrng.choice(_CAMPAIGNS),
                  **(self.who(owner) if has_owner else {}))
        self.mql(lead_id, c, owner)
        if not has_owner and rng.random() < 0.7:
            self.emit("leads", lead_id, c + rng.randint(30_000, 10 * _MIN), "lead.assigned", lead_id=lead_id,
                      **self.who(owner))
        if rng.random() < 0.15:  # reassigned, before or after the first touch
            owner = rng.choice([r for r in self.reps if r != owner])
            self.emit("leads", lead_id, c + rng.randint(_MIN, 3 * _HOUR), "lead.assigned", lead_id=lead_id,
                      **self.who(owner))
        if untouched or (first_touch_offset is None and rng.random() < 0.12):
            if not untouched and rng.random() < 0.3:
                self.emit("leads", lead_id, c + rng.randint(5 * _MIN, 2 * _HOUR), "lead.disqualified",
                          lead_id=lead_id, reason=rng.choice(("spam", "no budget", None)),
                          **(self.who(owner) if rng.random() < 0.5 else {}))
            return lead_id
        if first_touch_offset is None:
            r = rng.random()
            if r < 0.40:
                first_touch_offset = rng.randint(5_000, 300_000)
            elif r < 0.70:
                first_touch_offset = rng.randint(300_001, _HOUR)
            elif r < 0.90:
                first_touch_offset = rng.randint(_HOUR, 10 * _HOUR)
            elif r < 0.95:
                first_touch_offset = 0  # same millisecond as lead.created: rank decides
            else:
                first_touch_offset = -rng.randint(1_000, 120_000)  # before lead.created: floored at 0
        t = c + first_touch_offset
        touch_times = [t]
        for _ in range(rng.randint(0, 4)):
            t += rng.randint(_MIN, 6 * _HOUR)
            touch_times.append(t)
        for tt in touch_times:
            self.touch(lead_id, tt, self.pick_rep(owner))
        last = touch_times[-1]
        if rng.random() < 0.35:
            m = rng.randint(touch_times[0], last + 2 * _HOUR)
            self.emit("leads", lead_id, m, "meeting.booked", lead_id=lead_id, **self.who(self.pick_rep(owner)))
            if rng.random() < 0.1:
                self.emit("leads", lead_id, m + rng.randint(_MIN, 5 * _HOUR), "meeting.booked", lead_id=lead_id,
                          **self.who(self.pick_rep(owner)))
        if rng.random() < 0.25:
            q = last + rng.randint(_MIN, 8 * _HOUR)
            self.emit("leads", lead_id, q, "lead.qualified", lead_id=lead_id, **self.who(self.pick_rep(owner)))
            if rng.random() < 0.05:
                self.emit("leads", lead_id, q + rng.randint(_MIN, _HOUR), "lead.qualified", lead_id=lead_id,
                          **self.who(self.pick_rep(owner)))
        elif rng.random() < 0.08:
            self.emit("leads", lead_id, last + rng.randint(_MIN, 4 * _HOUR), "lead.disqualified",
                      lead_id=lead_id, **(self.who(owner) if rng.random() < 0.5 else {}))
        return lead_id

    def deal(self, idx: int, lead_ids, *, created_ms=None, outcome=None, won_before_created=False,
             after_outcome=None, last_change_ms=None):
        """outcome: None -> random; "open" | "deal.won" | "deal.lost". after_outcome: list of extras."""
        rng = self.rng
        deal_id = f"D{self.seed}-{idx:05d}"
        c = created_ms if created_ms is not None else rng.randint(0, _SPAN - 2 * _HOUR)
        owner = rng.choice(self.reps)
        stage_i = rng.choices((0, 1, 2), weights=(70, 20, 10))[0]
        lead_id = rng.choice(lead_ids) if lead_ids and rng.random() < 0.4 else None
        created = {"deal_id": deal_id, "lead_id": lead_id, "amount": self.amount(), "stage": DEFAULT_STAGES[stage_i],
                   "product": rng.choice(("core", "pro", None)), **self.who(owner), **self.deal_fields()}
        if outcome is None:
            r = rng.random()
            outcome = "deal.won" if r < 0.4 else "deal.lost" if r < 0.65 else "open"
        t = c
        if won_before_created:
            changes = 0
        else:
            changes = rng.randint(0, 4)
        for _ in range(changes):
            t += rng.randint(10 * _MIN, 8 * _HOUR)
            step = rng.choices((1, 2, -1), weights=(70, 20, 10))[0]  # forward, skip a stage, move back
            stage_i = min(max(stage_i + step, 0), len(DEFAULT_STAGES) - 1)
            opt = self.who(owner) if rng.random() < 0.5 else {}
            self.emit("deals", deal_id, t, "deal.stage_changed", deal_id=deal_id, to_stage=DEFAULT_STAGES[stage_i],
                      amount=self.amount() if rng.random() < 0.4 else None, **opt)
        if last_change_ms is not None:
            self.emit("deals", deal_id, last_change_ms, "deal.stage_changed", deal_id=deal_id,
                      to_stage=DEFAULT_STAGES[-1], amount=self.amount())
        created_delay = None
        if outcome != "open":
            o = t + (rng.randint(10 * _MIN, 60 * _MIN) if won_before_created else rng.randint(10 * _MIN, 10 * _HOUR))
            if o > _SPAN:
                outcome = "open"
            else:
                if rng.random() < 0.06:  # a stage change at the very instant of the outcome: applies (rank 1 < 2)
                    self.emit("deals", deal_id, o, "deal.stage_changed", deal_id=deal_id,
                              to_stage=DEFAULT_STAGES[-1], amount=self.amount())
                fields = {"deal_id": deal_id}
                if outcome == "deal.won" and rng.random() < 0.5:
                    fields["amount"] = self.amount()
                if outcome == "deal.won" and (won_before_created or self.mrng.random() < 0.3):
                    fields["term_months"] = self.mrng.choice((6, 12, 24, 120))  # overrides the deal.created's
                if outcome == "deal.lost" and rng.random() < 0.5:
                    fields["reason"] = rng.choice(("price", "timing", "competitor"))
                if rng.random() < 0.5:
                    fields.update(self.who(owner))
                out_delay = rng.randint(0, 30_000) if won_before_created else None
                self.emit("deals", deal_id, o, outcome, delay=out_delay, **fields)
                if won_before_created:  # deal.created arrives after the outcome
                    created_delay = (o - c) + rng.randint(60_000, 10 * _MIN)
                extras = after_outcome
                if extras is None:
                    extras = []
                    if rng.random() < 0.12:
                        extras.append("deal.stage_changed")
                    if rng.random() < 0.08:
                        extras.append("deal.lost" if outcome == "deal.won" else "deal.won")
                ta = o
                for extra in extras:
                    ta += rng.randint(_MIN, 5 * _HOUR)
                    if extra == "deal.stage_changed":
                        self.emit("deals", deal_id, ta, extra, deal_id=deal_id, to_stage=DEFAULT_STAGES[-1],
                                  amount=self.amount())
                    else:
                        self.emit("deals", deal_id, ta, extra, deal_id=deal_id,
                                  amount=self.amount() if extra == "deal.won" else None)
        self.emit("deals", deal_id, c, "deal.created", delay=created_delay, **created)
        return deal_id


def _customers(b: _Builder, n_accounts: int) -> None:
    """Accounts and forecasts: a history before the span (starts and churn in the previous months, so CLV
    and churn rates have something to divide by), then starts, changes and cancellations in any order:
    reactivations, cancellations before their start, changes while inactive, starts while active (changes),
    a start and a cancellation at the same instant, a cancellation exactly at the month boundary."""
    rng, reps = b.rng, b.reps
    day = 24 * _HOUR
    boundary = round((datetime(2026, 11, 1, tzinfo=UTC) - b.start).total_seconds() * 1000)

    def history(topic, key, ms, etype, **fields):  # before the span: arrives in order, first
        ev = {"event_id": b.next_id(), "type": etype, "occurred_at": b.ts(ms)}
        ev.update({k: v for k, v in fields.items() if v is not None})
        b.records.append([ms, len(b.records), topic, key, ev])

    for i in range(n_accounts):
        acct = f"A{b.seed}-{i:04d}"
        owner = rng.choice(reps)
        product = rng.choice(("pro", "basic", None))
        if i % 3 == 0:  # started 20-70 days before the span; a third of them churned before it
            began = -rng.randint(20, 70) * day
            history("subscriptions", acct, began, "subscription.started", account_id=acct, mrr=b.amount(5_000, 200_000),
                    product=product, **b.who(owner))
            if rng.random() < 0.35:
                history("subscriptions", acct, began + rng.randint(1, 19) * day, "subscription.cancelled",
                        account_id=acct, reason="budget")
        else:
            b.emit("subscriptions", acct, rng.randint(0, _SPAN), "subscription.started", account_id=acct,
                   mrr=b.amount(5_000, 200_000), product=product, **b.who(owner))
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            kind = rng.choice(("subscription.changed", "subscription.changed", "subscription.cancelled",
                               "subscription.started"))
            fields = {"account_id": acct}
            if kind != "subscription.cancelled":
                fields["mrr"] = b.amount(0, 300_000)
            who = b.who(b.pick_rep(owner)) if rng.random() < 0.5 else {}
            b.emit("subscriptions", acct, rng.randint(0, _SPAN), kind, **fields, **who)
    # Guaranteed cases.
    a = f"A{b.seed}-edge"
    history("subscriptions", a + "1", -40 * day, "subscription.started", account_id=a + "1", mrr=100, **b.who(reps[0]))
    b.emit("subscriptions", a + "1", boundary, "subscription.cancelled", account_id=a + "1")  # at the boundary
    b.emit("subscriptions", a + "2", 5 * _HOUR, "subscription.cancelled", account_id=a + "2", delay=0)  # arrives first
    b.emit("subscriptions", a + "2", 2 * _HOUR, "subscription.started", account_id=a + "2", mrr="250.50",
           delay=6 * _HOUR, **b.who(reps[1]))
    b.emit("subscriptions", a + "3", 10 * _HOUR, "subscription.started", account_id=a + "3", mrr=300, **b.who(reps[2]))
    b.emit("subscriptions", a + "3", 10 * _HOUR, "subscription.cancelled", account_id=a + "3")  # same instant
    b.emit("subscriptions", a + "3", 20 * _HOUR, "subscription.changed", account_id=a + "3", mrr=999)  # inactive
    b.emit("subscriptions", a + "3", 30 * _HOUR, "subscription.started", account_id=a + "3", mrr=120)  # reactivated
    # Forecasts: each rep, the previous, current and next months, revised, sometimes at the same instant.
    for rep in reps:
        for period in ("2026-09", "2026-10", "2026-11", "2026-12"):
            for _ in range(rng.choice((0, 1, 2, 3))):
                when = rng.choice((rng.randint(0, _SPAN), 12 * _HOUR))
                if period in ("2026-09", "2026-10") and rng.random() < 0.5:
                    history("forecasts", rep, -rng.randint(1, 40) * day, "forecast.submitted", period=period,
                            amount=b.amount(100_000, 5_000_000), **b.who(rep))
                else:
                    b.emit("forecasts", rep, when, "forecast.submitted", period=period,
                           amount=b.amount(100_000, 5_000_000), **b.who(rep))


def make_messy_log(
    seed: int,
    n_leads: int = 300,
    n_deals: int = 120,
    start: datetime = DEFAULT_START,
    reps: tuple[str, ...] = DEFAULT_REPS,
    roster: dict[str, dict] = DEFAULT_ROSTER,
    n_accounts: int = 60,
) -> list[tuple[str, str, dict]]:
    """The messy log for `seed`, in arrival order (see the module docstring). Deterministic per arguments."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    b = _Builder(seed, start, reps, roster)
    rng = b.rng
    late_ms = 26 * _HOUR  # newer-than-too-late margin, well beyond 25 h + 1 min

    # Deterministic special entities (the targets of the too-late events and a few guaranteed cases).
    l0 = b.lead(0, created_ms=30 * _MIN, untouched=True, owner_on_create=True)
    b.emit("leads", l0, _SPAN - 6 * _HOUR, "lead.assigned", lead_id=l0, **b.who(reps[1]))
    l1 = b.lead(1, created_ms=60 * _MIN, untouched=True, owner_on_create=True)
    b.emit("leads", l1, _SPAN - 3 * _HOUR, "lead.assigned", lead_id=l1, **b.who(reps[2]))
    l2 = f"L{seed}-00002"
    b.emit("leads", l2, 60 * _MIN, "lead.created", lead_id=l2, **b.who(reps[0]))
    b.call(5 * _HOUR, reps[0], lead_id=l2, outcome="connected")
    b.call(_SPAN - 4 * _HOUR, reps[0], lead_id=l2, outcome="no_answer")
    b.lead(3, created_delay=2 * _HOUR, first_touch_offset=90_000)  # its touch arrives before lead.created
    b.lead(4, first_touch_offset=-45_000)  # touched 45 s before it was created
    b.lead(5, owner_on_create=False)  # created without an owner

    lead_ids = [l0, l1, l2] + [f"L{seed}-{i:05d}" for i in (3, 4, 5)]
    for i in range(6, n_leads):
        lead_ids.append(b.lead(i))
    for _ in range(max(1, n_leads // 2)):
        b.call(rng.randint(0, _SPAN), rng.choice(reps))

    d0 = b.deal(0, lead_ids, created_ms=40 * _MIN, outcome="open", last_change_ms=_SPAN - 5 * _HOUR)
    d1 = b.deal(1, lead_ids, created_ms=2 * _HOUR, outcome="open", last_change_ms=_SPAN - 2 * _HOUR)
    b.deal(2, lead_ids, created_ms=10 * _HOUR, outcome="deal.won",
           after_outcome=["deal.stage_changed", "deal.lost"])
    b.deal(3, lead_ids, created_ms=30 * _HOUR, outcome="deal.won", won_before_created=True)
    b.deal(4, lead_ids, created_ms=40 * _HOUR, outcome="deal.lost", after_outcome=["deal.won"])
    for j in range(5, n_deals):
        b.deal(j, lead_ids, won_before_created=rng.random() < 0.05)

    b.spend(3)
    b.emit("spend", "tv", 48 * _HOUR, "spend.recorded", delay=b.mdelay(), channel="tv", amount=1250)

    # Held forever: events of entities that are never created count nothing (the call still counts as a call).
    ghost_lead, ghost_deal = f"L{seed}-ghost", f"D{seed}-ghost"
    b.emit("leads", ghost_lead, rng.randint(0, _SPAN), "lead.touched", lead_id=ghost_lead, channel="email",
           **b.who(reps[0]))
    b.emit("deals", ghost_deal, rng.randint(0, _SPAN), "deal.won", deal_id=ghost_deal, amount="999.99")
    # The event clock ends exactly at start + 3 days.
    b.call(_SPAN, rng.choice(reps))

    # Duplicates: re-sent with the identical payload, 0.5 s - 3 h after the original's arrival.
    n_dup = max(3, int(len(b.records) * DUPLICATE_FRACTION))
    dup_src = rng.sample(range(len(b.records)), n_dup)
    for k in dup_src:
        arrival, _, topic, key, ev = b.records[k]
        b.records.append([arrival + rng.randint(500, 3 * _HOUR), len(b.records), topic, key, copy.deepcopy(ev)])
    b.records.sort(key=lambda r: (r[0], r[1]))
    if n_accounts:
        # On a builder of their own (own random stream and ids), merged by arrival: the leads, calls and deals
        # of a seed stay exactly what they were without them.
        c = _Builder(seed, start, reps, roster)
        c.rng = random.Random(f"{seed}:customers")
        c.next_id = lambda mark="": _Builder.next_id(c, "c" + mark)  # type: ignore[method-assign]
        _customers(c, n_accounts)
        for k in c.rng.sample(range(len(c.records)), max(3, int(len(c.records) * DUPLICATE_FRACTION))):
            arrival, _, topic, key, ev = c.records[k]
            c.records.append([arrival + c.rng.randint(500, 3 * _HOUR), len(c.records), topic, key, copy.deepcopy(ev)])
        c.records.sort(key=lambda r: (r[0], r[1]))
        b.records = list(heapq.merge(b.records, c.records, key=lambda r: r[0]))
    log = [(topic, key, ev) for _, _, topic, key, ev in b.records]

    # Too late, emitted last: each key already has a same-topic event >= 26 h newer (see module docstring).
    assert _SPAN - 6 * _HOUR - 2 * _HOUR >= late_ms  # l0's reassignment vs the touch at 2 h
    b.records = []
    b.emit("leads", l0, 2 * _HOUR, "lead.touched", mark=TOO_LATE_MARK, lead_id=l0, channel="chat",
           **b.who(reps[0]))
    b.emit("leads", l1, 3 * _HOUR, "lead.disqualified", mark=TOO_LATE_MARK, lead_id=l1, reason="spam")
    b.call(2 * _HOUR, reps[0], lead_id=l2, mark=TOO_LATE_MARK, outcome="connected")
    b.emit("deals", d0, 3 * _HOUR, "deal.won", mark=TOO_LATE_MARK, deal_id=d0, amount="12345.67")
    b.emit("deals", d1, 4 * _HOUR, "deal.stage_changed", mark=TOO_LATE_MARK, deal_id=d1, to_stage="proposal",
           amount=77777)
    # The key `tv` has spend stamped at 48 h or later (always: see _Builder.spend and the guard below).
    b.emit("spend", "tv", 2 * _HOUR, "spend.recorded", mark=TOO_LATE_MARK, channel="tv", amount="5000.00")
    log.extend((topic, key, ev) for _, _, topic, key, ev in b.records)
    return log
