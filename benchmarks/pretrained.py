"""Package a training run as a shipped pretrained model: ``src/tunesmith/pretrained/<name>/``.

Copies the run's ``model.safetensors`` and ``config.json`` and writes ``card.json``
(fields: :mod:`tunesmith.pretrained`) from

* the run's metadata: ``run.json`` (model, options, data, settings: the ``tunesmith
  train`` command is rebuilt from it, unless ``--command`` gives the one that was typed)
  and ``config.json`` (wall time, epochs, steps, best epoch);
* the held-out NLL: the checkpoint scores the **test** split of the data it was trained
  on (same preparation), whole pieces, summed NLL / predicted units (melody steps,
  piano-roll frames, tokens), as ``benchmarks/heldout_nll.py`` does;
* a fresh ``tunesmith evaluate`` of ``--samples`` generated pieces against
  ``CORPUS:train`` with its held-out band (the test split): voice activity of each track,
  metrics within band, two-sample accuracy (and the same test for test vs train).

Usage (the lead packages other runs the same way)::

    PYTHONPATH=src python benchmarks/pretrained.py RUN_DIR NAME [--samples 32] [--bars N]
        [--command "tunesmith train ..."] [--minutes-note "..."] [--force]
        [--sampling KEY=VALUE ... --sampling-chosen "how they were chosen"]

``--bars`` sets the length of the evaluated samples (default 8); give about the length of
the corpus's pieces (Nottingham: 32) where metrics grow with length. To measure a shipped
model's quality again (weights, sampling and NLL untouched)::

    PYTHONPATH=src python benchmarks/pretrained.py --update-quality NAME --bars 32

``--sampling`` records the model's default sampling controls in its card (``sampling``:
``generate``, ``evaluate``, the studio and the demo draw with them unless told otherwise);
the card's quality figures are then measured with them. To set them on a model already
shipped, without retraining or touching its weights (its quality is measured again)::

    PYTHONPATH=src python benchmarks/pretrained.py --update-sampling NAME \
        --sampling temperature=1.0 --sampling max_sustain_steps=16 --sampling-chosen "..."

The folder must stay under 10 MB (``tunesmith.pretrained.MAX_BYTES``); the script refuses
a larger one. Evaluation parses the reference corpus once and caches its summary
(``$TUNESMITH_CACHE/reference``), so a second run is fast.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # heldout_nll's scoring

#: what a unit of the held-out NLL is, by representation
UNITS = {"melody": "nats/step", "pianoroll": "nats/frame", "events": "nats/token",
         "drums": "loss/window (-ELBO-like)"}


def train_command(run: dict, out: str) -> str:
    """The ``tunesmith train`` command that reproduces a run, from its ``run.json``
    (only settings that differ from the defaults are spelled out)."""
    from tunesmith.training.trainer import TrainSettings

    def text(value) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    data = dict(run["data"])
    words = ["tunesmith", "train", "--model", run["model_name"], "--data", data.pop("corpus")]
    for key, value in (data.pop("options", None) or {}).items():
        words += ["--repr-set", f"{key}={text(value)}"]
    if data.pop("path", None):
        words += ["--path", "PATH"]
    data.pop("representation", None)
    for key, value in data.items():
        if value not in (None, False):
            words += ["--set", f"data.{key}={json.dumps(value)}"]
    for key, value in run["options"].items():
        words += ["--set", f"model.{key}={text(value)}"]
    defaults = TrainSettings().to_dict()
    flags = {"epochs": "--epochs", "max_time": "--max-time", "threads": "--threads"}
    for key, value in run["settings"].items():
        if value == defaults.get(key) or key in ("progress_bar", "loggers"):
            continue
        if key in flags:
            if value is not None:
                words += [flags[key], str(value)]
            elif key == "epochs" and run["settings"].get("max_time") is None:
                words += ["--set", "train.epochs=null"]  # --max-time alone implies it
        else:
            words += ["--set", f"train.{key}={text(value)}"]
    return shlex.join([*words, "--out", out])


def held_out_nll(checkpoint: Path, run: dict) -> dict:
    """Summed NLL over the test split's whole pieces / predicted units (drums: the
    GrooVAE's negative ELBO per 2-bar window, :func:`drums_elbo`)."""
    from heldout_nll import total_nll

    from tunesmith.models.likelihood import model_pieces
    from tunesmith.training.checkpoint import load_checkpoint
    from tunesmith.training.trainer import prepare_data

    model, meta = load_checkpoint(checkpoint)
    prepared = prepare_data(dict(run["data"]), meta["representation"], progress=False)
    if meta["representation"] == "drums":
        return drums_elbo(model, prepared)
    pieces = prepared.pieces("test")
    if meta["representation"] == "pianoroll":  # frames ‖ onsets for an onset head
        pieces = model_pieces(model, pieces, prepared.onsets("test"))
    torch.set_num_threads(1)
    start = time.perf_counter()
    nats, units = total_nll(model, pieces, meta["representation"])
    return {"value": round(nats / units, 4), "unit": UNITS.get(meta["representation"], "nats"),
            "split": "test", "pieces": len(pieces), "units": int(units),
            "how": "summed NLL of whole test pieces / predicted units (benchmarks/heldout_nll.py)"
                   + ("; frames and onsets (where each note starts) together, so it is >= "
                      "the onset-less figure of the same music"
                      if getattr(model, "reads_onsets", False) else ""),
            "seconds": round(time.perf_counter() - start, 1)}


