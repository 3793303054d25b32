"""MuseGAN's objective metrics of GAN samples beside the data's, on 4-part Bach chorales.

Trains MidiNet (soprano melody over the chords of the other parts) and MuseGAN (S/A/T/B
phrases) for a fixed wall-clock budget each on the train split of ``bach-chorales``
(piano-roll, 4 tracks, MIDI 36-84, 4 steps per quarter), then generates 4-bar pieces
and reports, beside the same figures for random 4-bar phrases of the test split:

* EB (empty-bar rate), UPC (used pitch classes per bar), QN (qualified-note rate) and
  TD (tonal distance between tracks) of Dong et al. (AAAI 2018), computed by
  :mod:`tunesmith.evaluation.metrics` on the decoded Scores and averaged over pieces;
* :func:`tunesmith.models.gan.diversity` of each set (mode-collapse check).

MidiNet generates the soprano only, so it is compared with the test phrases' soprano,
its notes are the highest activation of each step (as in the paper), and its chords
are those of the test phrases (:func:`~tunesmith.models.midinet.chords_from_frames`).
QN counts notes of at least a 32nd; on a 16th-note grid every note qualifies, so QN is
1 by construction here (MuseGAN's grid had 24 steps per beat).

Usage::

    .venv/bin/python benchmarks/gan_metrics.py --budget 180 --samples 200

Results go to stdout and ``benchmarks/results/gan_metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from tunesmith.evaluation import metrics
from tunesmith.generation.sampling import SamplingControls
from tunesmith.models import registry
from tunesmith.models.gan import diversity
from tunesmith.models.midinet import chords_from_frames
from tunesmith.representations import pianoroll

RESULTS = Path(__file__).resolve().parent / "results" / "gan_metrics.json"
METRICS = {
    "EB": metrics.empty_bar_rate,
    "UPC": metrics.used_pitch_classes_per_bar,
    "QN": metrics.qualified_note_rate,
    "TD": metrics.tonal_distance,
}


def phrases(pieces, steps: int, steps_per_bar: int, n: int, rng) -> torch.Tensor:
    """``n`` random bar-aligned windows of ``steps`` steps from pieces (T_i, K)."""
    usable = [p for p in pieces if len(p) >= steps]
    out = []
    for _ in range(n):
        piece = usable[rng.integers(len(usable))]
        start = rng.integers((len(piece) - steps) // steps_per_bar + 1) * steps_per_bar
        out.append(np.asarray(piece[start : start + steps], dtype=np.float32))
    return torch.as_tensor(np.stack(out))  # (n, steps, K)


def set_metrics(rolls: torch.Tensor, cfg: pianoroll.PianorollConfig, n_pitches: int,
                pitch_low: int, tracks: int | None = None) -> dict:
    """Mean of each MuseGAN metric over the decoded pieces, plus the set's diversity.

    ``tracks`` keeps only the first tracks in the Scores (1: the soprano alone, so that
    EB does not count the silent parts of a melody-only set).
    """
    values = {name: [] for name in METRICS}
    for roll in rolls.numpy():
        grid = roll.reshape(roll.shape[0], -1, n_pitches).transpose(1, 0, 2).astype(np.uint8)
        score = pianoroll.decode(grid[:tracks], cfg)
        for name, metric in METRICS.items():
            values[name].append(metric(score))
    out = {name: float(np.nanmean(v)) if not all(map(math.isnan, v)) else math.nan
           for name, v in values.items()}
    out.update({k: float(v) for k, v in diversity(rolls, n_pitches, pitch_low).items()})
    return out


def train_gan(model, pieces, budget_s: float, batch_size: int, lr: float, seed: int) -> dict:
    """The families' own alternating step on random batches until the budget is spent."""
    from rich.progress import Progress

    from tunesmith.data.batching import collate_frames

    rng = np.random.default_rng(seed)
    optimisers = model.configure_optimizers(lr)
    model.train()
    steps, start, logs = 0, time.perf_counter(), {}
    with Progress(transient=True) as progress:
        task = progress.add_task(model.family, total=budget_s)
        while time.perf_counter() - start < budget_s:
            batch = collate_frames([pieces[i] for i in rng.integers(0, len(pieces), batch_size)])
            logs = model.manual_training_step(batch, optimisers, lambda loss: loss.backward())
            steps += 1
            progress.update(task, completed=time.perf_counter() - start)
    return {"steps": steps, "seconds": time.perf_counter() - start,
            "last_logs": {k: float(v) for k, v in logs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=180, help="training seconds per model")
    parser.add_argument("--samples", type=int, default=200, help="pieces per set")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    from tunesmith.data import prepare

    prepared = prepare("bach-chorales", "pianoroll",
                       {"merge_tracks": False, "pitch_low": 36, "pitch_high": 84}, report=False)
    info = prepared.info
    options = {k: v for k, v in prepared.repr_config.items() if k != "merge_tracks"}
    cfg = pianoroll.PianorollConfig(**options)
    n_pitches, pitch_low, n_tracks = int(info["n_pitches"]), int(info["pitch_low"]), 4
    steps_per_bar, bars = 4 * int(info["steps_per_quarter"]), 4
    steps = bars * steps_per_bar
    train_pieces = [np.asarray(p) for p in prepared.pieces("train")]
    test = phrases(prepared.pieces("test"), steps, steps_per_bar, args.samples, rng)
    soprano_only = test.view(len(test), steps, n_tracks, n_pitches).clone()
    soprano_only[:, :, 1:] = 0
    soprano_only = soprano_only.view(len(test), steps, -1)
    results = {
        "machine": f"{platform.processor() or platform.machine()}, "
                   f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}",
        "data": f"bach-chorales, {len(train_pieces)} train pieces, "
                f"{args.samples} random {bars}-bar test phrases",
        "budget_s_per_model": args.budget,
        "sets": {"data (4 parts)": set_metrics(test, cfg, n_pitches, pitch_low),
                 "data (soprano)": set_metrics(soprano_only, cfg, n_pitches, pitch_low, 1)},
        "training": {},
    }

    controls = SamplingControls(threshold=0.5, seed=args.seed)
    midinet = registry.build("midinet", {"g_dense": 256, "d_dense": 256}, info)
    results["training"]["midinet"] = train_gan(midinet, train_pieces, args.budget,
                                               args.batch_size, args.lr, args.seed)
    chords = torch.stack([chords_from_frames(test[:, b * steps_per_bar:(b + 1) * steps_per_bar],
                                             n_pitches, pitch_low) for b in range(bars)], 1)
    melody_controls = SamplingControls(threshold=0.0, seed=args.seed)  # argmax per step
    generated = midinet.generate(args.samples, steps, melody_controls,
                                 condition={"chords": chords})
    results["sets"]["midinet (soprano)"] = set_metrics(generated, cfg, n_pitches, pitch_low, 1)

    musegan = registry.build("musegan", {"n_bars": bars, "g_channels": 32, "d_channels": 32},
                             info)
    results["training"]["musegan"] = train_gan(musegan, train_pieces, args.budget,
                                               args.batch_size, args.lr, args.seed)
    generated = musegan.generate(args.samples, steps, controls)
    results["sets"]["musegan hybrid (4 parts)"] = set_metrics(generated, cfg, n_pitches, pitch_low)

    columns = ["EB", "UPC", "QN", "TD", "diversity_roll", "diversity_pitch_class"]
    print(f"{'set':28s}" + "".join(f"{c:>22s}" for c in columns))
    for name, row in results["sets"].items():
        print(f"{name:28s}" + "".join(f"{row[c]:22.3f}" for c in columns))
    for generated_set, reference in (("midinet (soprano)", "data (soprano)"),
                                     ("musegan hybrid (4 parts)", "data (4 parts)")):
        g, r = results["sets"][generated_set], results["sets"][reference]
        ratios = {c: g[c] / r[c] if r[c] else float("nan") for c in columns}
        results["sets"][f"ratio {generated_set} / {reference}"] = ratios
        print(f"ratio {generated_set} / {reference}: "
              + ", ".join(f"{c} {v:.3f}" for c, v in ratios.items()))
    for name, training in results["training"].items():
        print(f"{name}: {training['steps']} steps in {training['seconds']:.0f} s")
    print(results["machine"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
