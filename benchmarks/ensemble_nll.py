"""An ensemble of ``bench nll`` checkpoints on their benchmark (issue 17, item 4): the
frame-level NLL of the mixture that averages the models' frame probabilities.

    python benchmarks/ensemble_nll.py runs/bench-jsb-seed-0 runs/bench-jsb-seed-1 \
        --json benchmarks/results/jsb-tcn-nade-ensemble.json

Each model gives an exact, normalised distribution of frame t given frames < t, so their
average p(x_t | x_<t) = (1/N) Σ_n p_n(x_t | x_<t) is one too, and the ensemble's figure
follows the same protocol (frames 2…T of every piece, nats summed over 88 keys, divided by
Σ(T_i − 1)): log p = logsumexp_n(log p_n) − log N per frame, then the protocol's sums. No
weight is fitted, on valid or test; valid is reported beside test as usual.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from tunesmith.data.batching import collate_frames, length_batches
from tunesmith.models.likelihood import SCORE_MAX_FRAMES, frame_nll, sequence_log_probs
from tunesmith.training.checkpoint import load_checkpoint, read_json
from tunesmith.training.trainer import RUN_FILE, prepare_data


@torch.no_grad()
def split_figures(models, pieces, batch_size: int = 16) -> tuple[list[float], float]:
    """(each model's NLL per scored frame, the ensemble's) on ``pieces``."""
    totals = [0.0] * len(models)
    ensemble, count = 0.0, 0
    for ids in length_batches([len(p) for p in pieces], batch_size,
                              max_frames=SCORE_MAX_FRAMES):
        batch = collate_frames([pieces[i] for i in ids])
        frames, mask = batch["frames"], batch["mask"]
        log_probs = torch.stack([sequence_log_probs(m, frames, mask).double()
                                 for m in models])  # (N, B, T)
        for n in range(len(models)):
            totals[n] += float(frame_nll(log_probs[n], mask)[0])
        mixed = torch.logsumexp(log_probs, dim=0) - math.log(len(models))  # (B, T)
        nll, scored = frame_nll(mixed, mask)
        ensemble += float(nll)
        count += scored
    return [t / count for t in totals], ensemble / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="bench nll run folders")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = [read_json(c / RUN_FILE) for c in args.checkpoints]
    files = {run["data"]["path"] for run in runs}
    if len(files) != 1:
        raise SystemExit(f"error: the checkpoints were trained on different files: {files}")
    models = []
    for checkpoint in args.checkpoints:
        model, _ = load_checkpoint(checkpoint)
        models.append(model.eval())
    prepared = prepare_data(runs[0]["data"], "pianoroll", progress=False)
    result = {"checkpoints": [str(c) for c in args.checkpoints], "data": files.pop(),
              "command": "python benchmarks/ensemble_nll.py "
                         + " ".join(str(c) for c in args.checkpoints)}
    for split in ("valid", "test"):
        each, mixed = split_figures(models, prepared.pieces(split))
        result[f"{split}_nll_each"] = each
        result[f"{split}_nll"] = mixed
        print(f"{split}: each " + ", ".join(f"{v:.4f}" for v in each)
              + f"; ensemble (mean of probabilities) {mixed:.4f}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
