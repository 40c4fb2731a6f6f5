"""The soak (tests/soak.py) in short: 90 s at 1,000 events/s with a kill -9 every 30 s (`pytest -m slow`)."""

import pytest

from tests.soak import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_short_soak_with_kill_9_every_30s_equals_the_oracle():
    lines: list[str] = []
    assert run(minutes=1.5, rate=1000, crash_every=30, workers=2, seed=3, echo=lines.append), "\n".join(lines)
    assert sum("kill -9 worker" in line for line in lines) >= 2
