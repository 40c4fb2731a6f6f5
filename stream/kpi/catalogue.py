"""The KPI catalogue: every part, dimension, section and KPI, declared once (docs/kpis.md).

Everything that shows a KPI reads it from here: the ``/kpis`` document (``stream.kpi.snapshot``), the
Prometheus exporter, ``kpi-monitor kpis``, the alert rules' check of ``kpi:`` names, the dashboards'
metric names and the KPI tables of docs/kpis.md and the README (a test compares them).

The vocabulary is that of a semantic layer: *parts* are additive measures (``stream.kpi.parts``);
*dimensions* are what parts are kept by (the crediting rep and team, the stage); *sections* are the
groupings of the ``/kpis`` document, each read from one dimension; a *KPI* is a formula over the merged
parts of one label of a section in one window. A ratio is computed from merged sums, never averaged.

Adding a KPI over existing parts is one ``Kpi(...)`` below plus its test. A KPI that needs a new part
declares it in ``PARTS`` and the entity derivation that fills it (``stream.kpi.facts``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from stream.kpi.parts import COUNT, HISTOGRAM, MINIMUM, MONEY, SUM, Layout, Part, ResponseHistogram, Row

# --- parts ----------------------------------------------------------------------------------------------
PARTS: dict[str, Part] = {p.name: p for p in (
    Part("leads_created", COUNT, "leads whose defining lead.created is in the bucket"),
    Part("leads_responded", COUNT, "leads whose first touch is in the bucket"),
    Part("response_ms", SUM, "sum of their response times (ms)"),
    Part("responses_within_sla", COUNT, "responses within KPI_SLA_SECONDS"),
    Part("response_hist", HISTOGRAM, "their response times (ms), exact then folded"),
    Part("leads_qualified", COUNT, "leads whose first lead.qualified is in the bucket"),
    Part("meetings", COUNT, "leads whose first meeting.booked is in the bucket"),
    Part("meeting_touches", SUM, "their touches up to that booking"),
    Part("calls", COUNT, "call.logged events"),
    Part("calls_connected", COUNT, "connected calls"),
    Part("talk_ms", SUM, "talk time of connected calls (ms)"),
    Part("deals_won", COUNT, "deals whose outcome (won) is in the bucket"),
    Part("won_revenue", MONEY, "their final amounts"),
    Part("cycle_ms", SUM, "their deal.created-to-won times (ms)"),
    Part("deals_lost", COUNT, "deals whose outcome (lost) is in the bucket"),
    Part("stage_entries", COUNT, "deals whose first entry into the stage is in the bucket"),
    Part("open_deals", COUNT, "deals without an outcome", windowed=False),
    Part("open_value", MONEY, "current amounts of the deals without an outcome (per stage: in that stage)", windowed=False),
    Part("leads_awaiting", COUNT, "leads waiting for a first touch, within lead_max_age", windowed=False),
    Part("oldest_created", MINIMUM, "creation time (ms) of the oldest of them", windowed=False),
    # Revenue and marketing (docs/kpis.md, "Revenue and marketing").
    Part("won_revenue_new", MONEY, "final amounts of the deals of kind new won in the bucket"),
    Part("won_revenue_expansion", MONEY, "final amounts of the deals of kind expansion won in the bucket"),
    Part("won_revenue_renewal", MONEY, "final amounts of the deals of kind renewal won in the bucket"),
    Part("new_customers_won", COUNT, "deals of kind new won in the bucket"),
    Part("acv_sum", MONEY, "annualised final amounts (amount × 12 ÷ term_months) of the deals won with a term"),
    Part("acv_deals", COUNT, "deals won with a term"),
    Part("mqls", COUNT, "leads whose first lead.marketing_qualified is in the bucket"),
    Part("marketing_spend", MONEY, "amounts of the spend.recorded of category marketing"),
    Part("sales_spend", MONEY, "amounts of the spend.recorded of category sales"),
    Part("spend_records", COUNT, "spend.recorded events (a channel or campaign with spend only is listed)"),
    # Customers (stream.kpi.accounts): an account's active periods, its MRR movements, its current MRR.
    Part("customers_new", COUNT, "active periods starting in the bucket"),
    Part("mrr_new", MONEY, "their MRR at the start"),
    Part("mrr_changes", COUNT, "changes of an active account's MRR in the bucket"),
    Part("mrr_expansion", MONEY, "their increases"),
    Part("mrr_contraction", MONEY, "their decreases, as positive amounts"),
    Part("customers_churned", COUNT, "active periods ending in the bucket"),
    Part("mrr_churned", MONEY, "their MRR at the end"),
    Part("customers_active", COUNT, "active accounts", windowed=False),
    Part("mrr", MONEY, "their current MRR", windowed=False),
    # Forecasts (stream.kpi.accounts): a rep's latest forecast for a month, counted at that month's start.
    Part("forecasts", COUNT, "reps' forecasts for the month starting in the bucket"),
    Part("forecast_amount", MONEY, "their amounts (each rep's latest submission for the month)"),
    # Derived when a window is read (stream.kpi.accounts.derive), from the buckets of a fixed calendar
    # range; never contributed. Sums, not counts, so they never list a label by themselves.
    Part("customers_at_start", SUM, "accounts active at the window's start: active − started since + ended since",
         windowed=False, derived=True),
    Part("churned_prev_month", SUM, "active periods ending in the previous calendar month", windowed=False, derived=True),
    Part("at_start_prev_month", SUM, "accounts active at the start of the previous calendar month",
         windowed=False, derived=True),
    Part("won_prev_month", MONEY, "won revenue of the previous calendar month", windowed=False, derived=True),
    Part("forecast_prev_month", MONEY, "forecasts for the previous calendar month", windowed=False, derived=True),
    Part("forecasts_prev_month", SUM, "how many reps had one", windowed=False, derived=True),
)}


# --- dimensions and sections ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dimension:
    """What parts are kept by. ``cap`` names the setting that bounds its distinct labels, if any."""

    name: str
    parts: tuple[str, ...]
    doc: str
    cap: str | None = None  # the engine's label cap (KPI_MAX_<CAP>) for dimensions other than scope

    @property
    def layout(self) -> Layout:
        return _LAYOUTS[self.name]


@dataclass(frozen=True)
class Section:
    """A grouping of the ``/kpis`` document, read from one dimension."""

    name: str
    dimension: str
    doc: str


SCOPE_PARTS = tuple(name for name in PARTS if name not in ("stage_entries", "spend_records"))
# What a deal, a lead, a spend and an account contribute per product, source and campaign.
DEAL_PARTS = ("deals_won", "won_revenue", "cycle_ms", "deals_lost", "open_deals", "open_value", "won_revenue_new",
              "won_revenue_expansion", "won_revenue_renewal", "new_customers_won", "acv_sum", "acv_deals")
MARKETING_PARTS = (*DEAL_PARTS, "leads_created", "leads_qualified", "mqls", "marketing_spend", "sales_spend",
                   "spend_records")
CUSTOMER_PARTS = ("customers_new", "mrr_new", "mrr_changes", "mrr_expansion", "mrr_contraction", "customers_churned",
                  "mrr_churned", "customers_active", "mrr", "customers_at_start", "churned_prev_month",
                  "at_start_prev_month")
DIMENSIONS: dict[str, Dimension] = {d.name: d for d in (
    Dimension("scope", SCOPE_PARTS,
              "the crediting rep and the team on the crediting event (the roster's team is resolved when read); "
              "labels past KPI_MAX_REPS / KPI_MAX_TEAMS count as `_over_cap`"),
    Dimension("stages", ("stage_entries", "open_deals", "open_value", "deals_won", "deals_lost"),
              "the deal's stage (the configured stages; a closed deal: its stage just before the outcome)"),
    Dimension("products", (*DEAL_PARTS, *CUSTOMER_PARTS),
              "the deal's product; the account's (its latest `subscription.started` carrying one); `unspecified` "
              "without one; labels past KPI_MAX_PRODUCTS count as `_over_cap`", cap="products"),
    Dimension("sources", MARKETING_PARTS,
              "the channel: the deal's and the lead's `source`, the spend's `channel` (`unspecified` without one); "
              "labels past KPI_MAX_SOURCES count as `_over_cap`", cap="sources"),
    Dimension("campaigns", MARKETING_PARTS,
              "the deal's, lead's or spend's `campaign` (none: in no campaign); labels past KPI_MAX_CAMPAIGNS count "
              "as `_over_cap`", cap="campaigns"),
)}
_LAYOUTS = {d.name: Layout([PARTS[p] for p in d.parts]) for d in DIMENSIONS.values()}
DIMENSION_ORDER = tuple(DIMENSIONS)  # contributions name their dimension by position
SCOPE = DIMENSION_ORDER.index("scope")
STAGES = DIMENSION_ORDER.index("stages")
PRODUCTS = DIMENSION_ORDER.index("products")
SOURCES = DIMENSION_ORDER.index("sources")
CAMPAIGNS = DIMENSION_ORDER.index("campaigns")

SECTIONS: dict[str, Section] = {s.name: s for s in (
    Section("overall", "scope", "everything, uncredited events included"),
    Section("teams", "scope", "per team: the team on the crediting event, else the roster's, else `unassigned`"),
    Section("reps", "scope", "per crediting rep"),
    Section("stages", "stages", "per configured stage, every stage listed"),
    Section("products", "products", "per product: the deal's, the account's; `unspecified` for an entity without one"),
    Section("sources", "sources", "per channel: the lead's or deal's `source`, the spend's `channel`; `unspecified` "
            "for leads and deals without one"),
    Section("campaigns", "campaigns", "per campaign; leads, deals and spend without one count in no campaign"),
)}
# The labelled sections read from a dimension other than scope and stages, as (section, dimension index).
LABEL_SECTIONS = (("products", PRODUCTS), ("sources", SOURCES), ("campaigns", CAMPAIGNS))
P_S_C = ("products", "sources", "campaigns")
S_C = ("sources", "campaigns")
SCOPE_SECTIONS = ("overall", "teams", "reps")


# --- KPIs --------------------------------------------------------------------------------------------------
# Units; `days` are exported in seconds (Prometheus base units), money with a `currency` label.
UNITS = ("count", "seconds", "ratio", "money", "days", "number")
# When a KPI applies: over window W; *now* (the same in every window); W and now at once (listed with the
# now keys); or only in the `month` document.
WINDOW, NOW, WINDOW_AND_NOW, MONTH = "window", "now", "window and now", "month"
CENT = Decimal("0.01")


def money(value: Decimal | int) -> float:
    return float(Decimal(value).quantize(CENT, rounding=ROUND_HALF_EVEN))


def ratio(num: float, den: float) -> float | None:
    return num / den if den else None


class Inputs:
    """What a formula reads for one label of a section: its merged parts, the window's ``now``, and (for
    per-stage conversion) the next label's parts. ``values`` collects the label's KPIs."""

    __slots__ = ("row", "layout", "now_ms", "values", "next_row", "month_fraction")

    def __init__(self, row: Row, layout: Layout, now_ms: int, next_row: Row | None = None,
                 month_fraction: tuple[int, int] | None = None) -> None:
        self.row, self.layout, self.now_ms, self.next_row = row, layout, now_ms, next_row
        self.month_fraction = month_fraction  # f = elapsed ÷ length of now's month, as (elapsed ms, length ms)
        self.values: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:  # a part by name: x.leads_created
        return self.row.v[self.layout.index[name]]

    def hist(self, name: str) -> ResponseHistogram:
        hists = self.row.hists
        hist = hists.get(self.layout.histograms[name]) if hists else None
        return hist if hist is not None else _EMPTY_HISTOGRAM

    def min(self, name: str) -> int | None:
        mins = self.row.mins
        return mins.get(self.layout.minima[name]) if mins else None

    def next(self, name: str) -> Any:
        """``name`` of the next label in the section's order; None for the last."""
        return None if self.next_row is None else self.next_row.v[self.layout.index[name]]


