"""Benchmarks of kpi-monitor: throughput, latency, alert latency, memory (see README "Benchmarks").

Each module is one command (``python -m bench.<name>``) that prints figures; ``bench/RESULTS.md`` keeps
the latest ones. Shared helpers live in ``bench.common``; nothing here is imported by ``stream`` or
``alerts``, and nothing here imports ``tests``.
"""
