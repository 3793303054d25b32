"""Generation speed of the piano-roll WaveNet: cached (Fast WaveNet) vs naive sampling.

Builds the demo-sized model (registry "wavenet" with its defaults, on 4-part chorales:
4 steps per quarter, MIDI 36-84 -> K = 4 x 49 = 196 keys; untrained weights, which cost
the same as trained ones), and times generating 1 and 4 minutes of music at 100 quarter
notes per minute (steps = minutes x 100 x 4) with

* ``generate``: per-layer ring buffers, one time step of every layer per step
  (Paine et al. 2016, "Fast WaveNet generation algorithm");
* ``generate_naive``: a forward pass over the whole prefix at every step (quadratic);
* ``generate_naive(window=receptive field)``: a forward pass over the last R frames at
  every step (the usual sliding-window sampler, linear but R times the work).

The full-prefix sampler is run in full when its projected time (16 x the 1-minute time,
the quadratic bound) is under ``--naive-limit-s``; otherwise only its last ``--tail``
steps of the 4-minute piece are timed (the earlier steps are given as a prime, which the
naive sampler skips), and the report says so. Samples of the cached and naive samplers
are checked to be identical for the same seed.

    .venv/bin/python benchmarks/generation_speed.py                 # 2 threads
    .venv/bin/python benchmarks/generation_speed.py --threads 1 2   # both
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from tunesmith.models import registry
from tunesmith.models.sampling import SamplingControls
from tunesmith.models.wavenet import music_seconds, steps_for_minutes
from tunesmith.representations import pianoroll

QPM = 100.0  # quarter notes per minute
STEPS_PER_QUARTER = 4
#: 4-part chorales, MIDI 36..84 per part (what the demo prepares)
DATA_INFO = pianoroll.info(pianoroll.PianorollConfig(
    resolution=STEPS_PER_QUARTER, pitch_low=36, pitch_high=84,
    track_names=["Soprano", "Alto", "Tenor", "Bass"]))


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.node()} | {cpu} | {os.cpu_count()} logical CPUs | load avg {load} | "
            f"Python {platform.python_version()} | torch {torch.__version__}")


def timed(fn, repeats: int = 1) -> tuple[float, float, torch.Tensor]:
    """Median wall time and median process CPU time over ``repeats`` runs, last result.

    On a shared machine the wall time includes waiting for a core; the CPU time (all
    threads of this process) does not, so both are printed.
    """
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def run(threads: int, n: int, naive_limit_s: float, tail: int, repeats: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = registry.build("wavenet", {}, DATA_INFO).eval()
    c = model.config
    controls = SamplingControls(seed=0, max_notes_per_step=1)  # chorale voices: 1 note each
    print(f"\n== torch.set_num_threads({threads}) -> {torch.get_num_threads()} threads; "
          f"batch n = {n}")
    print(f"model: wavenet block={c.block} kernel={c.kernel_size} dilations={c.layer_dilations()} "
          f"channels={c.channels} skip={c.skip_channels} K={c.keys}; "
          f"{model.n_parameters():,} parameters; receptive field {model.receptive_field} steps "
          f"= {model.receptive_field / STEPS_PER_QUARTER:g} quarters")
    model.generate(n, 50, controls)  # warm-up (allocator, first-call costs)

    rows = {}
    for minutes in (1, 4):
        steps = steps_for_minutes(minutes, STEPS_PER_QUARTER, QPM)
        cached_s, cached_cpu, cached = timed(lambda s=steps: model.generate(n, s, controls),
                                             repeats)
        window_s, _, windowed = timed(
            lambda s=steps: model.generate_naive(n, s, controls, window=model.receptive_field))
        rows[minutes] = {"steps": steps, "music_s": music_seconds(steps, STEPS_PER_QUARTER, QPM),
                         "cached_s": cached_s, "cached_cpu": cached_cpu, "window_s": window_s,
                         "cached": cached, "same_window": torch.equal(cached, windowed)}

    one, four = rows[1], rows[4]
    naive_1_s, _, naive_1 = timed(lambda: model.generate_naive(n, one["steps"], controls))
    one["naive_s"], one["same_naive"] = naive_1_s, torch.equal(naive_1, one["cached"])
    projected = 16 * naive_1_s  # quadratic bound for 4x the steps
    if projected <= naive_limit_s:
        naive_4_s, _, naive_4 = timed(lambda: model.generate_naive(n, four["steps"], controls))
        four["naive_s"], four["same_naive"] = naive_4_s, torch.equal(naive_4, four["cached"])
        four["naive_note"] = "run in full"
    else:  # time only the last `tail` steps: the earlier ones are given as a prime (skipped)
        prime = four["cached"][:, : four["steps"] - tail]
        tail_s, _, naive_tail = timed(
            lambda: model.generate_naive(n, four["steps"], controls, prime=prime))
        four["naive_tail"] = (tail, tail_s)
        cached_tail = model.generate(n, four["steps"], controls, prime=prime)  # same draws
        four["same_naive"] = torch.equal(naive_tail, cached_tail)
        four["naive_note"] = (f"NOT run in full (projected up to {projected:.0f} s > "
                              f"{naive_limit_s:.0f} s): only its last {tail} steps were timed")

    print(f"{'music':>6} {'steps':>6} | {'cached s':>8} {'cpu s':>6} {'steps/s':>7} "
          f"{'x real':>6} | {'window s':>8} {'speed-up':>8} | {'naive s':>8} {'speed-up':>8}")
    for minutes, row in rows.items():
        naive = (f"{row['naive_s']:8.2f} {row['naive_s'] / row['cached_s']:7.1f}x"
                 if "naive_s" in row else f"{'(tail)':>8} {'':>8}")
        print(f"{minutes:>4}min {row['steps']:>6} | {row['cached_s']:8.2f} "
              f"{row['cached_cpu']:6.2f} {row['steps'] / row['cached_s']:7.0f} "
              f"{row['music_s'] * n / row['cached_s']:5.0f}x | {row['window_s']:8.2f} "
              f"{row['window_s'] / row['cached_s']:7.1f}x | {naive}")
    print(f"cached 4-min / 1-min wall-time ratio: {four['cached_s'] / one['cached_s']:.2f} "
          f"(linear = 4.00)")
    print(f"naive (full prefix), 4 min: {four['naive_note']}")
    if "naive_tail" in four:
        tail, tail_s = four["naive_tail"]
        cached_step = four["cached_s"] / four["steps"]
        print(f"  its last {tail} steps (t = {four['steps'] - tail}..{four['steps'] - 1}): "
              f"{tail_s:.2f} s = {tail_s / tail * 1e3:.1f} ms/step vs cached "
              f"{cached_step * 1e3:.2f} ms/step -> {tail_s / tail / cached_step:.0f}x")
    print(f"music-seconds per wall-second (cached, {n} sequence(s) together): "
          f"1 min {one['music_s'] * n / one['cached_s']:.0f}x, "
          f"4 min {four['music_s'] * n / four['cached_s']:.0f}x real time (target >= 100x); "
          f"per CPU-second of this process: {four['music_s'] * n / four['cached_cpu']:.0f}x")
    print("identical samples for one seed: cached = window "
          f"{one['same_window'] and four['same_window']}, cached = full prefix "
          f"{one['same_naive'] and four['same_naive']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2],
                        help="torch threads; one section per value (default 2)")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 4],
                        help="sequences generated together (default: 1 and 4)")
    parser.add_argument("--naive-limit-s", type=float, default=180.0,
                        help="run the full-prefix naive sampler on 4 min only below this")
    parser.add_argument("--tail", type=int, default=200,
                        help="steps of the 4-min naive run timed when it is not run in full")
    parser.add_argument("--repeats", type=int, default=3, help="cached runs (median)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"music: {QPM:g} qpm, {STEPS_PER_QUARTER} steps per quarter -> "
          f"{QPM * STEPS_PER_QUARTER / 60:.2f} steps per second of music")
    for threads in args.threads:
        for n in args.n:
            run(threads, n, args.naive_limit_s, args.tail, args.repeats)
    print(f"\nmachine at the end: load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
