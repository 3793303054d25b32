"""Long pieces within memory (issue 17, item 2): every ``bench nll`` family trains and scores
a synthetic benchmark of 5,000+ frames per piece; peak RSS per family.

    python benchmarks/long_pieces.py                       # 5,000 frames, every family
    python benchmarks/long_pieces.py --frames 6000 --families tcn-nade frame-transformer-nade

The ``.mat`` (benchmark layout: train/valid/test cells of (T, 88) rolls) is written to a
temporary folder: ``--train`` / ``--valid`` / ``--test`` pieces of ``--frames`` frames each,
chords of 3–4 keys in 48–84 held for 1–8 frames (something to learn; a classical piano
movement's texture is denser, which costs no memory here). Each family runs in its own
process (so its peak RSS is its own): ``bench nll`` with the settings of its JSB run below,
``--window`` frames per training window (the memory bound of training), one epoch, then
valid and test scored whole, exactly, by the protocol
(:func:`~tunesmith.models.likelihood.score_split`: a piece of 5,000 frames is scored alone).
The child reports its peak RSS (``getrusage``), the figures and the scored frames, and
checks that the test figure equals a whole-piece, one-piece-at-a-time re-scoring of the
checkpoint (same frames, same protocol).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: family -> (registered model, options): the JSB hand-tuned settings of benchmarks/nll.py
#: (the biaxial's: its JSB run in docs/benchmarks.md)
FAMILIES: dict[str, tuple[str, dict]] = {
    "lstm": ("lstm", {}),
    "gru": ("gru", {}),
    "tcn": ("tcn", {"kernel_size": 3, "levels": 2, "dropout": 0.5}),
    "lstm-nade": ("lstm-nade", {"hidden": 300, "dropout": 0.3}),
    "tcn-nade": ("tcn", {"kernel_size": 3, "levels": 2, "dropout": 0.5, "head": "nade"}),
    "frame-transformer-nade": ("frame-transformer", {"head": "nade", "d_model": 96,
                                                     "n_layers": 2, "d_ff": 384,
                                                     "dropout": 0.5}),
    "biaxial": ("biaxial", {"time_hidden": 64, "note_hidden": 32, "active_low": 20,
                            "active_high": 78, "dropout": 0.3}),
}


def long_piece(frames: int, rng: np.random.Generator) -> np.ndarray:
    roll = np.zeros((frames, 88), dtype=np.float64)
    t = 0
    while t < frames:
        hold = int(rng.integers(1, 9))
        keys = rng.choice(np.arange(48 - 21, 85 - 21), size=int(rng.integers(3, 5)),
                          replace=False)
        roll[t : t + hold, keys] = 1.0
        t += hold
    return roll


def write_mat(path: Path, frames: int, counts: dict[str, int], seed: int = 0) -> Path:
    import scipy.io

    rng = np.random.default_rng(seed)
    cells = {}
    for split, n in counts.items():
        cell = np.empty((1, n), dtype=object)
        for i in range(n):
            cell[0, i] = long_piece(frames + int(rng.integers(0, 200)), rng)
        cells[f"{split}data"] = cell
    scipy.io.savemat(path, cells)
    return path


def run_one(family: str, mat: Path, out: Path, window: int, batch_size: int) -> dict:
    """Train and score one family (in this process); its peak RSS and figures."""
    import torch

    from tunesmith.data.polyphonic import load_polyphonic_mat
    from tunesmith.models.likelihood import score_split
    from tunesmith.training.benchmark import bench_nll
    from tunesmith.training.checkpoint import load_checkpoint

    model_name, options = FAMILIES[family]
    started = time.perf_counter()
    result = bench_nll(model_name, str(mat), dict(options), out, epochs=1, batch_size=batch_size,
                       lr=1e-3, window=window, threads=1, progress_bar=False, loggers=False,
                       print_table=False, command=f"benchmarks/long_pieces.py ({family})")
    minutes = (time.perf_counter() - started) / 60
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    test = load_polyphonic_mat(mat)["test"]
    model, _ = load_checkpoint(out)
    torch.set_num_threads(1)
    alone = score_split(model, test, batch_size=1, max_frames=None)  # each piece whole, alone
    return {
        "family": family, "peak_rss_mb": round(peak_mb, 1), "minutes": round(minutes, 2),
        "test_nll": result["test_nll"], "valid_nll": result["valid_nll"],
        "test_nll_one_piece_at_a_time": alone,
        "test_frames_scored": sum(len(p) - 1 for p in test),
        "longest_test_piece": max(len(p) for p in test), "parameters": result["parameters"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5000, help="frames per piece (at least)")
    parser.add_argument("--train", type=int, default=4)
    parser.add_argument("--valid", type=int, default=2)
    parser.add_argument("--test", type=int, default=2)
    parser.add_argument("--window", type=int, default=512, help="training window, frames")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--mat", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        row = run_one(args.one, args.mat, args.out, args.window, args.batch_size)
        print("RESULT " + json.dumps(row))
        return

    from rich.console import Console
    from rich.table import Table

    rows = []
    with tempfile.TemporaryDirectory(prefix="long-pieces-") as folder:
        mat = write_mat(Path(folder) / "Long.mat", args.frames,
                        {"train": args.train, "valid": args.valid, "test": args.test})
        for family in args.families:
            command = [sys.executable, __file__, "--one", family, "--mat", str(mat),
                       "--out", str(Path(folder) / family), "--window", str(args.window),
                       "--batch-size", str(args.batch_size)]
            done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
            if done.returncode or not lines:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                rows.append({"family": family, "error": " | ".join(tail)})
                print(f"{family}: failed ({done.returncode}): {' | '.join(tail)}")
                continue
            rows.append(json.loads(lines[-1][len("RESULT "):]))
            print(json.dumps(rows[-1]))
    table = Table(title=f"bench nll on pieces of {args.frames}+ frames: peak RSS per family "
                        f"(train window {args.window}, one epoch, valid and test scored whole)")
    for column in ("family", "params", "peak RSS (MB)", "test NLL", "same, piece by piece",
                   "frames scored", "minutes"):
        table.add_column(column)
    for row in rows:
        if "error" in row:
            table.add_row(row["family"], "", "failed", row["error"][:60], "", "", "")
            continue
        table.add_row(row["family"], f"{row['parameters']:,}", f"{row['peak_rss_mb']:,.0f}",
                      f"{row['test_nll']:.4f}", f"{row['test_nll_one_piece_at_a_time']:.4f}",
                      f"{row['test_frames_scored']:,}", f"{row['minutes']:.1f}")
    Console(width=160).print(table)
    if args.json is not None:
        args.json.write_text(json.dumps({
            "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "frames": args.frames, "pieces": [args.train, args.valid, args.test],
            "window": args.window, "batch_size": args.batch_size, "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(), "rows": rows,
        }, indent=2) + "\n")
    if any("error" in row for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