_EMPTY_HISTOGRAM = ResponseHistogram()


@dataclass(frozen=True)
class Metric:
    """How a KPI is exported for the labels of one dimension."""

    name: str
    help: str


@dataclass(frozen=True)
class Kpi:
    key: str
    unit: str
    timing: str
    sections: tuple[str, ...]
    credit: str  # whose number it is (a team's value covers its reps; overall covers everything)
    definition: str  # in words, for docs/kpis.md and the README
    formula: Callable[[Inputs], Any] | None = None  # None: a cross-label KPI computed in stream.kpi.snapshot
    metrics: Mapping[str, Metric] = field(default_factory=dict)  # dimension -> metric

    @property
    def metric(self) -> Metric | None:
        """The metric of the overall/team/rep series."""
        return self.metrics.get("scope")

    def labels(self, dimension: str) -> list[str]:
        """The Prometheus labels of its metric for ``dimension``."""
        base = ["scope", "team", "rep"] if dimension == "scope" else [_LABEL_NAMES[dimension]]
        window = [] if self.timing in (NOW, MONTH) else ["window"]
        return base + window + (["currency"] if self.unit == "money" else [])


_LABEL_NAMES = {"stages": "stage", "products": "product", "sources": "source", "campaigns": "campaign"}


def _p(q: float) -> Callable[[Inputs], float | None]:
    def quantile(x: Inputs) -> float | None:
        value = x.hist("response_hist").quantile(q)
        return None if value is None else value / 1000

    return quantile


