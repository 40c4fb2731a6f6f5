"""Customers & forecast: MRR and ARR, new vs churned customers, churn and retention, CLV, the MRR movement
(new / expansion / contraction / churned), and per rep forecast vs won vs quota and the quota pace
(docs/kpis.md "Customers" and "Forecasts"). Metric names come from the catalogue (stream.kpi.catalogue)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from grafana.common import (
    BLUE, GREEN, ORANGE, RED, Flow, bargauge_panel, fixed, kpi, new_dashboard, now, overall, row, stat_panel,
    thresholds, timeseries_panel, trend,
)
from stream.kpi.catalogue import BY_KEY

UID = "kpi-customers"
TITLE = "Customers & forecast"
MOVEMENT_WINDOW = "month"


def m(key: str, dimension: str = "scope") -> str:
    """The metric name of a KPI (one place to read it from: the catalogue)."""
    return BY_KEY[key].metrics[dimension].name


def build(currency: str = "USD") -> dashboard_builders.Dashboard:
    money = f"currency{currency}"
    dash = new_dashboard(TITLE, UID, tags=["customers", "forecast"], refresh="1m", time_from="now-30d",
                         description="Recurring revenue, churn, retention and lifetime value; forecasts and pace.")
    flow = Flow()
    dash = dash.with_row(row("Customers now", flow.row()))
    for title, key, unit, steps in (
        ("MRR", "mrr", money, fixed(BLUE)),
        ("ARR", "arr", money, fixed(BLUE)),
        ("Active customers", "customers_active", "short", fixed(BLUE)),
        ("Churn this month", "churn_rate", "percentunit", thresholds((None, GREEN), (0.03, ORANGE), (0.05, RED))),
        ("Retention this month", "customer_retention_rate", "percentunit",
         thresholds((None, RED), (0.95, ORANGE), (0.97, GREEN))),
        ("Customer lifetime value", "customer_lifetime_value", money, fixed(BLUE)),
    ):
        labels = {} if BY_KEY[key].timing == "now" else {"window": "month"}
        dash = dash.with_panel(stat_panel(title, [now(overall(m(key), **labels))], flow.place(4, 4), unit=unit,
                                          steps=steps, description=BY_KEY[key].metrics["scope"].help))
    dash = dash.with_row(row("Trends", flow.row()))
    dash = dash.with_panel(timeseries_panel(
        "MRR and ARR", [trend(overall(m("mrr")), "MRR"), trend(overall(m("arr")), "ARR")], flow.place(12, 8),
        unit=money, description="Monthly and annual recurring revenue of the active accounts.",
    ))
    dash = dash.with_panel(timeseries_panel(
        "New vs churned customers (this month)", [
            trend(overall(m("customers_new"), window="month"), "new"),
            trend(overall(m("customers_churned"), window="month"), "churned"),
        ], flow.place(12, 8), unit="short", bars=True,
        description="Active periods started and ended since the 1st.",
    ))
    dash = dash.with_panel(timeseries_panel(
        "Churn and retention (this month)", [
            trend(overall(m("churn_rate"), window="month"), "churn"),
            trend(overall(m("customer_retention_rate"), window="month"), "retention"),
        ], flow.place(12, 8), unit="percentunit",
        description="Churned ÷ customers on the 1st; (active − new) ÷ customers on the 1st.",
    ))
    dash = dash.with_panel(timeseries_panel(
        "Customer lifetime value", [trend(overall(m("customer_lifetime_value")), "overall"),
                                     trend(kpi(m("customer_lifetime_value"), by=["team"], scope="team"), "{{team}}")],
        flow.place(12, 8), unit=money,
        description="MRR per active customer ÷ last month's churn rate.",
    ))
    dash = dash.with_panel(timeseries_panel(
        "MRR movement (this month)", [
            trend(overall(m("mrr_new"), window=MOVEMENT_WINDOW), "new"),
            trend(overall(m("mrr_expansion"), window=MOVEMENT_WINDOW), "expansion"),
            trend(f"-1 * {overall(m('mrr_contraction'), window=MOVEMENT_WINDOW)}", "contraction"),
            trend(f"-1 * {overall(m('mrr_churned'), window=MOVEMENT_WINDOW)}", "churned"),
        ], flow.place(24, 8), unit=money, bars=True, stacked=True, minimum=None,
        description="Stacked: MRR gained (new, expansion) above zero, lost (contraction, churned) below.",
    ))
    dash = dash.with_row(row("Forecast and pace (this month)", flow.row()))
    dash = dash.with_panel(bargauge_panel(
        "Forecast vs won vs quota per rep", [
            now(kpi(m("forecast_amount"), by=["rep"], scope="rep"), "{{rep}} forecast"),
            now(kpi(m("won_revenue"), by=["rep"], scope="rep", window="month"), "{{rep}} won"),
            now(kpi("kpi_revenue_target", by=["rep"], scope="rep", period="month"), "{{rep}} quota"),
        ], flow.place(12, 12), unit=money,
        description="Each rep's forecast for the month, what they have won so far, and their monthly quota.",
    ))
    dash = dash.with_panel(bargauge_panel(
        "Quota pace per rep", [now(kpi(m("quota_pace"), by=["rep"], scope="rep"), "{{rep}}")],
        flow.place(6, 12), unit="percentunit",
        steps=thresholds((None, RED), (0.7, ORANGE), (1.0, GREEN)),
        description="Won ÷ (quota × share of the month elapsed): 100 % is on pace.",
    ))
    dash = dash.with_panel(stat_panel(
        "Forecast accuracy (last month)", [now(kpi(m("forecast_accuracy"), by=["team"], scope="team"), "{{team}}")],
        flow.place(6, 6), unit="percentunit", steps=thresholds((None, RED), (0.8, ORANGE), (0.9, GREEN)), names=True,
        description="1 − |won − forecast| ÷ forecast for the previous calendar month, per team.",
    ))
    dash = dash.with_panel(stat_panel(
        "Projected revenue (month)", [now(overall(m("projected_won_revenue")), "overall")],
        flow.place(6, 6), unit=money, steps=fixed(BLUE),
        description="Won so far ÷ share of the month elapsed.",
    ))
    dash = dash.with_row(row("Per product", flow.row()))
    dash = dash.with_panel(bargauge_panel(
        "MRR per product", [now(kpi(m("mrr", "products"), by=["product"]), "{{product}}")],
        flow.place(12, 8), unit=money, description="MRR of the active accounts per product.",
    ))
    dash = dash.with_panel(bargauge_panel(
        "Churn per product (this month)", [now(kpi(m("churn_rate", "products"), by=["product"], window="month"),
                                               "{{product}}")],
        flow.place(12, 8), unit="percentunit", description="Churned ÷ customers on the 1st, per product.",
    ))
    return dash