def drums_elbo(model, prepared, seed: int = 0) -> dict:
    """A GrooVAE's loss as a plain VAE (the ``sample`` task) on the test split's 2-bar
    windows (1-bar hop), one z drawn per window: hit BCE + velocity and offset squared
    errors (on hits) + KL, nats-like units per window. The squared errors are not
    log-likelihoods, so this is the training objective, not an NLL bound."""
    from tunesmith.data.datasets import SequenceDataset, collate

    windows = SequenceDataset(prepared, "test", window=None).pieces
    model.config = model.config.updated(task_mix=[1.0, 0.0, 0.0, 0.0])
    model.eval()
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    start = time.perf_counter()
    total = {"reconstruction": 0.0, "hits": 0.0, "velocities": 0.0, "offsets": 0.0, "kl": 0.0}
    with torch.no_grad():
        for begin in range(0, len(windows), 256):
            batch = collate([{"data": w} for w in windows[begin:begin + 256]], "drums")
            out = model.loss(batch)
            for key in total:
                total[key] += float(out[key]) * len(batch["drums"])
    n = len(windows)
    return {"value": round((total["reconstruction"] + total["kl"]) / n, 3),
            "unit": "loss/window (-ELBO-like)",
            "split": "test", "pieces": len(prepared.ids("test")), "units": n,
            "terms": {k: round(v / n, 3) for k, v in total.items() if k != "reconstruction"},
            "how": "GrooVAE sample-task loss (hit BCE + velocity/offset squared errors on "
                   "hits + KL, beta 1) per 2-bar test window, one z per window "
                   "(benchmarks/pretrained.py drums_elbo)",
            "seconds": round(time.perf_counter() - start, 1)}


