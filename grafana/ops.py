"""Pipeline operations, for on-call: is every worker up and consuming, how fast do events flow, what is
dead-lettered and why, how far behind are we (consumer lag, processing latency), do alerts get out.

Health metrics are per worker, so these panels sum (or break down by instance) across workers.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from grafana.common import (
    BLUE, GREEN, ORANGE, RED, Flow, bargauge_panel, fixed, new_dashboard, now, row, series, stat_panel,
    thresholds, timeseries_panel, trend,
)

UID = "kpi-ops"
TITLE = "Pipeline operations"
RATE = "1m"  # events/s: short enough to see a stall within a minute
SLOW_RATE = "5m"  # rare things (dead letters, alert failures) and quantiles need more samples


def _rate(metric: str, window: str = RATE, by: tuple[str, ...] = ()) -> str:
    grouping = f" by ({', '.join(by)})" if by else ""
    return f"sum{grouping} (rate({series(metric)}[{window}]))"


def build() -> dashboard_builders.Dashboard:
    dash = new_dashboard(TITLE, UID, tags=["ops"], refresh="15s", time_from="now-3h",
                         description="Pipeline health for on-call: workers, flow, dead letters, lag, latency, alert sinks.")
    flow = Flow()
    dash = dash.with_row(row("Now", flow.row()))
    stats = [
        ("Workers up", f"count({series('up')} == 1)", "short", thresholds((None, RED), (1, GREEN)),
         "Worker targets Prometheus scrapes successfully."),
        ("Workers consuming", f"sum({series('kpi_worker_consuming')})", "short", thresholds((None, RED), (1, GREEN)),
         "Workers whose /healthz says consuming (assigned, recovered, broker reachable)."),
        ("KPI exporters", f"sum({series('kpi_exporter_leader')})", "short",
         thresholds((None, RED), (1, GREEN), (2, ORANGE)), "Should be exactly 1: the owner of leads partition 0."),
        ("Events/s", _rate("kpi_events_consumed_total"), "short", fixed(BLUE), "Valid events applied per second."),
        ("Consumer lag", f"sum({series('kpi_consumer_lag_messages')})", "short",
         thresholds((None, GREEN), (100, ORANGE), (1000, RED)), "Messages not yet processed and committed."),
        ("Since last event", f"time() - max({series('kpi_last_processed_timestamp_seconds')})", "s",
         thresholds((None, GREEN), (60, ORANGE), (300, RED)), "Seconds since any worker processed a message."),
    ]
    for title, expr, unit, steps, description in stats:
        dash = dash.with_panel(stat_panel(title, [now(expr)], flow.place(4, 4), unit=unit, steps=steps,
                                          decimals=0 if unit == "short" else 1, description=description))

    dash = dash.with_row(row("Flow", flow.row()))
    dash = dash.with_panel(timeseries_panel(
        "Events/s by topic", [trend(_rate("kpi_events_consumed_total", by=("topic",)), "{{topic}}")],
        flow.place(8, 8), unit="ops", description="Valid events applied per second, by source topic.",
    ))
    dash = dash.with_panel(timeseries_panel(
        "Events/s by type", [trend(_rate("kpi_events_consumed_total", by=("type",)), "{{type}}")],
        flow.place(8, 8), unit="ops", stacked=True,
    ))
    dash = dash.with_panel(timeseries_panel(
        "Dead letters/s by reason", [
            trend(_rate("kpi_events_deadlettered_total", SLOW_RATE, by=("reason",)), "{{reason}}"),
            trend(_rate("kpi_events_duplicate_total", SLOW_RATE), "duplicates (skipped, not dead)"),
        ],
        flow.place(8, 8), unit="ops", stacked=False,
        description="Messages sent to the dead-letter topic, by reason; redelivered duplicates for comparison.",
    ))

    dash = dash.with_row(row("Behind", flow.row()))
    latency = f"sum by (le) (rate({series('kpi_processing_latency_seconds_bucket')}[{SLOW_RATE}]))"
    dash = dash.with_panel(timeseries_panel(
        "Processing latency (event time to KPI)", [
            trend(f"histogram_quantile(0.99, {latency})", "p99"),
            trend(f"histogram_quantile(0.5, {latency})", "p50"),
        ],
        flow.place(8, 8), unit="s", steps=thresholds((None, GREEN), (60, RED)), show_thresholds=True,
        description="Wall clock at apply minus occurred_at. Replays and catch-up after an outage are slow by "
                    "definition (the buckets stop at 1 h).",
    ))
    dash = dash.with_panel(timeseries_panel(
        "Consumer lag by topic", [trend(f"sum by (topic) ({series('kpi_consumer_lag_messages')})", "{{topic}}")],
        flow.place(8, 8), unit="short", description="End offset minus committed offset, summed over partitions.",
    ))
    dash = dash.with_panel(bargauge_panel(
        "Consumer lag by partition now",
        [now(f"sum by (topic, partition) ({series('kpi_consumer_lag_messages')})", "{{topic}}/{{partition}}")],
        flow.place(8, 8), steps=thresholds((None, GREEN), (100, ORANGE), (1000, RED)),
    ))

    dash = dash.with_row(row("Workers", flow.row()))
    dash = dash.with_panel(timeseries_panel(
        "Worker count", [
            trend(f"count({series('up')} == 1)", "up"),
            trend(f"sum({series('kpi_worker_consuming')})", "consuming"),
            trend(f"sum({series('kpi_exporter_leader')})", "KPI exporter"),
        ],
        flow.place(8, 8), unit="short",
    ))
    dash = dash.with_panel(bargauge_panel(
        "Partitions per worker", [now(f"sum by (instance, group) ({series('kpi_worker_partitions')})", "{{instance}} {{group}}")],
        flow.place(8, 8), description="Partitions each worker owns, by group (leads, deals).",
    ))
    dash = dash.with_panel(timeseries_panel(
        "Table entities per worker", [trend(f"sum by (instance, group) ({series('kpi_worker_entities')})", "{{instance}} {{group}}")],
        flow.place(8, 8), unit="short", description="Leads, calls and deals held in each worker's tables.",
    ))
    dash = dash.with_panel(timeseries_panel(
        "Worker memory",
        [trend(series("process_resident_memory_bytes"), "{{instance}}"),
         trend(f"sum by (instance) ({series('kpi_rocksdb_memory_bytes')})", "{{instance}} RocksDB")],
        flow.place(8, 8), unit="bytes",
        description="Resident memory per worker, and the part RocksDB holds (memtables, block cache, index and "
                    "filter blocks: bounded per table partition).",
    ))
    dash = dash.with_panel(timeseries_panel(
        "Scrape duration", [trend(series("scrape_duration_seconds"), "{{instance}}")],
        flow.place(8, 8), unit="s", description="How long /metrics takes (the exporter also builds the KPI snapshots).",
    ))
    dash = dash.with_panel(stat_panel(
        "KPI snapshot complete", [now(f"min by (window) ({series('kpi_snapshot_complete')})", "{{window}}")],
        flow.place(8, 8), steps=thresholds((None, RED), (1, GREEN)), decimals=0,
        description="1: the exported KPIs cover every partition; 0: a partition or worker was missing.",
    ))

    dash = dash.with_row(row("Alerts", flow.row()))
    dash = dash.with_panel(timeseries_panel(
        "Alert notifications by sink", [
            trend(f"sum by (sink) (increase({series('kpi_alerts_sent_total')}[{SLOW_RATE}]))", "sent {{sink}}"),
            trend(f"sum by (sink) (increase({series('kpi_alerts_failed_total')}[{SLOW_RATE}]))", "failed {{sink}}"),
        ],
        flow.place(12, 8), unit="short", bars=True,
        description="Sales alert notifications delivered and failed per 5 minutes, by sink.",
    ))
    dash = dash.with_panel(stat_panel(
        "Alert sink failures (1 h)",
        [now(f"sum by (sink) (increase({series('kpi_alerts_failed_total')}[1h]))", "{{sink}}")],
        flow.place(12, 8), steps=thresholds((None, GREEN), (1, RED)), decimals=0,
    ))
    return dash
