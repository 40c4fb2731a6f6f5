"""The per-event cost of the KPI core alone, without Kafka or Faust: validate + apply on a dict table.

    python -m bench.hotpath --events 200000 [--alerts] [--profile]

Runs the simulator messages of the throughput bench through ``EventValidator.validate`` and
``KpiEngine.apply`` (event clock, a plain dict as the entity table, entities msgpack-encoded as in the
worker), optionally with the alert engine's lead SLA tracker listening, and prints µs per event. This
isolates the code we own from Faust's per-message machinery, so optimisations of ``stream/kpi`` can be
measured to a few percent on a noisy machine (best of ``--repeat`` runs). ``--profile`` prints the top
functions (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from bench.common import print_machine, say
from bench.data import simulated


class DictTable(dict):
    def get(self, key: str, default=None):  # noqa: D102 - the EntityTable protocol
        return dict.get(self, key, default)


def partition_of(key: bytes, partitions: int = 4) -> int:
    from aiokafka.partitioner import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def snapshot_costs(engine) -> dict[str, float]:
    """Seconds to compute one /kpis document per window from the engine's partitions (one worker)."""
    from stream.config import load_settings
    from stream.kpi.snapshot import build_snapshot, merge_partials
    from stream.kpi.windows import WINDOWS
    from stream.roster import load_roster

    settings = load_settings()
    roster = load_roster(settings.kpi_roster)
    now = engine.now(0)
    out = {}
    for window in WINDOWS:
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            partials = engine.partials(window, now)
            build_snapshot(merge_partials(partials.values()), window=window, now_ms=now, roster=roster,
                           stages=settings.kpi_stages, timezone=settings.kpi_timezone)
            best = min(best, time.perf_counter() - t0)
        out[window] = best
    return out


LAST_ENGINE: list = []


def one_pass(messages: list, alerts: bool) -> tuple[float, int]:
    from stream.config import load_settings
    from stream.events import EventValidator
    from stream.kpi.engine import GROUP_OF_TOPIC, EngineConfig, KpiEngine

    settings = load_settings()
    engine = KpiEngine(EngineConfig(event_clock=True))
    if alerts:
        from alerts.evaluate import LeadSlaTracker
        from alerts.rules import load_rules
        from stream.roster import load_roster

        roster = load_roster(settings.kpi_roster)
        tracker = LeadSlaTracker(load_rules(settings.kpi_alert_rules, settings), lambda: roster, event_time=True)
        clock = {}

        def listener(group, partition, key, removed, added):
            if group == "leads" and key:
                tracker.on_change(partition, key, removed, added, clock.get(partition, 0))

        engine.listeners.append(listener)
    validator = EventValidator()
    tables: dict[str, DictTable] = {"leads": DictTable(), "deals": DictTable(), "spend": DictTable()}
    applied = 0
    t0 = time.perf_counter()
    for topic, partition, value in messages:
        event = validator.validate(value, topic)
        table = tables[GROUP_OF_TOPIC[topic]]
        try:
            if engine.apply(table, topic, partition, event, 0):
                applied += 1
        except Exception:  # too late in event time: counted as not applied, like a dead letter
            pass
    took = time.perf_counter() - t0
    LAST_ENGINE[:] = [engine]
    return took, applied


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--alerts", action="store_true", help="with the lead SLA tracker listening")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    print_machine(f"hot path: validate + apply, {args.events:,} simulator events"
                  + (", lead SLA tracker on" if args.alerts else ""))
    cache: dict[bytes, int] = {}
    messages = []
    for topic, key, value in simulated(args.events):
        p = cache.get(key)
        if p is None:
            p = cache[key] = partition_of(key)
        messages.append((topic, p, value))
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        one_pass(messages, args.alerts)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    best = None
    for _ in range(args.repeat):
        seconds, applied = one_pass(messages, args.alerts)
        best = seconds if best is None else min(best, seconds)
        say(f"  {seconds:.2f}s, {applied:,} applied")
    say(f"hot path: {best / len(messages) * 1e6:.1f} µs/event (best of {args.repeat}; "
        f"{len(messages) / best:,.0f} events/s on one core)")
    costs = snapshot_costs(LAST_ENGINE[0])
    say("snapshot (one /kpis document, no HTTP, best of 5): " + ", ".join(f"{w} {s * 1000:.0f} ms" for w, s in costs.items()))


if __name__ == "__main__":
    main()
