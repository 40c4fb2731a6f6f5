"""The ``kpi-monitor`` command line."""

from __future__ import annotations

import json
import logging
import sys
import urllib.error
import urllib.request

import click

from stream.config import ConfigError, Settings, load_settings
from stream.kpi.windows import WINDOWS


def _settings(**overrides) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Real-time sales KPIs from Kafka events: worker, simulator, replay, local stack."""


# --- local stack ------------------------------------------------------------------------------------
@main.group()
def stack() -> None:
    """The local Kafka + Redis stack (state under .stack/ in the checkout)."""


@stack.command("up")
def stack_up() -> None:
    """Start Kafka (KRaft, from Maven Central jars) and Redis when not running; create the topics."""
    from stream.local import stack as local_stack

    try:
        local_stack.up(_settings())
    except local_stack.StackError as exc:
        raise click.ClickException(str(exc)) from None


@stack.command("down")
@click.option("--purge", is_flag=True, help="Also delete Kafka's data (topics, offsets, tables).")
def stack_down(purge: bool) -> None:
    """Stop what `stack up` started (by pid file); external services are left alone."""
    from stream.local import stack as local_stack

    local_stack.down(purge=purge)


@stack.command("status")
def stack_status() -> None:
    """Say what runs: ours, external, or stopped; and whether the topics exist."""
    from stream.local import stack as local_stack

    status = local_stack.status(_settings())
    sys.exit(0 if status.healthy else 1)


# --- worker -----------------------------------------------------------------------------------------
@main.command()
@click.option("--web-port", type=int, help="Overrides KPI_WEB_PORT (run several workers side by side).")
@click.option("--loglevel", default="info", show_default=True)
def worker(web_port: int | None, loglevel: str) -> None:
    """Run one worker: consume, validate, compute KPIs, serve /kpis /metrics /healthz."""
    settings = _settings(kpi_web_port=web_port)
    from faust.worker import Worker

    from stream.worker.app import create_app

    try:
        ctx = create_app(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if settings.kpi_web_token is not None:
        web_auth = "bearer token" + (" (/metrics open)" if settings.kpi_web_metrics_public else "")
    else:
        web_auth = "open (KPI_WEB_ALLOW_OPEN)" if settings.kpi_web_allow_open else "open (no KPI_WEB_TOKEN; loopback only)"
    click.echo(
        f"worker {settings.kpi_app_id} on {settings.web_url} (clock={settings.kpi_clock}, "
        f"brokers={settings.kafka_bootstrap_servers}, topics={settings.kpi_topic_prefix}*, web auth: {web_auth})",
        err=True,
    )
    faust_worker = Worker(ctx.app, loglevel=loglevel, redirect_stdouts=False)
    # Faust's start-up spinner sets the root logger to DEBUG when the level is WARNING or above (so it
    # spins on every record): every debug call in aiokafka and Faust then builds a LogRecord per
    # message, ~10 % of the worker's CPU (bench/RESULTS.md). A service needs no spinner.
    faust_worker.spinner = None
    faust_worker.execute_from_commandline()


# --- simulator and replay ---------------------------------------------------------------------------
@main.command()
@click.option("--rate", type=float, default=None,
              help="Target events per wall-clock second (default: the natural floor, 16 leads per rep per weekday).")
@click.option("--duration", default=None, help="How long to run: 90s, 10m, 2h (default: until Ctrl-C; with --out only: 1h simulated).")
@click.option("--seed", type=int, default=None, help="Random seed: same seed and --start give the same events.")
@click.option("--speedup", type=float, default=1.0, show_default=True, help="Simulated time runs this many times faster than the wall clock.")
@click.option("--start", default=None, help="Simulated start time (RFC 3339); default now.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write JSON Lines to this file instead of producing.")
@click.option("--produce/--no-produce", default=None, help="With --out: also produce to Kafka.")
@click.option("--bad-ratio", type=float, default=0.0, show_default=True, help="Share of malformed messages (for dead-letter demos).")
@click.option("--backfill", default=None,
              help="e.g. 5w: first the history since local midnight that long ago, as fast as possible and stamped "
                   "at its real times, then live at the wall clock's pace (--speedup 1).")
def simulate(rate, duration, seed, speedup, start, out, produce, bad_ratio, backfill) -> None:
    """Simulate a sales floor (roster from KPI_ROSTER) and produce its events."""
    from stream.local.simulator import simulate_main

    sys.exit(simulate_main(_settings(), rate=rate, duration=duration, seed=seed, speedup=speedup,
                           out=out, produce=produce, bad_ratio=bad_ratio, start=start, backfill=backfill))


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--speed", type=float, default=None, help="Pace by event time x SPEED (default: as fast as possible).")
def replay(path: str, speed: float | None) -> None:
    """Produce a JSON Lines event log to its topics, with the right keys, in file order."""
    from stream.local.replay import replay_main

    sys.exit(replay_main(_settings(), path, speed))


# --- getting data in (stream/ingest, stream/ingest/importers) ----------------------------------------------
@main.command()
@click.option("--port", type=int, help="Overrides KPI_INGEST_PORT.")
@click.option("--host", help="Overrides KPI_INGEST_HOST (a non-loopback address needs KPI_INGEST_TOKEN).")
def ingest(port: int | None, host: str | None) -> None:
    """Serve POST /ingest/events and /ingest/hubspot: validate like the worker, produce to Kafka."""
    from stream.ingest.service import ingest_main

    sys.exit(ingest_main(_settings(kpi_ingest_port=port, kpi_ingest_host=host)))


@main.group("import")
def import_() -> None:
    """Turn CSV exports into contract-event JSON Lines (time-ordered, ready for `replay`)."""


_import_options = [
    click.option("--out", "-o", default="-", show_default=True, help="Output JSON Lines file (- = stdout)."),
    click.option("--tz", default="UTC", show_default=True, help="Time zone of the CSV's naive dates and times."),
    click.option("--time-of-day", default="00:00", show_default=True, help="Time given to date-only fields."),
    click.option("--stage", default=None, help="Open stage of created deals (default: see docs/ingest.md)."),
]


def _with_import_options(func):
    for option in reversed(_import_options):
        func = option(func)
    return func


@import_.command("olist")
@click.argument("leads", type=click.Path(exists=True, dir_okay=False))
@click.argument("deals", type=click.Path(exists=True, dir_okay=False))
@_with_import_options
def import_olist(leads, deals, out, tz, time_of_day, stage) -> None:
    """Olist marketing funnel: LEADS.csv (MQLs) and DEALS.csv (closed deals)."""
    from stream.ingest.importers.run import import_main

    sys.exit(import_main(_settings(), "olist", (leads, deals), out=out, tz=tz, time_of_day=time_of_day, stage=stage))


@import_.command("maven-crm")
@click.argument("pipeline", type=click.Path(exists=True, dir_okay=False))
@click.argument("teams", type=click.Path(exists=True, dir_okay=False))
@click.option("--products", type=click.Path(exists=True, dir_okay=False), help="products.csv: list prices for open deals.")
@_with_import_options
def import_maven(pipeline, teams, products, out, tz, time_of_day, stage) -> None:
    """Maven CRM: PIPELINE.csv (opportunities) and TEAMS.csv (agent -> manager)."""
    from stream.ingest.importers.run import import_main

    sys.exit(import_main(_settings(), "maven-crm", (pipeline, teams), out=out, tz=tz, time_of_day=time_of_day,
                         stage=stage, products=products))


# --- reading KPIs -----------------------------------------------------------------------------------
@main.command()
@click.option("--window", type=click.Choice(WINDOWS), default="today", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the /kpis document as JSON.")
@click.option("--url", default=None, help="Worker base URL (default from KPI_WEB_HOST/KPI_WEB_PORT).")
def kpis(window: str, as_json: bool, url: str | None) -> None:
    """Show the global KPI snapshot from a running worker (with KPI_WEB_TOKEN when it is set)."""
    from stream.worker.web_access import auth_headers

    settings = _settings()
    base = url or settings.web_url
    request = urllib.request.Request(f"{base}/kpis?window={window}", headers=auth_headers(settings))
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            doc = json.load(resp)
    except urllib.error.HTTPError as exc:
        raise click.ClickException(f"the worker at {base} answered {exc.code}"
                                   + (" (set KPI_WEB_TOKEN to its token)" if exc.code == 401 else "")) from None
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"no worker answers at {base} ({exc}); start one with `kpi-monitor worker`") from None
    if as_json:
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        from stream.report import render_snapshot

        click.echo(render_snapshot(doc))


from alerts.cli import alerts  # noqa: E402  (the alerts command group)

main.add_command(alerts)


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO)
    main()
