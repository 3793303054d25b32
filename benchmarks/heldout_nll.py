"""Held-out NLL of several model families on the same test pieces, per unit and per second.

For each corpus, every model is trained with the generic trainer
(:func:`tunesmith.training.trainer.train`) for a fixed wall-time budget on the corpus's
train split (the valid split picks the best epoch, as the trainer does); the best
checkpoint then scores the **test** split:

* NLL per unit: total NLL (nats) over the test pieces / the units the model predicts
  (event tokens, BOS/EOS included; melody steps; piano-roll frames, first one included,
  each frame's NLL summed over its 4 × 49 keys);
* NLL per second of music: the same total / the test pieces' duration in seconds (from the
  prepared data's per-piece ``seconds``, else quarters × 0.5 s at 120 qpm). Both
  representations of a corpus encode the same scores, so this figure is comparable
  across them.

Every model of a corpus scores the same pieces: the test ids kept by all its
representations (pieces one representation skipped are listed and left out for all).

How each family is scored, exactly as its ``loss`` defines the likelihood: the Transformers
read whole pieces cut into consecutive windows of ``context`` positions (each window
restarts after the prefix: no overlap, so tokens early in a window see little context);
the WaveNet and the Melody RNNs read whole pieces causally. The GPT conditions on
key/tempo/density tokens computed from the piece itself; its figure adds the code length
of those conditions, −log p(c) with p the add-one-smoothed product of per-slot
frequencies over the train pieces, so it bounds −log Σ_c p(c) p(x | c) (a proper
likelihood); the figure with all conditions "unknown" is reported beside it.

Usage: ``.venv/bin/python benchmarks/heldout_nll.py [--minutes 3] [--limit 2000]
[--corpora bach-chorales essen-folk] [--runs out/heldout_nll]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

#: a small Transformer that learns something in a few CPU minutes (both token families)
TRANSFORMER = {"d_model": 128, "n_layers": 3, "n_heads": 4, "d_ff": 512, "context": 256,
               "dropout": 0.1}
#: the demo's chorale piano-roll (SATB tracks, MIDI 36-84, 4 steps a quarter) and training
WAVENET_REPR = {"resolution": 4, "pitch_low": 36, "pitch_high": 84, "merge_tracks": False}
WAVENET_TRAIN = {"window": 128, "batch_size": 16, "lr": 2e-3, "gradient_clip": 1.0,
                 "lr_schedule": "plateau"}
TOKEN_TRAIN = {"batch_size": 8, "lr": 1e-3, "gradient_clip": 1.0, "lr_schedule": "plateau"}
MELODY_TRAIN = {"window": 256, "batch_size": 32, "lr": 1e-3, "gradient_clip": 1.0,
                "lr_schedule": "plateau"}


def plan(corpus: str) -> list[dict]:
    """The models of a corpus: label, registry name, representation, options, settings."""
    gpt_prefix = 5  # four conditioning tokens + the window-start token
    mt = {"label": "music-transformer", "model": "music-transformer", "representation": "events",
          "repr": {}, "options": dict(TRANSFORMER),
          "train": {**TOKEN_TRAIN, "window": TRANSFORMER["context"]}}
    if corpus == "bach-chorales":
        return [
            mt,
            {"label": "gpt-events", "model": "gpt-events", "representation": "events",
             "repr": {}, "options": dict(TRANSFORMER),
             "train": {**TOKEN_TRAIN, "window": TRANSFORMER["context"] - gpt_prefix + 1}},
            {"label": "wavenet", "model": "wavenet", "representation": "pianoroll",
             "repr": dict(WAVENET_REPR), "options": {}, "train": dict(WAVENET_TRAIN)},
        ]
    if corpus == "essen-folk":
        return [
            mt,
            {"label": "melody-rnn-basic", "model": "melody-rnn-basic",
             "representation": "melody", "repr": {}, "options": {}, "train": dict(MELODY_TRAIN)},
            {"label": "melody-rnn-attention", "model": "melody-rnn-attention",
             "representation": "melody", "repr": {}, "options": {}, "train": dict(MELODY_TRAIN)},
        ]
    raise SystemExit(f"no plan for corpus {corpus!r}")


# ---- scoring ----------------------------------------------------------------------------
def piece_seconds(meta: dict) -> float:
    """Duration of a prepared piece in seconds (120 qpm when the score had no tempo map)."""
    if meta.get("seconds"):
        return float(meta["seconds"])
    return float(meta["quarters"]) * 60.0 / 120.0


def units_of(model, batch: dict, outputs: dict) -> float:
    """How many units a batch's mean loss averages over (tokens, steps or frames)."""
    if "tokens" in outputs:  # token Transformers count their targets
        return float(outputs["tokens"])
    mask = batch["mask"].bool()
    count = float(mask.sum())
    if not getattr(model.config, "score_first_frame", True):
        count -= float(mask[:, 0].sum())
    return count


