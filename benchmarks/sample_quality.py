"""Sample quality of chorale checkpoints, side by side with real held-out chorales.

For every ``--model LABEL=CHECKPOINT`` (a run folder or ``pretrained:NAME``) this

* scores the **held-out NLL** on the bach-chorales test split, prepared as the model reads
  it: nats per frame over frames 2…T (the polyphonic-benchmark protocol,
  :func:`tunesmith.models.likelihood.score_split`, as benchmarks/chorale_families.py
  computes it), and beside it the whole-piece figure of benchmarks/heldout_nll.py
  (first frame included, what a shipped model's card holds);
* generates ``--samples`` pieces of ``--bars`` bars the way the demo draws them
  (:func:`tunesmith.cli.demo.demo_sampling`: :data:`~tunesmith.cli.demo.DEMO_SAMPLING`,
  temperature 0.9, one note per voice, no note held past 16 steps, under the checkpoint's
  own card's sampling where it names one) and runs ``tunesmith evaluate``'s machinery on
  them against ``bach-chorales:train`` with the held-out band (the test split):
  **per-voice activity**
  (fraction of steps each voice sounds), **metrics within band** (count / judged) and the
  **two-sample accuracy** (a small CNN telling generated 4-bar windows from real test
  ones, cross-validated; 50 % = indistinguishable);
* checks the targets of the issue: a model labelled ``shipped`` needs every voice ≥ 90 %,
  NLL ≤ 3.5, ≥ 80 % of the metrics within band, two-sample ≤ 70 %; a model labelled
  ``demo`` needs every voice ≥ 85 % and must beat the one labelled ``old-demo`` on NLL and
  on the within-band count.

The real row is the test split itself: its voice activity, and the two-sample accuracy of
test against train pieces (the band of that test).

**Choosing sampling controls without looking at test.** ``--band-split valid`` measures the
band (and the two-sample test's real pieces) on the valid split instead: valid against
train. ``--model-sampling LABEL:KEY=VALUE`` sets a control for one label, so one
checkpoint under several labels sweeps controls in one run::

    PYTHONPATH=src nice python benchmarks/sample_quality.py --band-split valid \\
        --model t0.8=pretrained:bach-chorales --model-sampling t0.8:temperature=0.8 \\
        --model t0.9=pretrained:bach-chorales --model-sampling t0.9:temperature=0.9 \\
        --samples 32 --seed 0 --seed 1 --seed 2 --out OUT.json

Usage::

    PYTHONPATH=src nice python benchmarks/sample_quality.py \\
        --model shipped=pretrained:bach-chorales --model demo=RUN --model old-demo=RUN \\
        --samples 32 --out benchmarks/results/sample_quality.json --work /tmp/sample_quality
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # heldout_nll's scoring

CORPUS = "bach-chorales"
TARGETS = {
    "shipped": {"activity": 0.90, "nll": 3.5, "within_share": 0.80, "two_sample": 0.70},
    "demo": {"activity": 0.85},
}


def score_model(label: str, checkpoint: str, samples: int, bars: int, seeds: list[int],
                work: Path, threads: int, sampling: dict | None = None,
                band_split: str = "test") -> dict:
    """NLL once, then sampling and evaluation for every sampling seed; the row's own
    figures are those of the first seed, ``by_seed`` holds each seed's and ``mean`` the
    means over seeds (within band, two-sample accuracy, lowest voice activity)."""
    from heldout_nll import total_nll

    from tunesmith.data.prepare import prepare
    from tunesmith.models.likelihood import model_pieces, score_split
    from tunesmith.training.checkpoint import load_checkpoint, read_json, resolve_checkpoint

    torch.set_num_threads(threads)
    folder = resolve_checkpoint(checkpoint)
    model, meta = load_checkpoint(folder)
    training = meta.get("training", {})
    whole = training.get("run", training)
    run = read_json(folder / "run.json") if (folder / "run.json").is_file() else {}
    row = {"label": label, "checkpoint": str(checkpoint), "family": meta["model_name"],
           "options": run.get("options") or meta.get("model_config"),
           "n_parameters": model.n_parameters(),
           "train_wall_s": whole.get("wall_time_s"), "steps": whole.get("global_step"),
           "best_val_loss": training.get("best_val_loss")}

    print(f"{label}: held-out NLL on {CORPUS}:test ...", flush=True)
    start = time.perf_counter()
    prepared = prepare(CORPUS, meta["representation"], dict(meta.get("repr_config") or {}),
                       report=False, progress=False)
    test = model_pieces(model, prepared.pieces("test"), prepared.onsets("test"))
    row["test_pieces"] = len(test)
    row["test_nll_frames_2_to_T"] = round(score_split(model, test, batch_size=8), 4)
    nats, frames = total_nll(model, test, meta["representation"])
    row["test_nll_whole_pieces"] = round(nats / frames, 4)
    row["nll_s"] = round(time.perf_counter() - start, 1)
    by_seed = {}
    for seed in seeds:
        by_seed[seed] = sample_and_evaluate(label, folder, samples, bars, seed,
                                            work / f"seed{seed}", sampling, band_split)
    row.update(by_seed[seeds[0]])
    print(f"  {label}: NLL {row['test_nll_frames_2_to_T']} nats/frame", flush=True)
    if len(seeds) > 1:
        row["by_seed"] = by_seed
        row["mean"] = {
            "within_band": round(sum(r["within_band"] for r in by_seed.values()) / len(seeds), 2),
            "two_sample_accuracy": round(
                sum(r["two_sample_accuracy"] for r in by_seed.values()) / len(seeds), 4),
            "lowest_voice_activity": round(sum(
                min(r["voice_activity"].values()) for r in by_seed.values()) / len(seeds), 4),
        }
    return row


def sample_and_evaluate(label: str, folder: Path, samples: int, bars: int, seed: int,
                        work: Path, sampling: dict | None, band_split: str = "test") -> dict:
    """One sampling seed: generate, evaluate against train with the band of the held-out
    ``band_split`` (test, or valid when choosing sampling controls)."""
    from tunesmith.cli.demo import demo_sampling
    from tunesmith.evaluation.report import run_evaluation
    from tunesmith.generation.generate import generate_from_checkpoint
    from tunesmith.models.sampling import SamplingControls

    row = {"seed": seed}
    print(f"{label}: {samples} samples of {bars} bars (sampling seed {seed}), evaluated "
          f"against {CORPUS}:train with the {band_split} band ...",
          flush=True)
    start = time.perf_counter()
    out = work
    row["sampling"] = {**demo_sampling(folder), **(sampling or {})}
    controls = SamplingControls(seed=seed, **row["sampling"])
    generate_from_checkpoint(folder, n=samples, bars=bars, controls=controls,
                             out_dir=out / "samples", wav=False, png=False)
    row["generate_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    results, _ = run_evaluation(out / "samples", f"{CORPUS}:train", out / "evaluate",
                                samples=samples, seed=seed, plots=False, progress=False,
                                band_split=band_split)
    row["evaluate_s"] = round(time.perf_counter() - start, 1)
    band = results["band"]
    tracks = results["voice_activity"]["tracks"]
    row["voice_activity"] = {name: round(v["generated"]["mean"], 4) for name, v in tracks.items()}
    row["band_split"] = band_split
    # the held-out split's own activity (the key keeps its name; band_split says which split)
    row["voice_activity_test"] = {
        name: round(band["rows"][f"voice_activity[{name}]"]["test"], 4) for name in tracks}
    row["within_band"], row["judged"] = band["n_within"], band["n_judged"]
    row["outside_band"] = sorted(n for n, r in band["rows"].items() if r["within"] is False)
    two = results["two_sample"]
    row["two_sample_accuracy"] = round(float(two["samples"]["accuracy"]), 4)
    row["two_sample_test_vs_train"] = round(float(two["band"]["accuracy"]), 4) \
        if two.get("band") else None
    row["plagiarism_flagged"] = results["plagiarism"]["n_flagged"]
    row["report"] = str(out / "evaluate" / "report.md")
    print(f"  seed {seed}: activity {row['voice_activity']}; within band "
          f"{row['within_band']}/{row['judged']}; two-sample "
          f"{row['two_sample_accuracy']:.3f}", flush=True)
    return row


def check_targets(rows: dict[str, dict]) -> dict:
    """Each target of the issue: met or missed, with the figure."""
    checks = {}
    for label, row in rows.items():
        kind = "shipped" if label.startswith("shipped") else (
            "demo" if label.startswith("demo") else None)
        if kind is None:
            continue
        target = TARGETS[kind]
        lowest = min(row["voice_activity"].values())
        checks[f"{label}: every voice >= {target['activity']:.0%}"] = {
            "value": lowest, "met": lowest >= target["activity"]}
        if kind == "shipped":
            share = row["within_band"] / row["judged"]
            checks[f"{label}: NLL <= {target['nll']}"] = {
                "value": row["test_nll_frames_2_to_T"],
                "met": row["test_nll_frames_2_to_T"] <= target["nll"]}
            checks[f"{label}: within band >= {target['within_share']:.0%}"] = {
                "value": f"{row['within_band']}/{row['judged']} ({share:.0%})",
                "met": share >= target["within_share"]}
            if "mean" in row:
                mean = row["mean"]["within_band"] / row["judged"]
                checks[f"{label}: within band >= {target['within_share']:.0%}, mean over "
                       f"seeds {list(row['by_seed'])}"] = {
                    "value": f"{row['mean']['within_band']:.1f}/{row['judged']} ({mean:.0%})",
                    "met": mean >= target["within_share"]}
            checks[f"{label}: two-sample <= {target['two_sample']:.0%}"] = {
                "value": row["two_sample_accuracy"],
                "met": row["two_sample_accuracy"] <= target["two_sample"]}
        old = rows.get("old-demo")
        if kind == "demo" and old:
            checks[f"{label}: NLL below old-demo's"] = {
                "value": f"{row['test_nll_frames_2_to_T']} vs {old['test_nll_frames_2_to_T']}",
                "met": row["test_nll_frames_2_to_T"] < old["test_nll_frames_2_to_T"]}
            checks[f"{label}: more metrics within band than old-demo"] = {
                "value": f"{row['within_band']} vs {old['within_band']}",
                "met": row["within_band"] > old["within_band"]}
    return checks


def table(rows: dict[str, dict]) -> str:
    first = next(iter(rows.values()))
    voices = list(first["voice_activity"])
    seeded = any("by_seed" in row for row in rows.values())
    lines = ["| model | " + " | ".join(voices) + " | NLL (nats/frame, 2..T) | within band "
             "| two-sample |" + (" within band, each seed (mean) | two-sample, mean |"
                                 if seeded else ""),
             "|---" * (len(voices) + 4 + 2 * seeded) + "|"]
    for label, row in rows.items():
        controls = ", ".join(f"{k} {v}" for k, v in row["sampling"].items()
                             if k != "max_notes_per_step")
        line = (f"| {label} ({controls}) | "
                + " | ".join(f"{row['voice_activity'][v]:.1%}" for v in voices)
                + f" | {row['test_nll_frames_2_to_T']:.3f} | {row['within_band']}/"
                  f"{row['judged']} | {row['two_sample_accuracy']:.1%} |")
        if seeded and "by_seed" in row:
            each = ", ".join(str(r["within_band"]) for r in row["by_seed"].values())
            line += (f" {each} ({row['mean']['within_band']:.1f}) / {row['judged']} | "
                     f"{row['mean']['two_sample_accuracy']:.1%} |")
        elif seeded:
            line += " - | - |"
        lines.append(line)
    split = first.get("band_split", "test")
    lines.append(f"| real {split} chorales | " + " | ".join(
        f"{first['voice_activity_test'][v]:.1%}" for v in voices)
        + f" | - | (the band) | {first['two_sample_test_vs_train']:.1%} ({split} vs train) |"
        + (" - | - |" if seeded else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True,
                        help="LABEL=CHECKPOINT (a run folder or pretrained:NAME); repeatable")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--bars", type=int, default=12)
    parser.add_argument("--seed", type=int, action="append", default=None,
                        help="sampling seed; repeat for several (the row's figures are the "
                             "first seed's, with each seed's and their means beside; default 0)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sample_quality"))
    parser.add_argument("--out", type=Path, default=None, help="JSON of the results")
    parser.add_argument("--sampling", action="append", default=[],
                        help="KEY=VALUE: a sampling control instead of the demo's, e.g. "
                             "temperature=0.9 (repeatable; applies to every model)")
    parser.add_argument("--model-sampling", action="append", default=[],
                        help="LABEL:KEY=VALUE: a sampling control for one model only, over "
                             "--sampling (repeatable; one checkpoint under several labels "
                             "sweeps its sampling controls side by side)")
    parser.add_argument("--band-split", choices=("test", "valid"), default="test",
                        help="the held-out split that sets the band and the two-sample "
                             "test's real pieces: test (the figures to report) or valid (to "
                             "choose sampling controls without looking at test)")
    parser.add_argument("--note", action="append", default=[],
                        help="LABEL=TEXT: how a checkpoint was made (repeatable)")
    args = parser.parse_args(argv)
    import os

    seeds = args.seed or [0]
    begin = time.perf_counter()
    load = list(os.getloadavg())
    sampling = {key: json.loads(value) for key, _, value in
                (item.partition("=") for item in args.sampling)}
    per_model: dict[str, dict] = {}
    for item in args.model_sampling:
        label, _, setting = item.partition(":")
        key, _, value = setting.partition("=")
        if not (label and key and value):
            parser.error(f"--model-sampling {item!r}: expected LABEL:KEY=VALUE")
        per_model.setdefault(label, {})[key] = json.loads(value)
    labels = [spec.partition("=")[0] for spec in args.model]
    for label in per_model:
        if label not in labels:
            parser.error(f"--model-sampling names {label!r}, which no --model has")
    rows = {}
    for spec in args.model:
        label, _, checkpoint = spec.partition("=")
        rows[label] = score_model(label, checkpoint, args.samples, args.bars, seeds,
                                  args.work / label, args.threads,
                                  {**sampling, **per_model.get(label, {})}, args.band_split)
    notes = dict(n.split("=", 1) for n in args.note)
    for label, text in notes.items():
        if label in rows:
            rows[label]["note"] = text
    checks = check_targets(rows)
    text = table(rows)
    print(text)
    for name, check in checks.items():
        print(f"{'met   ' if check['met'] else 'MISSED'} {name}: {check['value']}")
    if args.out:
        result = {"command": "python benchmarks/sample_quality.py " + " ".join(
                      argv if argv is not None else sys.argv[1:]),
                  "corpus": CORPUS, "samples": args.samples, "bars": args.bars,
                  "seed": seeds[0], "seeds": seeds, "threads": args.threads,
                  "band_split": args.band_split,
                  "load_average_start": load, "load_average_end": list(os.getloadavg()),
                  "total_wall_s": round(time.perf_counter() - begin, 1),
                  "models": rows, "targets": checks, "table": text}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
