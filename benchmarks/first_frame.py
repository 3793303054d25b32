"""How well piano-roll checkpoints (any family with ``frame_log_prob``: ``lstm``/``gru``,
``frame-transformer``, ``tcn``/``wavenet``, ``biaxial``) model the first frame of a piece,
beside the benchmark protocol's figure (frames 2…T), on a benchmark ``.mat`` split.

``bench nll`` trains the protocol's objective, so the first frame of a piece is never in
its loss, and a model straight from it draws whatever its untrained first-frame
distribution gives (for the Nottingham Transformer: an empty frame 81 % of the time, where
0.6 % of the test tunes start empty). For each ``--checkpoint`` this prints

* ``p_empty_first``: the probability the model gives an empty first frame (what a sample
  starts with, unprimed), beside the share of the split's pieces that start empty;
* ``first_frame_nll``: the mean NLL of the pieces' real first frames (nats);
* ``protocol_nll``: nats per frame over frames 2…T
  (:func:`~tunesmith.models.likelihood.score_split`, the ``bench nll`` figure);
* ``empty_sample_frames``: the share of empty frames in ``--samples`` unprimed samples of
  ``--steps`` frames (seed 0), beside the split's;
* ``melody_frames``: the share of those frames with a note at or above middle C (the melody
  of a Nottingham tune), and ``low_change``: the share of frames where the notes below
  middle C (the chords) differ from the frame before; the split's figures are over the first
  ``--steps`` frames of its pieces at least that long.

Usage::

    PYTHONPATH=src python benchmarks/first_frame.py --data nottingham \\
        --checkpoint runs/bench-nottingham --checkpoint pretrained:nottingham \\
        --json benchmarks/results/nottingham_first_frame.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch

from tunesmith.data.polyphonic import load_polyphonic_mat
from tunesmith.models.likelihood import score_split
from tunesmith.models.sampling import SamplingControls
from tunesmith.training.benchmark import benchmark_data
from tunesmith.training.checkpoint import load_checkpoint

MIDDLE_C_KEY = 39  # key of MIDI 60 in a roll whose key 0 is MIDI 21


def texture(frames: torch.Tensor) -> dict:
    """Melody presence and chord changes of rolls (n, T, 88)."""
    keys = torch.arange(frames.shape[-1], dtype=frames.dtype)
    top = (frames * (keys + 1)).amax(-1) - 1  # (n, T) highest key sounding, -1 if none
    low = frames[..., :MIDDLE_C_KEY]
    return {"melody_frames": round(float((top >= MIDDLE_C_KEY).float().mean()), 4),
            "low_change": round(float((low[:, 1:] != low[:, :-1]).any(-1).float().mean()), 4)}


@torch.no_grad()
def first_frame_figures(model, pieces: list[np.ndarray], samples: int, steps: int) -> dict:
    # log p(x_1) from the empty start: a one-frame piece's first (and only) step
    empty = torch.zeros(1, 1, pieces[0].shape[1])
    p_empty = float(model.frame_log_prob(empty, torch.ones(1, 1, dtype=torch.bool))[0, 0].exp())
    firsts = torch.tensor(np.stack([p[0] for p in pieces]), dtype=torch.float32)[:, None]
    first_nll = -model.frame_log_prob(firsts, torch.ones(len(pieces), 1, dtype=torch.bool)).mean()
    drawn = model.generate(samples, steps, SamplingControls(seed=0))  # (n, steps, K)
    return {"p_empty_first": round(p_empty, 4), "first_frame_nll": round(float(first_nll), 3),
            "protocol_nll": round(score_split(model, pieces), 4),
            "empty_sample_frames": round(float((drawn.sum(-1) == 0).float().mean()), 4),
            **texture(drawn)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="nottingham", help="jsb, nottingham or a .mat path")
    parser.add_argument("--split", default="test")
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pieces = load_polyphonic_mat(benchmark_data(args.data)["path"])[args.split]
    long_enough = [torch.tensor(p[: args.steps], dtype=torch.float32) for p in pieces
                   if len(p) >= args.steps]
    data = {"pieces": len(pieces), **texture(torch.stack(long_enough)),
            "share_starting_empty": round(float(np.mean([p[0].sum() == 0 for p in pieces])), 4),
            "empty_frames": round(float(np.mean(np.concatenate(
                [p.sum(1) == 0 for p in pieces]))), 4)}
    print(f"{args.data}:{args.split}: {data}")
    rows = {}
    for checkpoint in args.checkpoint:
        model = load_checkpoint(checkpoint)[0]
        rows[checkpoint] = first_frame_figures(model, pieces, args.samples, args.steps)
        print(f"{checkpoint}: {rows[checkpoint]}")
    if args.json:
        args.json.write_text(json.dumps({
            "command": "python benchmarks/first_frame.py " + " ".join(
                f"--checkpoint {c}" for c in args.checkpoint) + f" --data {args.data} --split "
                f"{args.split} --samples {args.samples} --steps {args.steps}",
            "data": {"benchmark": args.data, "split": args.split, **data},
            "checkpoints": rows, "samples": args.samples, "steps": args.steps,
            "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
