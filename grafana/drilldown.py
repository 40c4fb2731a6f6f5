"""Team and rep drilldown: every KPI of docs/kpis.md over the last hour, 24 hours and today, for the `team`
and `rep` picked at the top; calls and connect rate over time; the lead funnel; the floor's deal stages.

The `rep` list is every rep with KPI series, whatever the team: a rep's numbers may be credited under
several teams (the team on each event), so rep series carry no team label (docs/metrics.md).
Deal stages are floor-wide: stage entries and conversion are defined overall only (docs/kpis.md).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard as dashboard_models

from grafana.common import (
    BLUE, GREEN, Flow, Re, bargauge_panel, fixed, kpi, new_dashboard, now, query_variable, row, series,
    stat_panel, timeseries_panel, trend,
)
from stream.kpi.catalogue import MONTH, NOW, WINDOW, WINDOW_AND_NOW, Kpi, exported_per_scope

UID = "kpi-drilldown"
TITLE = "Team and rep drilldown"
DRILL_WINDOWS = ("1h", "24h", "today")

TITLES = {
    "kpi_leads_created": "Leads created",
    "kpi_leads_responded": "Leads responded",
    "kpi_lead_response_mean_seconds": "Response time, mean",
    "kpi_lead_response_p50_seconds": "Response time, median",
    "kpi_lead_response_p90_seconds": "Response time, p90",
    "kpi_lead_response_within_sla_ratio": "Responses within SLA",
    "kpi_leads_qualified": "Leads qualified",
    "kpi_lead_to_opportunity_ratio": "Lead to opportunity",
    "kpi_touches_to_meeting_mean": "Touches to meeting",
    "kpi_calls": "Calls",
    "kpi_calls_connected": "Calls connected",
    "kpi_call_connect_ratio": "Connect rate",
    "kpi_talk_time_seconds": "Talk time",
    "kpi_deals_won": "Deals won",
    "kpi_deals_lost": "Deals lost",
    "kpi_win_ratio": "Win rate",
    "kpi_won_revenue": "Won revenue",
    "kpi_deal_size_mean": "Average deal size",
    "kpi_sales_cycle_mean_seconds": "Sales cycle, mean",
    "kpi_pipeline_velocity_per_day": "Pipeline velocity per day",
    "kpi_leads_awaiting_response": "Leads waiting now",
    "kpi_oldest_wait_seconds": "Oldest wait now",
    "kpi_open_deals": "Open deals now",
    "kpi_open_pipeline_value": "Open pipeline now",
    "kpi_quota_attainment_ratio": "Quota attainment (month)",
    "kpi_won_revenue_new": "Won revenue, new business",
    "kpi_won_revenue_expansion": "Won revenue, expansion",
    "kpi_won_revenue_renewal": "Won revenue, renewal",
    "kpi_new_customers_won": "New customers won",
    "kpi_contract_value_annual_mean": "Annual contract value, mean",
    "kpi_mqls": "MQLs",
    "kpi_mql_to_sql_ratio": "MQL to SQL",
    "kpi_mrr": "MRR now",
    "kpi_arr": "ARR now",
    "kpi_customers_active": "Customers now",
    "kpi_customers_new": "New customers",
    "kpi_customers_churned": "Churned customers",
    "kpi_customers_at_window_start": "Customers at window start",
    "kpi_churn_ratio": "Churn rate",
    "kpi_customer_retention_ratio": "Retention rate",
    "kpi_mrr_new": "New MRR",
    "kpi_mrr_expansion": "Expansion MRR",
    "kpi_mrr_contraction": "Contraction MRR",
    "kpi_mrr_churned": "Churned MRR",
    "kpi_customer_lifetime_value": "Customer lifetime value",
    "kpi_forecast_amount": "Forecast (month)",
    "kpi_forecast_attainment_ratio": "Forecast attainment (month)",
    "kpi_forecast_accuracy_ratio": "Forecast accuracy (last month)",
    "kpi_quota_pace_ratio": "Quota pace (month)",
    "kpi_projected_won_revenue": "Projected revenue (month)",
}


def unit_of(kpi: Kpi, currency: str) -> str:
    if kpi.unit == "money":
        return f"currency{currency}"
    if kpi.unit in ("seconds", "days"):  # days are exported in seconds
        return "s"
    if kpi.unit == "ratio":
        return "percentunit"
    return "short"


def _scope_panels(dash: dashboard_builders.Dashboard, flow: Flow, scope: str, var: str, currency: str):
    labels = {"scope": scope, scope: f"${var}"}
    heading = "Team" if scope == "team" else "Rep"
    dash = dash.with_row(row(f"{heading}: ${var}", flow.row()))
    for spec in exported_per_scope(WINDOW, WINDOW_AND_NOW):
        name = spec.metric.name
        if "teams" not in spec.sections:
            continue  # spend and its ratios are credited to no rep: on the revenue dashboard (grafana/revenue.py)
        dash = dash.with_panel(stat_panel(
            TITLES[name],
            [now(kpi(name, by=["window"], window=Re("|".join(DRILL_WINDOWS)), **labels), "{{window}}")],
            flow.place(4, 5), unit=unit_of(spec, currency), steps=fixed(BLUE), names=True,
            decimals=2 if spec.key == "touches_to_meeting_mean" else None,
            description=f"{spec.metric.help} Windows: last hour, last 24 hours, today.",
        ))
    for spec in exported_per_scope(NOW, MONTH):
        if "teams" not in spec.sections:
            continue
        dash = dash.with_panel(stat_panel(
            TITLES[spec.metric.name], [now(kpi(spec.metric.name, **labels))], flow.place(4, 5),
            unit=unit_of(spec, currency), steps=fixed(GREEN if spec.timing == MONTH else BLUE),
            description=spec.metric.help,
        ))
    dash = dash.with_panel(timeseries_panel(
        f"Calls and connect rate (rolling hour) - ${var}", [
            trend(kpi("kpi_calls", window="1h", **labels), "calls"),
            trend(kpi("kpi_calls_connected", window="1h", **labels), "connected"),
            trend(kpi("kpi_call_connect_ratio", window="1h", **labels), "connect rate"),
        ],
        flow.place(14, 9), unit="short",
        description="Calls logged in the last hour, at each point in time; connect rate on the right axis.",
    ).override_by_name("connect rate", [
        dashboard_models.DynamicConfigValue(id_val="unit", value="percentunit"),
        dashboard_models.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
        dashboard_models.DynamicConfigValue(id_val="max", value=1),
    ]))
    dash = dash.with_panel(bargauge_panel(
        f"Lead funnel today - ${var}", [
            now(kpi("kpi_leads_created", window="today", **labels), "created"),
            now(kpi("kpi_leads_responded", window="today", **labels), "responded"),
            now(kpi("kpi_leads_qualified", window="today", **labels), "qualified"),
            now(kpi("kpi_deals_won", window="today", **labels), "deals won"),
        ],
        flow.place(10, 9), unit="short",
        description="Leads created, responded and qualified today, and deals won today.",
    ))
    return dash


def _product_panels(dash: dashboard_builders.Dashboard, flow: Flow, currency: str):
    """The deal KPIs of the `product` picked at the top (docs/kpis.md, "Revenue and marketing")."""
    dash = dash.with_row(row("Product: $product", flow.row()))
    for spec in exported_per_scope(WINDOW, NOW):
        metric = spec.metrics.get("products")
        if metric is None:
            continue
        labels = {"product": "$product"}
        if spec.timing == NOW:
            query = now(kpi(metric.name, **labels))
        else:
            query = now(kpi(metric.name, by=["window"], window=Re("|".join(DRILL_WINDOWS)), **labels), "{{window}}")
        dash = dash.with_panel(stat_panel(
            TITLES[spec.metric.name], [query], flow.place(4, 5), unit=unit_of(spec, currency), steps=fixed(BLUE),
            names=spec.timing != NOW, description=metric.help,
        ))
    return dash


def build(currency: str = "USD") -> dashboard_builders.Dashboard:
    dash = (
        new_dashboard(TITLE, UID, tags=["drilldown"], refresh="30s", time_from="now-24h",
                      description="Every KPI of a team and of a rep over the last hour, 24 hours and today.")
        .with_variable(query_variable("team", "Team", f"label_values({series('kpi_open_deals', scope='team')}, team)"))
        .with_variable(query_variable("rep", "Rep", f"label_values({series('kpi_open_deals', scope='rep')}, rep)"))
        .with_variable(query_variable("product", "Product",
                                      f"label_values({series('kpi_product_deals_won', window='all')}, product)"))
    )
    flow = Flow()
    dash = _scope_panels(dash, flow, "team", "team", currency)
    dash = _scope_panels(dash, flow, "rep", "rep", currency)
    dash = _product_panels(dash, flow, currency)
    dash = dash.with_row(row("Floor: deal stages", flow.row()))
    stage_window = "today"
    dash = dash.with_panel(bargauge_panel(
        "Stage entries today", [now(kpi("kpi_stage_entries", by=["stage"], window=stage_window), "{{stage}}")],
        flow.place(8, 8), description="Deals that entered each stage for the first time today (floor-wide).",
    ))
    dash = dash.with_panel(bargauge_panel(
        "Stage conversion today", [now(kpi("kpi_stage_conversion_ratio", by=["stage"], window=stage_window), "{{stage}}")],
        flow.place(8, 8), unit="percentunit", description="Entries of the next stage / entries of this stage, today.",
        minimum=0,
    ))
    dash = dash.with_panel(bargauge_panel(
        "Open deals by stage now", [now(kpi("kpi_stage_open_deals", by=["stage"]), "{{stage}}")],
        flow.place(8, 8), description="Deals without an outcome, by current stage.",
    ))
    return dash
