"""``tunesmith bench``: benchmarks that print figures beside the published ones.

``tunesmith bench nll`` trains a registered piano-roll model on a polyphonic benchmark
(JSB Chorales, Nottingham, or any ``.mat`` in their layout) with the same trainer as
``tunesmith train``, and reports the frame-level valid and test NLL of the best-valid
weights (see :mod:`tunesmith.training.benchmark`). The run folder (``--out``) is a normal
checkpoint: ``generate``, ``evaluate`` and ``render`` read it.
"""

from __future__ import annotations

import math
import shlex
import sys
from functools import partial
from pathlib import Path
from typing import Any

import typer

from tunesmith.cli.options import check_out_folder, parse_assignments
from tunesmith.errors import ConfigError
from tunesmith.training.settings import cpu_cores


def parse_transpose(text: str | None) -> list[int] | None:
    """``"-5..6"`` -> [-5, 6]; None or "" -> None."""
    if not text:
        return None
    try:
        low, high = (int(part) for part in text.split(".."))
    except ValueError:
        raise ConfigError(
            f"--transpose expects LOW..HIGH semitones, e.g. -5..6; got {text!r}"
        ) from None
    if low > high or low < -87 or high > 87:
        raise ConfigError(f"--transpose range {text!r} is empty or beyond the keyboard")
    return [low, high]


def split_set_options(assignments: dict) -> tuple[dict, dict]:
    """``--set`` of ``bench nll``: ``model.x=...`` or plain ``x=...`` is a model option,
    ``train.x=...`` a training setting (a :class:`TrainSettings` field, e.g.
    ``train.ema_decay=0.999``). Returns (model options, train settings)."""
    import dataclasses

    from tunesmith.training.settings import TrainSettings

    fields = {f.name for f in dataclasses.fields(TrainSettings)}
    model, train = {}, {}
    for key, value in assignments.items():
        section, dot, name = key.partition(".")
        if not dot:
            model[key] = value
        elif section == "model" and name:
            model[name] = value
        elif section == "train" and name in fields:
            train[name] = value
        elif section == "train":
            raise ConfigError(f"--set {key}: unknown training setting {name!r}; known: "
                              f"{', '.join(sorted(fields))}")
        else:
            raise ConfigError(f"--set {key}: a model option (x=... or model.x=...) or a "
                              "training setting (train.x=...)")
    return model, train


#: --device -> Lightning accelerator
ACCELERATORS = {"cpu": "cpu", "cuda": "gpu", "gpu": "gpu", "mps": "mps", "auto": "auto"}


def check_bench_options(*, epochs, patience, batch_size, lr, clip, lr_decay_patience,
                        weight_decay, max_minutes, threads, device) -> None:
    """Refuse settings under which ``bench nll`` cannot train or report, before torch
    loads and before the benchmark file is looked for (None = the default)."""
    most_threads = max(2, cpu_cores())  # more than the cores never helps; 2 is the default
    checks = [
        (epochs, lambda v: v >= 1, "epochs must be >= 1, got {}"),
        (patience, lambda v: v >= 1, "patience must be >= 1 epochs, got {}"),
        (batch_size, lambda v: v >= 1, "batch size must be >= 1, got {}"),
        (lr, lambda v: 0 < v < math.inf, "lr must be > 0 and finite, got {}"),
        (clip, lambda v: 0 <= v < math.inf, "clip must be >= 0 and finite (0 = off), got {}"),
        (lr_decay_patience, lambda v: v >= 1, "lr decay patience must be >= 1, got {}"),
        (weight_decay, lambda v: 0 <= v < math.inf, "weight decay must be >= 0, got {}"),
        (max_minutes, lambda v: 0 < v < math.inf, "max minutes must be > 0 and finite, got {}"),
        (threads, lambda v: 0 <= v <= most_threads,
         f"threads must be >= 0 (0 = torch's) and at most {most_threads} here, got {{}}"),
    ]
    for value, ok, message in checks:
        if value is not None and not ok(value):
            raise ConfigError(message.format(value))
    if device is None:
        return
    if device not in ACCELERATORS:
        raise ConfigError(f"unknown device {device!r}; use one of {', '.join(ACCELERATORS)}")
    if ACCELERATORS[device] == "gpu":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {device!r}: this machine has {count} CUDA GPU(s)")


