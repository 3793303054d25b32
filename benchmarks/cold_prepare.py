"""Cold ``tunesmith data prepare`` of a reference tree against this one, side by side.

For each corpus, runs ``python -m tunesmith data prepare CORPUS --repr REPR`` once with
the reference tree's sources (``--old``, by default /work/main/src) and once with this
tree's, each with an empty ``TUNESMITH_CACHE``, one after the other (the order alternates
from corpus to corpus, so a change of machine load does not always favour one side).
Reports per run: wall time, CPU seconds of the whole process tree (user + system, the
worker processes and abc2midi included: ``os.wait4`` of the command, whose children are
all waited for), peak RSS of the largest process, and the 1-minute load average before
and after. Then compares the two prepared caches piece by piece: same ids, same arrays
(byte for byte), same facts (notes, quarters, seconds, key, bar length); the ids that
differ are written to the JSON result for ``benchmarks/abc_readers.py --ids`` to explain.

Usage: ``.venv/bin/python benchmarks/cold_prepare.py [--old /work/main/src]
[--corpus essen-folk:melody bach-chorales:pianoroll] [--json benchmarks/results/cold_prepare.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1] / "src"


def run_prepare(src: Path, corpus: str, representation: str, cache: Path) -> dict:
    """One cold prepare; wall, CPU (tree), peak RSS, load averages, the cache folder."""
    env = {**os.environ, "PYTHONPATH": str(src), "TUNESMITH_CACHE": str(cache)}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "tunesmith", "data", "prepare", corpus, "--repr",
         representation], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"prepare {corpus} with {src} failed:\n{output[-2000:]}")
    folders = sorted((cache / "prepared").glob("*/meta.json"))
    return {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "user_s": round(usage.ru_utime, 1), "system_s": round(usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "load_before": round(load_before, 1),
            "load_after": round(os.getloadavg()[0], 1),
            "cache": str(folders[0].parent) if folders else None}


def compare(old_dir: str, new_dir: str) -> dict:
    """Piece-by-piece comparison of two prepared caches."""
    sys.path.insert(0, str(HERE))
    from tunesmith.data.prepare import load_prepared

    old, new = load_prepared(old_dir), load_prepared(new_dir)
    old_ids, new_ids = old.ids(), new.ids()
    old_at = {piece: i for i, piece in enumerate(old_ids)}
    new_at = {piece: i for i, piece in enumerate(new_ids)}
    old_pieces, new_pieces = old.pieces(), new.pieces()
    old_meta, new_meta = old.meta(), new.meta()
    same_arrays, same_facts, differ = 0, 0, []
    for piece in sorted(set(old_at) & set(new_at)):
        a, b = np.asarray(old_pieces[old_at[piece]]), np.asarray(new_pieces[new_at[piece]])
        arrays = a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
        fa = {k: v for k, v in old_meta[old_at[piece]].items() if k not in ("id", "split")}
        fb = {k: v for k, v in new_meta[new_at[piece]].items() if k not in ("id", "split")}
        same_arrays += arrays
        same_facts += fa == fb
        if not arrays or fa != fb:
            differ.append(piece)
    return {"old_pieces": len(old_ids), "new_pieces": len(new_ids),
            "only_old": sorted(set(old_at) - set(new_at)),
            "only_new": sorted(set(new_at) - set(old_at)),
            "same_arrays": same_arrays, "same_facts": same_facts, "differ": differ}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, default=Path("/work/main/src"),
                        help="the reference tree's src folder")
    parser.add_argument("--corpus", nargs="+",
                        default=["essen-folk:melody", "bach-chorales:pianoroll"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), python "
          f"{platform.python_version()}; reference {args.old}, this tree {HERE}")
    results = []
    for index, spec in enumerate(args.corpus):
        corpus, _, representation = spec.partition(":")
        order = [("old", args.old), ("new", HERE)]
        if index % 2:
            order.reverse()
        with tempfile.TemporaryDirectory(prefix="cold-prepare-") as scratch:
            runs = {}
            for side, src in order:
                runs[side] = run_prepare(src, corpus, representation or "pianoroll",
                                         Path(scratch) / side)
                print(f"{corpus} ({representation}) {side}: {runs[side]}", flush=True)
            same = compare(runs["old"]["cache"], runs["new"]["cache"])
        result = {"corpus": corpus, "representation": representation, **runs,
                  "speed-up (wall)": round(runs["old"]["wall_s"] / runs["new"]["wall_s"], 1),
                  "speed-up (CPU)": round(runs["old"]["cpu_s"] / runs["new"]["cpu_s"], 1),
                  "comparison": same}
        results.append(result)
        print(f"  {same['old_pieces']} vs {same['new_pieces']} pieces; identical arrays "
              f"{same['same_arrays']}, identical facts {same['same_facts']}; differing "
              f"{len(same['differ'])}; only in old {len(same['only_old'])}, only in new "
              f"{len(same['only_new'])}; speed-up {result['speed-up (wall)']}x wall, "
              f"{result['speed-up (CPU)']}x CPU", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