def drums_two_sample(checkpoint: Path, run: dict, seed: int = 0) -> dict:
    """The C2ST of ``benchmarks/groove.py`` (a 1-D conv classifier on (32, 27) windows,
    5-fold): prior samples vs the test split's 2-bar windows, and, as the band, train
    windows vs test windows."""
    from groove import c2st

    from tunesmith.models.groove_vae import sample
    from tunesmith.models.sampling import SamplingControls
    from tunesmith.representations import drums
    from tunesmith.training.checkpoint import load_checkpoint
    from tunesmith.training.trainer import prepare_data

    model, _ = load_checkpoint(checkpoint)
    prepared = prepare_data(dict(run["data"]), "drums", progress=False)
    cfg = drums.DrumsConfig(hop_bars=2)

    def windows(split: str) -> np.ndarray:
        return np.stack([w for p in prepared.pieces(split) for w in drums.windows(p, cfg)])

    test, train = windows("test"), windows("train")
    rng = np.random.default_rng(seed)
    samples = sample(model, len(test), SamplingControls(seed=seed))
    start = time.perf_counter()
    accuracy = c2st(test, samples, seed=seed)
    band = c2st(test, train[rng.permutation(len(train))[:len(test)]], seed=seed)
    return {"two_sample_accuracy": round(accuracy, 3), "two_sample_band": round(band, 3),
            "two_sample_how": f"drums C2ST of benchmarks/groove.py: {len(test)} prior samples "
                              "vs the test split's 2-bar windows (band: as many train windows "
                              "vs test)",
            "two_sample_seconds": round(time.perf_counter() - start, 1)}


def quality(checkpoint: Path, corpus: str, samples: int, seed: int, out: Path,
            bars: float | None = None) -> dict:
    """Figures of ``tunesmith evaluate CHECKPOINT --reference CORPUS:train [--bars N]``
    (samples drawn with the checkpoint's card's sampling, when its card names one)."""
    from tunesmith.evaluation.report import run_evaluation
    from tunesmith.generation.generate import DEFAULT_BARS
    from tunesmith.training.checkpoint import sampling_defaults

    start = time.perf_counter()
    results, _ = run_evaluation(checkpoint, f"{corpus}:train", out, samples=samples, seed=seed,
                                plots=False, progress=False, bars=bars)
    band = results.get("band") or {}
    rows = band.get("rows", {})
    tracks = results["voice_activity"]["tracks"]
    two = results.get("two_sample") or {}

    def accuracy(which):
        value = (two.get(which) or {}).get("accuracy")
        return None if value is None or value != value else round(float(value), 3)

    def rounded(value):
        return None if value is None or value != value else round(float(value), 3)

    return {
        "command": f"tunesmith evaluate pretrained:NAME --reference {corpus}:train "
                   f"--samples {samples} --seed {seed}"
                   + (f" --bars {bars:g}" if bars is not None else "") + " --out OUT",
        "bars": bars if bars is not None else DEFAULT_BARS,
        "samples": results["n_generated"],
        "reference": f"{corpus}:train", "band": f"{corpus}:test ({band.get('n_test')} pieces)",
        "voice_activity": {label: rounded(v["generated"]["mean"]) for label, v in tracks.items()},
        "voice_activity_test": {label: rounded(rows.get(f"voice_activity[{label}]", {})
                                               .get("test")) for label in tracks},
        "within_band": band.get("n_within"), "judged": band.get("n_judged"),
        "outside_band": sorted(name for name, row in rows.items() if row["within"] is False),
        "two_sample_accuracy": accuracy("samples"),
        "two_sample_band": accuracy("band"),
        "plagiarism_flagged": results["plagiarism"]["n_flagged"],
        "sampling": sampling_defaults(checkpoint) or "SamplingControls defaults",
        "seconds": round(time.perf_counter() - start, 1),
    }


def sampling_entry(sampling: dict, chosen: str) -> dict:
    """A card's ``sampling``: the controls (checked) and how they were chosen."""
    from tunesmith.models.sampling import SamplingControls
    from tunesmith.training.checkpoint import SAMPLING_DEFAULT_KEYS

    unknown = sorted(set(sampling) - set(SAMPLING_DEFAULT_KEYS))
    if unknown:
        raise SystemExit(f"--sampling: unknown control(s) {', '.join(unknown)}; expected "
                         f"{', '.join(SAMPLING_DEFAULT_KEYS)}")
    SamplingControls(**sampling)  # a bad value fails here, before anything is written
    if not chosen:
        raise SystemExit("--sampling needs --sampling-chosen: say how the controls were chosen")
    return {"controls": dict(sampling), "chosen": chosen}


