"""Soak: a steady stream through real workers that are killed (-9) on a schedule, then the oracle's verdict.

    python -m tests.soak                    # 10 minutes, 2,000 events/s, 2 workers, a kill -9 every 2 minutes
    python -m tests.soak --minutes 2 --rate 1000 --crash-every 30

Uses the local stack (started if needed), its own app id and topics, RocksDB stores, event-clock mode (so
the batch oracle can say what every number must be) and an alert webhook to a local receiver (so alerts
sent twice would show). Every 10 s it prints events produced and processed, dead letters, alerts, consumer
lag and each worker's RSS; at the end it compares every window on every worker with the oracle and exits
non-zero on any difference.
"""

from __future__ import annotations

import argparse
import functools
import asyncio
import json
import random
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import Deployment, free_port
from tests.integration.checks import assert_workers_match, oracle_answers
from tests.oracle.messy_log import make_messy_log, roster_yaml

EVENTS_PER_LEAD = 6.3  # what make_messy_log produces per lead with n_deals = 0.4 x n_leads


class AlertReceiver(ThreadingHTTPServer):
    """Counts webhook notifications and their idempotency keys."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        super().__init__(("127.0.0.1", free_port()), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/webhook"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.keys.append(json.loads(body).get("idempotency_key", ""))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def _rss_mb(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _totals(workers) -> dict[str, float]:
    """Each metric family summed over the workers (one /metrics fetch per worker)."""
    totals: dict[str, float] = {}
    for w in workers:
        try:
            text = w.metrics()
        except OSError:
            continue  # restarting
        for line in text.splitlines():
            if line.startswith("kpi_") and " " in line:
                name = line.split("{", 1)[0].split(" ", 1)[0]
                totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


async def _produce_steadily(dep: Deployment, messages, rate: float, progress: list[int]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=dep.bootstrap, acks="all", enable_idempotence=True, linger_ms=20)
    await producer.start()
    try:
        started, tick = time.monotonic(), max(1, int(rate / 20))
        for i in range(0, len(messages), tick):
            for topic, key, value in messages[i:i + tick]:
                await producer.send(dep.prefix + topic, value, key=key.encode())
            progress[0] = min(len(messages), i + tick)
            ahead = started + progress[0] / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()


def run(minutes: float, rate: float, crash_every: float, workers: int, seed: int, echo=None) -> bool:
    echo = echo or functools.partial(print, flush=True)
    from stream.local import stack
    from stream.config import load_settings

    stack.up(load_settings(), echo=lambda *a, **k: None)
    tmp = Path(tempfile.mkdtemp(prefix="kpi-soak-"))
    roster = tmp / "roster.yaml"
    roster.write_text(roster_yaml())
    n_leads = max(50, int(rate * minutes * 60 / EVENTS_PER_LEAD))
    t0 = time.monotonic()
    log = make_messy_log(seed=seed, n_leads=n_leads, n_deals=int(0.4 * n_leads))
    messages = [(topic, key, json.dumps(event).encode()) for topic, key, event in log]
    echo(f"soak: {len(log):,} events (messy log, seed {seed}) generated in {time.monotonic() - t0:.1f}s; "
         f"{rate:,.0f} events/s for {minutes:g} min into {workers} workers, kill -9 every {crash_every:g}s; files in {tmp}")
    receiver = AlertReceiver()
    dep = Deployment(tmp / "deployment", KPI_CLOCK="event", KPI_ROSTER=str(roster), KPI_STORE="rocksdb://",
                     KPI_ALERT_WEBHOOK_URL=receiver.url)
    running = [dep.start_worker(wait=False) for _ in range(workers)]
    for w in running:
        w.wait_healthy()
    progress = [0]
    producer = threading.Thread(target=lambda: asyncio.run(_produce_steadily(dep, messages, rate, progress)), daemon=True)
    started = time.monotonic()
    producer.start()
    rng = random.Random(seed)
    next_crash, next_report, crashes, peak_rss = started + crash_every, started, 0, 0.0
    exits: list[int] = []
    echo("(processed*: the running workers' counters, which a kill -9 resets; redeliveries count again. "
         "dropped: notifications over a sink's queue bound, a replay burst's alert flood)")
    echo(f"{'t':>5} {'produced':>10} {'processed*':>11} {'dead letters':>12} {'alerts':>7} {'dropped':>7} {'lag':>8}  RSS MB per worker")
    try:
        lag = 1.0
        while producer.is_alive() or lag > 0:
            now = time.monotonic()
            if now >= next_report:
                m = _totals(running)
                lag = m.get("kpi_consumer_lag_messages", 1.0)
                rss = [_rss_mb(w.proc.pid) for w in running]
                peak_rss = max(peak_rss, *rss)
                processed = sum(m.get(k, 0.0) for k in
                                ("kpi_events_consumed_total", "kpi_events_duplicate_total", "kpi_events_deadlettered_total"))
                echo(f"{now - started:5.0f} {progress[0]:>10,} {processed:>11,.0f} "
                     f"{m.get('kpi_events_deadlettered_total', 0):>12,.0f} {len(receiver.keys):>7,} "
                     f"{m.get('kpi_alerts_dropped_total', 0):>7,.0f} {lag:>8,.0f}  " + " ".join(f"{r:.0f}" for r in rss))
                next_report = now + 10
            for i, w in enumerate(running):  # a supervisor's job: the stall watchdog exits with code 3
                if w.proc.poll() is not None:
                    echo(f"{now - started:5.0f} worker {i} exited with code {w.proc.returncode}: "
                         f"{w.log_tail(1).strip()[:160]}; restarting it")
                    exits.append(w.proc.returncode)
                    running[i] = dep.start_worker(wait=False)
            if now >= next_crash and producer.is_alive():
                victim = rng.randrange(len(running))
                running[victim].kill()
                crashes += 1
                echo(f"{now - started:5.0f} kill -9 worker {victim} (crash {crashes}); restarting it")
                running[victim] = dep.start_worker(wait=False)
                next_crash = now + crash_every
            if now - started > minutes * 60 + 600:
                echo("soak: still lagging 10 min after the end of the stream; giving up")
                break
            time.sleep(1)
        elapsed = time.monotonic() - started
        echo(f"soak: {len(messages):,} events produced in {elapsed:.0f}s with {crashes} kill -9; peak worker RSS "
             f"{peak_rss:.0f} MB; {len(exits)} exits of the stall watchdog; {len(receiver.keys):,} alert notifications, "
             f"{len(receiver.keys) - len(set(receiver.keys))} sent twice")
        t1 = time.monotonic()
        expected = oracle_answers(log, roster)
        try:
            # Percentiles: a log this size exceeds 4,096 distinct response times (the 0.5 % sketch).
            assert_workers_match(running, expected, timeout=180, percentile_rel=0.005)
        except AssertionError as exc:
            echo(f"soak: FAILED, the workers disagree with the oracle: {str(exc).splitlines()[0]}")
            return False
        echo(f"soak: every window on every worker equals the batch oracle (checked in {time.monotonic() - t1:.0f}s): "
             f"leads_created {expected['all']['overall']['leads_created']:,}, calls {expected['all']['overall']['calls']:,}, "
             f"deals_won {expected['all']['overall']['deals_won']:,}")
        return len(receiver.keys) == len(set(receiver.keys))
    finally:
        dep.stop()
        receiver.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=2000, help="events per second produced")
    parser.add_argument("--crash-every", type=float, default=120, help="seconds between kill -9s")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.exit(0 if run(args.minutes, args.rate, args.crash_every, args.workers, args.seed) else 1)


if __name__ == "__main__":
    main()
