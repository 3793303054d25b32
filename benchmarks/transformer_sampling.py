"""Sampling speed of the token Transformers: key/value cache vs naive recomputation.

For each family ("music-transformer", "gpt-events"), builds a model of the given size over
the REMI vocabulary (untrained weights, which cost the same as trained ones) with a context
of 2048 tokens, so that 512 and 2048 tokens are generated without sliding the window, and
times generating ``--n`` sequences of 512 and 2048 tokens with

* ``generate``: the KV cache, one token through every layer per step;
* ``generate_naive``: a forward pass over the whole prefix for every token (quadratic).

The naive 512-token run is done in full. The naive 2048-token run is done in full with
``--full-naive``; otherwise only its last ``--tail`` tokens are timed (the first
2048 - tail tokens are given as a prime, which the naive sampler does not recompute) and the
report says so: those are the costliest tokens, so the tail rate bounds the full run's
rate from below. Cached and naive samples are checked to be identical for the same seed.
Grammar masks are off for these timings (model cost only); one extra cached 2048-token run
with the grammar on gives its overhead.

    .venv/bin/python benchmarks/transformer_sampling.py
    .venv/bin/python benchmarks/transformer_sampling.py --d-model 128 --layers 2 --full-naive
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from tunesmith.models import registry
from tunesmith.models.sampling import SamplingControls
from tunesmith.representations.events import EventsConfig
from tunesmith.representations.events import info as events_info


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores, "
            f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"1-min load average {load:.1f}")


def timed(fn, *args, **kwargs) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--n", type=int, default=1, help="sequences sampled together")
    parser.add_argument("--tail", type=int, default=128, help="naive 2048: tokens timed")
    parser.add_argument("--full-naive", action="store_true", help="run naive 2048 in full")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--families", nargs="+", default=["music-transformer", "gpt-events"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    info = events_info(EventsConfig(tokenizer="REMI"))
    print(f"machine: {machine()}")
    print(f"model: d_model={args.d_model} layers={args.layers} heads={args.heads} "
          f"d_ff={4 * args.d_model} context=2048, REMI vocabulary {info.vocab_size}, "
          f"{args.n} sequence(s) at a time, float32, no grammar unless said\n")
    controls = SamplingControls(seed=0)
    for family in args.families:
        torch.manual_seed(0)
        model = registry.build(family, dict(
            d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
            d_ff=4 * args.d_model, context=2048, dropout=0.0, constrained=False), info).eval()
        print(f"{family}: {model.n_parameters() / 1e6:.2f} M parameters")
        rates = {}
        for steps in (512, 2048):
            seconds, cached = timed(model.generate, args.n, steps, controls)
            rates[("cached", steps)] = (steps - 1) * args.n / seconds  # BOS is the prime
            print(f"  cached {steps:5d} tokens: {seconds:8.2f} s  "
                  f"{rates[('cached', steps)]:8.1f} tokens/s")
            if steps == 512 or args.full_naive:
                seconds, naive = timed(model.generate_naive, args.n, steps, controls)
                same = torch.equal(naive, cached)
                rates[("naive", steps)] = (steps - 1) * args.n / seconds
                print(f"  naive  {steps:5d} tokens: {seconds:8.2f} s  "
                      f"{rates[('naive', steps)]:8.1f} tokens/s  (same tokens as cached: {same})")
            else:
                prime = cached[:, : steps - args.tail]
                seconds, naive = timed(model.generate_naive, args.n, steps, controls, prime=prime)
                cached_tail = model.generate(args.n, steps, controls, prime=prime)
                same = torch.equal(naive, cached_tail)
                rates[("naive", steps)] = args.tail * args.n / seconds
                print(f"  naive  {steps:5d} tokens: last {args.tail} timed only: {seconds:8.2f} s "
                      f"{rates[('naive', steps)]:8.1f} tokens/s  (same tokens as cached: {same})")
        model.config.constrained = True
        seconds, _ = timed(model.generate, args.n, 2048, controls)
        print(f"  cached  2048 tokens with grammar masks: {seconds:8.2f} s  "
              f"{2047 * args.n / seconds:8.1f} tokens/s")
        cost_512 = 1 / rates[("cached", 512)] * 511
        cost_2048 = 1 / rates[("cached", 2048)] * 2047
        print(f"  cached cost ratio 2048/512 tokens: {cost_2048 / cost_512:.2f} "
              f"(linear = 4, quadratic = 16)")
        for steps in (512, 2048):
            what = "" if steps == 512 or args.full_naive else f" (naive: last {args.tail} only)"
            print(f"  speed-up of the cache at {steps}: "
                  f"{rates[('cached', steps)] / rates[('naive', steps)]:.1f}x{what}")
        print()


if __name__ == "__main__":
    main()
