"""Integration tests of stream.local.stack against real processes (Java Kafka, redis-server).

The session fixture brings the default stack up (or reuses it) and leaves it running for the rest of
the suite. The down() test runs a second, throwaway stack in its own KPI_STACK_DIR on free ports, so
it never stops the stack other tests use.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream.local import stack
from stream.local.processes import alive

pytestmark = pytest.mark.integration

PREFIX = "test-stack."  # never the demo's "sales." topics


def _settings(**overrides) -> SimpleNamespace:
    values = dict(
        kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        topic_prefix=PREFIX,
        partitions=4,
    )
    values.update(overrides)
    return SimpleNamespace(**values)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def settings() -> SimpleNamespace:
    s = _settings()
    st = stack.up(s)
    assert st.healthy, str(st)
    return s


def test_second_up_starts_nothing(settings):
    before = stack.status(settings, echo=lambda _: None)
    lines: list[str] = []
    after = stack.up(settings, echo=lines.append)

    assert (after.kafka.pid, after.redis.pid) == (before.kafka.pid, before.redis.pid)
    assert (after.kafka.state, after.redis.state) == (before.kafka.state, before.redis.state)
    for name, svc in (("kafka", before.kafka), ("redis", before.redis)):
        expected = f"{name}: already running (pid {svc.pid})" if svc.state == "running" else f"{name}: reusing"
        assert any(line.startswith(expected) for line in lines), lines
    assert not any("ready on" in line or "created" in line for line in lines), lines
    assert any(line.startswith("topics: all 7 present") for line in lines), lines


def test_status_reports_running_services_and_topics(settings):
    st = stack.status(settings, echo=lambda _: None)
    assert st.kafka.state in ("running", "external")
    assert st.redis.state in ("running", "external")
    if st.kafka.state == "running":
        assert alive(st.kafka.pid)
    assert set(st.topics) == {PREFIX + n for n in ("leads", "calls", "deals", "deadletter", "spend", "subscriptions", "forecasts")}
    assert all(st.topics.values()), st.topics
    assert st.healthy
    assert "MISSING" not in str(st)


@pytest.mark.asyncio
async def test_ensure_topics_creates_every_topic_with_requested_partitions(settings):
    prefix = f"test-stack-{uuid.uuid4().hex[:8]}."
    names = [prefix + n for n in ("leads", "calls", "deals", "deadletter", "spend", "subscriptions", "forecasts")]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        assert await stack.ensure_topics(settings.kafka_bootstrap_servers, prefix, 3) == dict.fromkeys(names, "created")
        described = {t["topic"]: t for t in await admin.describe_topics(names)}
        for name in names:
            assert described[name]["error_code"] == 0
            assert len(described[name]["partitions"]) == 3
            assert all(len(p["replicas"]) == 1 for p in described[name]["partitions"])
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        for response in configs:
            for resource in response.resources:
                values = {entry[0]: entry[1] for entry in resource[4]}
                assert values["max.message.bytes"] == "1048576"
        # Existing topics are fine, and left alone (same partition count even if asked for more).
        assert await stack.ensure_topics(settings.kafka_bootstrap_servers, prefix, 5) == dict.fromkeys(names, "exists")
        assert all(len(t["partitions"]) == 3 for t in await admin.describe_topics(names))
    finally:
        await admin.delete_topics(names)
        await admin.close()


def test_port_taken_by_non_kafka_is_a_clear_error(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("KPI_STACK_DIR", str(tmp_path))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(stack.StackError, match=f"port {port} is taken by another process .not a Kafka broker."):
            stack.up(_settings(kafka_bootstrap_servers=f"127.0.0.1:{port}"), echo=lambda _: None)
    assert not (tmp_path / "kafka.pid").exists()


def test_down_stops_only_its_own_stack(settings, tmp_path, monkeypatch):
    main_libs = Path(os.environ.get("KPI_STACK_DIR") or stack.REPO_ROOT / ".stack") / "kafka" / "libs"
    main_before = stack.status(settings, echo=lambda _: None)

    monkeypatch.setenv("KPI_STACK_DIR", str(tmp_path))
    monkeypatch.setenv("KPI_KAFKA_CONTROLLER_PORT", str(_free_port()))
    (tmp_path / "kafka").mkdir()
    if main_libs.is_dir():  # skip a second jar copy; the jars are identical
        (tmp_path / "kafka" / "libs").symlink_to(main_libs)
    other = _settings(kafka_bootstrap_servers=f"127.0.0.1:{_free_port()}",
                      redis_url=f"redis://127.0.0.1:{_free_port()}/0", topic_prefix="t.", partitions=2)

    st = stack.up(other, echo=lambda _: None)
    try:
        assert (st.kafka.state, st.redis.state) == ("running", "running"), str(st)
        assert st.topics == dict.fromkeys(["t.leads", "t.calls", "t.deals", "t.deadletter", "t.spend", "t.subscriptions",
                                           "t.forecasts"], 2)

        result = stack.down(echo=lambda _: None)
        assert result["kafka"].startswith(f"stopped (pid {st.kafka.pid}")
        assert result["redis"].startswith(f"stopped (pid {st.redis.pid}")
        assert not alive(st.kafka.pid) and not alive(st.redis.pid)
        assert not (tmp_path / "kafka.pid").exists() and not (tmp_path / "redis.pid").exists()
        gone = stack.status(other, echo=lambda _: None)
        assert (gone.kafka.state, gone.redis.state) == ("stopped", "stopped")
        assert (tmp_path / "kafka" / "data" / "meta.properties").exists()  # data kept
    finally:  # a failed assertion must not leave this private broker and Redis running
        stack.down(echo=lambda _: None)

    # A second down is harmless; purge removes the data.
    assert stack.down(purge=True, echo=lambda _: None)["kafka"].startswith("not running")
    assert not (tmp_path / "kafka" / "data").exists()

    monkeypatch.delenv("KPI_STACK_DIR")
    main_after = stack.status(settings, echo=lambda _: None)
    assert (main_after.kafka.pid, main_after.redis.pid) == (main_before.kafka.pid, main_before.redis.pid)
    assert main_after.healthy
