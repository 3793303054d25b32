"""Frame-level negative log-likelihood on the polyphonic benchmarks, and their training loop.

Protocol of Boulanger-Lewandowski, Bengio & Vincent (ICML 2012), used by Bai, Kolter &
Koltun (2018) and the papers that quote them: for each piece x_1 … x_T, frame t is
predicted from frames < t; frames 2 … T are scored (frame 1 is not); a frame's NLL is
summed over its 88 keys, in nats; the split's figure is the mean over all scored frames.
The model is selected on valid and tested once.

:func:`benchmark_nll` is a focused training loop kept apart from the general Lightning
trainer on purpose: the published protocol fixes what is optimised (the NLL of scored
frames only), how the model is selected (best valid NLL, weights restored before one test
evaluation) and what is reported, and the loop must stay fast on two CPU cores. It is
model-agnostic: it builds the model through the registry and only calls
:func:`sequence_log_probs`.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tunesmith.data.batching import collate_frames
from tunesmith.errors import ConfigError
from tunesmith.training.settings import cpu_cores

#: built-in benchmark names -> file name in the shared benchmark folder
BENCHMARK_FILES = {"jsb": "JSB_Chorales.mat", "nottingham": "Nottingham.mat"}
DEFAULT_BENCHMARK_DIR = Path(__file__).resolve().parents[4] / "shared" / "benchmarks" / "polyphonic"


# ---- scoring ------------------------------------------------------------------------
def scored_mask(mask: torch.Tensor) -> torch.Tensor:
    """The frames the protocol scores: real frames (mask) except the first of each piece."""
    scored = mask.clone()
    scored[:, 0] = False
    return scored  # (B, T) bool


def frame_nll(log_probs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed NLL of the scored frames and their number.

    ``log_probs`` (B, T): log p(frame t | frames < t) in nats, already summed over keys;
    ``mask`` (B, T) bool marks real frames (padding False). Frame 0 of each row is skipped.
    Returns ``(total_nll, n_scored_frames)``; their ratio is the benchmark figure.
    """
    scored = scored_mask(mask.bool())
    total = -(log_probs * scored).sum()
    return total, int(scored.sum())


