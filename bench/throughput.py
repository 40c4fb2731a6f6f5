"""Throughput: the raw aiokafka ceiling vs. kpi-monitor with one and two workers, same broker, same data.

    python -m bench.throughput --events 1000000

1. Pre-loads the first N seeded simulator messages (leads, calls, deals topics; cached on disk) into
   this run's own topics and prints the load rate.
2. (a) The Python ceiling: one plain ``AIOKafkaConsumer`` assigned every partition of the three topics,
   reading all N messages and JSON-decoding each (``msgspec.json.decode``, untyped: the decoder family
   the worker uses; stdlib ``json`` and ``orjson`` are printed too).
3. (b) One ``kpi-monitor worker`` (RocksDB store, every KPI, alerts on) consuming the N messages from
   the start; (c) the same with two workers sharing the partitions (a fresh consumer group each time).
4. Prints events/s for each, and b/a and c/a.

Workers run as shipped (default rules: lead SLA alerts fire into Redis; no sink is configured) with
``KPI_CLOCK=event``, as the data is a replay of a simulated past. Rates of (b) and (c) are measured from
the moment every worker is healthy (assigned, tables recovered) to the last message processed, counting
only what was processed in between, so start-up and the initial rebalance are excluded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable

from bench.common import Run, Worker, committed, load, load_line, print_machine, processed, quiet_kafka_logs, say
from bench.data import counts_by_topic, simulated, with_prefix

WORKER_ENV = {"KPI_CLOCK": "event"}


def decoders() -> dict[str, Callable[[bytes], object]]:
    import msgspec
    import orjson

    return {"msgspec": msgspec.json.Decoder().decode, "orjson": orjson.loads, "json": json.loads}


async def raw_consume(run: Run, total: int, decode: Callable[[bytes], object]) -> float:
    """Seconds for one plain consumer to fetch and decode ``total`` messages (first fetch → last message)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=run.bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in run.source_topics() for p in range(run.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        t0 = time.monotonic()
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for messages in batch.values():
                for m in messages:
                    decode(m.value)
                seen += sum(len(v) for v in batch.values())
        return time.monotonic() - t0
    finally:
        await consumer.stop()


def run_workers(run: Run, total: int, n_workers: int, group: str, profile: str | None, timeout: float) -> dict:
    """Fresh app id (consumer group + tables) on the same topics: consume everything, return figures."""
    # A new app id means a new consumer group and new tables: every worker starts from offset 0.
    app_id = f"{run.app_id}-{group}"
    env = {**WORKER_ENV, "KPI_APP_ID": app_id}
    workers = [Worker(run, env, profile=profile if i == 0 else None, name=f"{group}-{i}") for i in range(n_workers)]
    try:
        each = run.partitions // n_workers if run.partitions % n_workers == 0 else None
        t_start = max(w.wait_healthy(timeout=180, partitions=each) for w in workers)
        before = sum(processed(w)[0] for w in workers)  # consumed while the others were joining
        cpu_before = sum(w.cpu_seconds() for w in workers)
        topics = run.source_topics()
        last_report = time.monotonic()
        deadline = time.monotonic() + timeout
        peak_rss = 0
        while True:
            # Progress from the group's committed offsets: asking the broker costs the workers nothing
            # (polling their /metrics would make the leader recompute KPI snapshots all the time).
            time.sleep(1.0)
            peak_rss = max(peak_rss, max(w.rss_bytes() for w in workers))
            done = asyncio.run(committed(run.bootstrap, app_id, topics))
            if done >= total:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{group}: only {done:,} of {total:,} committed after {timeout:.0f}s")
            for w in workers:
                if not w.alive():
                    raise SystemExit(f"{w.name} died:\n{w.log_tail()}")
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                say(f"  {group}: {done:,}/{total:,} committed ({(done - before) / (time.time() - t_start):,.0f}/s "
                    f"so far; {load_line()})")
        cpu = sum(w.cpu_seconds() for w in workers) - cpu_before
        figures = [processed(w) for w in workers]
        count = sum(c for c, _ in figures)
        t_end = max(t for _, t in figures if t is not None)
        measured = count - before
        seconds = t_end - t_start
        return {"events": int(measured), "seconds": seconds, "rate": measured / seconds, "processed": count,
                "peak_rss_mb": peak_rss / 2**20, "cpu_us": cpu / measured * 1e6}
    finally:
        for w in workers:
            w.stop()
        if profile and workers[0].profile_path:
            say(f"  profile of {workers[0].name}: {workers[0].profile_path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="messages to pre-load (default 1,000,000)")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: a,b,c")
    parser.add_argument("--profile", default=None, help="record the (b) worker under py-spy to this file (.svg or .json)")
    parser.add_argument("--timeout", type=float, default=3600, help="give up a part after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the topics (default: delete them at the end)")
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the workers (experiments), repeatable")
    args = parser.parse_args(argv)
    WORKER_ENV.update(kv.split("=", 1) for kv in args.worker_env)
    skip = set(filter(None, args.skip.split(",")))
    quiet_kafka_logs()
    print_machine(f"throughput: {args.events:,} simulator events")

    messages = simulated(args.events)
    say(f"data: {counts_by_topic(messages)}")
    run = Run("tput")
    asyncio.run(run.create_topics())
    try:
        n, seconds = asyncio.run(load(run.bootstrap, with_prefix(messages, run.prefix), run.partitions))
        say(f"load: {n:,} messages in {seconds:.1f}s ({n / seconds:,.0f}/s) into {run.prefix}*")
        del messages
        results: dict[str, float] = {}
        if "a" not in skip:
            for name, decode in decoders().items():
                secs = asyncio.run(raw_consume(run, n, decode))
                results[f"a-{name}"] = n / secs
                say(f"(a) raw aiokafka + {name} decode: {n / secs:,.0f} events/s ({secs:.1f}s; {load_line()})")
        for part, workers in (("b", 1), ("c", 2)):
            if part in skip:
                continue
            fig = run_workers(run, n, workers, part, args.profile if part == "b" else None, args.timeout)
            results[part] = fig["rate"]
            say(f"({part}) kpi-monitor, {workers} worker{'s' * (workers > 1)}: {fig['rate']:,.0f} events/s "
                f"({fig['events']:,} in {fig['seconds']:.1f}s after all were healthy; worker CPU "
                f"{fig['cpu_us']:.0f} µs/event; peak RSS "
                f"{fig['peak_rss_mb']:,.0f} MB; {load_line()})")
        ceiling = results.get("a-msgspec")
        if ceiling:
            for part in ("b", "c"):
                if part in results:
                    say(f"{part}/a = {results[part] / ceiling:.3f}   (target for b/a: >= 0.5)")
    finally:
        run.cleanup(args.keep)


if __name__ == "__main__":
    main()
