"""Olist "Marketing Funnel" (marketing-qualified leads + closed deals) → contract events.

Per MQL row (``mql_id, first_contact_date, landing_page_id, origin``):
  ``lead.created``   lead_id = mql_id, at first_contact_date, source = origin (absent when empty);
  ``lead.marketing_qualified`` lead_id = mql_id, at first_contact_date: every lead of the set is an MQL
                     (marketing had qualified it when it reached sales; no rep: it counts for the lead's owner).
Per closed-deal row (``mql_id, seller_id, sdr_id, sr_id, won_date, business_segment, …,
declared_monthly_revenue``), whose MQL must be in the leads file:
  ``lead.qualified`` lead_id = mql_id, rep_id = sdr_id (the SDR who qualified it), at first_contact_date;
  ``deal.created``   deal_id = mql_id, rep_id = sr_id (the closing sales rep owns the deal), lead_id,
                     amount = declared_monthly_revenue (0 when not declared), stage = the first open stage,
                     product = business_segment, source = the lead's origin (the channel it came from),
                     at first_contact_date;
  ``deal.won``       deal_id, amount = declared_monthly_revenue, at won_date.
So the sales cycle of a deal is won_date − first_contact_date. ``first_contact_date`` is a date only: it
is placed at ``--time-of-day`` (default 00:00) — the start of the day, so that a deal won early on the
day of first contact is not won before it was created. Naive datetimes are read in ``--tz`` (default UTC;
the data set does not say its zone). Event ids: ``olist-<kind>-<mql_id>`` (kind: lead, mql, qualified, deal,
won).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from stream.ingest.importers.common import Clock, ImportFailed, ImportReport, line_numbers, money, read_csv, rfc3339, row_instant

LEAD_COLUMNS = ("mql_id", "first_contact_date", "origin")
DEAL_COLUMNS = ("mql_id", "sdr_id", "sr_id", "won_date", "business_segment", "declared_monthly_revenue")


def olist_events(leads_path: str | Path, deals_path: str | Path, clock: Clock, first_stage: str) -> tuple[list[tuple[datetime, dict]], ImportReport]:
    leads = read_csv(leads_path, LEAD_COLUMNS)
    deals = read_csv(deals_path, DEAL_COLUMNS)
    report = ImportReport("olist", rows={Path(leads_path).name: len(leads), Path(deals_path).name: len(deals)})
    events: list[tuple[datetime, dict]] = []
    created_at: dict[str, datetime] = {}
    origin_of: dict[str, str] = {}
    early: list[str] = []
    for lineno, row in line_numbers(leads):
        mql = row["mql_id"]
        if not mql:
            report.skipped["lead without mql_id"] += 1
            continue
        if mql in created_at:
            report.skipped["repeated mql_id"] += 1
            continue
        at = created_at[mql] = row_instant(clock, leads_path, lineno, "first_contact_date", row["first_contact_date"])
        event = {"event_id": f"olist-lead-{mql}", "type": "lead.created", "occurred_at": rfc3339(at), "lead_id": mql}
        if row["origin"]:
            event["source"] = origin_of[mql] = row["origin"]
        events.append((at, event))
        events.append((at, {"event_id": f"olist-mql-{mql}", "type": "lead.marketing_qualified",
                            "occurred_at": rfc3339(at), "lead_id": mql}))
    for lineno, row in line_numbers(deals):
        mql, sdr, sr = row["mql_id"], row["sdr_id"], row["sr_id"]
        if mql not in created_at:
            report.skipped["deal whose mql_id is not in the leads file"] += 1
            continue
        if not sr or not sdr:
            raise ImportFailed(f"{deals_path}: line {lineno}: sdr_id and sr_id are required")
        created = created_at[mql]
        won = row_instant(clock, deals_path, lineno, "won_date", row["won_date"])
        try:
            amount = money(row["declared_monthly_revenue"])
        except ValueError as exc:
            raise ImportFailed(f"{deals_path}: line {lineno}: declared_monthly_revenue {exc}") from None
        when = rfc3339(created)
        events.append((created, {"event_id": f"olist-qualified-{mql}", "type": "lead.qualified", "occurred_at": when,
                                 "lead_id": mql, "rep_id": sdr}))
        deal = {"event_id": f"olist-deal-{mql}", "type": "deal.created", "occurred_at": when, "deal_id": mql,
                "rep_id": sr, "lead_id": mql, "amount": amount, "stage": first_stage}
        if row["business_segment"]:
            deal["product"] = row["business_segment"]
        if mql in origin_of:
            deal["source"] = origin_of[mql]
        events.append((created, deal))
        events.append((won, {"event_id": f"olist-won-{mql}", "type": "deal.won", "occurred_at": rfc3339(won),
                             "deal_id": mql, "rep_id": sr, "amount": amount}))
        if won < created:
            early.append(mql)
    if early:
        report.notes.append(f"{len(early)} deals are won before their lead's first contact time (e.g. {early[0]}); "
                            "their sales cycle counts as 0, as cycles are floored at 0")
    return events, report
