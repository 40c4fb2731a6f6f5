"""Comparison of two /kpis documents: keys and nulls exact, numbers to 1e-9 relative.

Percentiles are exact until a scope has more than 4,096 distinct response times; then the engine keeps
them on a log grid with under 0.5 % relative error (docs/kpis.md; the contract allows up to 1 %). Large
logs (the soak) compare them with ``percentile_rel=0.005``.
"""

import pytest

PERCENTILE_KEYS = ("lead_response_seconds_p50", "lead_response_seconds_p90")


def assert_same(actual, expected, path="$", percentile_rel=1e-9):
    """Keys and nulls exact, strings exact, numbers with rel=1e-9 (percentiles with ``percentile_rel``)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert sorted(actual) == sorted(expected), f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for k in expected:
            rel = percentile_rel if k in PERCENTILE_KEYS else None
            if rel is not None and expected[k] is not None and actual[k] is not None:
                assert actual[k] == pytest.approx(expected[k], rel=rel), f"{path}.{k}: {actual[k]!r} != {expected[k]!r}"
            else:
                assert_same(actual[k], expected[k], f"{path}.{k}", percentile_rel)
    elif expected is None or isinstance(expected, (str, bool)):
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
    else:
        assert actual is not None and not isinstance(actual, (str, bool)), f"{path}: {actual!r} != {expected!r}"
        assert actual == pytest.approx(expected, rel=1e-9), f"{path}: {actual!r} != {expected!r}"


# Keys and sections added by the revenue and marketing part of the contract (docs/kpis.md "Revenue and
# marketing") and by the customers and forecasts part ("Customers", "Forecasts"): a document compared with
# an expectation written before them (the golden example of sections 1-5) is compared without them.
SECTION6_KEYS = frozenset({
    # revenue and marketing
    "won_revenue_new", "won_revenue_expansion", "won_revenue_renewal", "new_customers_won",
    "avg_contract_value_annual", "mqls", "mql_to_sql_ratio", "marketing_spend", "sales_spend", "cost_per_lead",
    "cost_per_opportunity", "customer_acquisition_cost", "marketing_roi",
    # customers and forecasts
    "mrr", "arr", "customers_active", "customers_new", "customers_churned", "customers_at_window_start",
    "churn_rate", "customer_retention_rate", "mrr_new", "mrr_expansion", "mrr_contraction", "mrr_churned",
    "customer_lifetime_value", "forecast_amount", "forecast_attainment", "forecast_accuracy", "quota_pace",
    "projected_won_revenue",
})
SECTION6_SECTIONS = frozenset({"products", "sources", "campaigns"})
SECTION6_STAGE_KEYS = frozenset({"deals_won", "deals_lost"})  # per stage: by the stage before the outcome


def without_section6(doc):
    """``doc`` (a /kpis document) without the section-6 sections and keys."""
    out = {}
    for name, value in doc.items():
        if name in SECTION6_SECTIONS:
            continue
        if name == "overall":
            value = {k: v for k, v in value.items() if k not in SECTION6_KEYS}
        elif name in ("teams", "reps") and isinstance(value, dict):
            value = {label: {k: v for k, v in keys.items() if k not in SECTION6_KEYS} for label, keys in value.items()}
        elif name == "stages" and isinstance(value, dict):
            value = {stage: {k: v for k, v in keys.items() if k not in SECTION6_STAGE_KEYS}
                     for stage, keys in value.items()}
        out[name] = value
    return out
