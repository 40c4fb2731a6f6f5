"""Maven Analytics "CRM + Sales + Opportunities" (sales pipeline + sales teams) → contract events.

Per pipeline row (``opportunity_id, sales_agent, product, account, deal_stage, engage_date, close_date,
close_value``):
  ``deal.created`` deal_id = opportunity_id, rep_id = sales_agent, team = the agent's manager (from the
                   teams file), at engage_date, stage = ``--stage`` (default: the second open stage,
                   ``qualification`` — an engaged opportunity), product = product, amount = the product's
                   list price when ``--products`` is given (else 0), account_id = account (when given), kind:
                   ``expansion`` when the account already had a won deal before this one started (a Won row
                   of the same account whose close_date is before this row's engage_date), else ``new``;
  ``deal.won``     for ``Won``: amount = close_value, at close_date;
  ``deal.lost``    for ``Lost``: at close_date.
``Prospecting`` rows have no date at all (no engage_date, no close_date): they cannot be placed in time
and are skipped (counted in the report). ``Engaging`` rows become open deals. Dates are dates only: they
are placed at ``--time-of-day`` (default 00:00) in ``--tz`` (default UTC), so a cycle is a whole number of
days. The pipeline's ``GTXPro`` is the products file's ``GTX Pro`` (names are matched ignoring spaces and
case). Event ids: ``maven-<created|won|lost>-<opportunity_id>``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from stream.ingest.importers.common import Clock, ImportFailed, ImportReport, line_numbers, money, read_csv, rfc3339, row_instant

PIPELINE_COLUMNS = ("opportunity_id", "sales_agent", "product", "account", "deal_stage", "engage_date", "close_date",
                    "close_value")
TEAM_COLUMNS = ("sales_agent", "manager", "regional_office")
PRODUCT_COLUMNS = ("product", "sales_price")
STAGES = ("Prospecting", "Engaging", "Won", "Lost")


def _product_key(name: str) -> str:
    return "".join(name.split()).lower()


def _first_won_by_account(pipeline: list[dict], path: str | Path, clock: Clock) -> dict[str, datetime]:
    """Each account's earliest close_date of a Won opportunity."""
    first: dict[str, datetime] = {}
    for lineno, row in line_numbers(pipeline):
        if row["deal_stage"] == "Won" and row["account"] and row["close_date"]:
            closed = row_instant(clock, path, lineno, "close_date", row["close_date"])
            if row["account"] not in first or closed < first[row["account"]]:
                first[row["account"]] = closed
    return first


def maven_events(pipeline_path: str | Path, teams_path: str | Path, clock: Clock, stage: str,
                 products_path: str | Path | None = None) -> tuple[list[tuple[datetime, dict]], ImportReport]:
    pipeline = read_csv(pipeline_path, PIPELINE_COLUMNS)
    teams = read_csv(teams_path, TEAM_COLUMNS)
    report = ImportReport("maven-crm", rows={Path(pipeline_path).name: len(pipeline), Path(teams_path).name: len(teams)})
    team_of = {row["sales_agent"]: row["manager"] for row in teams if row["sales_agent"] and row["manager"]}
    price_of: dict[str, str] = {}
    if products_path is not None:
        products = read_csv(products_path, PRODUCT_COLUMNS)
        report.rows[Path(products_path).name] = len(products)
        for lineno, row in line_numbers(products):
            try:
                price_of[_product_key(row["product"])] = money(row["sales_price"])
            except ValueError as exc:
                raise ImportFailed(f"{products_path}: line {lineno}: sales_price {exc}") from None
    no_team: set[str] = set()
    events: list[tuple[datetime, dict]] = []
    first_won = _first_won_by_account(pipeline, pipeline_path, clock)
    for lineno, row in line_numbers(pipeline):
        oid, agent, deal_stage = row["opportunity_id"], row["sales_agent"], row["deal_stage"]
        if deal_stage not in STAGES:
            raise ImportFailed(f"{pipeline_path}: line {lineno}: deal_stage {deal_stage!r} is not one of {', '.join(STAGES)}")
        if not oid or not agent:
            raise ImportFailed(f"{pipeline_path}: line {lineno}: opportunity_id and sales_agent are required")
        if not row["engage_date"]:
            report.skipped[f"{deal_stage} without engage_date (no time to place the deal at)"] += 1
            continue
        engaged = row_instant(clock, pipeline_path, lineno, "engage_date", row["engage_date"])
        created = {"event_id": f"maven-created-{oid}", "type": "deal.created", "occurred_at": rfc3339(engaged),
                   "deal_id": oid, "rep_id": agent, "amount": price_of.get(_product_key(row["product"]), "0"),
                   "stage": stage}
        if row["product"]:
            created["product"] = row["product"]
        account = row["account"]
        if account:
            created["account_id"] = account
        # docs/ingest.md, "Deal kinds": an account's deal is an expansion once the account has won before it started
        won_before = first_won.get(account) if account else None
        created["kind"] = "expansion" if won_before is not None and won_before < engaged else "new"
        if (team := team_of.get(agent)) is not None:
            created["team"] = team
        else:
            no_team.add(agent)
        events.append((engaged, created))
        if deal_stage in ("Won", "Lost"):
            if not row["close_date"]:
                raise ImportFailed(f"{pipeline_path}: line {lineno}: a {deal_stage} opportunity needs close_date")
            closed = row_instant(clock, pipeline_path, lineno, "close_date", row["close_date"])
            outcome = {"event_id": f"maven-{deal_stage.lower()}-{oid}", "type": f"deal.{deal_stage.lower()}",
                       "occurred_at": rfc3339(closed), "deal_id": oid, "rep_id": agent}
            if deal_stage == "Won":
                try:
                    outcome["amount"] = money(row["close_value"])
                except ValueError as exc:
                    raise ImportFailed(f"{pipeline_path}: line {lineno}: close_value {exc}") from None
            events.append((closed, outcome))
    if no_team:
        report.notes.append(f"{len(no_team)} agents are not in {Path(teams_path).name}; their deals carry no team "
                            f"(the roster decides): {', '.join(sorted(no_team)[:5])}")
    if products_path is not None:
        unpriced = sorted({e["product"] for _, e in events if e["type"] == "deal.created" and e.get("product")
                           and _product_key(e["product"]) not in price_of})
        if unpriced:
            report.notes.append(f"products without a list price (amount 0 until won): {', '.join(unpriced)}")
    return events, report
