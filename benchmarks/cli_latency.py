"""How long the ``tunesmith`` command takes to answer ``--help`` and to report a typo.

Runs each command line in a fresh subprocess ``--repeats`` times (default 7) and prints,
per case, the median, fastest and slowest wall time, the exit code and the error line:

* ``python -c pass``: the interpreter alone, the floor of every figure;
* ``tunesmith --help``;
* ``train --model wavnet ...``: a misspelt model name;
* ``train --model wavenet --data no-such-corpus ...``: an unknown corpus;
* ``generate --checkpoint missing-run``: a checkpoint folder that is not there.

The three error cases must exit 2 with one ``error: ...`` line; the script says so when
one does not. Target (issue 14): under 2 s on an idle machine.

``--src DIR`` times another source tree (e.g. an older commit exported with ``git archive
COMMIT src | tar -x -C /tmp/old``) so that before and after can be compared in one run.

Usage: ``.venv/bin/python benchmarks/cli_latency.py [--repeats 7] [--src DIR ...]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tunesmith.training.benchmark import cpu_model

SRC = Path(__file__).resolve().parents[1] / "src"


def cases(scratch: Path) -> list[tuple[str, list[str], int]]:
    """(label, arguments after ``python``, expected exit code)."""
    cli = ["-m", "tunesmith"]
    return [
        ("python -c pass (floor)", ["-c", "pass"], 0),
        ("tunesmith --help", [*cli, "--help"], 0),
        ("train --model wavnet (typo)",
         [*cli, "train", "--model", "wavnet", "--data", "bach-chorales",
          "--out", str(scratch / "run")], 2),
        ("train --data no-such-corpus",
         [*cli, "train", "--model", "wavenet", "--data", "no-such-corpus",
          "--out", str(scratch / "run")], 2),
        ("generate --checkpoint missing",
         [*cli, "generate", "--checkpoint", str(scratch / "missing-run")], 2),
    ]


def time_case(args: list[str], src: Path, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                                env=env, timeout=300)
        times.append(time.perf_counter() - start)
    err = result.stderr.strip().splitlines()
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "code": result.returncode, "lines": len(err), "first": err[0] if err else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--src", type=Path, nargs="*", default=[SRC],
                        help="source trees to time (each holds the tunesmith package)")
    options = parser.parse_args()
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.platform()}, "
          f"Python {platform.python_version()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    problems = []
    with tempfile.TemporaryDirectory() as scratch:
        for src in options.src:
            print(f"\nsource: {src}  ({options.repeats} runs each, seconds)")
            print(f"| {'case':<32} | median | fastest | slowest | exit | error line |")
            print(f"|{'-' * 34}|--------|---------|---------|------|------------|")
            for label, args, expected in cases(Path(scratch)):
                row = time_case(args, src, options.repeats)
                first = row["first"][:60] if expected == 2 else ""
                print(f"| {label:<32} | {row['median']:6.2f} | {row['min']:7.2f} | "
                      f"{row['max']:7.2f} | {row['code']:4d} | {first} |")
                if expected == 2 and (row["code"] != 2 or row["lines"] != 1
                                      or not row["first"].startswith("error: ")):
                    problems.append(f"{src}: {label}: exit {row['code']}, "
                                    f"{row['lines']} stderr lines")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for problem in problems:
        print(f"NOT a one-line error: {problem}")


if __name__ == "__main__":
    main()
