"""Comparison of two /kpis documents: keys and nulls exact, numbers to 1e-9 relative."""

import pytest


def assert_same(actual, expected, path="$"):
    """Keys and nulls exact, strings exact, numbers with rel=1e-9."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert sorted(actual) == sorted(expected), f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for k in expected:
            assert_same(actual[k], expected[k], f"{path}.{k}")
    elif expected is None or isinstance(expected, (str, bool)):
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
    else:
        assert actual is not None and not isinstance(actual, (str, bool)), f"{path}: {actual!r} != {expected!r}"
        assert actual == pytest.approx(expected, rel=1e-9), f"{path}: {actual!r} != {expected!r}"
