"""Memory and state: RSS and store size with many open leads and deals, and RSS over a steady run.

    python -m bench.memory --leads 1000000 --deals 200000 --minutes 10

1. Pre-loads ``--leads`` ``lead.created`` (never touched: all open, waiting for a first touch),
   ``--deals`` ``deal.created`` (open) and ``--history`` closed leads (created, touched within the hour)
   with ``occurred_at`` spread over the last 24.5 hours, credited to the roster's reps, into this run's
   own topics: the state of a worker that has run for a day (a day of minute buckets, response-time
   histograms at their steady size), so that a steady run can show whether anything still grows.
2. One worker (wall clock, RocksDB store, bundled alert rules) consumes them; prints the consume rate,
   RSS and the store's size on disk (RocksDB files of the worker's data directory).
3. After ``--warmup`` minutes of the same traffic, a steady run of ``--minutes`` at ``--rate`` events/s
   that keeps the open counts constant: new leads
   and first touches of the oldest open leads in equal numbers, calls on touched leads, stage changes of
   open deals, new deals and outcomes in equal numbers. RSS is sampled every 10 s; prints the first and
   last minute's averages, the maximum and the least-squares slope (MB/min), over the whole run and over
   its second half: bounded caches (RocksDB memtables and block cache) fill first, then RSS is flat.

``KPI_SLA_SECONDS`` is set to 30 days for this worker: with the default 5 minutes, the bundled lead SLA
rule would page for a million pre-loaded leads at once. The SLA tracker still holds every open lead.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import deque
from collections.abc import Iterator

import orjson

from bench.common import (
    Run, Worker, committed, dir_size, load, load_line, metric, print_machine, quiet_kafka_logs, say,
)
from bench.latency import iso_now

SLA_30_DAYS = str(30 * 86400)
# A day of history (24 h of minute buckets, as a worker that has run for a day holds), inside the 25 h
# after which a wall-clock worker dead-letters events as too late.
PRELOAD_SPAN_S = 24.5 * 3600
STAGES = ("prospecting", "qualification", "proposal", "negotiation")


def reps() -> list[tuple[str, str]]:
    from stream.config import load_settings
    from stream.roster import load_roster

    roster = load_roster(load_settings().kpi_roster)
    return [(r.rep_id, r.team) for r in roster.reps]


def preload_messages(run: Run, leads: int, deals: int, history: int, now: float,
                     span: float = PRELOAD_SPAN_S) -> Iterator[tuple[str, bytes, bytes]]:
    """Open leads, open deals and closed leads (created, then touched 1-60 min later), interleaved in
    proportion, ``occurred_at`` spread evenly over the last ``span`` seconds."""
    people = reps()
    rng = random.Random(11)
    total = leads + deals + history
    lead_topic, deal_topic = run.topic("leads"), run.topic("deals")
    want = {"lead": leads, "deal": deals, "closed": history}
    done = dict.fromkeys(want, 0)
    for i in range(total):
        at = now - span + span * i / total
        rep, team = people[i % len(people)]
        # The kind furthest behind its share goes next.
        kind = min((k for k in want if done[k] < want[k]), key=lambda k: done[k] / want[k])
        n = done[kind]
        done[kind] += 1
        if kind == "deal":
            deal = f"{run.tag}-D{n}"
            ev = {"event_id": f"{run.tag}-d{n}", "type": "deal.created", "occurred_at": iso_now(at), "deal_id": deal,
                  "rep_id": rep, "team": team, "amount": 1000 + n % 50_000, "stage": STAGES[n % 2]}
            yield deal_topic, deal.encode(), orjson.dumps(ev)
            continue
        lead = f"{run.tag}-L{n}" if kind == "lead" else f"{run.tag}-H{n}"
        ev = {"event_id": f"{run.tag}-{kind}{n}", "type": "lead.created", "occurred_at": iso_now(at), "lead_id": lead,
              "rep_id": rep, "team": team, "source": "web_form"}
        yield lead_topic, lead.encode(), orjson.dumps(ev)
        if kind == "closed":
            touched = min(at + rng.uniform(60, 3600), now)
            ev = {"event_id": f"{run.tag}-t{n}", "type": "lead.touched", "occurred_at": iso_now(touched),
                  "lead_id": lead, "rep_id": rep, "team": team, "channel": "email"}
            yield lead_topic, lead.encode(), orjson.dumps(ev)


class Churn:
    """Steady traffic that keeps the numbers of open leads and open deals constant."""

    def __init__(self, run: Run, leads: int, deals: int) -> None:
        self.run = run
        self.people = reps()
        self.open_leads = deque(range(leads))  # oldest first
        self.touched: deque[int] = deque(maxlen=50_000)
        self.next_lead = leads
        self.open_deals = deque(range(deals))
        self.next_deal = deals
        self.rng = random.Random(7)
        self.n = 0
        # (share, kind): creates = touches, deal creates = outcomes.
        self.plan = ["lead"] * 2 + ["touch"] * 2 + ["call"] * 4 + ["stage"] + ["deal", "outcome"]

    def next(self, now: float) -> tuple[str, bytes, bytes]:
        tag, ts = self.run.tag, iso_now(now)
        kind = self.plan[self.n % len(self.plan)]
        self.n += 1
        eid = f"{tag}-s{self.n}"
        rep, team = self.people[self.n % len(self.people)]
        if kind == "call" and not self.touched:
            kind = "touch"
        if kind == "lead":
            lead = f"{tag}-L{self.next_lead}"
            self.open_leads.append(self.next_lead)
            self.next_lead += 1
            ev = {"event_id": eid, "type": "lead.created", "occurred_at": ts, "lead_id": lead, "rep_id": rep,
                  "team": team, "source": "web_form"}
            return self.run.topic("leads"), lead.encode(), orjson.dumps(ev)
        if kind == "touch":
            i = self.open_leads.popleft()
            self.touched.append(i)
            lead = f"{tag}-L{i}"
            ev = {"event_id": eid, "type": "lead.touched", "occurred_at": ts, "lead_id": lead, "rep_id": rep,
                  "team": team, "channel": "email"}
            return self.run.topic("leads"), lead.encode(), orjson.dumps(ev)
        if kind == "call":
            lead = f"{tag}-L{self.rng.choice(self.touched)}"
            ev = {"event_id": eid, "type": "call.logged", "occurred_at": ts, "call_id": f"{tag}-c{self.n}",
                  "lead_id": lead, "rep_id": rep, "team": team, "direction": "outbound", "outcome": "connected",
                  "duration_s": 60.0}
            return self.run.topic("calls"), lead.encode(), orjson.dumps(ev)
        if kind == "deal":
            deal = f"{tag}-D{self.next_deal}"
            self.open_deals.append(self.next_deal)
            self.next_deal += 1
            ev = {"event_id": eid, "type": "deal.created", "occurred_at": ts, "deal_id": deal, "rep_id": rep,
                  "team": team, "amount": 2500, "stage": "prospecting"}
            return self.run.topic("deals"), deal.encode(), orjson.dumps(ev)
        if kind == "stage":
            deal = f"{tag}-D{self.open_deals[self.rng.randrange(len(self.open_deals))]}"
            ev = {"event_id": eid, "type": "deal.stage_changed", "occurred_at": ts, "deal_id": deal,
                  "to_stage": STAGES[2 + self.n % 2]}
            return self.run.topic("deals"), deal.encode(), orjson.dumps(ev)
        deal = f"{tag}-D{self.open_deals.popleft()}"
        won = self.n % 3 == 0
        ev = {"event_id": eid, "type": "deal.won" if won else "deal.lost", "occurred_at": ts, "deal_id": deal}
        return self.run.topic("deals"), deal.encode(), orjson.dumps(ev)


async def steady(run: Run, churn: Churn, rate: float, seconds: float, worker: Worker, samples: list) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=run.bootstrap, acks=1, linger_ms=5)
    await producer.start()
    sent = 0
    t0 = time.monotonic()
    next_sample = t0
    try:
        while (elapsed := time.monotonic() - t0) < seconds:
            due = int(rate * elapsed)
            while sent < due:
                topic, key, value = churn.next(time.time())
                await producer.send(topic, value, key=key)
                sent += 1
            if time.monotonic() >= next_sample:
                samples.append((time.monotonic() - t0, worker.rss_bytes()))
                next_sample += 10.0
            await asyncio.sleep(0.01)
        await producer.flush()
    finally:
        await producer.stop()
    samples.append((time.monotonic() - t0, worker.rss_bytes()))
    return sent


def slope_mb_per_min(samples: list[tuple[float, int]]) -> float:
    n = len(samples)
    if n < 2:
        return float("nan")
    xs = [t / 60 for t, _ in samples]
    ys = [r / 2**20 for _, r in samples]
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else float("nan")


def wait_consumed(run: Run, worker: Worker, total: int, timeout: float) -> float:
    t0 = time.monotonic()
    last = t0
    while True:
        done = asyncio.run(committed(run.bootstrap, run.app_id, run.source_topics()))
        if done >= total:
            return time.monotonic() - t0
        if not worker.alive():
            raise SystemExit(f"worker died:\n{worker.log_tail()}")
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"only {done:,} of {total:,} consumed after {timeout:.0f}s")
        if time.monotonic() - last > 30:
            last = time.monotonic()
            say(f"  consumed {done:,}/{total:,} ({done / (last - t0):,.0f}/s; RSS {worker.rss_bytes() / 2**20:,.0f} MB; "
                f"{load_line()})")
        time.sleep(1.0)


def state_line(worker: Worker, run: Run) -> str:
    m = worker.metrics()
    entities = metric(m, "kpi_worker_entities")
    kpis = worker.kpis("all", timeout=120)["overall"]
    store = dir_size(run.workdir / "data")
    rocksdb = {kind: metric(m, "kpi_rocksdb_memory_bytes", kind=kind) / 2**20
               for kind in ("memtables", "block_cache", "table_readers")}
    return (f"RSS {worker.rss_bytes() / 2**20:,.0f} MB, of which RocksDB {sum(rocksdb.values()):,.0f} MB "
            f"({', '.join(f'{k} {v:,.0f}' for k, v in rocksdb.items())}); store {store / 2**20:,.0f} MB on disk; "
            f"{entities:,.0f} entities; open leads {kpis.get('leads_awaiting_response'):,}, "
            f"open deals {kpis.get('open_deals'):,}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--deals", type=int, default=200_000)
    parser.add_argument("--history", type=int, default=300_000,
                        help="closed leads (created + touched) in the pre-load (default 300,000): the response-time "
                             "histograms reach their steady size, as after a day of traffic")
    parser.add_argument("--minutes", type=float, default=10.0, help="steady run length (default 10)")
    parser.add_argument("--rate", type=float, default=1000.0, help="steady run events/s (default 1000)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="minutes of the same traffic before the measured run (default 2): RocksDB's memtables "
                             "and block caches fill to their bounds first")
    parser.add_argument("--timeout", type=float, default=3600.0, help="max seconds to consume the pre-load")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    quiet_kafka_logs()
    print_machine(f"memory: {args.leads:,} open leads, {args.deals:,} open deals, {args.minutes:g} min steady run "
                  f"at {args.rate:,.0f}/s")
    run = Run("mem")
    asyncio.run(run.create_topics())
    worker = None
    try:
        total = args.leads + args.deals + 2 * args.history
        n, seconds = asyncio.run(load(run.bootstrap, preload_messages(run, args.leads, args.deals, args.history,
                                                                      time.time()), run.partitions))
        say(f"load: {n:,} messages in {seconds:.1f}s ({n / seconds:,.0f}/s)")
        env = {"KPI_SLA_SECONDS": SLA_30_DAYS, **dict(kv.split("=", 1) for kv in args.worker_env)}
        worker = Worker(run, env, name="worker")
        worker.wait_healthy(timeout=180)
        took = wait_consumed(run, worker, total, args.timeout)
        say(f"consumed {total:,} in {took:.0f}s ({total / took:,.0f}/s); {load_line()}")
        time.sleep(5)  # let the last changelog batches and RocksDB writes land
        say(f"after the pre-load: {state_line(worker, run)}")
        churn = Churn(run, args.leads, args.deals)
        if args.warmup > 0:
            asyncio.run(steady(run, churn, args.rate, args.warmup * 60, worker, []))
            say(f"after a {args.warmup:g}-minute warm-up at {args.rate:,.0f}/s: {state_line(worker, run)}")
        samples: list[tuple[float, int]] = []
        sent = asyncio.run(steady(run, churn, args.rate, args.minutes * 60, worker, samples))
        say(f"steady run: {sent:,} events in {args.minutes:g} min; {load_line()}")
        first = [r for t, r in samples if t <= 60]
        last = [r for t, r in samples if t >= samples[-1][0] - 60]
        mb = 2**20
        say(f"  RSS first minute {sum(first) / len(first) / mb:,.0f} MB, last minute {sum(last) / len(last) / mb:,.0f} MB, "
            f"max {max(r for _, r in samples) / mb:,.0f} MB; slope {slope_mb_per_min(samples):+.1f} MB/min "
            f"over {len(samples)} samples; over the second half {slope_mb_per_min(samples[len(samples) // 2:]):+.1f} MB/min")
        time.sleep(5)
        say(f"after the steady run: {state_line(worker, run)}")
    finally:
        if worker is not None:
            worker.stop()
        run.cleanup(args.keep)


if __name__ == "__main__":
    main()
