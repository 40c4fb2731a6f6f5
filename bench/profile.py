"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): where the worker's time goes.

    python -m bench.profile PROFILE.txt [--top 25] [--under FUNCTION]

First the worker's busy time by component (the first rule of COMPONENTS that a stack passes through;
samples waiting in the event loop's ``select`` count as idle and are left out), then the share of samples
per function, inclusive (the function or anything it calls) and self (the function itself), so a hot
path shows as a chain of inclusive shares. ``--under`` restricts to stacks through a function (e.g.
``process`` for the agent loop).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_REPO = str(Path(__file__).resolve().parent.parent) + "/"  # frames of our own code print repo-relative

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", _REPO, "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3.":
                path = "stdlib/" + path.split("/", 1)[1]
            break
    return f"{m.group('func')} ({path})"


# (component, substrings of a frame): the first component whose substring is in any frame of a stack wins,
# so our own steps inside the agent come before the Faust loop around them.
COMPONENTS = (
    ("agent: alert tracker (waiting leads, rules)", ("AlertRuntime.on_change",)),
    ("agent: entity write (RocksDB put + changelog record)", ("BytesKeyTable.__setitem__",)),
    ("agent: entity read (RocksDB get)", ("BytesKeyTable.get",)),
    ("agent: validate (msgspec decode + checks)", ("EventValidator.validate",)),
    ("agent: KPI engine (facts, contributions, aggregates)", ("KpiEngine.",)),
    ("agent: the rest of the batch loop (Faust stream, acks)", ("_wire_group.<locals>.process",)),
    ("Faust fetch loop (tasks per message, flow control)", ("Consumer._drain_messages", "Fetcher._fetcher")),
    ("Faust dispatch (message -> stream queue)", ("Conductor._compile_message_handler",)),
    ("changelog producer (batches, sends)", ("ProducerBuffer.", "Sender.", "Topic._on_published", "AIOKafkaProducer.")),
    ("aiokafka consumer thread (fetch requests, records)", ("WorkerThread.run",)),
    ("alert timers and sinks (Redis, HTTP)", ("(alerts/", "(redis/")),
    ("web: /kpis and /metrics snapshots", ("(stream/worker/web.py", "(stream/worker/kpi_export.py", "(stream/worker/metrics.py")),
)
IDLE_FILE = "selectors.py)"  # a stack that ends in the selector waits for I/O: the event loop is idle


def component_of(frames: list[str]) -> str | None:
    if frames and frames[-1].endswith(IDLE_FILE):
        return None
    for label, marks in COMPONENTS:
        if any(mark in fr for fr in frames for mark in marks):
            return label
    return "other (event loop, timers, Faust services)"


def summarise(path: str, top: int = 25, under: str | None = None) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    components: Counter[str | None] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            try:
                n = int(count)
            except ValueError:
                continue
            frames = [_short(fr) for fr in stack.split(";") if fr and not fr.startswith(("process ", "thread "))]
            if under is not None and not any(fr.startswith(under + " ") for fr in frames):
                continue
            total += n
            components[component_of(frames)] += n
            for fr in set(frames):
                inclusive[fr] += n
            if frames:
                own[frames[-1]] += n
    if not total:
        return "no samples"
    out = [f"{total:,} samples" + (f" through {under}" if under else "")]
    busy = total - components.pop(None, 0)
    out.append(f"busy (not waiting in select): {100 * busy / total:.1f} % of samples; by component, % of busy:")
    for label, n in components.most_common():
        out.append(f"{100 * n / max(busy, 1):7.1f}  {label}")
    out.append("")
    out.append(f"{'incl %':>7} {'self %':>7}  function")
    for fr, n in inclusive.most_common(top):
        out.append(f"{100 * n / total:7.1f} {100 * own[fr] / total:7.1f}  {fr}")
    out.append("")
    out.append("top self time:")
    for fr, n in own.most_common(top):
        out.append(f"{100 * n / total:7.1f}  {fr}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--under", default=None, help="only stacks through this function name")
    args = parser.parse_args(argv)
    print(summarise(args.path, args.top, args.under))


if __name__ == "__main__":
    main()