def _avg_deal(x: Inputs) -> Decimal | None:
    return x.won_revenue / x.deals_won if x.deals_won else None


def _cycle_days(x: Inputs) -> float | None:
    return x.cycle_ms / x.deals_won / 86_400_000 if x.deals_won else None


def _velocity(x: Inputs) -> float | None:
    # open deals (now) x mean deal size x win rate / mean cycle (days) of the window; the mean deal size
    # before rounding to cents.
    avg_deal, win_rate, cycle = _avg_deal(x), ratio(x.deals_won, x.deals_won + x.deals_lost), _cycle_days(x)
    if avg_deal is None or win_rate is None or not cycle:
        return None
    return x.open_deals * float(avg_deal) * win_rate / cycle


def _oldest_wait(x: Inputs) -> float | None:
    oldest = x.min("oldest_created")
    return None if oldest is None else (x.now_ms - oldest) / 1000


def _money_ratio(num: Decimal | int, den: int) -> float | None:
    """Money per unit from the exact sums, to the cent."""
    return money(Decimal(num) / den) if den else None


def _roi(x: Inputs) -> float | None:
    spend = x.marketing_spend
    return float((Decimal(x.won_revenue) - spend) / spend) if spend else None


O_T_R = SCOPE_SECTIONS
O_T_R_P = (*SCOPE_SECTIONS, "products")