def update_sampling(name: str, dest: Path, sampling: dict | None, chosen: str,
                    samples: int = 32, seed: int = 0, bars: float | None = None) -> Path:
    """Record default sampling controls in a shipped model's card (None: keep its own) and
    measure its quality again; weights, config, training and NLL stay as they are."""
    from tunesmith.pretrained import CARD_FILE
    from tunesmith.training.checkpoint import read_json, write_json

    folder = dest / name
    card = read_json(folder / CARD_FILE)
    if sampling:
        card["sampling"] = sampling_entry(sampling, chosen)
        write_json(folder / CARD_FILE, card)  # quality below draws with it
    print(f"{name}: evaluating {samples} samples against {card['corpus']}:train with "
          f"{sampling or 'its sampling'} ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        card["quality"] = quality(folder, card["corpus"], samples, seed, Path(tmp), bars)
    print(f"  within band {card['quality']['within_band']}/{card['quality']['judged']}, "
          f"two-sample accuracy {card['quality']['two_sample_accuracy']}", flush=True)
    card["tunesmith_commit"] = git_commit()
    write_json(folder / CARD_FILE, card)
    print(f"wrote {folder / CARD_FILE}")
    return folder


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src",  # code, not
                                ":!src/tunesmith/pretrained/*/*"], cwd=ROOT,  # shipped models
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+uncommitted changes" if dirty else "")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor()) \
        if Path("/proc/cpuinfo").is_file() else platform.processor()
    import os

    return f"{os.cpu_count()} CPU ({cpu}), torch {torch.__version__}, no GPU" \
        if not torch.cuda.is_available() else f"GPU {torch.cuda.get_device_name(0)}"


