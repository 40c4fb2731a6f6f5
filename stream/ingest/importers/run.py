"""Entry point of ``kpi-monitor import olist|maven-crm``: read, map, validate, write JSON Lines, report."""

from __future__ import annotations

import sys

from stream.config import Settings
from stream.events import EventValidator
from stream.ingest.importers.common import Clock, ImportFailed, open_output, write_events


def import_main(settings: Settings, source: str, paths: tuple[str, ...], *, out: str | None, tz: str,
                time_of_day: str, stage: str | None = None, products: str | None = None) -> int:
    """0 written, 2 bad input (the message names file and line). The report goes to stderr."""
    stages = settings.kpi_stages
    validator = EventValidator(currency=settings.kpi_currency, stages=stages, max_bytes=settings.kpi_max_event_bytes,
                               future_tolerance_s=settings.kpi_future_tolerance_seconds)
    try:
        clock = Clock.parse(tz, time_of_day)
        if stage is not None and stage not in stages:
            raise ImportFailed(f"--stage: {stage!r} is not a configured stage ({', '.join(stages)}; KPI_STAGES)")
        if source == "olist":
            from stream.ingest.importers.olist import olist_events

            events, report = olist_events(*paths, clock=clock, first_stage=stage or stages[0])
        else:
            from stream.ingest.importers.maven_crm import maven_events

            default_stage = stages[1] if len(stages) > 1 else stages[0]
            events, report = maven_events(*paths, clock=clock, stage=stage or default_stage, products_path=products)
        with open_output(out) as stream:
            write_events(events, stream, validator, report)
    except ImportFailed as exc:
        print(f"import {source}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"import {source}: {exc}", file=sys.stderr)
        return 2
    print(report.format() + (f"\n  written to {out}" if out not in (None, "-") else ""), file=sys.stderr)
    return 0
