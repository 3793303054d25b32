"""MusicVAE on held-out Essen folk melodies: hierarchical vs flat decoder.

For 2-bar and 16-bar phrases, trains a hierarchical and a flat MusicVAE for the same
wall-clock budget on the train split of ``essen-folk`` (melody events, pieces in the most
common bar length only) and reports on the test split, as Table 1 and §5 of Roberts et
al. (ICML 2018):

* reconstruction accuracy per step, teacher-forced (the true previous event fed back)
  and fully sampled (argmax decoding from μ, the model's own previous event fed back);
* KL(q(z|x) ‖ p(z)) in nats per sequence and per latent dimension;
* active units (Burda et al. 2016): dimensions d with Cov_x(E_q[z_d | x]) > 0.01;
* the ratio hierarchical / flat of each figure, in the same run.

Usage::

    .venv/bin/python benchmarks/vae_reconstruction.py --budget 120 --limit 2000
    .venv/bin/python benchmarks/vae_reconstruction.py --bars 2 16 --budget 480 720 \
        --batch-size 64 32

Two processes can share the work, one core each, with equal budgets::

    .venv/bin/python benchmarks/vae_reconstruction.py --bars 16 --budget 3600 --batch-size 32 \
        --decoders hierarchical --out benchmarks/results/vae_16bar_hierarchical.json &
    .venv/bin/python benchmarks/vae_reconstruction.py --bars 16 --budget 3600 --batch-size 32 \
        --decoders flat --out benchmarks/results/vae_16bar_flat.json

Budget is seconds of training per model, one value per ``--bars`` entry (or one for all),
on CPU with one thread by default; likewise ``--batch-size``. Denormal floats are flushed
to zero: the LSTM gradients of long phrases underflow into denormals, which made a 16-bar
step ~8× slower on x86 CPUs. Results go to stdout and
``benchmarks/results/vae_reconstruction.json``; with ``--plot``, slerp interpolations of the
2-bar models between two test phrases to ``benchmarks/results/vae_interpolation.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from tunesmith.models.music_vae import (
    MusicVAE,
    MusicVAEConfig,
    active_units,
    interpolate,
    kl_divergence,
)

RESULTS = Path(__file__).resolve().parent / "results" / "vae_reconstruction.json"


def phrase_windows(pieces, steps: int, steps_per_bar: int, stride_bars: int) -> np.ndarray:
    """Every bar-aligned window of ``steps`` events (stride in bars) holding a note-on."""
    windows = []
    for piece in pieces:
        piece = np.asarray(piece, dtype=np.int64)
        for start in range(0, len(piece) - steps + 1, stride_bars * steps_per_bar):
            window = piece[start : start + steps]
            if (window >= 2).any():
                windows.append(window)
    return np.stack(windows) if windows else np.zeros((0, steps), np.int64)


def per_bars(values: list, bars: list[int], option: str) -> list:
    """One value for every ``--bars`` entry: a single value is repeated."""
    if len(values) == 1:
        return values * len(bars)
    if len(values) != len(bars):
        raise SystemExit(f"{option} needs one value or one per --bars entry ({len(bars)})")
    return values


def melody_roll(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """Melody events (T,) -> a 0/1 roll (pitches, T): 0 holds, 1 stops, k >= 2 plays k − 2."""
    roll = np.zeros((vocab_size - 2, len(tokens)), np.uint8)
    sounding = None
    for t, token in enumerate(tokens):
        if token == 1:
            sounding = None
        elif token >= 2:
            sounding = int(token) - 2
        if sounding is not None:
            roll[sounding, t] = 1
    return roll


def plot_interpolations(interpolations: dict, vocab_size: int, folder: Path) -> None:
    """One row per decoder: the decoded slerp steps side by side as piano-rolls."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(interpolations), 1, figsize=(10, 2.2 * len(interpolations)),
                             squeeze=False)
    for ax, (decoder, phrases) in zip(axes[:, 0], interpolations.items(), strict=True):
        rolls = [melody_roll(p, vocab_size) for p in phrases]
        gap = np.full((vocab_size - 2, 2), 0.3)
        ax.imshow(np.concatenate([np.concatenate([r, gap], 1) for r in rolls], 1),
                  origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(f"2-bar {decoder}: slerp from μ(test phrase A) to μ(test phrase B), "
                     f"{len(rolls)} steps, argmax decoding", fontsize=9)
        ax.set_ylabel("pitch index")
        ax.set_xticks([])
    fig.tight_layout()
    path = folder / "vae_interpolation.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"wrote {path}")


def train_for(model: MusicVAE, data: np.ndarray, budget_s: float, batch_size: int, lr: float,
              seed: int, log_every: int = 50) -> dict:
    """Adam on random batches until the time budget is spent."""
    from rich.progress import Progress

    generator = np.random.default_rng(seed)
    optimiser = model.configure_optimizers(lr)
    model.train()
    steps, start, last = 0, time.perf_counter(), {}
    history, chunk = [], []  # mean of the batch figures every `log_every` steps
    with Progress(transient=True) as progress:
        task = progress.add_task(f"{model.config.decoder} {model.config.bars}-bar", total=budget_s)
        while time.perf_counter() - start < budget_s:
            index = generator.integers(0, len(data), batch_size)
            events = torch.as_tensor(data[index])
            out = model.loss({"events": events, "mask": torch.ones_like(events, dtype=torch.bool)})
            optimiser.zero_grad()
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            steps += 1
            last = {k: float(v.detach()) for k, v in out.items()}
            chunk.append(last)
            if len(chunk) == log_every:
                history.append({"step": steps, "seconds": round(time.perf_counter() - start, 1),
                                **{k: float(np.mean([c[k] for c in chunk])) for k in last}})
                chunk = []
            progress.update(task, completed=time.perf_counter() - start)
    seconds = time.perf_counter() - start
    return {"steps": steps, "seconds": seconds, "seconds_per_step": seconds / max(steps, 1),
            "batch_size": batch_size, "last_batch": last, "history": history}


@torch.no_grad()
def evaluate(model: MusicVAE, data: np.ndarray, batch_size: int = 256) -> dict:
    model.eval()
    correct_tf = correct_sampled = total = 0
    onset_tf = onset_sampled = onsets = 0  # the same, on the steps where a note starts
    mus, kls = [], []
    for i in range(0, len(data), batch_size):
        x = torch.as_tensor(data[i : i + batch_size])
        mu, sigma = model.encode(x)
        right_tf = model.decode_teacher_forced(mu, x).argmax(-1) == x  # (B, T)
        right_sampled = model.decode(mu, greedy=True) == x
        is_onset = x >= 2
        correct_tf += int(right_tf.sum())
        correct_sampled += int(right_sampled.sum())
        onset_tf += int((right_tf & is_onset).sum())
        onset_sampled += int((right_sampled & is_onset).sum())
        onsets += int(is_onset.sum())
        total += x.numel()
        mus.append(mu)
        kls.append(kl_divergence(mu, sigma))
    mu, kl = torch.cat(mus), torch.cat(kls)  # (N, Z)
    n_active, _ = active_units(mu)
    return {
        "accuracy_teacher_forced": correct_tf / total,
        "accuracy_sampled": correct_sampled / total,
        "note_on_accuracy_teacher_forced": onset_tf / max(onsets, 1),
        "note_on_accuracy_sampled": onset_sampled / max(onsets, 1),
        "kl_nats_per_sequence": float(kl.sum(1).mean()),
        "kl_nats_per_dimension": float(kl.mean()),
        "active_units": n_active,
        "latent_dim": mu.shape[1],
        "test_phrases": len(data),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, nargs="+", default=[120],
                        help="training seconds per model: one, or one per --bars entry")
    parser.add_argument("--limit", type=int, default=2000, help="Essen tunes to prepare")
    parser.add_argument("--bars", type=int, nargs="+", default=[2, 16])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64],
                        help="one, or one per --bars entry")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-test", type=int, default=2000, help="most test phrases")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", action="store_true", help="write vae_interpolation.png")
    parser.add_argument("--decoders", nargs="+", default=["hierarchical", "flat"],
                        choices=["hierarchical", "flat"],
                        help="decoders to train; one per process runs them side by side, "
                             "one per core, with equal wall-clock budgets")
    parser.add_argument("--out", type=Path, default=RESULTS, help="result JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # see the module docstring
    budgets = per_bars(args.budget, args.bars, "--budget")
    batch_sizes = per_bars(args.batch_size, args.bars, "--batch-size")

    from tunesmith.data import prepare

    prepared = prepare("essen-folk", "melody", {}, limit=args.limit, progress=True, report=False)
    info = prepared.info
    steps_per_bar = info.steps_per_bar

    def split_pieces(split):  # only pieces in the common bar length keep bars aligned
        return [p for p, m in zip(prepared.pieces(split), prepared.meta(split), strict=True)
                if m.get("steps_per_bar") == steps_per_bar]

    train_pieces, test_pieces = split_pieces("train"), split_pieces("test")
    results = {"machine": f"{platform.processor() or platform.machine()}, "
                          f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}",
               "corpus": f"essen-folk, first {args.limit} tunes, {len(train_pieces)} train / "
                         f"{len(test_pieces)} test tunes with {steps_per_bar}-step bars",
               "budget_s_per_model": dict(zip(map(str, args.bars), budgets, strict=True)),
               "runs": {}}
    interpolations = {}
    for bars, budget, batch_size in zip(args.bars, budgets, batch_sizes, strict=True):
        steps = bars * steps_per_bar
        train = phrase_windows(train_pieces, steps, steps_per_bar, 1)
        # test phrases start every min(bars, 4) bars: disjoint 2-bar phrases, and 16-bar
        # phrases overlapping by 12 bars (disjoint ones would leave only ~40 in 78 tunes)
        test = phrase_windows(test_pieces, steps, steps_per_bar, min(bars, 4))[: args.max_test]
        print(f"{bars}-bar: {len(train)} train / {len(test)} test phrases")
        for decoder in args.decoders:
            torch.manual_seed(args.seed)
            config = MusicVAEConfig(
                decoder=decoder, bars=bars, steps_per_bar=steps_per_bar,
                vocab_size=info.vocab_size, input_embedding=32, encoder_hidden=128,
                latent_dim=32, conductor_hidden=128, conductor_output=64, decoder_hidden=128,
                beta_max=0.2, beta_schedule="linear", beta_warmup_steps=300,
                free_nats=0.0 if bars <= 2 else 16.0,
            )
            model = MusicVAE(config)
            training = train_for(model, train, budget, batch_size, args.lr, args.seed)
            figures = evaluate(model, test)
            results["runs"][f"{bars}-bar {decoder}"] = {"config": config.to_dict(),
                                                        "training": training, **figures}
            if args.plot and bars == 2:
                interpolations[decoder] = interpolate(model, test[0], test[-1], 7)[1].numpy()
            print(f"  {decoder:12s} {training['steps']:5d} steps  "
                  f"TF acc {figures['accuracy_teacher_forced']:.3f}  "
                  f"sampled acc {figures['accuracy_sampled']:.3f}  "
                  f"note-on TF/sampled {figures['note_on_accuracy_teacher_forced']:.3f}/"
                  f"{figures['note_on_accuracy_sampled']:.3f}  "
                  f"KL {figures['kl_nats_per_sequence']:.2f} nats "
                  f"({figures['kl_nats_per_dimension']:.3f}/dim)  "
                  f"active {figures['active_units']}/{figures['latent_dim']}")
        if len(args.decoders) < 2:
            continue
        h, f = results["runs"][f"{bars}-bar hierarchical"], results["runs"][f"{bars}-bar flat"]
        ratios = {k: (h[k] / f[k] if f[k] else float("nan"))
                  for k in ("accuracy_teacher_forced", "accuracy_sampled",
                            "note_on_accuracy_teacher_forced", "note_on_accuracy_sampled",
                            "kl_nats_per_sequence", "active_units")}
        results["runs"][f"{bars}-bar ratio hierarchical/flat"] = ratios
        print("  ratio hierarchical/flat: "
              + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    print(results["machine"])
    if interpolations:
        plot_interpolations(interpolations, info.vocab_size, RESULTS.parent)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
