"""Kafka client quotas for tests: a broker that throttles one client's produce requests.

A throttled producer is what a busy broker or a slow link looks like to a worker: its changelog records
queue up in the producer while its consumer, on other connections, keeps reading and committing. Quotas
are set with the broker's own ConfigCommand from the checkout's Kafka jars (aiokafka has no API for them).
"""

from __future__ import annotations

import subprocess

from tests.conftest import REPO_ROOT


def set_producer_byte_rate(bootstrap: str, client_id: str, bytes_per_second: int | None) -> None:
    """Throttle ``client_id``'s produce requests to ``bytes_per_second``; None removes the quota."""
    change = (["--add-config", f"producer_byte_rate={bytes_per_second}"] if bytes_per_second is not None
              else ["--delete-config", "producer_byte_rate"])
    subprocess.run(
        ["java", "-cp", str(REPO_ROOT / ".stack" / "kafka" / "libs" / "*"), "kafka.admin.ConfigCommand",
         "--bootstrap-server", bootstrap, "--alter", "--entity-type", "clients", "--entity-name", client_id, *change],
        check=True, capture_output=True, timeout=60,
    )
