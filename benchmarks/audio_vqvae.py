"""VQ-VAE at ≤ 3 kbps on held-out rendered chorales against μ-law codecs of the same rate.

Trains a one-level VQ-VAE (hop 64, 512 codes: 250 codes/s × 9 bits = 2,250 bits/s) on
``rendered:bach-chorales`` at 16 kHz through the one trainer, then scores the first
``--eval-seconds`` of every test chorale: log-mel distance, multi-resolution STFT
distance and SI-SDR of the reconstruction, against an 8-bit μ-law codec at the sample
rate 2,250 bits/s allows (281 Hz) and a 4-bit μ-law codec (562 Hz), each resampled
with soxr and back; and the codebook's usage and perplexity on the test codes.

Usage::

    python benchmarks/audio_vqvae.py train --minutes 15 --out /tmp/avq
    python benchmarks/audio_vqvae.py eval --out /tmp/avq
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from pathlib import Path

import numpy as np
import torch

from tunesmith.data.audio import prepare_audio
from tunesmith.evaluation.audio import (
    codebook_stats,
    log_mel_distance,
    mu_law_codec,
    multi_resolution_stft_distance,
    si_sdr,
)

OPTIONS = {"strides": [4, 4, 4], "codebook_size": 512, "channels": 64, "code_dim": 64,
           "lookup_dim": 16, "kmeans_init_rows": 4096, "usage_window": 50, "restart_threshold": 0.0}


def data(seconds: float):
    return prepare_audio("rendered:bach-chorales", 16000, max_seconds=seconds, progress=False,
                         report=False)


def train(args) -> None:
    from tunesmith.training.audio import train_audio

    train_audio("vq-vae", data(args.seconds), OPTIONS, Path(args.out) / "vq-vae",
                overwrite=True, window=8000, batch_size=8, epochs=None, max_time=args.minutes,
                lr=2e-3, lr_schedule="constant", threads=1, limit_val_batches=20,
                early_stopping_patience=0, progress_bar=False, loggers=False)


def evaluate(args) -> None:
    from tunesmith.training.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    prepared = data(args.seconds)
    model, meta = load_checkpoint(Path(args.out) / "vq-vae")
    rate, bitrate = prepared.sample_rate, model.config.bitrate
    n = int(args.eval_seconds * rate)
    systems = {f"VQ-VAE ({bitrate:.0f} bits/s)": None,
               f"mu-law 8-bit at {math.floor(bitrate / 8)} Hz": (math.floor(bitrate / 8), 8),
               f"mu-law 4-bit at {math.floor(bitrate / 4)} Hz": (math.floor(bitrate / 4), 4)}
    scores = {name: [] for name in systems}
    codes = []
    for i in prepared.indices("test"):
        target = prepared.audio(i)[:n]
        for name, codec in systems.items():
            if codec is None:
                with torch.no_grad():
                    level = model.encode(torch.tensor(target)[None])
                    codes.append(level[0].reshape(-1).numpy())
                    estimate = model.decode(level, len(target))[0].numpy()
            else:
                estimate = mu_law_codec(target, rate, *codec)
            scores[name].append((log_mel_distance(estimate, target, rate),
                                 multi_resolution_stft_distance(estimate, target),
                                 si_sdr(estimate, target)))
    table = {}
    for name, rows in scores.items():
        mean = np.nanmean(np.array(rows), axis=0)
        table[name] = {"log-mel distance": round(float(mean[0]), 3),
                       "MR-STFT distance": round(float(mean[1]), 3),
                       "SI-SDR (dB)": round(float(mean[2]), 2)}
    stats = codebook_stats(np.concatenate(codes), model.config.codebook_size)
    run = meta["training"].get("run", meta["training"])
    print(json.dumps({"test pieces": len(prepared.indices("test")),
                      "seconds each": args.eval_seconds, "systems": table,
                      "codes used on test": round(stats["usage"], 3),
                      "code perplexity on test": round(stats["perplexity"], 1),
                      "training steps": run.get("global_step"),
                      "training minutes": round(run.get("wall_time_s", 0) / 60, 1),
                      "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread"},
                     indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("--minutes", type=float, default=15)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--out", default="/tmp/audio-vqvae-bench")
    p = sub.add_parser("eval")
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--eval-seconds", type=float, default=4)
    p.add_argument("--out", default="/tmp/audio-vqvae-bench")
    args = parser.parse_args()
    {"train": train, "eval": evaluate}[args.command](args)


if __name__ == "__main__":
    main()
