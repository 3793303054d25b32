"""Preparing and training on a corpus of many MIDI files: throughput, memory, first batch.

Writes a synthetic folder of N MIDI files of realistic sizes (Lakh-like: 1 to 12
tracks, 1.5 to 5 minutes, a few thousand notes, 10-100 KB each; seeded, kept between
runs), then, each step in a fresh child process so that its peak memory is its own:

1. ``prepare``: ``prepare("folder:...", "pianoroll", workers=cores)`` into an empty cache:
   files/s, peak RSS of the parent (``ru_maxrss`` of the process) and of the largest
   worker (``ru_maxrss`` of its children), cache size on disk, shards;
   with ``--reference SRC``, the same step with the tunesmith of ``SRC`` on PYTHONPATH
   (e.g. the main branch's ``src``, whose cache is one ``data.npz``), side by side;
2. ``first-batch``: on the warm cache, seconds from calling ``prepare`` (a cache hit) to
   the first batch of the training loader, and peak RSS;
3. ``train``: ``train("wavenet", ...)`` for one epoch (64-step windows, batch 32, a small
   WaveNet, one thread): seconds to the first training batch (a callback) and for the
   epoch, peak RSS.

Peak RSS is measured exactly by the kernel (``resource.getrusage``, kB on Linux): for the
parent, its own peak; for the workers, the largest peak among its finished children.

Usage: ``.venv/bin/python benchmarks/large_corpus.py [--files 5000 | --full]
[--workdir DIR] [--reference PATH/TO/src] [--no-train]`` (``--full``: 100,000 files).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def write_corpus(folder: Path, n_files: int, seed: int = 0) -> None:
    """``n_files`` seeded MIDI files in ``folder`` (kept: a complete folder is reused)."""
    import numpy as np
    from symusic import Note, Score, Tempo, Track

    done = folder / ".complete"
    if done.is_file() and done.read_text() == f"{n_files} {seed}":
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    tpq = 480
    started = time.monotonic()
    for i in range(n_files):
        score = Score(tpq)
        qpm = float(rng.uniform(70, 160))
        score.tempos.append(Tempo(0, qpm))
        seconds = rng.uniform(90, 300)
        end = int(seconds * qpm / 60 * tpq)
        for t in range(int(min(12, 1 + rng.poisson(3)))):
            density = rng.lognormal(1.0, 0.6)  # notes per second in this track
            n = max(8, int(density * seconds))
            start = np.sort(rng.integers(0, end, n)).astype(np.int32)
            length = rng.choice([tpq // 4, tpq // 2, tpq, 2 * tpq], n).astype(np.int32)
            centre = rng.integers(36, 84)
            pitch = np.clip(centre + rng.integers(-12, 13, n), 21, 108).astype(np.int8)
            velocity = rng.integers(40, 110, n).astype(np.int8)
            drum = bool(rng.random() < 0.1)
            track = Track(f"track{t}", int(rng.integers(0, 128)), drum)
            track.notes = Note.from_numpy(start, length, pitch, velocity)
            score.tracks.append(track)
        score.dump_midi(str(folder / f"song{i:06d}.mid"))
        if (i + 1) % 5000 == 0:
            print(f"  wrote {i + 1} files ({time.monotonic() - started:.0f} s)", flush=True)
    done.write_text(f"{n_files} {seed}")


def peaks_mb() -> dict[str, float]:
    """Peak RSS (MB) of this process and of its largest finished child."""
    return {"parent_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


# ---- steps, each run in its own child process ------------------------------------------


def step_prepare(folder: Path, workers: int) -> dict:
    from tunesmith.data.prepare import prepare

    started = time.monotonic()
    data = prepare(f"folder:{folder}", "pianoroll", workers=workers, progress=False,
                   report=False)
    seconds = time.monotonic() - started
    n_files = sum(1 for p in folder.iterdir() if p.suffix == ".mid")
    shards = data.cache_dir / "shards"
    return {"seconds": seconds, "files": n_files, "files_per_s": n_files / seconds,
            "pieces": len(data), "skipped": len(data.skipped),
            "cache_mb": folder_mb(data.cache_dir),
            "shards": len(list(shards.glob("*.json"))) if shards.is_dir() else 0,
            "steps": _steps(data), **peaks_mb()}


def _steps(data) -> int:
    """Steps of all pieces, from the cache's index where there is one: reading every
    piece through the memory maps would put the whole cache in this process's RSS
    (file pages, which the kernel may drop, but ru_maxrss counts them)."""
    pieces = data.pieces()
    lengths = getattr(pieces, "lengths", None)
    return int(sum(lengths()) if lengths else sum(len(p) for p in pieces))


def step_first_batch(folder: Path, workers: int) -> dict:
    from tunesmith.data.prepare import prepare
    from tunesmith.training.trainer import TrainSettings, make_loaders

    started = time.monotonic()
    data = prepare(f"folder:{folder}", "pianoroll", workers=workers, progress=False,
                   report=False)
    loaded = time.monotonic() - started
    loader, _ = make_loaders(data, TrainSettings(batch_size=32, window=64))
    batch = next(iter(loader))
    return {"load_s": loaded, "first_batch_s": time.monotonic() - started,
            "batch_frames": list(batch["frames"].shape), **peaks_mb()}


def step_train(folder: Path, workers: int, out: Path) -> dict:
    import pytorch_lightning as pl

    from tunesmith.training.trainer import train

    class FirstBatch(pl.Callback):
        at: float | None = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if self.at is None:
                self.at = time.monotonic()

    first = FirstBatch()
    started = time.monotonic()
    train("wavenet", {"corpus": f"folder:{folder}", "workers": workers},
          {"levels": 4, "channels": 16, "skip_channels": 16}, out, overwrite=True,
          callbacks=[first], epochs=1, batch_size=32, window=64, threads=1,
          accelerator="cpu", devices=1, progress_bar=False, loggers=False,
          early_stopping_patience=0)
    total = time.monotonic() - started
    history = json.loads((out / "history.json").read_text())["history"]
    return {"first_train_batch_s": first.at - started, "epoch_s": total,
            "steps": history[-1]["step"], **peaks_mb()}


def child(step: str, folder: Path, cache: Path, workers: int, src: Path = SRC,
          out: Path | None = None) -> dict:
    """Run one step in a fresh Python process with ``src`` on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(src), "TUNESMITH_CACHE": str(cache),
           "OMP_NUM_THREADS": "1"}
    args = [sys.executable, __file__, "--step", step, "--folder", str(folder),
            "--workers", str(workers)] + (["--out", str(out)] if out else [])
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"step {step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--full", action="store_true", help="100,000 files")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tunesmith-large-corpus"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reference", type=Path, help="a tunesmith src folder to compare")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:  # one step, in a child process: print its figures as JSON
        steps = {"prepare": lambda: step_prepare(args.folder, args.workers),
                 "first-batch": lambda: step_first_batch(args.folder, args.workers),
                 "train": lambda: step_train(args.folder, args.workers, args.out)}
        print(json.dumps(steps[args.step]()))
        return

    n_files = 100_000 if args.full else args.files
    folder = args.workdir / f"midi-{n_files}"
    started = time.monotonic()
    write_corpus(folder, n_files)
    sizes = [p.stat().st_size for p in folder.iterdir() if p.suffix == ".mid"]
    print(f"{n_files} MIDI files, {sum(sizes) / 2**20:.0f} MB (median "
          f"{sorted(sizes)[len(sizes) // 2] / 1024:.0f} KB) in {folder} "
          f"({time.monotonic() - started:.0f} s)")
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), Python "
          f"{platform.python_version()}, torch {torch.__version__}; workers={args.workers}")
    results = {}
    runs = [("sharded", SRC)] + ([("reference", args.reference.resolve())]
                                 if args.reference else [])
    for label, src in runs:
        cache = args.workdir / f"cache-{label}"
        shutil.rmtree(cache, ignore_errors=True)
        results[label] = child("prepare", folder, cache, args.workers, src)
        r = results[label]
        print(f"prepare ({label}): {r['seconds']:.1f} s, {r['files_per_s']:.0f} files/s, "
              f"{r['pieces']} pieces ({r['skipped']} skipped), {r['steps']} steps; parent "
              f"peak RSS {r['parent_peak_rss_mb']:.0f} MB, largest worker "
              f"{r['worker_peak_rss_mb']:.0f} MB; cache {r['cache_mb']:.0f} MB "
              f"in {r['shards']} shard(s)")
    if args.reference:
        ratio = results["sharded"]["files_per_s"] / results["reference"]["files_per_s"]
        print(f"throughput sharded / reference: {ratio:.2f}")
    cache = args.workdir / "cache-sharded"
    for label, src in runs:
        r = child("first-batch", folder, args.workdir / f"cache-{label}", args.workers, src)
        print(f"warm cache ({label}): cache read in {r['load_s']:.2f} s, first loader batch "
              f"{r['batch_frames']} at {r['first_batch_s']:.2f} s; peak RSS "
              f"{r['parent_peak_rss_mb']:.0f} MB")
    if not args.no_train:
        r = child("train", folder, cache, args.workers, out=args.workdir / "run")
        print(f"train one epoch (warm cache): first training batch at "
              f"{r['first_train_batch_s']:.1f} s, epoch of {r['steps']} steps done at "
              f"{r['epoch_s']:.1f} s; peak RSS {r['parent_peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
