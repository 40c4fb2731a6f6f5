"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): where the worker's time goes.

    python -m bench.profile PROFILE.txt [--top 25] [--under FUNCTION]

Prints the share of samples per function, inclusive (the function or anything it calls) and self (the
function itself), so a hot path shows as a chain of inclusive shares. ``--under`` restricts to stacks
through a function (e.g. ``process`` for the agent loop). Idle samples (py-spy ``--idle`` off: none) and
the event loop's ``select`` are reported separately.
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


def summarise(path: str, top: int = 25, under: str | None = None) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
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
            for fr in set(frames):
                inclusive[fr] += n
            if frames:
                own[frames[-1]] += n
    if not total:
        return "no samples"
    out = [f"{total:,} samples" + (f" through {under}" if under else "")]
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