def register(app: typer.Typer) -> None:
    bench_app = typer.Typer(help="Benchmarks: our figures beside the published ones.")
    app.add_typer(bench_app, name="bench")

    @bench_app.command("nll")
    def nll_command(
        data: str = typer.Option(None, help="jsb | nottingham | PATH.mat (benchmark layout)."),
        path: Path = typer.Option(
            None, help="Folder holding JSB_Chorales.mat / Nottingham.mat, or the file "
                       "(default: $TUNESMITH_BENCHMARKS, then ../shared/benchmarks/polyphonic)."),
        model: str = typer.Option(None, help="Registered model name (see `tunesmith models`) "
                                             "(default: the --preset auto choice)."),
        preset: str = typer.Option(
            None, help="auto: model, size, dropout, batch, time budget from the data's train "
                       "split (rules: docs/benchmarks.md); none: the defaults (default: auto "
                       "without --model and model --set options)."),
        set_: list[str] = typer.Option(
            None, "--set", help="Model option key=value or model.key=value; training setting "
                                "train.key=value, e.g. train.ema_decay=0.999 (repeat)."),
        epochs: int = typer.Option(None, help="Maximum epochs (default 100)."),
        patience: int = typer.Option(
            None, help="Stop after this many epochs without gain on valid (default 10)."),
        batch_size: int = typer.Option(
            None, help="Pieces per batch (padded, masked) (default 16)."),
        lr: float = typer.Option(None, help="Adam learning rate (default 1e-3)."),
        clip: float = typer.Option(None, help="Gradient-norm clipping (0 = off) (default 1.0)."),
        lr_decay_patience: int = typer.Option(
            None, help="Halve lr after N epochs without gain (default 3)."),
        weight_decay: float = typer.Option(None, help="Adam weight decay (default 0)."),
        transpose: str = typer.Option(None, help="Transpose train pieces, LOW..HIGH semitones."),
        window: int = typer.Option(
            None, help="Train (and select on valid) on windows of N frames: long pieces; test "
                       "and valid are still scored whole (default: whole pieces)."),
        seed: int = typer.Option(None, help="Random seed (default 0); the first with --seeds."),
        seeds: int = typer.Option(
            1, help="Train N runs, seeds --seed … --seed+N-1 (in --out/seed-<k>); report the "
                    "mean, spread and each run (--out/seeds.json)."),
        max_minutes: float = typer.Option(None, help="Stop training after this many minutes."),
        threads: int = typer.Option(None, help="torch CPU threads (default 2)."),
        device: str = typer.Option(None, help="cpu | cuda | auto (default cpu)."),
        out: Path = typer.Option(
            None, "--out", "-o",
            help="Run folder, a checkpoint (default runs/bench-<data>-<model>); bench.json in it "
                 "holds the result."),
        json_out: Path = typer.Option(
            None, "--json", help="Also write the result JSON here (e.g. benchmarks/results/)."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Start again in an --out that holds a run."),
    ) -> None:
        """Frame-level NLL (nats) on a polyphonic benchmark: train, select on valid, test once."""
        from tunesmith.models import registry

        if model is not None:
            registry.check_name(model)  # before torch loads: a typo is reported at once

        if out is not None and out.suffix.lower() == ".json":
            raise ConfigError(f"--out is the run folder (a checkpoint) now; write the result "
                              f"JSON with --json {out}")
        check_out_folder(out)
        check_bench_options(epochs=epochs, patience=patience, batch_size=batch_size, lr=lr,
                            clip=clip, lr_decay_patience=lr_decay_patience,
                            weight_decay=weight_decay, max_minutes=max_minutes, threads=threads,
                            device=device)
        if window is not None and window < 2:
            raise ConfigError(f"--window must be >= 2 frames, got {window}")

        from tunesmith.training.benchmark import bench_nll, bench_nll_seeds

        given = {
            "epochs": epochs, "early_stopping_patience": patience, "batch_size": batch_size,
            "lr": lr, "gradient_clip": clip, "lr_decay_patience": lr_decay_patience,
            "weight_decay": weight_decay, "transpose": parse_transpose(transpose), "seed": seed,
            "max_time": max_minutes, "threads": threads, "window": window,
            "accelerator": None if device is None else ACCELERATORS[device],
            "devices": None if device is None else 1,
        }
        settings: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        model_options, train_options = split_set_options(parse_assignments(set_))
        both = sorted(set(settings) & set(train_options))
        if both:
            raise ConfigError(f"--set train.{both[0]} repeats an option given by its flag")
        settings.update(train_options)
        if seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {seeds}")
        if preset is None:
            preset = "auto" if model is None and not model_options and not resume else "none"
        run = bench_nll if seeds == 1 else partial(bench_nll_seeds, seeds=seeds)
        run(
            model if model or resume or preset == "auto" else "lstm",
            data,
            model_options,
            out,
            path=path,
            resume=resume,
            overwrite=overwrite,
            json_out=json_out,
            command="tunesmith " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            preset=preset,
            **settings,
        )