def sequence_log_probs(model, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p(frame t | frames < t) for every step (B, T); any piano-roll model.

    Uses the model's ``frame_log_prob(frames, mask)`` when it has one; otherwise its
    ``features(frames)`` (``h[:, t]`` has seen frames ≤ t, as in :mod:`models.heads`) and
    ``head.log_prob``, in which case frame 0 gets 0 (it is never scored).
    """
    if hasattr(model, "frame_log_prob"):
        return model.frame_log_prob(frames, mask)
    if hasattr(model, "features") and hasattr(model, "head"):
        h = model.features(frames)
        h = h[0] if isinstance(h, tuple) else h  # (B, T, H)
        log_probs = model.head.log_prob(h[:, :-1], frames[:, 1:])  # predicts frames 1..T-1
        return torch.cat([torch.zeros_like(log_probs[:, :1]), log_probs], dim=1)
    raise ConfigError(
        f"model {type(model).__name__} has neither frame_log_prob() nor features() + head; "
        "it cannot be scored frame by frame"
    )


def length_batches(pieces: Sequence[np.ndarray], batch_size: int, rng=None) -> list[list[int]]:
    """Indices grouped into batches of similar length (little padding).

    With ``rng`` the order is shuffled: pieces are sorted by length with random
    tie-breaking inside windows of 8 batches, and the batch order is shuffled.
    """
    order = np.argsort([len(p) for p in pieces], kind="stable")
    if rng is not None:
        window = batch_size * 8
        order = np.concatenate(
            [rng.permutation(order[i : i + window]) for i in range(0, len(order), window)]
        )
        order = order[np.argsort([len(pieces[i]) for i in order], kind="stable")]
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


@torch.no_grad()
def score_split(model, pieces: Sequence[np.ndarray], batch_size: int = 32) -> float:
    """Mean NLL (nats) per scored frame of a split, in eval mode, padded batches."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        for batch_ids in length_batches(pieces, batch_size):
            batch = collate_frames([pieces[i] for i in batch_ids])
            frames, mask = batch["frames"].to(device), batch["mask"].to(device)
            nll, n = frame_nll(sequence_log_probs(model, frames, mask), mask)
            total += float(nll)
            count += n
    finally:
        model.train(was_training)
    return total / max(count, 1)


# ---- data ---------------------------------------------------------------------------
def resolve_benchmark(data: str, directory: str | Path | None = None) -> Path:
    """``jsb`` | ``nottingham`` (in ``directory`` or the shared folder) or a .mat path."""
    key = data.lower()
    if key in BENCHMARK_FILES:
        return Path(directory or DEFAULT_BENCHMARK_DIR) / BENCHMARK_FILES[key]
    return Path(data)


def transpose_pieces(
    pieces: Sequence[np.ndarray], shifts: Sequence[int]
) -> list[np.ndarray]:
    """Shift each (T, 88) piece by its number of semitones; notes leaving the keyboard drop."""
    out = []
    for piece, shift in zip(pieces, shifts, strict=True):
        moved = np.zeros_like(piece)
        if shift >= 0:
            moved[:, shift:] = piece[:, : piece.shape[1] - shift]
        else:
            moved[:, :shift] = piece[:, -shift:]
        out.append(moved)
    return out


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> dict:
    return {
        "platform": platform.platform(),
        "processor": cpu_model(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": __import__("os").cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


# ---- training -----------------------------------------------------------------------
def check_device(device: str) -> torch.device:
    """A torch device this machine has; a ConfigError naming it otherwise."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; use cpu, or cuda / cuda:N on a "
                          "machine with a GPU") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (parsed.index is not None and parsed.index >= count):
            raise ConfigError(f"device {device!r}: this machine has {count} CUDA GPU(s)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r}: no MPS device on this machine")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {device!r}: only cpu, cuda and mps are supported")
    return parsed


def check_bench_settings(*, max_epochs: int, patience: int, batch_size: int, lr: float,
                         clip: float, lr_decay_patience: int, weight_decay: float,
                         max_minutes: float | None, threads: int | None) -> None:
    """Refuse settings under which :func:`benchmark_nll` cannot train or report."""
    most_threads = max(2, cpu_cores())  # more than the cores never helps; 2 is the default
    checks = [
        (max_epochs >= 1, f"epochs must be >= 1, got {max_epochs}"),
        (patience >= 1, f"patience must be >= 1 epochs, got {patience}"),
        (batch_size >= 1, f"batch size must be >= 1, got {batch_size}"),
        (0 < lr < math.inf, f"lr must be > 0 and finite, got {lr}"),
        (0 <= clip < math.inf, f"clip must be >= 0 and finite (0 = off), got {clip}"),
        (lr_decay_patience >= 0, f"lr decay patience must be >= 0, got {lr_decay_patience}"),
        (0 <= weight_decay < math.inf, f"weight decay must be >= 0, got {weight_decay}"),
        (max_minutes is None or 0 < max_minutes < math.inf,
         f"max minutes must be > 0 and finite, got {max_minutes}"),
        (threads is None or 0 <= threads <= most_threads,
         f"threads must be >= 0 (0 = torch's) and at most {most_threads} here, got {threads}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def benchmark_nll(
    model_name: str,
    data: str,
    options: dict | None = None,
    *,
    directory: str | Path | None = None,
    max_epochs: int = 100,
    patience: int = 10,
    batch_size: int = 16,
    lr: float = 1e-3,
    clip: float = 1.0,
    lr_decay_patience: int = 3,
    weight_decay: float = 0.0,
    transpose_augment: tuple[int, int] | None = None,
    seed: int = 0,
    out_json: str | Path | None = None,
    max_minutes: float | None = None,
    threads: int | None = 2,
    device: str = "cpu",
    command: str | None = None,
    progress: bool = True,
) -> dict:
    """Train ``model_name`` on a benchmark's train split, early-stop on valid, test once.

    Adam with gradient-norm clipping ``clip``; the learning rate halves after
    ``lr_decay_patience`` epochs without a better valid NLL; training stops after
    ``patience`` such epochs, ``max_epochs``, ``max_minutes`` or Ctrl-C (after at least
    one validated epoch; otherwise the interrupt propagates). The best-valid weights
    are restored before the single test evaluation. ``transpose_augment=(lo, hi)`` shifts
    each training piece by a random number of semitones in [lo, hi] every epoch (Walder
    2016, "Modelling symbolic music: beyond the piano roll"); valid and test are never
    transposed. Returns (and writes to ``out_json``) the figures and how they were made.
    """
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from tunesmith.data.polyphonic import LOWEST_PITCH, N_KEYS, load_polyphonic_mat
    from tunesmith.models import registry
    from tunesmith.representations import pianoroll

    registry.check_name(model_name)
    check_bench_settings(max_epochs=max_epochs, patience=patience, batch_size=batch_size, lr=lr,
                         clip=clip, lr_decay_patience=lr_decay_patience,
                         weight_decay=weight_decay, max_minutes=max_minutes, threads=threads)
    device = check_device(device)
    if threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # tiny activations late in training otherwise slow CPUs
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    path = resolve_benchmark(data, directory)
    splits = load_polyphonic_mat(path)
    # one 88-key track from MIDI 21; the .mat rolls record no frame rate (1 frame a quarter
    # here), and the frame models scored by this protocol do not read it
    data_info = pianoroll.info(pianoroll.PianorollConfig(
        resolution=1, pitch_low=LOWEST_PITCH, pitch_high=LOWEST_PITCH + N_KEYS - 1,
        track_names=["Piano"]))
    model = registry.build(model_name, options or {}, data_info).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    console = Console()
    n_params = model.n_parameters()
    console.print(
        f"[bold]{model_name}[/] on {path.name}: {n_params:,} parameters, "
        f"{len(splits['train'])} train pieces"
    )

    history: list[dict] = []
    best_valid, best_state, best_epoch = math.inf, None, 0
    epochs_without_gain, stop_reason = 0, "max_epochs"
    started = time.perf_counter()
    train = splits["train"]
    progress_bar = Progress(console=console, disable=not progress, transient=True)
    with progress_bar:
        try:
            for epoch in range(1, max_epochs + 1):
                model.train()
                pieces = train
                if transpose_augment is not None:
                    low, high = transpose_augment
                    pieces = transpose_pieces(train, rng.integers(low, high + 1, size=len(train)))
                batches = length_batches(pieces, batch_size, rng)
                task = progress_bar.add_task(f"epoch {epoch}", total=len(batches))
                train_total, train_count = 0.0, 0
                for batch_ids in batches:
                    batch = collate_frames([pieces[i] for i in batch_ids])
                    frames, mask = batch["frames"].to(device), batch["mask"].to(device)
                    nll, count = frame_nll(sequence_log_probs(model, frames, mask), mask)
                    optimizer.zero_grad(set_to_none=True)
                    (nll / max(count, 1)).backward()
                    if clip:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                    optimizer.step()
                    train_total += float(nll.detach())
                    train_count += count
                    progress_bar.advance(task)
                progress_bar.remove_task(task)
                valid_nll = score_split(model, splits["valid"], batch_size * 2)
                minutes = (time.perf_counter() - started) / 60
                history.append(
                    {
                        "epoch": epoch,
                        "train_nll": train_total / max(train_count, 1),
                        "valid_nll": valid_nll,
                        "lr": optimizer.param_groups[0]["lr"],
                        "minutes": round(minutes, 2),
                    }
                )
                improved = valid_nll < best_valid - 1e-4
                console.print(
                    f"epoch {epoch:3d}  train {history[-1]['train_nll']:.4f}  valid {valid_nll:.4f}"
                    f"  lr {optimizer.param_groups[0]['lr']:.2e}  {minutes:.1f} min"
                    + ("  *" if improved else "")
                )
                if improved:
                    best_valid, best_epoch = valid_nll, epoch
                    best_state = copy.deepcopy(model.state_dict())
                    epochs_without_gain = 0
                else:
                    epochs_without_gain += 1
                    if lr_decay_patience and epochs_without_gain % lr_decay_patience == 0:
                        for group in optimizer.param_groups:
                            group["lr"] *= 0.5
                if epochs_without_gain >= patience:
                    stop_reason = "patience"
                    break
                if max_minutes is not None and minutes >= max_minutes:
                    stop_reason = "time limit"
                    break
                if not math.isfinite(valid_nll):
                    stop_reason = "diverged"
                    break
        except KeyboardInterrupt:  # Ctrl-C: keep what was learnt, test the best epoch so far
            if best_state is None:
                raise
            stop_reason = "interrupted"
            console.print(f"[yellow]interrupted: testing the best epoch so far ({best_epoch})[/]")

    train_minutes = (time.perf_counter() - started) / 60
    if best_state is not None:
        model.load_state_dict(best_state)
    test_nll = score_split(model, splits["test"], batch_size * 2)
    result = {
        "model": model_name,
        "data": str(path),
        "benchmark": path.stem,
        "test_nll": test_nll,
        "valid_nll": best_valid,
        "best_epoch": best_epoch,
        "epochs": len(history),
        "stop_reason": stop_reason,
        "parameters": n_params,
        "train_minutes": round(train_minutes, 2),
        "wall_minutes": round((time.perf_counter() - started) / 60, 2),
        "config": model.config.to_dict(),
        "options": dict(options or {}),
        "training": {
            "batch_size": batch_size,
            "lr": lr,
            "clip": clip,
            "lr_decay_patience": lr_decay_patience,
            "weight_decay": weight_decay,
            "max_epochs": max_epochs,
            "patience": patience,
            "max_minutes": max_minutes,
            "transpose_augment": list(transpose_augment) if transpose_augment else None,
            "seed": seed,
        },
        "machine": machine_description(),
        "command": command or " ".join(sys.argv),
        "history": history,
    }
    table = Table(title=f"{model_name} on {path.stem} (frame NLL, nats)")
    for column in ("test NLL", "valid NLL", "parameters", "epochs (best)", "minutes"):
        table.add_column(column)
    table.add_row(
        f"{test_nll:.4f}",
        f"{best_valid:.4f}",
        f"{n_params:,}",
        f"{len(history)} ({best_epoch})",
        f"{result['wall_minutes']:.1f}",
    )
    console.print(table)
    if out_json is not None:
        out_json = Path(out_json)
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(result, indent=2))
    return result
