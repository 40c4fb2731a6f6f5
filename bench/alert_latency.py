"""Alert latency: lead SLA deadline → notification received at a local webhook, under background load.

    python -m bench.alert_latency --probes 300 --deadline 10 --background 5000 --duration 60

One worker (wall clock, RocksDB) with the bundled alert rules plus one probe rule: ``lead_sla`` for leads
with ``source: bench-probe``, deadline ``--deadline`` seconds of plain time (``calendar: none``). The
generic webhook sink (``KPI_ALERT_WEBHOOK_URL``) points at a receiver in this process (its own thread),
which stamps each request on arrival.

While ``--background`` events/s are offered (lone calls, deals, and leads touched right after their
creation, so they never page), ``--probes`` probe leads are created at even intervals over
``--duration`` seconds and never touched. Each must fire once, at ``occurred_at + deadline``; its
latency is the arrival time at the receiver minus that deadline. Prints p50/p99/max and any probe that
never fired or fired twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from pathlib import Path

import orjson
import yaml

from bench.common import REPO_ROOT, Run, Worker, free_port, load_line, print_machine, quiet_kafka_logs, say, summary_ms
from bench.latency import Load, iso_now, produce

BACKGROUND_MIX = (("leads", "created", 0.15), ("leads", "touched", 0.15), ("calls", "call", 0.5), ("deals", "deal", 0.2))
PROBE_SOURCE = "bench-probe"
PROBE_RULE = "bench-probe-sla"


class Receiver:
    """A webhook receiver on its own thread and loop, so arrival stamps do not wait for the producer."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise SystemExit("webhook receiver did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    def _serve(self) -> None:
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            at = time.time()
            try:
                doc = json.loads(body)
            except ValueError:
                doc = {}
            with self.lock:
                self.arrivals.append((at, doc))
            return web.Response(text="ok")

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/webhook", handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self.ready.set()
            while True:
                await asyncio.sleep(3600)

        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(main())
        except RuntimeError:  # stopped
            pass

    def firings(self) -> list[tuple[float, dict]]:
        with self.lock:
            return [(at, d) for at, d in self.arrivals if d.get("rule") == PROBE_RULE and d.get("kind") == "firing"]

    def others(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.lock:
            for _, d in self.arrivals:
                if d.get("rule") != PROBE_RULE:
                    name = f"{d.get('rule')}/{d.get('kind')}"
                    out[name] = out.get(name, 0) + 1
        return out


def rules_file(path: Path, deadline: float) -> Path:
    """The bundled rules plus the probe rule."""
    doc = yaml.safe_load((REPO_ROOT / "alerts" / "rules.yaml").read_text())
    doc["rules"].append({"name": PROBE_RULE, "type": "lead_sla", "description": "bench probe leads",
                         "deadline": f"{deadline:g}s", "calendar": "none", "sources": [PROBE_SOURCE]})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def drive(run: Run, args, receiver: Receiver) -> dict[str, float]:
    """Background load + probe leads; returns {lead_id: deadline (epoch s)}."""
    from aiokafka import AIOKafkaProducer

    load = Load(run, run.tag, BACKGROUND_MIX)
    producer = AIOKafkaProducer(bootstrap_servers=run.bootstrap, acks=1, linger_ms=0)
    await producer.start()
    deadlines: dict[str, float] = {}
    try:
        background = asyncio.create_task(
            produce(run, load, args.background, args.warmup + args.duration + args.deadline + args.drain_load,
                    None, None, producer))
        await asyncio.sleep(args.warmup)
        every = args.duration / args.probes
        t0 = time.monotonic()
        for i in range(args.probes):
            await asyncio.sleep(max(0.0, t0 + i * every - time.monotonic()))
            lead = f"{run.tag}-probe-{i}"
            now = time.time()
            ev = {"event_id": f"{run.tag}-probe-{i}", "type": "lead.created", "occurred_at": iso_now(now),
                  "lead_id": lead, "source": PROBE_SOURCE, "rep_id": "bench-probe-rep"}
            # The deadline counts from occurred_at, stamped in milliseconds.
            deadlines[lead] = round(now * 1000) / 1000 + args.deadline
            await producer.send(run.topic("leads"), orjson.dumps(ev), key=lead.encode())
        await background
    finally:
        await producer.stop()
    return deadlines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.alert_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--probes", type=int, default=300, help="probe leads (default 300)")
    parser.add_argument("--deadline", type=float, default=10.0, help="probe SLA deadline in seconds (default 10)")
    parser.add_argument("--background", type=float, default=5000, help="background events/s (default 5000)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds over which probes are created")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--drain-load", type=float, default=5.0, help="background seconds after the last deadline")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--profile", default=None, help="record the worker under py-spy to this file")
    args = parser.parse_args(argv)
    quiet_kafka_logs()
    print_machine(f"alert latency: {args.probes} probe leads, deadline {args.deadline:g}s, "
                  f"{args.background:,.0f} events/s background")
    run = Run("alert")
    asyncio.run(run.create_topics())
    receiver = Receiver()
    env = {"KPI_ALERT_RULES": str(rules_file(run.workdir / "rules.yaml", args.deadline)),
           "KPI_ALERT_WEBHOOK_URL": receiver.url}
    worker = Worker(run, env, profile=args.profile, name="worker")
    try:
        worker.wait_healthy(timeout=180)
        cpu0 = worker.cpu_seconds()
        t_run = time.monotonic()
        deadlines = asyncio.run(drive(run, args, receiver))
        cpu = (worker.cpu_seconds() - cpu0) / (time.monotonic() - t_run)
        wait_until = time.monotonic() + 30
        while len({d["labels"].get("lead_id") for _, d in receiver.firings()}) < len(deadlines):
            if time.monotonic() > wait_until:
                break
            time.sleep(0.5)
        time.sleep(1.0)  # a duplicate would arrive now
        firings = receiver.firings()
        by_lead: dict[str, list[float]] = {}
        for at, doc in firings:
            by_lead.setdefault(doc.get("labels", {}).get("lead_id"), []).append(at)
        latencies = [min(ats) - deadlines[lead] for lead, ats in by_lead.items() if lead in deadlines]
        missing = sorted(set(deadlines) - set(by_lead))
        twice = sorted(lead for lead, ats in by_lead.items() if len(ats) > 1)
        say(f"background {args.background:,.0f} events/s; worker CPU {cpu * 100:.0f} % of a core, RSS "
            f"{worker.rss_bytes() / 2**20:,.0f} MB; {load_line()}")
        say(f"deadline -> webhook: {summary_ms(latencies)}; earliest {min(latencies) * 1000:.0f} ms"
            if latencies else "deadline -> webhook: no probe fired")
        if missing or twice:
            say(f"  {len(missing)} probes never fired, {len(twice)} fired more than once")
        others = receiver.others()
        if others:
            say(f"  other notifications (bundled rules): {others}")
    finally:
        worker.stop()
        run.cleanup(args.keep)
        _forget_alert_state(run.app_id)


def _forget_alert_state(app_id: str) -> None:
    try:
        import redis

        from stream.config import load_settings

        client = redis.Redis.from_url(load_settings().redis_dsn, socket_connect_timeout=2)
        try:
            keys = list(client.scan_iter(f"{app_id}:*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
    except Exception as exc:  # Redis keys of a bench are small; say so rather than fail
        say(f"could not delete Redis keys {app_id}:*: {exc!r}")


if __name__ == "__main__":
    main()
