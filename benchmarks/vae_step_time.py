"""Seconds per MusicVAE training step with and without flushing denormal floats to zero.

The LSTM gradients of long phrases underflow into denormal floats, which x86 CPUs process
far more slowly than normal ones: a 16-bar training step of the benchmark's model took
12–16 s instead of ~1.5 s. ``torch.set_flush_denormal(True)`` (what
``benchmarks/vae_reconstruction.py`` and ``tunesmith.evaluation.likelihood`` set) avoids
it. This times the same steps (same seed, same Essen folk batches, the sizes of
``vae_reconstruction.py``) both ways in one run and prints the ratio.

Usage::

    .venv/bin/python benchmarks/vae_step_time.py --steps 3

Each configuration trains ``--warmup`` untimed steps then ``--steps`` timed ones, from the
same initial weights; the figure is the median timed step.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from vae_reconstruction import phrase_windows  # benchmarks/ is on sys.path when run

from tunesmith.models.music_vae import MusicVAE, MusicVAEConfig


def step_seconds(config: MusicVAEConfig, data: np.ndarray, batch_size: int, warmup: int,
                 steps: int, flush: bool, seed: int) -> float:
    """Median seconds of one Adam step (loss, backward, clip, update) after warm-up."""
    torch.set_flush_denormal(flush)
    torch.manual_seed(seed)
    model = MusicVAE(config)
    optimiser = model.configure_optimizers(1e-3)
    model.train()
    rng = np.random.default_rng(seed)
    times = []
    for i in range(warmup + steps):
        events = torch.as_tensor(data[rng.integers(0, len(data), batch_size)])  # (B, T)
        start = time.perf_counter()
        out = model.loss({"events": events})
        optimiser.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    torch.set_flush_denormal(False)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, nargs="+", default=[2, 16])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from tunesmith.data import prepare

    prepared = prepare("essen-folk", "melody", {}, limit=2000, report=False)
    steps_per_bar = prepared.info.steps_per_bar
    pieces = [p for p, m in zip(prepared.pieces("train"), prepared.meta("train"), strict=True)
              if m.get("steps_per_bar") == steps_per_bar]
    print(f"{'model':22s} {'denormals kept':>15s} {'flushed':>9s} {'ratio':>7s}")
    for bars in args.bars:
        data = phrase_windows(pieces, bars * steps_per_bar, steps_per_bar, 1)
        for decoder in ("hierarchical", "flat"):
            config = MusicVAEConfig(
                decoder=decoder, bars=bars, steps_per_bar=steps_per_bar,
                vocab_size=prepared.info.vocab_size, input_embedding=32,
                encoder_hidden=128, latent_dim=32, conductor_hidden=128, conductor_output=64,
                decoder_hidden=128,
            )
            kept, flushed = (step_seconds(config, data, args.batch_size, args.warmup,
                                          args.steps, flush, args.seed)
                             for flush in (False, True))
            print(f"{bars:2d}-bar {decoder:15s} {kept:13.3f} s {flushed:7.3f} s "
                  f"{kept / flushed:6.1f}×", flush=True)
    print(f"batch {args.batch_size}, median of {args.steps} steps after {args.warmup} warm-up; "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
          f"thread(s), torch {torch.__version__}")


if __name__ == "__main__":
    main()
