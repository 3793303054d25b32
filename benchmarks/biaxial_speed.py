"""Biaxial RNN speed (issue 17, item 5): a training step over JSB chorales and sampling,
each path beside its reference in one run, alternating, on one thread.

    python benchmarks/biaxial_speed.py                   # 8 JSB train chorales, 3 repeats
    python benchmarks/biaxial_speed.py --pieces 8 --repeats 3 --json out.json

Training step (forward + backward + Adam step on one batch of the first ``--pieces`` JSB
train chorales, padded, the default 312K-parameter model with LSTMs on keys 20–77):

- ``batched``: the model's teacher-forced pass (``BiaxialRNN.loss``): the time axis over
  B × Ka sequences, then the note axis over all B × T frames at once; time and pitch are
  the only sequential loops (inside the two LSTMs).
- ``per-frame``: the same figure with the note axis run one frame at a time (a loop over T
  around a note-axis LSTM over B sequences): the per-frame loop the issue describes. It is
  the reference, not an older version of this file (the model batched its frames already).
- ``batched, bf16 autocast``: the batched pass under ``torch.autocast("cpu", bfloat16)``
  (the trainer's ``precision="bf16-mixed"``), where the CPU has bfloat16 instructions.

Sampling (``generate``, 4 pieces × 32 steps, cached time- and note-axis states):
``lower_notes_of_key`` (the window of keys below one key) against ``lower_notes(frame)[:, k]``
(the window of every key, then one taken), the sampler's code before 2026-11-26.

Reported: median seconds per repeat and ratios to the reference; per-epoch figures are
the step time × the JSB train batches of 8 (229 pieces: 29 batches).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tunesmith.data.corpora import find_benchmark_file
from tunesmith.data.polyphonic import load_polyphonic_mat
from tunesmith.models.biaxial import BiaxialConfig, BiaxialRNN
from tunesmith.models.sampling import SamplingControls


def batch_of(pieces: list[np.ndarray]) -> dict[str, torch.Tensor]:
    steps = max(len(p) for p in pieces)
    frames = torch.zeros(len(pieces), steps, 88)
    mask = torch.zeros(len(pieces), steps, dtype=torch.bool)
    for i, piece in enumerate(pieces):
        frames[i, : len(piece)] = torch.from_numpy(piece.astype(np.float32))
        mask[i, : len(piece)] = True
    return {"frames": frames, "mask": mask}


def per_frame_loss(model: BiaxialRNN, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss of ``model.loss`` with the note axis run frame by frame."""
    frames, mask = batch["frames"], batch["mask"].float()  # (B, T, K), (B, T)
    previous = torch.cat([torch.zeros_like(frames[:, :1]), frames[:, :-1]], dim=1)
    time_out, _ = model.run_time_axis(previous)  # (B, T, Ka, Ht)
    below = model.lower_notes(frames)[:, :, model.low : model.high]  # (B, T, Ka, W)
    rows = []
    for t in range(frames.shape[1]):
        note_in = torch.cat([time_out[:, t], below[:, t]], dim=-1)  # (B, Ka, Ht+W)
        out, _ = model.note_rnn(note_in)  # (B, Ka, Hn)
        rows.append(model.output(model.dropout(out)).squeeze(-1))  # (B, Ka)
    active = torch.stack(rows, dim=1)  # (B, T, Ka)
    outside = model.outside_logit.expand(*frames.shape)
    logits = torch.cat([outside[..., : model.low], active, outside[..., model.high :]], -1)
    log_prob = -F.binary_cross_entropy_with_logits(logits, frames, reduction="none").sum(-1)
    return -(log_prob * mask).sum() / mask.sum()


def timed_step(model, optimiser, batch, loss_fn, autocast: bool) -> float:
    started = time.perf_counter()
    optimiser.zero_grad()
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else \
        contextlib.nullcontext()
    with context:
        loss = loss_fn(model, batch)
    loss.backward()
    optimiser.step()
    return time.perf_counter() - started


def old_lower_notes_of_key(model, frame, k):
    return model.lower_notes(frame)[:, k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=8, help="JSB train chorales per batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast path")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pieces = load_polyphonic_mat(find_benchmark_file("JSB_Chorales.mat"))["train"]
    batch = batch_of(pieces[: args.pieces])
    torch.manual_seed(0)
    model = BiaxialRNN(BiaxialConfig(keys=88, active_low=20, active_high=78, dropout=0.5))
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    with torch.no_grad():
        model.eval()
        a = model.loss(batch)["loss"].item()
        b = per_frame_loss(model, batch).item()
        model.train()
    print(f"loss batched {a:.6f}, per-frame {b:.6f} (eval mode, same weights)")

    paths = {
        "batched": (lambda m, x: m.loss(x)["loss"], False),
        "per-frame": (per_frame_loss, False),
    }
    if not args.no_bf16:
        paths["batched, bf16 autocast"] = (lambda m, x: m.loss(x)["loss"], True)
    times: dict[str, list[float]] = {name: [] for name in paths}
    timed_step(model, optimiser, batch, paths["batched"][0], False)  # warm-up
    for _ in range(args.repeats):
        for name, (loss_fn, autocast) in paths.items():
            times[name].append(timed_step(model, optimiser, batch, loss_fn, autocast))

    model.eval()
    sampling: dict[str, list[float]] = {"lower_notes_of_key": [], "lower_notes(frame)[:, k]": []}
    new = BiaxialRNN.lower_notes_of_key
    for _ in range(args.repeats):
        for name in sampling:
            BiaxialRNN.lower_notes_of_key = new if name == "lower_notes_of_key" else \
                old_lower_notes_of_key
            started = time.perf_counter()
            model.generate(4, 32, SamplingControls(seed=0))
            sampling[name].append(time.perf_counter() - started)
    BiaxialRNN.lower_notes_of_key = new

    step = {name: statistics.median(v) for name, v in times.items()}
    sample = {name: statistics.median(v) for name, v in sampling.items()}
    frames = int(batch["mask"].sum())
    print(f"training step, {args.pieces} chorales ({frames} frames, padded to "
          f"{batch['mask'].shape[1]}), {model.n_parameters():,} params, 1 thread, "
          f"median of {args.repeats}:")
    for name, seconds in step.items():
        print(f"  {name:26s} {seconds:7.2f} s/step  ~{seconds * 29 / 60:5.1f} min/JSB epoch  "
              f"per-frame / this: {step['per-frame'] / seconds:5.2f}x")
    print("sampling, 4 pieces x 32 steps:")
    for name, seconds in sample.items():
        print(f"  {name:26s} {seconds:7.2f} s  "
              f"old / this: {sample['lower_notes(frame)[:, k]'] / seconds:5.2f}x")
    load = os.getloadavg()
    print(f"load average {load[0]:.1f}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "command": "python benchmarks/biaxial_speed.py " + " ".join(
                f"--pieces {args.pieces} --repeats {args.repeats}".split()),
            "pieces": args.pieces, "frames": frames, "parameters": model.n_parameters(),
            "step_seconds": times, "sampling_seconds": sampling,
            "load_average": load, "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "losses": {"batched": a, "per_frame": b},
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
