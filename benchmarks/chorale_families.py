"""Which family samples best on the four-part chorales, for the same CPU minutes each.

Every candidate is trained with the generic trainer on the demo's data and settings
(:mod:`tunesmith.cli.demo`: bach-chorales as SATB piano-rolls, 16th-note grid, MIDI 36-84
per track, K = 4 × 49 keys; 128-step windows, batch 16, Adam 2e-3, clipping 1.0, plateau
schedule, the best-validation epoch kept) for ``--minutes`` of wall time on one torch
thread, seed 0. Its best checkpoint then gives:

* **held-out NLL per frame** on the whole bach-chorales test pieces, summed over the 196
  keys, in nats: exactly ``benchmarks/heldout_nll.py``'s figure (``total_nll``: the
  model's own loss over whole pieces, the first frame included; the demo WaveNet scored
  4.612 there), and beside it the polyphonic-benchmark protocol (frames 2…T,
  :func:`tunesmith.evaluation.likelihood.score_split`). A per-voice categorical head gives
  probability 0 to a frame with two notes in one track; the test frames with such a chord
  are counted (``chord_frames``; a non-zero count makes the voices head's NLL infinite);
* **per-voice activity** of 8 generated 12-bar pieces: the fraction of steps on which each
  voice sounds, beside the same figure for the real test chorales; with it the fraction of
  steps on which all four sound, the mean note length per voice (steps), the notes per
  bar, each voice's mean pitch and 5th-95th percentile range, the share of adjacent voice
  pairs that cross (the upper voice below the lower one, both sounding), and the share of
  dissonant vertical intervals (interval classes 1, 2, 6, 10, 11 between sounding voices);
  samples are drawn as the demo draws them (temperature 0.9, one note per voice, no note
  held past 16 steps), and again without that cap on held notes
  (``samples_no_sustain_cap``);
* piano-roll PNGs of two samples per family and of the first 12 bars of a real test
  chorale, and one PNG with the real chorale and a sample of every family (``--png``).

Usage::

    nice .venv/bin/python benchmarks/chorale_families.py --minutes 4 --threads 1 \\
        --runs /tmp/chorale_families --out benchmarks/results/chorale_families.json \\
        --png benchmarks/results/chorale_families.png

``--families`` picks candidates by label; ``--evaluate-only`` scores and samples the runs
already in ``--runs`` again without training; ``--train-set KEY=VALUE`` and
``--model-set KEY=VALUE`` override the training settings and model options of every
picked family (e.g. a longer run of one family).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from heldout_nll import machine, total_nll

#: label -> registry name, model options, training settings that differ from the demo's
CANDIDATES: dict[str, dict] = {
    "wavenet-bernoulli": {"model": "wavenet", "options": {},
                          "note": "today's demo: independent sigmoids"},
    "wavenet-nade": {"model": "wavenet", "options": {"head": "nade"},
                     "note": "NADE over the 196 keys of a frame"},
    "wavenet-voices": {"model": "wavenet", "options": {"head": "voices"},
                       "note": "one categorical per voice, S→A→T→B within a frame"},
    "lstm-voices": {"model": "lstm", "options": {"head": "voices", "hidden": 256},
                    "note": "LSTM backbone, voices head"},
    "frame-transformer-voices": {
        "model": "frame-transformer",
        "options": {"head": "voices", "d_model": 128, "n_layers": 3, "d_ff": 512,
                    "dropout": 0.1},
        "train": {"lr": 1e-3},  # the Transformers' rate in heldout_nll.py
        "note": "relative-attention Transformer over frames, voices head"},
}
BARS = 12
N_SAMPLES = 8
DISSONANT = (1, 2, 6, 10, 11)  # interval classes counted as dissonant


# ---- statistics of piano-rolls ---------------------------------------------------------
def voice_grid(array: np.ndarray, tracks: int) -> np.ndarray:
    """Frames (T, K) -> (T, tracks, pitches) bool."""
    return array.reshape(array.shape[0], tracks, -1) > 0.5


def roll_statistics(arrays: list[np.ndarray], tracks: int, pitch_low: int,
                    steps_per_bar: int) -> dict:
    """Activity and shape figures of a set of piano-rolls (pooled over steps/notes)."""
    grids = [voice_grid(a, tracks) for a in arrays]
    steps = sum(g.shape[0] for g in grids)
    sounding = np.concatenate([g.any(-1) for g in grids])  # (ΣT, V)
    lengths = [[] for _ in range(tracks)]
    pitch_sum, pitch_count = np.zeros(tracks), np.zeros(tracks)
    dissonant = pairs = 0
    crossed, adjacent = 0, 0  # steps where a voice sounds below the next lower voice
    pitches_of = [[] for _ in range(tracks)]
    for g in grids:
        top = np.where(g.any(-1), g.shape[-1] - 1 - np.argmax(g[..., ::-1], -1), -1)  # (T, V)
        both = (top[:, :-1] >= 0) & (top[:, 1:] >= 0)
        adjacent += int(both.sum())
        crossed += int((both & (top[:, :-1] < top[:, 1:])).sum())
        for v in range(tracks):
            for p in np.nonzero(g[:, v].any(0))[0]:  # a note: a maximal run of one pitch
                edges = np.diff(np.concatenate([[0], g[:, v, p].astype(np.int8), [0]]))
                lengths[v] += (np.nonzero(edges == -1)[0] - np.nonzero(edges == 1)[0]).tolist()
            _, p_idx = np.nonzero(g[:, v])
            pitch_sum[v] += (p_idx + pitch_low).sum()
            pitch_count[v] += len(p_idx)
            pitches_of[v].append(p_idx + pitch_low)
        for t in range(g.shape[0]):  # vertical intervals between the sounding notes
            pitches = np.nonzero(g[t])[1] + pitch_low
            for i in range(len(pitches)):
                for j in range(i + 1, len(pitches)):
                    pairs += 1
                    dissonant += abs(int(pitches[i]) - int(pitches[j])) % 12 in DISSONANT
    notes = sum(len(x) for x in lengths)
    return {
        "steps": int(steps),
        "activity": [round(float(x), 4) for x in sounding.mean(0)],
        "all_voices_sounding": round(float(sounding.all(-1).mean()), 4),
        "mean_note_steps": [round(float(np.mean(x)), 2) if x else None for x in lengths],
        "notes_per_bar": round(notes / (steps / steps_per_bar), 2),
        "mean_pitch": [round(float(s / c), 1) if c else None
                       for s, c in zip(pitch_sum, pitch_count, strict=True)],
        "pitch_5_95": [[int(x) for x in np.percentile(np.concatenate(p), [5, 95])]
                       if sum(map(len, p)) else None for p in pitches_of],
        "crossing_share": round(crossed / adjacent, 4) if adjacent else None,
        "dissonant_interval_share": round(dissonant / pairs, 4) if pairs else None,
        "chord_steps_in_a_voice": int(sum((g.sum(-1) > 1).any(-1).sum() for g in grids)),
    }


# ---- one family --------------------------------------------------------------------------
def run_family(label: str, spec: dict, prepared, minutes: float, runs: Path, threads: int,
               train_overrides: dict, model_overrides: dict, samples_dir: Path,
               seed: int, evaluate_only: bool = False) -> dict:
    from tunesmith.cli.demo import DEMO_SAMPLING, DEMO_TRAIN
    from tunesmith.generation.generate import (
        array_to_score,
        length_in_steps,
        sample_arrays,
        write_score,
    )
    from tunesmith.models.likelihood import score_split
    from tunesmith.models.sampling import SamplingControls
    from tunesmith.training.checkpoint import load_checkpoint, read_json
    from tunesmith.training.trainer import train

    run_dir = runs / label
    # the demo now trains with transposition; the families were compared without it
    settings = {**DEMO_TRAIN, "transpose": [0, 0], **spec.get("train", {}), **train_overrides,
                "threads": threads,
                "max_time": minutes, "seed": seed, "loggers": False, "progress_bar": False}
    options = {**spec["options"], **model_overrides}
    if evaluate_only:  # the run this script trained before, as it was trained
        run = read_json(run_dir / "run.json")
        options, settings = run["options"], run["settings"]
        print(f"evaluating {label} ({run_dir}) ...", flush=True)
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)  # this script's own earlier run
        print(f"training {label} ({spec['model']} {options}) for {minutes} min ...", flush=True)
        train(spec["model"], prepared, options, run_dir, **settings)
    model, meta = load_checkpoint(run_dir)
    torch.set_num_threads(threads)
    training = meta.get("training", {})
    row = {"label": label, "model": spec["model"], "options": options, "note": spec["note"],
           "train_settings": settings, "run_dir": str(run_dir),
           "n_parameters": model.n_parameters(),
           "train_wall_s": training.get("run", training).get("wall_time_s"),
           "best_epoch": training.get("best_epoch"),
           "best_val_loss": training.get("best_val_loss"),
           "steps_trained": training.get("run", training).get("global_step"),
           "epochs_trained": training.get("run", training).get("epochs")}

    test = prepared.pieces("test")
    head = model.head
    chords = int(sum(head.chords(torch.as_tensor(p)).sum() for p in test)) \
        if hasattr(head, "chords") else None
    start = time.perf_counter()
    nats, frames = total_nll(model, test, "pianoroll")
    row.update(test_nll_per_frame=nats / frames, test_frames=frames,
               test_nll_frames_2_to_T=score_split(model, test, batch_size=8),
               chord_frames=chords, score_wall_s=round(time.perf_counter() - start, 1))

    steps = length_in_steps(meta, bars=BARS)
    controls = SamplingControls(seed=seed, **DEMO_SAMPLING)
    start = time.perf_counter()
    arrays, _ = sample_arrays(model, meta, N_SAMPLES, steps, controls)
    row["sample_wall_s"] = round(time.perf_counter() - start, 1)
    info = prepared.info
    row["samples"] = roll_statistics(arrays, info["n_tracks"], info["pitch_low"],
                                     steps // BARS)
    uncapped = SamplingControls(**{**controls.to_dict(), "max_sustain_steps": 0})
    row["samples_no_sustain_cap"] = roll_statistics(
        sample_arrays(model, meta, N_SAMPLES, steps, uncapped)[0], info["n_tracks"],
        info["pitch_low"], steps // BARS)
    pngs = []
    for i, array in enumerate(arrays[:2], start=1):
        path = samples_dir / f"{label}_{i}.mid"
        written = write_score(array_to_score(array, meta), path, png=True,
                              title=f"{label}: sample {i} ({minutes:g} min)")
        pngs += [str(p) for p in written if p.suffix == ".png"]
    row["pngs"] = pngs
    s = row["samples"]
    print(f"  {label}: {row['steps_trained']} steps; test NLL {row['test_nll_per_frame']:.3f} "
          f"nats/frame (frames 2..T {row['test_nll_frames_2_to_T']:.3f}); activity "
          f"{s['activity']}; all four {s['all_voices_sounding']}", flush=True)
    return row


def real_statistics(prepared, samples_dir: Path) -> dict:
    """The test chorales' figures, and a PNG of the first 12 bars of one of them."""
    from tunesmith.generation.generate import array_to_score, write_score

    info = prepared.info
    steps_per_bar = 4 * info["steps_per_quarter"]
    test = prepared.pieces("test")
    stats = roll_statistics(test, info["n_tracks"], info["pitch_low"], steps_per_bar)
    windows = [p[: BARS * steps_per_bar] for p in test]  # what a 12-bar sample is set against
    stats["first_12_bars"] = roll_statistics(windows, info["n_tracks"], info["pitch_low"],
                                             steps_per_bar)
    meta = {"representation": "pianoroll", "data_info": dict(info)}
    piece_id = prepared.ids("test")[0]
    score = array_to_score(test[0][: BARS * steps_per_bar], meta)
    written = write_score(score, samples_dir / "real_test_chorale.mid", png=True,
                          title=f"real test chorale {piece_id}: first {BARS} bars")
    stats["pngs"] = [str(p) for p in written if p.suffix == ".png"]
    stats["piece"] = piece_id
    return stats


