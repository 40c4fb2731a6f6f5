"""Security basics on real servers: Kafka SASL, Redis with a password, no secrets in logs, the web port on
loopback by default, and no personal data in /kpis or /metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from tests.conftest import free_port, wait_for
from tests.integration.checks import assert_workers_match, oracle_answers
from tests.private_broker import PrivateBroker
from tests.oracle.messy_log import make_messy_log, roster_yaml

pytestmark = pytest.mark.integration
KAFKA_PASSWORD = "kafka-pw-5f1c9e"
REDIS_PASSWORD = "redis-pw-77ab20"
# A SASL/PLAIN listener next to the plaintext one the stack script waits on; user `kpi` may connect.
SASL_LISTENER = """
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port},SASL_PLAINTEXT://127.0.0.1:{extra_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{extra_port}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_kpi="%s";
""" % KAFKA_PASSWORD


@pytest.fixture
def sasl_broker(tmp_path):
    broker = PrivateBroker(tmp_path / "broker", extra_config=SASL_LISTENER)
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture
def redis_with_password(tmp_path):
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--requirepass", REDIS_PASSWORD, "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port, password=REDIS_PASSWORD, socket_connect_timeout=0.5)
    wait_for(lambda: client.ping(), 10, 0.05, what="redis with a password")
    yield port, client
    proc.terminate()
    proc.wait(10)


def _listening_address(port: int) -> str:
    """The local address a TCP socket LISTENs on for ``port`` (from /proc/net/tcp)."""
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        address, state = fields[1], fields[3]
        ip_hex, port_hex = address.split(":")
        if int(port_hex, 16) == port and state == "0A":
            return ".".join(str(int(ip_hex[i:i + 2], 16)) for i in (6, 4, 2, 0))
    raise AssertionError(f"nothing listens on {port}")


def test_worker_over_sasl_with_redis_password_leaks_no_secret_and_no_personal_data(
        make_deployment, sasl_broker, redis_with_password, tmp_path):
    redis_port, redis_client = redis_with_password
    roster = tmp_path / "roster.yaml"
    roster.write_text(roster_yaml())
    log = make_messy_log(seed=21, n_leads=200)
    dep = make_deployment(KPI_CLOCK="event", KPI_ROSTER=str(roster), KAFKA_BOOTSTRAP_SERVERS=sasl_broker.bootstrap)
    worker = dep.start_worker(
        loglevel="debug",  # every line the worker can write is looked at for the secrets below
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{sasl_broker.extra_port}",  # the SASL listener only
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME="kpi", KAFKA_SASL_PASSWORD=KAFKA_PASSWORD,
        REDIS_URL=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_port}/0",
    )
    dep.produce([(topic, key, json.dumps(event).encode()) for topic, key, event in log])
    assert_workers_match([worker], oracle_answers(log, roster))
    # The alert engine keeps its state in the password-protected Redis.
    wait_for(lambda: redis_client.keys(f"{dep.app_id}:*"), 30, what="alert state written to Redis")
    assert _listening_address(worker.port) == "127.0.0.1"

    kpis = json.dumps([worker.kpis(w) for w in ("all", "1h")])
    metrics = worker.metrics()
    personal = {event[k] for _, _, event in log for k in ("lead_id", "deal_id", "call_id", "event_id")
                if isinstance(event.get(k), str)}
    assert not [v for v in personal if v in kpis or v in metrics]
    time.sleep(1)
    text = worker.log_path.read_text()
    assert "[DEBUG]" in text, "the log was not written at debug level"
    # aiokafka logs the SASL/PLAIN request (user and password) at debug: it is there, without its payload.
    assert "SaslAuthenticateRequest_v1(<payload hidden>)" in text
    assert KAFKA_PASSWORD not in text and REDIS_PASSWORD not in text


def test_wrong_kafka_password_keeps_the_worker_unhealthy_with_a_clear_log(make_deployment, sasl_broker):
    dep = make_deployment(KAFKA_BOOTSTRAP_SERVERS=sasl_broker.bootstrap)
    worker = dep.start_worker(
        wait=False, loglevel="debug", KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{sasl_broker.extra_port}",
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_USERNAME="kpi", KAFKA_SASL_PASSWORD="not-the-password",
    )
    wait_for(lambda: "Authentication failed" in worker.log_path.read_text(), 60, what="an authentication error in the log")
    try:
        healthy = worker.health()[0] == 200
    except OSError:  # the web server never came up: the worker stops at the authentication error
        healthy = False
    assert not healthy
    assert "not-the-password" not in worker.log_path.read_text()
