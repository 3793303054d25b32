"""``tunesmith bench``: benchmarks that print figures beside the published ones.

``tunesmith bench nll`` trains a registered piano-roll model on a polyphonic benchmark
(JSB Chorales, Nottingham, or any ``.mat`` in their layout) with the same trainer as
``tunesmith train``, and reports the frame-level valid and test NLL of the best-valid
weights (see :mod:`tunesmith.training.benchmark`). The run folder (``--out``) is a normal
checkpoint: ``generate``, ``evaluate`` and ``render`` read it.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from tunesmith.cli.options import parse_assignments
from tunesmith.errors import ConfigError


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


#: --device -> Lightning accelerator
ACCELERATORS = {"cpu": "cpu", "cuda": "gpu", "gpu": "gpu", "mps": "mps", "auto": "auto"}


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
                                             "(default lstm)."),
        set_: list[str] = typer.Option(None, "--set", help="Model option key=value (repeat)."),
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
        seed: int = typer.Option(None, help="Random seed (default 0)."),
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
        from tunesmith.training.benchmark import bench_nll

        if out is not None and out.suffix.lower() == ".json":
            raise ConfigError(f"--out is the run folder (a checkpoint) now; write the result "
                              f"JSON with --json {out}")
        if device is not None and device not in ACCELERATORS:
            raise ConfigError(f"--device must be one of {', '.join(ACCELERATORS)}; got {device!r}")
        given = {
            "epochs": epochs, "early_stopping_patience": patience, "batch_size": batch_size,
            "lr": lr, "gradient_clip": clip, "lr_decay_patience": lr_decay_patience,
            "weight_decay": weight_decay, "transpose": parse_transpose(transpose), "seed": seed,
            "max_time": max_minutes, "threads": threads,
            "accelerator": None if device is None else ACCELERATORS[device],
            "devices": None if device is None else 1,
        }
        settings = {k: v for k, v in given.items() if v is not None}
        bench_nll(
            model if model or resume else "lstm",
            data,
            parse_assignments(set_),
            out,
            path=path,
            resume=resume,
            overwrite=overwrite,
            json_out=json_out,
            command="tunesmith " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            **settings,
        )
