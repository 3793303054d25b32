"""``tunesmith bench``: benchmarks that print figures beside the published ones.

``tunesmith bench nll`` trains a registered piano-roll model on a polyphonic benchmark
(JSB Chorales, Nottingham, or any ``.mat`` in their layout) and reports the frame-level
test NLL of the best-valid weights (see :mod:`tunesmith.evaluation.likelihood`).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from tunesmith.cli.options import check_out_file, parse_assignments
from tunesmith.errors import ConfigError


def parse_transpose(text: str | None) -> tuple[int, int] | None:
    """``"-5..6"`` -> (-5, 6); None or "" -> None."""
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
    return low, high


def register(app: typer.Typer) -> None:
    bench_app = typer.Typer(help="Benchmarks: our figures beside the published ones.")
    app.add_typer(bench_app, name="bench")

    @bench_app.command("nll")
    def nll_command(
        data: str = typer.Option(..., help="jsb | nottingham | PATH.mat (benchmark layout)."),
        path: Path = typer.Option(None, help="Folder holding JSB_Chorales.mat / Nottingham.mat."),
        model: str = typer.Option("lstm", help="Registered model name (see `tunesmith models`)."),
        set_: list[str] = typer.Option(None, "--set", help="Model option key=value (repeat)."),
        epochs: int = typer.Option(100, help="Maximum epochs."),
        patience: int = typer.Option(10, help="Stop after this many epochs without gain on valid."),
        batch_size: int = typer.Option(16, help="Pieces per batch (padded, masked)."),
        lr: float = typer.Option(1e-3, help="Adam learning rate."),
        clip: float = typer.Option(1.0, help="Gradient-norm clipping (0 = off)."),
        lr_decay_patience: int = typer.Option(3, help="Halve lr after N epochs without gain."),
        weight_decay: float = typer.Option(0.0, help="Adam weight decay."),
        transpose: str = typer.Option(None, help="Transpose train pieces, LOW..HIGH semitones."),
        seed: int = typer.Option(0, help="Random seed."),
        max_minutes: float = typer.Option(None, help="Stop training after this many minutes."),
        threads: int = typer.Option(2, help="torch CPU threads."),
        device: str = typer.Option("cpu", help="torch device."),
        out: Path = typer.Option(None, help="Write the result JSON here."),
    ) -> None:
        """Frame-level NLL (nats) on a polyphonic benchmark: train, select on valid, test once."""
        from tunesmith.models import registry

        registry.check_name(model)  # before torch loads: a typo is reported at once
        check_out_file(out)
        options = parse_assignments(set_)
        transpose_range = parse_transpose(transpose)

        from tunesmith.evaluation.likelihood import benchmark_nll

        benchmark_nll(
            model,
            data,
            options,
            directory=path,
            max_epochs=epochs,
            patience=patience,
            batch_size=batch_size,
            lr=lr,
            clip=clip,
            lr_decay_patience=lr_decay_patience,
            weight_decay=weight_decay,
            transpose_augment=transpose_range,
            seed=seed,
            out_json=out,
            max_minutes=max_minutes,
            threads=threads,
            device=device,
            command="tunesmith " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        )