def _mrr_per_customer(x: Inputs) -> Decimal | None:
    return x.mrr / x.customers_active if x.customers_active else None


def _clv(x: Inputs) -> float | None:
    # (mrr / customers_active) / c, c the churn rate of the previous full calendar month: exact counts,
    # derived from the day buckets of that month (stream.kpi.accounts).
    per_customer = _mrr_per_customer(x)
    if per_customer is None or not x.churned_prev_month or not x.at_start_prev_month:
        return None
    return money(per_customer * x.at_start_prev_month / x.churned_prev_month)


def _projected(x: Inputs) -> float | None:
    # won ÷ f with f = elapsed ÷ length of the month: exact decimals, so every section agrees to the cent.
    if not x.month_fraction or not x.month_fraction[0]:
        return None
    elapsed, length = x.month_fraction
    return money(Decimal(x.won_revenue) * length / elapsed)


def _m(name: str, help: str) -> dict[str, Metric]:
    return {"scope": Metric(name, help)}


def _also(metrics: dict[str, Metric], *dimensions: str) -> dict[str, Metric]:
    """``metrics`` plus the same metric per product, source, campaign or stage: ``kpi_<label>_<name>``."""
    scope = metrics["scope"]
    out = dict(metrics)
    for dim in dimensions:
        label = _LABEL_NAMES[dim]
        out[dim] = Metric(f"kpi_{label}_{scope.name.removeprefix('kpi_')}", f"{scope.help} Per {label}.")
    return out


