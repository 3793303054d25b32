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
    .venv/bin/python benchmarks/gan_metrics.py --budget 420 840 --batch-size 16 --plot

``--budget`` is training seconds per model, one value for both or MidiNet's then MuseGAN's.
A step is one discriminator update (MidiNet also updates G every step; MuseGAN every
``n_critic`` = 5 steps). The metrics of the generated set are also taken at a quarter,
half and three quarters of each budget (``progress`` in the JSON; that time is not counted
in the budget). Results go to stdout and ``benchmarks/results/gan_metrics.json``; with
``--plot``, MuseGAN phrases beside data phrases to ``benchmarks/results/musegan_samples.png``.
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
from tunesmith.models import registry
from tunesmith.models.gan import diversity
from tunesmith.models.midinet import chords_from_frames
from tunesmith.models.sampling import SamplingControls
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


def plot_phrases(data: torch.Tensor, generated: torch.Tensor, n_tracks: int, n_pitches: int,
                 steps_per_bar: int, path: Path) -> None:
    """Data phrases (top row) and generated ones (bottom), (n, T, tracks·P) 0/1 each: one
    colour per track (S red, A orange, T green, B blue), dotted lines at bar lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["white", "tab:red", "tab:orange", "tab:green", "tab:blue"][
        : n_tracks + 1])
    n = len(data)
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 5), squeeze=False)
    for row, (label, rolls) in enumerate((("data", data), ("MuseGAN", generated))):
        for col, roll in enumerate(rolls.numpy()):
            grid = roll.reshape(len(roll), n_tracks, n_pitches)  # (T, tracks, P)
            image = np.zeros((n_pitches, len(roll)))
            for track in range(n_tracks - 1, -1, -1):  # the soprano drawn last, on top
                image[grid[:, track].T > 0.5] = track + 1
            ax = axes[row, col]
            ax.imshow(image, origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=n_tracks,
                      interpolation="nearest")
            for bar in range(steps_per_bar, len(roll), steps_per_bar):
                ax.axvline(bar - 0.5, color="grey", lw=0.5, ls=":")
            ax.set_title(f"{label} {col + 1}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"wrote {path}")


def train_gan(model, pieces, budget_s: float, batch_size: int, lr: float, seed: int,
              evaluate=None, log_every: int = 100) -> dict:
    """The families' own alternating step on random batches until the budget is spent.

    ``evaluate()`` (-> dict) is called at 1/4, 1/2 and 3/4 of the budget, off the clock.
    """
    from rich.progress import Progress

    from tunesmith.data.batching import collate_frames

    rng = np.random.default_rng(seed)
    optimisers = model.configure_optimizers(lr)
    model.train()
    steps, trained, logs = 0, 0.0, {}
    history, chunk, progress_points = [], [], []
    marks = [budget_s * q for q in (0.25, 0.5, 0.75)] if evaluate else []
    with Progress(transient=True) as progress:
        task = progress.add_task(model.family, total=budget_s)
        while trained < budget_s:
            start = time.perf_counter()
            batch = collate_frames([pieces[i] for i in rng.integers(0, len(pieces), batch_size)])
            logs = model.manual_training_step(batch, optimisers, lambda loss: loss.backward())
            trained += time.perf_counter() - start
            steps += 1
            chunk.append({k: float(v) for k, v in logs.items()})
            if len(chunk) == log_every:
                keys = set.intersection(*(set(c) for c in chunk))
                history.append({"step": steps, "seconds": round(trained, 1),
                                **{k: float(np.mean([c[k] for c in chunk if k in c]))
                                   for k in sorted(keys)}})
                chunk = []
            if marks and trained >= marks[0]:
                marks.pop(0)
                progress_points.append({"step": steps, "seconds": round(trained, 1),
                                        **evaluate()})
                model.train()
            progress.update(task, completed=trained)
    return {"steps": steps, "seconds": trained, "seconds_per_step": trained / max(steps, 1),
            "batch_size": batch_size, "last_logs": {k: float(v) for k, v in logs.items()},
            "history": history, "progress": progress_points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, nargs="+", default=[180],
                        help="training seconds per model: one, or MidiNet's and MuseGAN's")
    parser.add_argument("--samples", type=int, default=200, help="pieces per set")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", action="store_true", help="write musegan_samples.png")
    args = parser.parse_args()
    if len(args.budget) not in (1, 2):
        raise SystemExit("--budget takes one value, or MidiNet's and MuseGAN's")
    budget_midinet, budget_musegan = (args.budget * 2)[:2]
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # denormals in late-training gradients slow x86 CPUs
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    from tunesmith.data import prepare

    prepared = prepare("bach-chorales", "pianoroll",
                       {"merge_tracks": False, "pitch_low": 36, "pitch_high": 84}, report=False)
    info = prepared.info
    options = {k: v for k, v in prepared.repr_config.items() if k != "merge_tracks"}
    cfg = pianoroll.PianorollConfig(**options)
    n_pitches, pitch_low, n_tracks = info.n_pitches, info.pitch_low, info.n_tracks
    steps_per_bar, bars = info.steps_per_bar, 4
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
        "budget_s_per_model": {"midinet": budget_midinet, "musegan": budget_musegan},
        "sets": {"data (4 parts)": set_metrics(test, cfg, n_pitches, pitch_low),
                 "data (soprano)": set_metrics(soprano_only, cfg, n_pitches, pitch_low, 1)},
        "training": {},
    }

    controls = SamplingControls(threshold=0.5, seed=args.seed)
    midinet = registry.build("midinet", {"g_dense": 256, "d_dense": 256}, info)
    chords = torch.stack([chords_from_frames(test[:, b * steps_per_bar:(b + 1) * steps_per_bar],
                                             n_pitches, pitch_low) for b in range(bars)], 1)
    melody_controls = SamplingControls(threshold=0.0, seed=args.seed)  # argmax per step

    def midinet_set():
        generated = midinet.generate(args.samples, steps, melody_controls,
                                     condition={"chords": chords})
        return set_metrics(generated, cfg, n_pitches, pitch_low, 1)

    results["training"]["midinet"] = train_gan(midinet, train_pieces, budget_midinet,
                                               args.batch_size, args.lr, args.seed, midinet_set)
    results["sets"]["midinet (soprano)"] = midinet_set()

    musegan = registry.build("musegan", {"n_bars": bars, "g_channels": 32, "d_channels": 32},
                             info)

    def musegan_set():
        generated = musegan.generate(args.samples, steps, controls)
        return set_metrics(generated, cfg, n_pitches, pitch_low)

    results["training"]["musegan"] = train_gan(musegan, train_pieces, budget_musegan,
                                               args.batch_size, args.lr, args.seed, musegan_set)
    results["sets"]["musegan hybrid (4 parts)"] = musegan_set()
    if args.plot:
        plot_phrases(test[:3], musegan.generate(3, steps, controls), n_tracks, n_pitches,
                     steps_per_bar, RESULTS.parent / "musegan_samples.png")

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
        print(f"{name}: {training['steps']} steps in {training['seconds']:.0f} s "
              f"({training['seconds_per_step']:.3f} s/step)")
    print(results["machine"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