def composite_png(real_png: str, rows: list[dict], path: Path) -> None:
    """The real chorale's PNG, then the first sample PNG of every family, two a row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = [plt.imread(real_png)] + [plt.imread(r["pngs"][0]) for r in rows if r["pngs"]]
    cols = 2
    grid_rows = -(-len(images) // cols)
    height, width = images[0].shape[:2]  # pixels of one picture (all drawn alike)
    fig, axes = plt.subplots(grid_rows, cols, figsize=(cols * width / 100,
                                                        grid_rows * height / 100), dpi=100)
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, image in zip(np.ravel(axes), images, strict=False):
        ax.imshow(image)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# ---- report --------------------------------------------------------------------------------
def table(result: dict) -> str:
    real = result["real_test"]
    lines = ["| family | params | steps | test NLL/frame | frames 2..T | activity S/A/T/B "
             "| all 4 | note steps S/A/T/B | notes/bar | crossing | dissonant "
             "| activity, no sustain cap |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(values, digits=2):
        return "/".join("-" if v is None else f"{v:.{digits}f}" for v in values)

    for row in result["families"]:
        s = row["samples"]
        lines.append(
            f"| {row['label']} | {row['n_parameters'] / 1e3:.0f}k | {row['steps_trained']} "
            f"| {row['test_nll_per_frame']:.3f} | {row['test_nll_frames_2_to_T']:.3f} "
            f"| {fmt(s['activity'])} | {s['all_voices_sounding']:.2f} "
            f"| {fmt(s['mean_note_steps'], 1)} | {s['notes_per_bar']:.1f} "
            f"| {s['crossing_share']:.3f} | {s['dissonant_interval_share']:.2f} "
            f"| {fmt(row.get('samples_no_sustain_cap', {}).get('activity', []))} |")
    lines.append(
        f"| real test chorales | | | | | {fmt(real['activity'])} "
        f"| {real['all_voices_sounding']:.2f} | {fmt(real['mean_note_steps'], 1)} "
        f"| {real['notes_per_bar']:.1f} | {real['crossing_share']:.3f} "
        f"| {real['dissonant_interval_share']:.2f} | |")
    return "\n".join(lines)


def parse_sets(pairs: list[str]) -> dict:
    from tunesmith.cli.options import parse_value

    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        out[key.strip()] = parse_value(value.strip())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training minutes per family")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--families", nargs="+", default=list(CANDIDATES),
                        choices=list(CANDIDATES))
    parser.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                        help="training setting for every family (e.g. batch_size=32)")
    parser.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                        help="model option for every family (e.g. nade_hidden=200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evaluate-only", action="store_true",
                        help="score and sample the runs already in --runs (no training)")
    parser.add_argument("--runs", type=Path, default=Path("out/chorale_families"),
                        help="run folders (checkpoints) and sample MIDI/PNG files")
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/chorale_families.json"))
    parser.add_argument("--png", type=Path, default=None,
                        help="also write the real chorale beside one sample of each family")
    args = parser.parse_args(argv)

    from tunesmith.cli.demo import DEMO_CORPUS, DEMO_REPR
    from tunesmith.data.prepare import prepare

    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    prepared = prepare(DEMO_CORPUS, "pianoroll", dict(DEMO_REPR), report=False)
    samples_dir = args.runs / "samples"
    result = {"command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
              "minutes_per_family": args.minutes, "data": DEMO_CORPUS, "repr": DEMO_REPR,
              "n_pieces": prepared.info["n_pieces"], "bars_per_sample": BARS,
              "samples_per_family": N_SAMPLES, "machine": machine(),
              "load_average_start": os.getloadavg(),
              "real_test": real_statistics(prepared, samples_dir), "families": []}
    if args.evaluate_only and args.out.is_file():  # keep how the runs were trained
        earlier = json.loads(args.out.read_text())
        result["trained_by"] = earlier.get("trained_by") or {
            k: earlier.get(k) for k in ("command", "load_average_start", "load_average_end",
                                        "total_wall_s")}
    train_overrides, model_overrides = parse_sets(args.train_set), parse_sets(args.model_set)
    for label in args.families:
        result["families"].append(
            run_family(label, CANDIDATES[label], prepared, args.minutes, args.runs,
                       args.threads, train_overrides, model_overrides, samples_dir, args.seed,
                       args.evaluate_only))
        args.out.parent.mkdir(parents=True, exist_ok=True)  # keep what is done so far
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    result["load_average_end"] = os.getloadavg()
    result["total_wall_s"] = round(time.perf_counter() - begin, 1)
    if args.png is not None:
        composite_png(result["real_test"]["pngs"][0], result["families"], args.png)
        result["png"] = str(args.png)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(table(result))
    print(f"load average {result['load_average_start'][0]:.2f} -> "
          f"{result['load_average_end'][0]:.2f}; total {result['total_wall_s'] / 60:.1f} min; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