KPIS: tuple[Kpi, ...] = (
    Kpi("leads_created", "count", WINDOW, (*O_T_R, *S_C), "its `rep_id`, else `unassigned`",
        "leads whose defining `lead.created` is in W",
        lambda x: x.leads_created,
        _also(_m("kpi_leads_created", "Leads whose lead.created is in the window (leads_created)."), *S_C)),
    Kpi("leads_responded", "count", WINDOW, O_T_R, "the first touch's rep",
        "leads whose first touch (`lead.touched`, or `call.logged` with the lead) is in W",
        lambda x: x.leads_responded,
        _m("kpi_leads_responded", "Leads whose first touch is in the window (leads_responded).")),
    Kpi("lead_response_seconds_mean", "seconds", WINDOW, O_T_R, "the first touch's rep",
        "mean response time of the leads responded in W: first touch − `lead.created`, floored at 0",
        lambda x: ratio(x.response_ms / 1000, x.leads_responded),
        _m("kpi_lead_response_mean_seconds",
           "Mean time from lead.created to first touch, leads responded in the window (lead_response_seconds_mean).")),
    Kpi("lead_response_seconds_p50", "seconds", WINDOW, O_T_R, "the first touch's rep",
        "median response time (nearest rank; exact, folded onto a < 0.5 % log grid only past 4,096 distinct values)",
        _p(0.5),
        _m("kpi_lead_response_p50_seconds",
           "Median time from lead.created to first touch, leads responded in the window (lead_response_seconds_p50).")),
    Kpi("lead_response_seconds_p90", "seconds", WINDOW, O_T_R, "the first touch's rep", "90th percentile response time (nearest rank)",
        _p(0.9),
        _m("kpi_lead_response_p90_seconds",
           "90th percentile time from lead.created to first touch, leads responded in the window (lead_response_seconds_p90).")),
    Kpi("lead_response_within_sla_ratio", "ratio", WINDOW, O_T_R, "the first touch's rep",
        "share of the responses in W within `KPI_SLA_SECONDS`",
        lambda x: ratio(x.responses_within_sla, x.leads_responded),
        _m("kpi_lead_response_within_sla_ratio",
           "Share of the responses in the window within KPI_SLA_SECONDS (lead_response_within_sla_ratio).")),
    Kpi("leads_awaiting_response", "count", NOW, O_T_R, "the lead's owner, else `unassigned`",
        "leads created, never touched, not disqualified, created within `KPI_LEAD_MAX_AGE_SECONDS` (7 days)",
        lambda x: x.leads_awaiting,
        _m("kpi_leads_awaiting_response",
           "Leads created within lead_max_age, never touched, not disqualified, now (leads_awaiting_response).")),
    Kpi("oldest_wait_seconds", "seconds", NOW, O_T_R, "the lead's owner, else `unassigned`", "`now` − creation of the oldest lead awaiting a response",
        _oldest_wait,
        _m("kpi_oldest_wait_seconds", "How long the oldest lead awaiting a response has waited, now (oldest_wait_seconds).")),
    Kpi("leads_qualified", "count", WINDOW, (*O_T_R, *S_C), "the qualifying event's rep", "leads whose first `lead.qualified` is in W",
        lambda x: x.leads_qualified,
        _also(_m("kpi_leads_qualified", "Leads whose first lead.qualified is in the window (leads_qualified)."), *S_C)),
    Kpi("lead_to_opportunity_ratio", "ratio", WINDOW, (*O_T_R, *S_C), "as its parts", "`leads_qualified` ÷ `leads_created`",
        lambda x: ratio(x.leads_qualified, x.leads_created),
        _also(_m("kpi_lead_to_opportunity_ratio", "Leads qualified / leads created in the window (lead_to_opportunity_ratio)."), *S_C)),
    Kpi("touches_to_meeting_mean", "number", WINDOW, O_T_R, "the booking's rep",
        "over the leads whose first `meeting.booked` is in W: mean touches up to that booking",
        lambda x: ratio(x.meeting_touches, x.meetings),
        _m("kpi_touches_to_meeting_mean",
           "Mean touches before the first meeting, meetings booked in the window (touches_to_meeting_mean).")),
    Kpi("calls", "count", WINDOW, O_T_R, "the call's rep", "`call.logged` in W", lambda x: x.calls,
        _m("kpi_calls", "Calls logged in the window (calls).")),
    Kpi("calls_connected", "count", WINDOW, O_T_R, "the call's rep", "connected calls in W", lambda x: x.calls_connected,
        _m("kpi_calls_connected", "Connected calls in the window (calls_connected).")),
    Kpi("connect_rate", "ratio", WINDOW, O_T_R, "the call's rep", "`calls_connected` ÷ `calls`",
        lambda x: ratio(x.calls_connected, x.calls),
        _m("kpi_call_connect_ratio", "Connected calls / calls in the window (connect_rate).")),
    Kpi("talk_seconds_total", "seconds", WINDOW, O_T_R, "the call's rep", "talk time (`duration_s`) of the connected calls in W",
        lambda x: x.talk_ms / 1000,
        _m("kpi_talk_time_seconds", "Talk time of connected calls in the window (talk_seconds_total).")),
    Kpi("deals_won", "count", WINDOW, (*O_T_R, *P_S_C, "stages"), "the deal's owner", "deals whose outcome (won) is in W (per stage: by the stage just before it)", lambda x: x.deals_won,
        _also(_m("kpi_deals_won", "Deals won in the window (deals_won)."), *P_S_C, "stages")),
    Kpi("deals_lost", "count", WINDOW, (*O_T_R, *P_S_C, "stages"), "the deal's owner", "deals whose outcome (lost) is in W (per stage: by the stage just before it; where the pipeline leaks)", lambda x: x.deals_lost,
        _also(_m("kpi_deals_lost", "Deals lost in the window (deals_lost)."), *P_S_C, "stages")),
    Kpi("win_rate", "ratio", WINDOW, (*O_T_R, *P_S_C), "the deal's owner", "won ÷ (won + lost) of the deals closed in W",
        lambda x: ratio(x.deals_won, x.deals_won + x.deals_lost),
        _also(_m("kpi_win_ratio", "Won / (won + lost) of the deals closed in the window (win_rate)."), *P_S_C)),
    Kpi("won_revenue", "money", WINDOW, (*O_T_R, *P_S_C), "the deal's owner",
        "sum of the final amounts of the deals won in W (exact decimals, reported to the cent)",
        lambda x: money(x.won_revenue),
        _also(_m("kpi_won_revenue", "Final amounts of the deals won in the window (won_revenue)."), *P_S_C)),
    Kpi("avg_deal_size", "money", WINDOW, (*O_T_R, *P_S_C), "the deal's owner", "mean final amount of the deals won in W",
        lambda x: None if (avg := _avg_deal(x)) is None else money(avg),
        _also(_m("kpi_deal_size_mean", "Mean final amount of the deals won in the window (avg_deal_size)."), *P_S_C)),
    Kpi("sales_cycle_days_mean", "days", WINDOW, (*O_T_R, *P_S_C), "the deal's owner",
        "mean `deal.created`-to-outcome time in days (floored at 0) of the deals won in W", _cycle_days,
        _also(_m("kpi_sales_cycle_mean_seconds",
           "Mean deal.created-to-won time of the deals won in the window (sales_cycle_days_mean, in seconds)."), *P_S_C)),
    Kpi("open_deals", "count", NOW, (*O_T_R, "stages", *P_S_C), "the deal's owner", "deals without an outcome (per stage: in that stage)",
        lambda x: x.open_deals,
        _also({"scope": Metric("kpi_open_deals", "Deals without an outcome, now (open_deals)."),
               "stages": Metric("kpi_stage_open_deals", "Open deals in the stage, now.")}, *P_S_C)),
    Kpi("open_pipeline_value", "money", NOW, (*O_T_R, "stages", *P_S_C), "the deal's owner", "current amounts of the deals without an outcome (per stage: in that stage)",
        lambda x: money(x.open_value),
        _also({"scope": Metric("kpi_open_pipeline_value", "Current amounts of the deals without an outcome, now (open_pipeline_value)."),
               "stages": Metric("kpi_stage_open_pipeline_value", "Current amounts of the open deals in the stage, now.")}, *P_S_C)),
    Kpi("pipeline_velocity_per_day", "money", WINDOW_AND_NOW, O_T_R, "as its parts",
        "`open_deals` (now) × `avg_deal_size` × `win_rate` ÷ `sales_cycle_days_mean` (W): money per day; "
        "null when a factor is null or the cycle is 0", _velocity,
        _m("kpi_pipeline_velocity_per_day",
           "Open deals now x mean deal size x win rate / mean sales cycle (days) of the window: "
           "money per day (pipeline_velocity_per_day).")),
    Kpi("stage_entries", "count", WINDOW, ("stages",), "as its parts",
        "deals whose first entry into the stage is in W (`deal.created` enters its `stage`, `deal.stage_changed` "
        "its `to_stage`)", lambda x: x.stage_entries,
        {"stages": Metric("kpi_stage_entries", "Deals whose first entry into the stage is in the window (stage_entries).")}),
    Kpi("stage_conversion", "ratio", WINDOW, ("stages",), "as its parts",
        "`stage_entries` of the next stage ÷ this stage's; null for the last (may exceed 1 when deals skip stages)",
        lambda x: None if (nxt := x.next("stage_entries")) is None else ratio(nxt, x.stage_entries),
        {"stages": Metric("kpi_stage_conversion_ratio",
                          "Entries of the next stage / entries of this stage in the window; none for the last stage "
                          "(stage_conversion).")}),
    Kpi("quota_attainment", "ratio", MONTH, O_T_R, "the deal's owner",
        "rep: won revenue this month ÷ the rep's monthly quota (roster); team and overall: share of the roster's "
        "quota-carrying reps at ≥ 1.0", None,
        _m("kpi_quota_attainment_ratio",
           "Month to date: rep = won revenue / monthly quota; team and overall = share of the roster's "
           "quota-carrying reps at >= 1 (quota_attainment).")),
    # --- revenue split, contract value, marketing and spend (docs/kpis.md, "Revenue and marketing") -----------
    Kpi("won_revenue_new", "money", WINDOW, (*O_T_R, *P_S_C), "the deal's owner",
        "`won_revenue` of the deals of kind `new` (a `deal.created` without `kind` is `new`)",
        lambda x: money(x.won_revenue_new),
        _also(_m("kpi_won_revenue_new", "Final amounts of the deals of kind new won in the window (won_revenue_new)."),
              *P_S_C)),
    Kpi("won_revenue_expansion", "money", WINDOW, (*O_T_R, *P_S_C), "the deal's owner",
        "`won_revenue` of the deals of kind `expansion`", lambda x: money(x.won_revenue_expansion),
        _also(_m("kpi_won_revenue_expansion",
                 "Final amounts of the deals of kind expansion won in the window (won_revenue_expansion)."), *P_S_C)),
    Kpi("won_revenue_renewal", "money", WINDOW, (*O_T_R, *P_S_C), "the deal's owner",
        "`won_revenue` of the deals of kind `renewal`", lambda x: money(x.won_revenue_renewal),
        _also(_m("kpi_won_revenue_renewal",
                 "Final amounts of the deals of kind renewal won in the window (won_revenue_renewal)."), *P_S_C)),
    Kpi("new_customers_won", "count", WINDOW, (*O_T_R, *P_S_C), "the deal's owner", "deals won in W whose kind is `new`",
        lambda x: x.new_customers_won,
        _also(_m("kpi_new_customers_won", "Deals of kind new won in the window (new_customers_won)."), *P_S_C)),
    Kpi("avg_contract_value_annual", "money", WINDOW, (*O_T_R, *P_S_C), "the deal's owner",
        "over the deals won in W that have a term (`term_months` of the outcome, else of `deal.created`): mean of "
        "final amount × 12 ÷ `term_months`", lambda x: _money_ratio(x.acv_sum, x.acv_deals),
        _also(_m("kpi_contract_value_annual_mean",
                 "Mean annualised final amount (amount x 12 / term_months) of the deals won with a term in the window "
                 "(avg_contract_value_annual)."), *P_S_C)),
    Kpi("mqls", "count", WINDOW, (*O_T_R, *S_C), "that event's `rep_id`, else the lead's owner, else `unassigned`",
        "leads whose first `lead.marketing_qualified` is in W", lambda x: x.mqls,
        _also(_m("kpi_mqls", "Leads whose first lead.marketing_qualified is in the window (mqls)."), *S_C)),
    Kpi("mql_to_sql_ratio", "ratio", WINDOW, (*O_T_R, *S_C), "as its parts",
        "`leads_qualified` ÷ `mqls` (`lead.qualified` is the sales-qualified step)",
        lambda x: ratio(x.leads_qualified, x.mqls),
        _also(_m("kpi_mql_to_sql_ratio", "Leads qualified / MQLs in the window (mql_to_sql_ratio)."), *S_C)),
    Kpi("marketing_spend", "money", WINDOW, ("overall", *S_C), "not credited",
        "sum of the `amount`s of `spend.recorded` of category `marketing` (the default) in W; per `channel` in "
        "sources, per `campaign` in campaigns", lambda x: money(x.marketing_spend),
        _also(_m("kpi_marketing_spend", "Marketing spend recorded in the window (marketing_spend)."), *S_C)),
    Kpi("sales_spend", "money", WINDOW, ("overall", *S_C), "not credited",
        "sum of the `amount`s of `spend.recorded` of category `sales` in W", lambda x: money(x.sales_spend),
        _also(_m("kpi_sales_spend", "Sales spend recorded in the window (sales_spend)."), *S_C)),
    Kpi("cost_per_lead", "money", WINDOW, ("overall", *S_C), "—", "`marketing_spend` ÷ `leads_created`",
        lambda x: _money_ratio(x.marketing_spend, x.leads_created),
        _also(_m("kpi_cost_per_lead", "Marketing spend / leads created in the window (cost_per_lead)."), *S_C)),
    Kpi("cost_per_opportunity", "money", WINDOW, ("overall", *S_C), "—", "`marketing_spend` ÷ `leads_qualified`",
        lambda x: _money_ratio(x.marketing_spend, x.leads_qualified),
        _also(_m("kpi_cost_per_opportunity",
                 "Marketing spend / leads qualified in the window (cost_per_opportunity)."), *S_C)),
    Kpi("customer_acquisition_cost", "money", WINDOW, ("overall", *S_C), "—",
        "(`marketing_spend` + `sales_spend`) ÷ `new_customers_won`",
        lambda x: _money_ratio(x.marketing_spend + x.sales_spend, x.new_customers_won),
        _also(_m("kpi_customer_acquisition_cost",
                 "(Marketing + sales spend) / new customers won in the window (customer_acquisition_cost)."), *S_C)),
    Kpi("marketing_roi", "ratio", WINDOW, ("overall", *S_C), "—",
        "(`won_revenue` − `marketing_spend`) ÷ `marketing_spend`; null without marketing spend", _roi,
        _also(_m("kpi_marketing_roi", "(Won revenue - marketing spend) / marketing spend in the window (marketing_roi)."),
              *S_C)),
    # --- customers (subscriptions) and forecasts: docs/kpis.md "Customers" and "Forecasts" ---
    Kpi("mrr", "money", NOW, O_T_R_P, "the account's owner", "sum of the MRR of the active accounts",
        lambda x: money(x.mrr),
        _also(_m("kpi_mrr", "Monthly recurring revenue of the active accounts, now (mrr)."), "products")),
    Kpi("arr", "money", NOW, O_T_R_P, "the account's owner", "12 × `mrr`",
        lambda x: money(12 * x.mrr),
        _also(_m("kpi_arr", "Annual recurring revenue: 12 x MRR of the active accounts, now (arr)."), "products")),
    Kpi("customers_active", "count", NOW, O_T_R_P, "the account's owner", "active accounts",
        lambda x: x.customers_active,
        _also(_m("kpi_customers_active", "Active accounts, now (customers_active)."), "products")),
    Kpi("customers_new", "count", WINDOW, O_T_R_P, "the account's owner", "active periods that start in W",
        lambda x: x.customers_new,
        _also(_m("kpi_customers_new", "Active periods starting in the window (customers_new)."), "products")),
    Kpi("customers_churned", "count", WINDOW, O_T_R_P, "the account's owner",
        "active periods that end in W (cancellations of active accounts)",
        lambda x: x.customers_churned,
        _also(_m("kpi_customers_churned", "Active periods ending in the window (customers_churned)."), "products")),
    Kpi("customers_at_window_start", "count", WINDOW, O_T_R_P, "the account's owner",
        "accounts with an active period that began before the start of W and had not ended before it (0 for `all`)",
        lambda x: x.customers_at_start,
        _also(_m("kpi_customers_at_window_start", "Accounts active at the start of the window (customers_at_window_start)."), "products")),
    Kpi("churn_rate", "ratio", WINDOW, O_T_R_P, "as its parts", "`customers_churned` ÷ `customers_at_window_start`",
        lambda x: ratio(x.customers_churned, x.customers_at_start),
        _also(_m("kpi_churn_ratio", "Customers churned / customers at the window's start (churn_rate)."), "products")),
    Kpi("customer_retention_rate", "ratio", WINDOW, O_T_R_P, "as its parts",
        "(`customers_active` − `customers_new`) ÷ `customers_at_window_start`",
        lambda x: ratio(x.customers_active - x.customers_new, x.customers_at_start),
        _also(_m("kpi_customer_retention_ratio",
             "(Customers active now - new in the window) / customers at the window's start (customer_retention_rate)."), "products")),
    Kpi("mrr_new", "money", WINDOW, O_T_R_P, "the account's owner", "MRR of the active periods starting in W",
        lambda x: money(x.mrr_new),
        _also(_m("kpi_mrr_new", "MRR of the active periods starting in the window (mrr_new)."), "products")),
    Kpi("mrr_expansion", "money", WINDOW, O_T_R_P, "the account's owner",
        "sum of the increases of active accounts' MRR by events in W",
        lambda x: money(x.mrr_expansion),
        _also(_m("kpi_mrr_expansion", "Increases of active accounts' MRR in the window (mrr_expansion)."), "products")),
    Kpi("mrr_contraction", "money", WINDOW, O_T_R_P, "the account's owner",
        "sum of the decreases of active accounts' MRR by events in W, as a positive amount",
        lambda x: money(x.mrr_contraction),
        _also(_m("kpi_mrr_contraction", "Decreases of active accounts' MRR in the window, positive (mrr_contraction)."), "products")),
    Kpi("mrr_churned", "money", WINDOW, O_T_R_P, "the account's owner",
        "MRR of the accounts whose active period ends in W, at its end",
        lambda x: money(x.mrr_churned),
        _also(_m("kpi_mrr_churned", "MRR of the active periods ending in the window, at their end (mrr_churned)."), "products")),
    Kpi("customer_lifetime_value", "money", NOW, O_T_R_P, "as its parts",
        "(`mrr` ÷ `customers_active`) ÷ c, c the `churn_rate` of the previous full calendar month; null when a "
        "part is null or c is 0", _clv,
        _also(_m("kpi_customer_lifetime_value",
             "MRR per active account / churn rate of the previous calendar month, now (customer_lifetime_value)."), "products")),
    Kpi("forecast_amount", "money", MONTH, O_T_R, "the forecast's rep",
        "rep: their forecast for the current month (latest `forecast.submitted` for it); team and overall: sum "
        "over their reps with one",
        lambda x: money(x.forecast_amount) if x.forecasts else None,
        _m("kpi_forecast_amount", "Month to date: the forecasts for the current month (forecast_amount).")),
    Kpi("forecast_attainment", "ratio", MONTH, O_T_R, "as its parts",
        "rep: `won_revenue` (month) ÷ `forecast_amount`; team and overall: the won revenue of the reps with a "
        "forecast ÷ the sum of their forecasts", None,
        _m("kpi_forecast_attainment_ratio",
           "Month to date: won revenue of the reps with a forecast / their forecasts (forecast_attainment).")),
    Kpi("forecast_accuracy", "ratio", MONTH, O_T_R, "as its parts",
        "for the previous calendar month: 1 − |won − forecast| ÷ forecast, won being that month's won revenue; "
        "team and overall over the reps with a forecast for it, with sums", None,
        _m("kpi_forecast_accuracy_ratio",
           "Previous calendar month: 1 - |won - forecast| / forecast over the reps with a forecast (forecast_accuracy).")),
    Kpi("quota_pace", "ratio", MONTH, O_T_R, "as its parts",
        "rep: `won_revenue` (month) ÷ (monthly quota × f), f = (now − month start) ÷ (month end − month start); "
        "team and overall: sums over the roster's reps with a quota", None,
        _m("kpi_quota_pace_ratio",
           "Month to date: won revenue / (monthly quota x share of the month elapsed); 1 = on pace (quota_pace).")),
    Kpi("projected_won_revenue", "money", MONTH, O_T_R, "as its parts", "`won_revenue` (month) ÷ f",
        _projected,
        _m("kpi_projected_won_revenue",
           "Month to date: won revenue / share of the month elapsed (projected_won_revenue).")),
)
BY_KEY: dict[str, Kpi] = {k.key: k for k in KPIS}


def keys_of(section: str, window: str) -> tuple[str, ...]:
    """The KPI keys a section of the ``window`` document carries, in catalogue order."""
    return tuple(k.key for k in KPIS if section in k.sections and (k.timing != MONTH or window == "month"))


def now_keys(section: str) -> tuple[str, ...]:
    """The keys a label with only current state (waiting leads, open deals) is listed with."""
    return tuple(k.key for k in KPIS if section in k.sections and k.timing in (NOW, WINDOW_AND_NOW))


def exported_per_scope(*timings: str) -> tuple[Kpi, ...]:
    """The KPIs with an overall/team/rep metric, of the given timings, in catalogue order."""
    return tuple(k for k in KPIS if k.metric is not None and k.timing in timings)
