"""The simulated floor's marketing and revenue side: lead sources and campaigns of different volume and
quality, MQLs before SQLs, daily spend per channel and campaign, deal kinds tied to accounts, term contracts.

``Marketing`` has its own random stream (seeded from the floor's seed), so switching it on does not change
any event the floor made before it existed: leads, touches, calls and deals keep their times and ids, and
only gain fields (``campaign``, ``kind``, ``account_id``, ``source``, ``term_months``) besides the new
``lead.marketing_qualified`` and ``spend.recorded`` events. Same seed, same output.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Channel:
    """A lead source: its campaigns, how likely its leads become opportunities (``quality``, relative),
    how likely they are scored MQLs, and what a lead costs it (0: organic)."""

    name: str
    campaigns: tuple[str | None, ...]
    quality: float
    p_mql: float
    cost_per_lead: float
    category: str = "marketing"


# Names follow the floor's SOURCES (their volume weights stay there). Paid channels cost per lead;
# cold outbound is the SDR team's tooling and lists (sales spend); referrals and partners are nearly free.
CHANNELS = {c.name: c for c in (
    Channel("web_form", ("seo-blog", "pricing-page", None), 1.0, 0.55, 18.0),
    Channel("paid_search", ("ps-brand", "ps-generic", "ps-competitor"), 0.75, 0.45, 95.0),
    Channel("cold_outbound", (None,), 0.45, 0.15, 40.0, "sales"),
    Channel("referral", (None,), 2.2, 0.8, 0.0),
    Channel("webinar", ("webinar-q4-roadmap", "webinar-analytics-101"), 1.3, 0.7, 60.0),
    Channel("partner", ("partner-mdf",), 1.6, 0.6, 30.0),
    Channel("linkedin", ("li-abm-enterprise", "li-retargeting"), 0.8, 0.4, 140.0),
    Channel("trade_show", ("saas-summit",), 1.1, 0.65, 220.0),
)}
# Contract length by product: (term in months or None for no term, weight).
TERMS = {"starter": ((1, 30), (12, 55), (None, 15)), "growth": ((12, 80), (24, 15), (None, 5)),
         "scale": ((12, 40), (24, 40), (36, 20)), "enterprise": ((24, 30), (36, 70))}
P_MQL_BEFORE_SQL = 0.95  # qualified leads were almost always scored first
P_EXISTING_ACCOUNT = 0.3  # a deal for an account that has bought before
P_RENEWAL = 0.35  # of those: renewal, else expansion
P_SPEND_JITTER = 0.25  # daily spend varies +-25 % around the channel's cost of its expected leads


class Marketing:
    """Decides the marketing and revenue attributes of the floor's leads and deals, and its daily spend."""

    def __init__(self, seed: int, tz: ZoneInfo, source_weights: dict[str, float]) -> None:
        self.rng = random.Random(f"{seed}:marketing")
        self.tz = tz
        self.volume = {name: source_weights.get(name, 1.0) for name in CHANNELS}
        total = sum(self.volume.values())
        self.share = {name: w / total for name, w in self.volume.items()}
        self.won_accounts: list[tuple[float, str]] = []  # (won at, account) in scheduling order
        self._accounts = 0
        self.seed = seed

    # --- leads ------------------------------------------------------------------------------------
    def source_for(self, qualified: bool) -> str:
        """A lead's channel knowing its fate: volume x quality for the leads that become opportunities."""
        names = list(CHANNELS)
        weights = [self.volume[n] * (CHANNELS[n].quality if qualified else 1.0) for n in names]
        return self.rng.choices(names, weights)[0]

    def campaign_for(self, source: str) -> str | None:
        channel = CHANNELS.get(source)
        return None if channel is None else self.rng.choice(channel.campaigns)

    def mql_at(self, source: str, created: float, first_touch: float | None, qualified: float | None) -> float | None:
        """When the lead was scored an MQL (None: never): before the SQL step for qualified leads."""
        rng = self.rng
        if qualified is not None:
            if rng.random() >= P_MQL_BEFORE_SQL:
                return None
            return created + (qualified - created) * rng.uniform(0.1, 0.6)
        if first_touch is None or rng.random() >= CHANNELS.get(source, CHANNELS["web_form"]).p_mql * 0.5:
            return None
        return first_touch + rng.uniform(60, 6 * 3600)

    # --- deals ------------------------------------------------------------------------------------
    def deal_fields(self, t: float, product: str, lead_source: str | None, lead_campaign: str | None) -> dict[str, Any]:
        """kind, account_id, source, campaign and term of a deal created at ``t``."""
        rng = self.rng
        fields: dict[str, Any] = {}
        earlier = [acc for won_at, acc in self.won_accounts if won_at < t]
        if earlier and rng.random() < P_EXISTING_ACCOUNT:
            fields["account_id"] = rng.choice(earlier)
            fields["kind"] = "renewal" if rng.random() < P_RENEWAL else "expansion"
        else:
            self._accounts += 1
            fields["account_id"] = f"acct-{self.seed}-{self._accounts:05d}"
            fields["kind"] = "new"
        if lead_source:
            fields["source"] = lead_source
        if lead_campaign:
            fields["campaign"] = lead_campaign
        terms, weights = zip(*TERMS.get(product, ((12, 1),)))
        term = rng.choices(terms, weights)[0]
        if term is not None:
            fields["term_months"] = term
        return fields

    def won(self, t: float, account: str) -> None:
        self.won_accounts.append((t, account))

    # --- spend ------------------------------------------------------------------------------------
    def day_spend(self, day_start: float, expected_leads: float) -> list[dict[str, Any]]:
        """``spend.recorded`` fields for one local day: per paid channel and campaign, in line with the leads
        the channel is expected to bring that day."""
        rng, out = self.rng, []
        for name, channel in CHANNELS.items():
            if not channel.cost_per_lead:
                continue
            budget = expected_leads * self.share[name] * channel.cost_per_lead
            campaigns = [c for c in channel.campaigns if c is not None] or [None]
            for campaign in campaigns:
                cents = round(budget / len(campaigns) * rng.uniform(1 - P_SPEND_JITTER, 1 + P_SPEND_JITTER) * 100)
                if cents <= 0:
                    continue
                day = datetime.fromtimestamp(day_start, self.tz).strftime("%Y-%m-%d")
                fields: dict[str, Any] = {"channel": name, "amount": f"{cents // 100}.{cents % 100:02d}"}
                if campaign is not None:
                    fields["campaign"] = campaign
                if channel.category != "marketing":
                    fields["category"] = channel.category
                fields["spend_day"] = day  # an extra field, ignored by the worker: which day it covers
                out.append(fields)
        return out

    def next_day_start(self, t: float) -> float:
        """The next local midnight after epoch second ``t``."""
        local = datetime.fromtimestamp(t, self.tz)
        midnight = datetime(local.year, local.month, local.day, tzinfo=self.tz) + timedelta(days=1)
        return midnight.timestamp()