def package(run_dir: Path, name: str, dest: Path, samples: int = 32, seed: int = 0,
            command: str | None = None, note: str = "", force: bool = False,
            sampling: dict | None = None, sampling_chosen: str = "",
            bars: float | None = None) -> Path:
    from tunesmith.data import get_corpus
    from tunesmith.pretrained import CARD_FILE, MAX_BYTES
    from tunesmith.representations.info import DataInfo
    from tunesmith.training.checkpoint import (
        CONFIG_FILE,
        WEIGHTS_FILE,
        read_checkpoint_config,
        read_json,
        write_json,
    )

    meta = read_checkpoint_config(run_dir)
    run = read_json(run_dir / "run.json")
    folder = dest / name
    if folder.exists():
        if not force:
            raise SystemExit(f"{folder} exists; pass --force to replace it")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for file in (WEIGHTS_FILE, CONFIG_FILE):
        shutil.copyfile(run_dir / file, folder / file)
    size = sum(p.stat().st_size for p in folder.iterdir())
    if size > MAX_BYTES:
        shutil.rmtree(folder)
        raise SystemExit(f"{run_dir} weighs {size / 1e6:.1f} MB; a shipped model is at most "
                         f"{MAX_BYTES / 1e6:.0f} MB")

    corpus_name = run["data"]["corpus"]
    corpus = get_corpus(corpus_name, run["data"].get("path"))
    info = DataInfo.read(meta["data_info"])
    training = meta.get("training", {})
    whole = training.get("run", training)
    print(f"{name}: held-out NLL on {corpus_name}:test ...", flush=True)
    nll = held_out_nll(folder, run)
    print(f"  {nll['value']} {nll['unit']} over {nll['pieces']} pieces", flush=True)
    card_sampling = sampling_entry(sampling, sampling_chosen) if sampling else None
    if card_sampling:  # the quality figures below draw with the card's sampling
        write_json(folder / CARD_FILE, {"name": name, "sampling": card_sampling})
    print(f"{name}: evaluating {samples} samples against {corpus_name}:train ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        figures = quality(folder, corpus_name, samples, seed, Path(tmp), bars)
    print(f"  within band {figures['within_band']}/{figures['judged']}, two-sample accuracy "
          f"{figures['two_sample_accuracy']} (band {figures['two_sample_band']}), voice "
          f"activity {figures['voice_activity']}", flush=True)
    if meta["representation"] == "drums":  # evaluate's C2ST reads pitched notes only
        figures.update(drums_two_sample(folder, run, seed))
        print(f"  drums two-sample accuracy {figures['two_sample_accuracy']} (train vs test "
              f"{figures['two_sample_band']})", flush=True)
    split = meta.get("split") or {}
    card = {
        "name": name,
        "corpus": corpus_name,
        "family": meta["model_name"],
        "representation": meta["representation"],
        "tracks": list(info.track_names),
        "n_parameters": meta.get("n_parameters"),
        "data": {"source": corpus.source, "description": corpus.description,
                 "split": corpus.split_method, "pieces": split.get("counts")},
        "training": {
            "command": command or train_command(run, f"runs/{name}"),
            "wall_time_s": whole.get("wall_time_s"),
            "epochs": whole.get("epochs"), "steps": whole.get("global_step"),
            "best_epoch": training.get("best_epoch"),
            "best_val_loss": training.get("best_val_loss"),
            "machine": machine(), "note": note,
        },
        "held_out_nll": nll,
        "quality": figures,
        **({"sampling": card_sampling} if card_sampling else {}),
        "tunesmith_commit": git_commit(),
    }
    write_json(folder / CARD_FILE, card)
    print(f"wrote {folder} ({sum(p.stat().st_size for p in folder.iterdir()) / 1e6:.2f} MB)")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, nargs="?", help="a training run folder")
    parser.add_argument("name", nargs="?", help="the shipped name (pretrained:NAME)")
    parser.add_argument("--update-sampling", metavar="NAME", default=None,
                        help="set --sampling on the shipped model NAME and measure its "
                             "quality again (no run folder, weights untouched)")
    parser.add_argument("--sampling", action="append", default=[], metavar="KEY=VALUE",
                        help="a default sampling control for the card (repeatable)")
    parser.add_argument("--sampling-chosen", default="",
                        help="how the --sampling controls were chosen (e.g. the sweep)")
    parser.add_argument("--dest", type=Path, default=ROOT / "src" / "tunesmith" / "pretrained")
    parser.add_argument("--samples", type=int, default=32, help="pieces generated to evaluate")
    parser.add_argument("--bars", type=float, default=None,
                        help="bars of each generated piece (default 8); about the length of "
                             "the corpus's pieces for metrics that grow with length")
    parser.add_argument("--update-quality", metavar="NAME", default=None,
                        help="measure the shipped model NAME's quality again (weights, "
                             "sampling and NLL untouched), e.g. with --bars")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--command", default=None, help="the training command as typed")
    parser.add_argument("--note", default="", help="a note on the run (machine load...)")
    parser.add_argument("--force", action="store_true", help="replace an existing model")
    args = parser.parse_args(argv)
    sampling = {key: json.loads(value) for key, _, value in
                (item.partition("=") for item in args.sampling)}
    if args.update_sampling or args.update_quality:
        if args.update_sampling and not sampling:
            parser.error("--update-sampling needs --sampling KEY=VALUE")
        update_sampling(args.update_sampling or args.update_quality, args.dest, sampling or None,
                        args.sampling_chosen, samples=args.samples, seed=args.seed,
                        bars=args.bars)
        return 0
    if args.run_dir is None or args.name is None:
        parser.error("RUN_DIR and NAME are required (or --update-sampling NAME)")
    package(args.run_dir, args.name, args.dest, samples=args.samples, seed=args.seed,
            command=args.command, note=args.note, force=args.force, sampling=sampling or None,
            sampling_chosen=args.sampling_chosen, bars=args.bars)
    return 0


if __name__ == "__main__":
    sys.exit(main())
