"""`kpi-monitor ingest` as users run it: it starts, serves, refuses to listen openly off loopback, and
never prints its secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import BOOTSTRAP, REPO_ROOT, free_port, wait_for
from tests.ingest.helpers import ts

pytestmark = pytest.mark.integration


def test_ingest_command_serves_and_stops_cleanly(deployment):
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "KPI_TOPIC_PREFIX": deployment.prefix,
           "KPI_INGEST_PORT": str(port), "KPI_INGEST_TOKEN": "tok-123-secret", "HUBSPOT_CLIENT_SECRET": "hs-secret-456"}
    proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "ingest"], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: urllib.request.urlopen(f"{url}/healthz", timeout=2).status == 200, 30, what="ingest healthy")
        event = {"event_id": "cli-1", "type": "lead.created", "occurred_at": ts(), "lead_id": "L-cli"}
        request = urllib.request.Request(f"{url}/ingest/events", data=json.dumps(event).encode(), method="POST",
                                         headers={"Authorization": "Bearer tok-123-secret"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 202 and json.load(resp)["accepted"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"ingest on {url}" in out and "auth: bearer token" in out and "signature v3" in out
    assert "tok-123-secret" not in out and "hs-secret-456" not in out


def test_ingest_refuses_a_public_address_without_token():
    env = {**os.environ, "KPI_INGEST_HOST": "0.0.0.0", "KPI_INGEST_PORT": str(free_port())}
    env.pop("KPI_INGEST_TOKEN", None)
    proc = subprocess.run([sys.executable, "-m", "stream.cli", "ingest"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "KPI_INGEST_TOKEN: required when KPI_INGEST_HOST (0.0.0.0) is not a loopback address" in proc.stderr


@pytest.mark.parametrize("token", ["", "   "])
def test_ingest_refuses_an_empty_or_blank_token(deployment, token):
    """`${KPI_INGEST_TOKEN}` unset in a compose file gives "": that is no token, and must not open the door."""
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "KPI_TOPIC_PREFIX": deployment.prefix,
           "KPI_INGEST_HOST": "0.0.0.0", "KPI_INGEST_PORT": str(port), "KPI_INGEST_TOKEN": token}
    proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "ingest"], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:  # it started: say what an anonymous client gets
        event = {"event_id": "anon-1", "type": "lead.created", "occurred_at": ts(), "lead_id": "L-anon"}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/ingest/events", data=json.dumps(event).encode(),
                                         method="POST")
        try:
            status = urllib.request.urlopen(request, timeout=10).status
        except urllib.error.HTTPError as exc:
            status = exc.code
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        raise AssertionError(f"ingest started with KPI_INGEST_TOKEN={token!r}; an unauthenticated POST got {status}; "
                             f"it said: {err.strip()}") from None
    assert proc.returncode != 0, (out, err)
    assert err.strip().splitlines() == [
        "Error: KPI_INGEST_TOKEN: is empty or blank; set a real secret or leave the variable unset"], err


def test_bad_stage_map_is_a_one_line_config_error():
    env = {**os.environ, "HUBSPOT_STAGE_MAP": "closedwon=champagne", "KPI_INGEST_PORT": str(free_port())}
    proc = subprocess.run([sys.executable, "-m", "stream.cli", "ingest"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("ingest: HUBSPOT_STAGE_MAP:")