@torch.no_grad()
def total_nll(model, pieces: list[np.ndarray], representation: str, batch_size: int = 8,
              extra: dict | None = None) -> tuple[float, float]:
    """(summed NLL in nats, units) of whole pieces, model in eval mode.

    ``extra(batch) -> dict`` adds batch keys (the GPT's ``condition_tokens``).
    """
    from tunesmith.data.datasets import collate

    model.eval()
    order = np.argsort([len(p) for p in pieces], kind="stable")  # little padding
    total, units = 0.0, 0.0
    for start in range(0, len(order), batch_size):
        items = [{"data": pieces[i]} for i in order[start : start + batch_size]]
        batch = collate(items, representation)
        if extra is not None:
            batch.update(extra(batch))
        outputs = model.loss(batch)
        n = units_of(model, batch, outputs)
        total += float(outputs["loss"]) * n  # the loss is the mean over the batch's units
        units += n
    return total, units


def gpt_condition_scores(model, train_pieces, test_pieces) -> dict:
    """The GPT's test NLL given each piece's own conditions plus their code length, and
    with every condition unknown (see module docstring)."""
    from tunesmith.data.batching import collate_tokens

    model.eval()

    def values(pieces):  # (N, 4) slot values computed from whole pieces, as in training
        rows = []
        for piece in pieces:
            batch = collate_tokens([piece])
            rows.append(model.condition_values(batch["tokens"], batch))
        return torch.cat(rows)

    sizes = model.config.condition_sizes()
    train_values = values(train_pieces)
    log_prior = []  # per slot: log of add-one-smoothed frequencies over the train pieces
    for slot, size in enumerate(sizes):
        counts = torch.bincount(train_values[:, slot], minlength=size).double() + 1.0
        log_prior.append((counts / counts.sum()).log())
    test_values = values(test_pieces)
    code_nats = -sum(float(log_prior[s][test_values[:, s]].sum()) for s in range(len(sizes)))

    conditioned, units = 0.0, 0.0  # one piece at a time: each with its own conditions
    for piece, value in zip(test_pieces, test_values, strict=True):
        nll, n = total_nll(model, [piece], "events",
                           extra=lambda b, v=value: {"condition_tokens": v[None]})
        conditioned += nll
        units += n
    unknown, _ = total_nll(
        model, test_pieces, "events",
        extra=lambda b: {"condition_tokens": torch.zeros(b["tokens"].shape[0], len(sizes),
                                                         dtype=torch.long)},
    )
    return {"conditioned_nats": conditioned, "condition_code_nats": code_nats,
            "unknown_nats": unknown, "units": units}


# ---- one corpus -------------------------------------------------------------------------
def prepare_all(corpus: str, models: list[dict], limit: int | None):
    from tunesmith.data.prepare import prepare

    prepared = {}
    for spec in models:
        key = (spec["representation"], json.dumps(spec["repr"], sort_keys=True))
        if key not in prepared:
            start = time.perf_counter()
            prepared[key] = prepare(corpus, spec["representation"], dict(spec["repr"]),
                                    limit=limit, report=False)
            print(f"  prepared {corpus} {spec['representation']}: {len(prepared[key])} pieces "
                  f"{prepared[key].n_pieces} in {time.perf_counter() - start:.0f} s",
                  flush=True)
        spec["key"] = key
    return prepared


def common_test_ids(prepared: dict) -> tuple[list[str], dict]:
    """Test ids every representation kept, and per representation the ones left out."""
    sets = {key: set(data.ids("test")) for key, data in prepared.items()}
    common = sorted(set.intersection(*sets.values()))
    dropped = {key[0] + " " + key[1]: sorted(ids - set(common)) for key, ids in sets.items()}
    return common, dropped


