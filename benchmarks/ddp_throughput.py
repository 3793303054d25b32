"""The same training job on 1 and on 2 processes (Lightning DDP, gloo on CPU): throughput.

Runs ``tunesmith train`` from the command line, as a user would, on the JSB Chorales
benchmark rolls (229 training pieces): a small WaveNet, 32-step windows, batch 8 per
process, ``--epochs E``, one torch thread a process, with ``--devices 1`` and then
``--devices 2 --strategy ddp`` (two processes: each takes half of every epoch's batches,
so an epoch is half the optimiser steps, of twice the pieces). Reports per run the
training time the run itself records (``config.json``: ``wall_time_s``, launch and data
preparation excluded), the whole command's wall time, pieces per second and the ratio.

On a machine with fewer free cores than processes, two processes are no faster: the
figure says what DDP costs or gains here, not what it gains on GPUs.

Usage: ``.venv/bin/python benchmarks/ddp_throughput.py [--epochs 2] [--path DIR]``
(``--path``: the folder holding JSB_Chorales.mat, as for ``tunesmith data``).
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

SRC = Path(__file__).resolve().parents[1] / "src"


def run(devices: int, epochs: int, path: str | None, out: Path, cache: Path) -> dict:
    args = [sys.executable, "-m", "tunesmith", "train", "--model", "wavenet", "--data", "jsb",
            "--set", "model.levels=4", "--set", "model.channels=16",
            "--set", "model.skip_channels=16", "--set", "train.batch_size=8",
            "--set", "train.window=32", "--set", "train.progress_bar=false",
            "--set", "train.loggers=false", "--set", "train.early_stopping_patience=0",
            "--accelerator", "cpu", "--devices", str(devices), "--threads", "1",
            "--epochs", str(epochs), "--out", str(out), "--overwrite"]
    if path:
        args += ["--path", path]
    if devices > 1:
        args += ["--strategy", "ddp"]
    env = {**os.environ, "PYTHONPATH": str(SRC), "TUNESMITH_CACHE": str(cache),
           "OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode:
        raise SystemExit(f"--devices {devices} failed:\n{done.stderr[-3000:]}")
    config = json.loads((out / "config.json").read_text())
    training = config["training"].get("run", config["training"])
    pieces = config["split"]["counts"]["train"] * epochs
    return {"devices": devices, "train_s": training["wall_time_s"], "wall_s": wall,
            "steps": training["global_step"], "pieces_per_s": pieces / training["wall_time_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--path", help="folder of JSB_Chorales.mat")
    args = parser.parse_args()
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), load average "
          f"{os.getloadavg()[0]:.1f}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run(1, 1, args.path, tmp / "warm", tmp / "cache")  # prepare the data once, untimed
        results = [run(d, args.epochs, args.path, tmp / f"run{d}", tmp / "cache")
                   for d in (1, 2)]
    for r in results:
        print(f"--devices {r['devices']}: {r['steps']} steps, training {r['train_s']:.1f} s "
              f"({r['pieces_per_s']:.1f} pieces/s), whole command {r['wall_s']:.1f} s")
    print(f"2 processes / 1: {results[1]['pieces_per_s'] / results[0]['pieces_per_s']:.2f}x "
          f"pieces/s (load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
