"""What one request may cost the ingest service: `kpi-monitor ingest` as a process on the real broker, its
peak resident memory (VmHWM) measured around the worst bodies its limits let in.

A body is counted before it is copied: a 4 MiB array of `{}` (1.4 M elements) or as many JSON Lines is
refused with 413 after at most `KPI_INGEST_MAX_IN_FLIGHT` elements were looked at, and HubSpot batches
past `HUBSPOT_MAX_NOTIFICATIONS` likewise. The largest bodies that are let in stay bounded too.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import BOOTSTRAP, REPO_ROOT, free_port, wait_for
from tests.ingest.helpers import ts

pytestmark = pytest.mark.integration
TOKEN = "limits-test-token"
MAX_BODY = 4 * 1024 * 1024  # the default KPI_INGEST_MAX_BODY_BYTES
MAX_EVENTS = 20_000  # the default KPI_INGEST_MAX_IN_FLIGHT
MAX_NOTES = 1000  # the default HUBSPOT_MAX_NOTIFICATIONS
GROWTH_LIMIT_MIB = 100
# The machine is shared: an unbounded ingest must fail alone, not take everyone's memory with it.
ADDRESS_SPACE_LIMIT = 3 * 2**30


def _peak_rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


class IngestProcess:
    def __init__(self, prefix: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "KPI_TOPIC_PREFIX": prefix,
               "KPI_INGEST_PORT": str(self.port), "KPI_INGEST_TOKEN": TOKEN}
        for name in ("HUBSPOT_CLIENT_SECRET", "HUBSPOT_ACCESS_TOKEN", "KPI_INGEST_MAX_BODY_BYTES",
                     "KPI_INGEST_MAX_IN_FLIGHT", "HUBSPOT_MAX_NOTIFICATIONS"):
            env.pop(name, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "ingest"], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT)))
        wait_for(lambda: urllib.request.urlopen(f"{self.url}/healthz", timeout=2).status == 200, 30,
                 what="ingest healthy")

    def post(self, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
        request = urllib.request.Request(f"{self.url}{path}", data=body, method="POST", headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=120) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw.startswith(b"{") else {"body": raw[:200].decode(errors="replace")}

    def growth_mib(self, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict, float]:
        """Status, answer and how much the peak RSS grew while handling ``body``."""
        before = _peak_rss_mib(self.proc.pid)
        status, doc = self.post(path, body, content_type)
        return status, doc, _peak_rss_mib(self.proc.pid) - before

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def ingest_process(deployment):
    proc = IngestProcess(deployment.prefix)
    # Warm up every code path once, so the measurements below see only what a body costs.
    lead = {"event_id": "warm-1", "type": "lead.created", "occurred_at": ts(), "lead_id": "L-warm"}
    assert proc.post("/ingest/events", json.dumps([lead]).encode())[0] == 202
    note = {"eventId": 1, "subscriptionType": "contact.creation", "objectId": 1, "occurredAt": 1_700_000_000_000,
            "portalId": 7}
    assert proc.post("/ingest/hubspot", json.dumps([note]).encode())[0] == 202
    yield proc
    proc.stop()


def _filled(unit: bytes, opening: bytes = b"[", separator: bytes = b",", closing: bytes = b"]") -> bytes:
    """As many ``unit`` as fit in MAX_BODY."""
    count = (MAX_BODY - len(opening) - len(closing)) // (len(unit) + len(separator))
    return opening + separator.join([unit] * count) + closing


@pytest.mark.parametrize("content_type, body", [
    ("application/json", _filled(b"{}")),
    ("application/x-ndjson", _filled(b"{}", b"", b"\n", b"")),
])
def test_a_body_of_a_million_empty_events_is_refused_before_it_is_copied(ingest_process, content_type, body):
    assert len(body) <= MAX_BODY
    status, doc, growth = ingest_process.growth_mib("/ingest/events", body, content_type)
    print(f"\n{content_type}: {len(body)} bytes of {{}} -> {status} {doc.get('error')}; peak RSS +{growth:.1f} MiB")
    assert (status, doc.get("error")) == (413, "too_many_events"), doc
    assert f"more than {MAX_EVENTS} events" in doc["detail"]
    assert growth < GROWTH_LIMIT_MIB


def test_a_hubspot_batch_over_the_cap_is_refused_before_it_is_copied(ingest_process):
    body = _filled(b"{}")
    status, doc, growth = ingest_process.growth_mib("/ingest/hubspot", body)
    print(f"\n{len(body)} bytes of {{}} to /ingest/hubspot -> {status} {doc.get('error')}; peak RSS +{growth:.1f} MiB")
    assert (status, doc.get("error")) == (413, "too_many_notifications"), doc
    assert f"more than {MAX_NOTES} notifications" in doc["detail"]
    assert growth < GROWTH_LIMIT_MIB


def test_the_largest_batch_the_limits_let_in_stays_bounded(ingest_process):
    # MAX_EVENTS valid events that together fill the body limit: every one is validated and produced.
    def lead(i: int) -> bytes:
        return json.dumps({"event_id": f"big-{i}", "type": "lead.created", "occurred_at": ts(), "lead_id": f"L{i}",
                           "source": "s"}).encode()
    pad = (MAX_BODY - 2 - sum(len(lead(i)) + 1 for i in range(MAX_EVENTS))) // MAX_EVENTS
    events = [lead(i).replace(b'"source": "s"', b'"source": "' + b"s" * (1 + pad) + b'"') for i in range(MAX_EVENTS)]
    body = b"[" + b",".join(events) + b"]"
    assert MAX_BODY - 2 * MAX_EVENTS < len(body) <= MAX_BODY
    status, doc, growth = ingest_process.growth_mib("/ingest/events", body)
    print(f"\n{MAX_EVENTS} events in {len(body)} bytes -> {status}, {doc.get('accepted')} accepted; "
          f"peak RSS +{growth:.1f} MiB")
    assert (status, doc["accepted"]) == (202, MAX_EVENTS), doc
    assert growth < GROWTH_LIMIT_MIB


@pytest.mark.parametrize("shape", ["nested", "padded"])
def test_the_largest_hubspot_batch_the_limits_let_in_stays_bounded(ingest_process, shape):
    note = {"eventId": 0, "subscriptionType": "contact.creation", "objectId": 1,
            "occurredAt": int(time.time() * 1000) - 60_000, "portalId": 7, "extra": 0}
    if shape == "nested":  # one notification holding a million objects in a field nobody reads
        head = json.dumps(note).encode()[:-2]  # without the 0}
        count = (MAX_BODY - len(head) - 4) // 3
        body = b"[" + head + b"[" + b",".join([b"{}"] * count) + b"]}]"
        expected = 1
    else:  # the most notifications allowed, each as large as the body leaves room for
        widest = json.dumps({**note, "eventId": MAX_NOTES, "extra": ""})
        room = (MAX_BODY - 2) // MAX_NOTES - len(widest) - len(", ")
        body = json.dumps([{**note, "eventId": i, "extra": "x" * room} for i in range(MAX_NOTES)]).encode()
        expected = MAX_NOTES
    assert MAX_BODY - 4096 < len(body) <= MAX_BODY
    status, doc, growth = ingest_process.growth_mib("/ingest/hubspot", body)
    print(f"\nhubspot {shape}: {len(body)} bytes -> {status}, {doc.get('accepted')} accepted; peak RSS +{growth:.1f} MiB")
    assert (status, doc["accepted"]) == (202, expected), doc
    assert growth < GROWTH_LIMIT_MIB