def run_corpus(corpus: str, minutes: float, limit: int | None, runs: Path,
               progress: bool) -> dict:
    from tunesmith.training.checkpoint import load_checkpoint
    from tunesmith.training.trainer import train

    models = plan(corpus)
    prepared = prepare_all(corpus, models, limit)
    test_ids, dropped = common_test_ids(prepared)
    # seconds of each test piece, from the first representation; checked against the others
    first = next(iter(prepared.values()))
    meta_by_id = dict(zip(first.ids(), first.piece_meta, strict=True))
    seconds = sum(piece_seconds(meta_by_id[i]) for i in test_ids)
    spread = 0.0
    for data in prepared.values():
        other = dict(zip(data.ids(), data.piece_meta, strict=True))
        spread = max(spread, max(abs(piece_seconds(other[i]) - piece_seconds(meta_by_id[i]))
                                 for i in test_ids))
    result = {"corpus": corpus, "limit": limit, "n_test_pieces": len(test_ids),
              "test_seconds": round(seconds, 2), "max_seconds_disagreement": spread,
              "test_ids_left_out": dropped, "representations": {}, "models": []}
    for key, data in prepared.items():
        result["representations"][f"{key[0]} {key[1]}"] = {
            "n_pieces": data.n_pieces, "n_skipped": len(data.skipped),
            "cache": str(data.cache_dir)}
    print(f"  {corpus}: {len(test_ids)} common test pieces, {seconds:.0f} s of music; "
          f"left out: { {k: len(v) for k, v in dropped.items()} }", flush=True)

    for spec in models:
        data = prepared[spec["key"]]
        run_dir = runs / corpus / spec["label"]
        if run_dir.exists():
            shutil.rmtree(run_dir)  # this script's own earlier run
        settings = {**spec["train"], "epochs": None, "max_time": minutes,
                    "early_stopping_patience": 0, "seed": 0, "loggers": False,
                    "progress_bar": progress}
        print(f"  training {spec['label']} for {minutes} min ...", flush=True)
        start = time.perf_counter()
        train(spec["model"], data, dict(spec["options"]), run_dir, **settings)
        train_s = time.perf_counter() - start
        model, meta = load_checkpoint(run_dir)
        torch.set_num_threads(1)
        ids = data.ids()
        by_id = dict(zip(ids, data.pieces(), strict=True))
        pieces = [by_id[i] for i in test_ids]
        start = time.perf_counter()
        row = {"label": spec["label"], "model": spec["model"],
               "representation": spec["representation"], "repr_options": spec["repr"],
               "model_options": spec["options"], "train_settings": settings,
               "n_parameters": model.n_parameters(), "train_wall_s": round(train_s, 1)}
        training = meta.get("training", {})
        row.update(best_epoch=training.get("best_epoch"),
                   best_step=training.get("global_step"),
                   best_val_loss=training.get("best_val_loss"),
                   steps_trained=training.get("run", training).get("global_step"),
                   epochs_trained=training.get("run", training).get("epochs"))
        if spec["model"] == "gpt-events":
            train_pieces = data.pieces("train")
            scores = gpt_condition_scores(model, train_pieces, pieces)
            nats = scores["conditioned_nats"] + scores["condition_code_nats"]
            units = scores["units"]
            row["unknown_conditions"] = {
                "nats": scores["unknown_nats"],
                "per_unit": scores["unknown_nats"] / units,
                "per_second": scores["unknown_nats"] / seconds}
            row["condition_code_nats"] = scores["condition_code_nats"]
        else:
            nats, units = total_nll(model, pieces, spec["representation"])
        row.update(total_nats=nats, units=units, nll_per_unit=nats / units,
                   nll_per_second=nats / seconds, units_per_second=units / seconds,
                   score_wall_s=round(time.perf_counter() - start, 1))
        print(f"    {spec['label']}: {row['steps_trained']} steps, best epoch "
              f"{row['best_epoch']}; test NLL {row['nll_per_unit']:.4f} nats/unit, "
              f"{row['nll_per_second']:.2f} nats/s", flush=True)
        result["models"].append(row)
    return result


# ---- report -----------------------------------------------------------------------------
UNIT = {"events": "token", "melody": "step", "pianoroll": "frame"}


def table(results: list[dict]) -> str:
    lines = ["| corpus | model | repr. | params | steps | NLL / unit | unit | units/s "
             "| NLL / second |",
             "|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        for row in res["models"]:
            lines.append(
                f"| {res['corpus']} | {row['label']} | {row['representation']} "
                f"| {row['n_parameters'] / 1e6:.2f} M | {row['steps_trained']} "
                f"| {row['nll_per_unit']:.3f} | {UNIT[row['representation']]} "
                f"| {row['units_per_second']:.1f} | **{row['nll_per_second']:.2f}** |")
            if "unknown_conditions" in row:
                unk = row["unknown_conditions"]
                lines.append(
                    f"| {res['corpus']} | {row['label']} (conditions unknown) "
                    f"| {row['representation']} | | | {unk['per_unit']:.3f} "
                    f"| {UNIT[row['representation']]} | {row['units_per_second']:.1f} "
                    f"| {unk['per_second']:.2f} |")
    return "\n".join(lines)


def machine() -> dict:
    from tunesmith.training.benchmark import cpu_model

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": sys.version.split()[0], "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="training minutes per model")
    parser.add_argument("--limit", type=int, default=2000,
                        help="essen-folk: the first LIMIT tunes by id (same for every repr.)")
    parser.add_argument("--corpora", nargs="+", default=["bach-chorales", "essen-folk"])
    parser.add_argument("--runs", type=Path, default=Path("out/heldout_nll"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/heldout_nll.json"))
    parser.add_argument("--no-progress", action="store_true", help="no training progress bars")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    begin = time.perf_counter()
    info = {"command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
            "minutes_per_model": args.minutes, "machine": machine(),
            "load_average_start": os.getloadavg(), "results": []}
    for corpus in args.corpora:
        limit = args.limit if corpus == "essen-folk" else None
        print(f"{corpus}:", flush=True)
        info["results"].append(run_corpus(corpus, args.minutes, limit, args.runs,
                                          not args.no_progress))
    info["load_average_end"] = os.getloadavg()
    info["total_wall_s"] = round(time.perf_counter() - begin, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(info, indent=1, default=str) + "\n")
    print(table(info["results"]))
    print(f"machine: {info['machine']['cpu']}, {info['machine']['cores']} cores, 1 torch thread; "
          f"load average {info['load_average_start'][0]:.2f} -> "
          f"{info['load_average_end'][0]:.2f}; total {info['total_wall_s'] / 60:.1f} min; "
          f"wrote {args.out}")
    if any(math.isnan(r["nll_per_second"]) for res in info["results"] for r in res["models"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
