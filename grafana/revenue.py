"""Revenue and marketing: the revenue split over time, contract value, the products leaderboard, the sources
and campaigns tables (leads, MQLs, SQLs, won, spend, cost per lead and per opportunity, CAC, ROI) and where the
pipeline leaks (docs/kpis.md, "Revenue and marketing").

Tables and tiles are month to date (`window="month"`), the revenue split a trend of `today`. Sources and
campaigns are labels of their own series (`kpi_source_*`, `kpi_campaign_*`), capped per worker
(docs/metrics.md), so a table has at most a few hundred rows.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from grafana.common import (
    BLUE, GREEN, ORANGE, Flow, bargauge_panel, fixed, kpi, new_dashboard, now, overall, row, stat_panel,
    table_panel, timeseries_panel, trend,
)

UID = "kpi-revenue"
TITLE = "Revenue & marketing"
WINDOW = "month"


def _money(currency: str) -> str:
    return f"currency{currency}"


def build(currency: str = "USD") -> dashboard_builders.Dashboard:
    money, ratio = _money(currency), "percentunit"
    dash = new_dashboard(TITLE, UID, tags=["revenue", "marketing"], refresh="1m", time_from="now-7d",
                         description="Revenue by kind, contract value, products, lead sources and campaigns, "
                                     "spend and what it buys, and where the pipeline leaks. Month to date.")
    flow = Flow()
    dash = dash.with_row(row("Revenue", flow.row()))
    dash = dash.with_panel(timeseries_panel(
        "Won revenue today by kind", [
            trend(overall("kpi_won_revenue_new", window="today"), "new business"),
            trend(overall("kpi_won_revenue_expansion", window="today"), "expansion"),
            trend(overall("kpi_won_revenue_renewal", window="today"), "renewal"),
        ],
        flow.place(12, 8), unit=money, stacked=True,
        description="Won revenue since midnight, split by the deals' kind (new, expansion, renewal).",
    ))
    for title, metric, unit, colour in (
        ("Annual contract value, mean", "kpi_contract_value_annual_mean", money, BLUE),
        ("New customers won", "kpi_new_customers_won", "short", GREEN),
        ("Marketing spend", "kpi_marketing_spend", money, ORANGE),
        ("Customer acquisition cost", "kpi_customer_acquisition_cost", money, ORANGE),
        ("Marketing ROI", "kpi_marketing_roi", ratio, GREEN),
        ("MQL to SQL", "kpi_mql_to_sql_ratio", ratio, BLUE),
    ):
        dash = dash.with_panel(stat_panel(
            f"{title} (month)", [now(overall(metric, window=WINDOW))], flow.place(4, 4), unit=unit,
            steps=fixed(colour), description=f"Month to date, whole floor ({metric}).",
        ))

    dash = dash.with_row(row("Products", flow.row()))
    dash = dash.with_panel(bargauge_panel(
        "Won revenue by product (month)",
        [now(kpi("kpi_product_won_revenue", by=["product"], window=WINDOW), "{{product}}")],
        flow.place(10, 9), unit=money, description="Final amounts of the deals won this month, per product.",
    ))
    dash = dash.with_panel(table_panel(
        "Products (month)", [
            ("deals won", kpi("kpi_product_deals_won", by=["product"], window=WINDOW), "short"),
            ("win rate", kpi("kpi_product_win_ratio", by=["product"], window=WINDOW), ratio),
            ("won revenue", kpi("kpi_product_won_revenue", by=["product"], window=WINDOW), money),
            ("ACV", kpi("kpi_product_contract_value_annual_mean", by=["product"], window=WINDOW), money),
            ("open pipeline", kpi("kpi_product_open_pipeline_value", by=["product"]), money),
        ], "product", flow.place(14, 9), sort_by="won revenue",
        description="Per product: deals won, win rate, won revenue and annual contract value this month; open "
                    "pipeline now.",
    ))

    dash = dash.with_row(row("Lead sources", flow.row()))
    dash = dash.with_panel(table_panel(
        "Sources (month)", [
            ("leads", kpi("kpi_source_leads_created", by=["source"], window=WINDOW), "short"),
            ("MQLs", kpi("kpi_source_mqls", by=["source"], window=WINDOW), "short"),
            ("SQLs", kpi("kpi_source_leads_qualified", by=["source"], window=WINDOW), "short"),
            ("won", kpi("kpi_source_deals_won", by=["source"], window=WINDOW), "short"),
            ("won revenue", kpi("kpi_source_won_revenue", by=["source"], window=WINDOW), money),
            ("spend", kpi("kpi_source_marketing_spend", by=["source"], window=WINDOW), money),
            ("CPL", kpi("kpi_source_cost_per_lead", by=["source"], window=WINDOW), money),
            ("CPO", kpi("kpi_source_cost_per_opportunity", by=["source"], window=WINDOW), money),
            ("CAC", kpi("kpi_source_customer_acquisition_cost", by=["source"], window=WINDOW), money),
            ("ROI", kpi("kpi_source_marketing_roi", by=["source"], window=WINDOW), ratio),
        ], "source", flow.place(24, 9), sort_by="leads",
        description="Per channel this month: leads, MQLs, SQLs (leads qualified), deals won and their revenue, "
                    "marketing spend, cost per lead and per opportunity, acquisition cost (marketing + sales "
                    "spend per new customer) and ROI.",
    ))
    dash = dash.with_row(row("Campaigns", flow.row()))
    dash = dash.with_panel(table_panel(
        "Campaigns (month)", [
            ("leads", kpi("kpi_campaign_leads_created", by=["campaign"], window=WINDOW), "short"),
            ("MQLs", kpi("kpi_campaign_mqls", by=["campaign"], window=WINDOW), "short"),
            ("SQLs", kpi("kpi_campaign_leads_qualified", by=["campaign"], window=WINDOW), "short"),
            ("won revenue", kpi("kpi_campaign_won_revenue", by=["campaign"], window=WINDOW), money),
            ("spend", kpi("kpi_campaign_marketing_spend", by=["campaign"], window=WINDOW), money),
            ("CPL", kpi("kpi_campaign_cost_per_lead", by=["campaign"], window=WINDOW), money),
            ("ROI", kpi("kpi_campaign_marketing_roi", by=["campaign"], window=WINDOW), ratio),
        ], "campaign", flow.place(24, 9), sort_by="spend",
        description="Per campaign this month (leads, deals and spend without a campaign are in none).",
    ))

    dash = dash.with_row(row("Where the pipeline leaks", flow.row()))
    dash = dash.with_panel(bargauge_panel(
        "Deals lost by stage before the loss (month)",
        [now(kpi("kpi_stage_deals_lost", by=["stage"], window=WINDOW), "{{stage}}")],
        flow.place(12, 8), steps=fixed(ORANGE),
        description="Deals lost this month, by the stage they were in just before the outcome.",
    ))
    dash = dash.with_panel(bargauge_panel(
        "Deals won by stage before the win (month)",
        [now(kpi("kpi_stage_deals_won", by=["stage"], window=WINDOW), "{{stage}}")],
        flow.place(12, 8), steps=fixed(GREEN),
        description="Deals won this month, by the stage they were in just before the outcome.",
    ))
    return dash
