"""Latency under load: produce → KPI visible on ``/kpis`` and on ``/metrics``, at steady offered rates.

    python -m bench.latency --rates 1000,5000,10000 --duration 60

One worker (``--workers`` to share the partitions among more; wall clock, RocksDB, bundled alert rules)
on this run's own topics. For each rate, events
are produced at that steady rate (paced every 10 ms) for ``--warmup`` + ``--duration`` seconds, while
``/kpis?window=all`` is polled every ``--kpis-every`` s and ``/metrics`` every ``--metrics-every`` s.

How visibility is known exactly: every event increments exactly one counter of one rep, and that rep is
specific to the event's topic partition (``lat-<topic>-p<N>``): ``lead.created`` (``leads_created``) and
first ``lead.touched`` of an earlier lead (``leads_responded``) on the leads topic, lone ``call.logged``
(``calls``) on the calls topic, ``deal.created`` (``open_deals``) on the deals topic. A partition is
applied in order, so when a rep's counter reads k, its first k events are visible. An event's latency
is the time from just before ``producer.send`` to the arrival of the first response showing it (the
poll interval is part of it: p50 carries about half an interval).

``/metrics`` exports the global KPIs from a cache refreshed at most every 2 s (``stream/worker/kpi_export.py``,
``REFRESH_S``), so its latency includes that staleness by design. The bench process shares the 2 cores
with the worker and the broker (its producer costs about 15-20 µs per event).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson

from bench.common import Partitioner, Run, Worker, load_line, parse_metrics, print_machine, quiet_kafka_logs, say, summary_ms

# (share, topic, kind) of the offered load; each kind increments one counter of its partition's rep.
MIX = (("leads", "created", 0.4), ("leads", "touched", 0.2), ("calls", "call", 0.3), ("deals", "deal", 0.1))
COUNTERS = {"leads": ("leads_created", "leads_responded"), "calls": ("calls",), "deals": ("open_deals",)}
METRIC_OF = {"leads_created": "kpi_leads_created", "leads_responded": "kpi_leads_responded", "calls": "kpi_calls",
             "open_deals": "kpi_open_deals"}


def rep_of(topic: str, partition: int) -> str:
    return f"lat-{topic}-p{partition}"


def iso_now(now: float) -> str:
    return datetime.fromtimestamp(now, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Tracker:
    """Produce times per (topic, partition), consumed as counters show them."""

    produced: dict[tuple[str, int], deque] = field(default_factory=dict)
    counts: dict[tuple[str, int], int] = field(default_factory=dict)  # produced so far
    seen: dict[tuple[str, int], int] = field(default_factory=dict)  # visible so far (per source)
    latencies: list[float] = field(default_factory=list)
    measuring: bool = False

    def sent(self, tp: tuple[str, int], at: float) -> None:
        self.produced.setdefault(tp, deque()).append((self.counts.get(tp, 0), at, self.measuring))
        self.counts[tp] = self.counts.get(tp, 0) + 1

    def visible(self, tp: tuple[str, int], count: int, at: float) -> None:
        queue = self.produced.get(tp)
        while queue and queue[0][0] < count:
            _, sent_at, measured = queue.popleft()
            if measured:
                self.latencies.append(at - sent_at)

    def pending(self) -> int:
        return sum(len(q) for q in self.produced.values())


class Load:
    """Builds the offered events: new leads, first touches of earlier leads, lone calls, new deals."""

    def __init__(self, run: Run, tag: str, mix: tuple = MIX) -> None:
        self.run = run
        self.tag = tag
        self.mix = mix
        self.part = Partitioner(run.partitions)
        self.n = 0
        self.untouched: dict[int, deque] = {p: deque() for p in range(run.partitions)}
        self.pattern = self._pattern()
        self.i = 0

    def _pattern(self) -> list[str]:
        out: list[str] = []
        for _topic, kind, share in self.mix:
            out += [kind] * round(share * 10)
        return out  # ten slots, repeated

    def next(self, now: float) -> tuple[str, int, bytes, bytes]:
        kind = self.pattern[self.i % len(self.pattern)]
        self.i += 1
        self.n += 1
        n, ts = self.n, iso_now(now)
        if kind == "touched":
            for p in range(self.run.partitions):
                pool = self.untouched[(n + p) % self.run.partitions]
                if pool:
                    lead = pool.popleft()
                    partition = (n + p) % self.run.partitions
                    ev = {"event_id": f"{self.tag}-{n}", "type": "lead.touched", "occurred_at": ts, "lead_id": lead,
                          "rep_id": rep_of("leads", partition), "channel": "email"}
                    return "leads", partition, lead.encode(), orjson.dumps(ev)
            kind = "created"  # nothing to touch yet
        if kind == "created":
            lead = f"{self.tag}-L{n}"
            partition = self.part(lead.encode())
            self.untouched[partition].append(lead)
            ev = {"event_id": f"{self.tag}-{n}", "type": "lead.created", "occurred_at": ts, "lead_id": lead,
                  "rep_id": rep_of("leads", partition), "source": "bench"}
            return "leads", partition, lead.encode(), orjson.dumps(ev)
        if kind == "call":
            call = f"{self.tag}-C{n}"
            partition = self.part(call.encode())
            ev = {"event_id": f"{self.tag}-{n}", "type": "call.logged", "occurred_at": ts, "call_id": call,
                  "rep_id": rep_of("calls", partition), "direction": "outbound", "outcome": "connected",
                  "duration_s": 42.0}
            return "calls", partition, call.encode(), orjson.dumps(ev)
        deal = f"{self.tag}-D{n}"
        partition = self.part(deal.encode())
        ev = {"event_id": f"{self.tag}-{n}", "type": "deal.created", "occurred_at": ts, "deal_id": deal,
              "rep_id": rep_of("deals", partition), "amount": 1200, "stage": "prospecting"}
        return "deals", partition, deal.encode(), orjson.dumps(ev)


async def produce(run: Run, load: Load, rate: float, seconds: float, kpis: Tracker | None, metrics: Tracker | None,
                  producer) -> int:
    """Offer ``rate`` events/s for ``seconds``, paced every 10 ms; returns events sent."""
    t0 = time.monotonic()
    sent = 0
    while True:
        elapsed = time.monotonic() - t0
        if elapsed >= seconds:
            return sent
        due = int(rate * elapsed)
        while sent < due:
            now = time.time()
            topic, partition, key, value = load.next(now)
            await producer.send(run.topic(topic), value, key=key, partition=partition)
            if kpis is not None:
                kpis.sent((topic, partition), now)
            if metrics is not None:
                metrics.sent((topic, partition), now)
            sent += 1
        await asyncio.sleep(0.01)


async def poll_kpis(session, worker: Worker, run: Run, tracker: Tracker, every: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            async with session.get(f"{worker.url}/kpis", params={"window": "all"}) as resp:
                doc = orjson.loads(await resp.read())
            at = time.time()
            reps = doc.get("reps", {})
            for topic, names in COUNTERS.items():
                for p in range(run.partitions):
                    values = reps.get(rep_of(topic, p))
                    if values:
                        tracker.visible((topic, p), int(sum(values.get(k) or 0 for k in names)), at)
        except Exception as exc:  # keep polling: a slow answer is a figure, not a failure
            say(f"  /kpis poll failed: {exc!r}")
        await asyncio.sleep(every)


async def poll_metrics(session, worker: Worker, run: Run, tracker: Tracker, every: float, stop: asyncio.Event,
                       refresh: list[float]) -> None:
    while not stop.is_set():
        try:
            async with session.get(f"{worker.url}/metrics") as resp:
                text = (await resp.read()).decode()
            at = time.time()
            samples = parse_metrics(text)
            for topic, names in COUNTERS.items():
                for p in range(run.partitions):
                    rep = rep_of(topic, p)
                    total = 0.0
                    for k in names:
                        for labels, value in samples.get(METRIC_OF[k], ()):
                            if labels.get("rep") == rep and labels.get("window", "all") == "all":
                                total += value
                    if total:
                        tracker.visible((topic, p), int(total), at)
            took = samples.get("kpi_snapshot_refresh_seconds")
            if took:
                refresh.append(took[0][1])
        except Exception as exc:
            say(f"  /metrics poll failed: {exc!r}")
        await asyncio.sleep(every)


async def one_rate(run: Run, workers: list[Worker], leader: Worker, load: Load, rate: float, args,
                   kpis: Tracker, metrics: Tracker) -> dict:
    """One offered rate. The trackers live across rates: the reps' counters are cumulative."""
    import aiohttp
    from aiokafka import AIOKafkaProducer

    kpis.latencies, metrics.latencies = [], []
    refresh: list[float] = []
    stop = asyncio.Event()
    producer = AIOKafkaProducer(bootstrap_servers=run.bootstrap, acks=1, linger_ms=0)
    await producer.start()
    worker = workers[0]
    cpu0 = sum(w.cpu_seconds() for w in workers)
    t_start = time.monotonic()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            pollers = [asyncio.create_task(poll_kpis(session, worker, run, kpis, args.kpis_every, stop)),
                       asyncio.create_task(poll_metrics(session, leader, run, metrics, args.metrics_every, stop, refresh))]
            await produce(run, load, rate, args.warmup, kpis, metrics, producer)
            kpis.measuring = metrics.measuring = True
            t0 = time.monotonic()
            sent = await produce(run, load, rate, args.duration, kpis, metrics, producer)
            offered = sent / (time.monotonic() - t0)
            kpis.measuring = metrics.measuring = False
            await producer.flush()
            t_produced = time.monotonic()
            deadline = t_produced + args.drain
            while kpis.pending() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            drained = time.monotonic() - t_produced  # the backlog left when production stopped
            while metrics.pending() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*pollers)
    finally:
        await producer.stop()
    cpu = sum(w.cpu_seconds() for w in workers) - cpu0
    elapsed = time.monotonic() - t_start
    return {"offered": offered, "kpis": kpis.latencies, "metrics": metrics.latencies,
            "kpis_pending": kpis.pending(), "metrics_pending": metrics.pending(), "refresh": refresh,
            "worker_cpu": cpu / elapsed, "drained": drained, "rss_mb": max(w.rss_bytes() for w in workers) / 2**20}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="1000,5000,10000", help="offered events/s, comma separated")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds per rate (default 60)")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds before each rate")
    parser.add_argument("--kpis-every", type=float, default=0.1, help="/kpis poll interval (s)")
    parser.add_argument("--metrics-every", type=float, default=0.5, help="/metrics poll interval (s)")
    parser.add_argument("--drain", type=float, default=120.0, help="max seconds to wait for the backlog after a rate")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--workers", type=int, default=1, help="workers sharing the partitions (default 1)")
    parser.add_argument("--profile", default=None, help="record the worker under py-spy to this file (.svg, .json, .txt)")
    args = parser.parse_args(argv)
    quiet_kafka_logs()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    print_machine(f"latency: rates {', '.join(f'{r:,.0f}' for r in rates)} events/s, {args.duration:.0f}s each")
    run = Run("lat")
    asyncio.run(run.create_topics())
    env = dict(kv.split("=", 1) for kv in args.worker_env)
    workers = [Worker(run, env, profile=args.profile if i == 0 else None, name=f"worker-{i}") for i in range(args.workers)]
    try:
        each = run.partitions // args.workers if run.partitions % args.workers == 0 else None
        for w in workers:
            w.wait_healthy(timeout=180, partitions=each)
        # /kpis is global on any worker; the KPI series on /metrics come from the owner of leads partition 0.
        leader = next(w for w in workers if 0 in w.health()[1].get("partitions", {}).get("leads", []))
        load = Load(run, run.tag)
        kpis, metrics = Tracker(), Tracker()
        for rate in rates:
            fig = asyncio.run(one_rate(run, workers, leader, load, rate, args, kpis, metrics))
            say(f"rate {rate:,.0f}/s (offered {fig['offered']:,.0f}/s; {len(workers)} worker{'s' * (len(workers) > 1)}, "
                f"CPU {fig['worker_cpu'] * 100:.0f} % of a core, RSS {fig['rss_mb']:,.0f} MB; all visible on /kpis "
                f"{fig['drained']:.1f}s after the last send; {load_line()})")
            say(f"  /kpis:    {summary_ms(fig['kpis'])}"
                + (f"; {fig['kpis_pending']:,} still not visible after the drain" if fig["kpis_pending"] else ""))
            say(f"  /metrics: {summary_ms(fig['metrics'])}"
                + (f"; {fig['metrics_pending']:,} still not visible after the drain" if fig["metrics_pending"] else "")
                + (f" (snapshot refresh took {max(fig['refresh']) * 1000:.0f} ms at most)" if fig["refresh"] else ""))
    finally:
        for w in workers:
            w.stop()
        run.cleanup(args.keep)


if __name__ == "__main__":
    main()
