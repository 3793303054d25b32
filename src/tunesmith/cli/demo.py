"""``tunesmith demo``: from nothing to four-part chorales you can hear, in minutes on a CPU.

1. prepares the Bach chorales shipped with music21 as four-track piano-rolls (Soprano,
   Alto, Tenor, Bass; sixteenth-note grid; MIDI 36-84, so K = 4 × 49 = 196 keys a step),
   cached after the first run;
2. trains the registry's ``wavenet`` (gated, kernel 2, dilations 1…128 in one stack, 64
   channels: ~228k parameters) on 128-step windows for a fixed time, keeping the
   best-validation weights;
3. samples four chorales with one note per voice and step, and writes MIDI, WAV and PNG
   for each, plus the loss curves.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import typer

from tunesmith.cli.options import check_out_folder
from tunesmith.errors import ConfigError

#: the demo's data: bach-chorales as SATB piano-rolls
DEMO_CORPUS = "bach-chorales"
DEMO_REPR = {"resolution": 4, "pitch_low": 36, "pitch_high": 84, "merge_tracks": False}
#: how the demo trains the registry's wavenet defaults (H3's settings for chorales)
DEMO_TRAIN = {"window": 128, "batch_size": 16, "lr": 2e-3, "gradient_clip": 1.0,
              "early_stopping_patience": 0, "lr_schedule": "plateau", "epochs": None,
              "threads": 1}
#: how it samples: plain Bernoulli draws (temperature < 1 makes independent sigmoids choose
#: silence more often: voices sounded 48% of steps at 0.8, 64% at 1.0, 94% in the data),
#: one note per voice, no note held longer than a whole note (4/4 at 4 steps a quarter)
DEMO_SAMPLING = {"temperature": 1.0, "max_notes_per_step": 1, "max_sustain_steps": 16}


def run_demo(out: Path, minutes: float = 4.0, bars: int = 12, seed: int = 0,
             n: int = 4) -> dict:
    """Prepare, train, generate; returns the paths written and the time of each stage."""

    if not 0 < minutes < math.inf:  # NaN fails too
        raise ConfigError(f"--minutes must be > 0 and finite, got {minutes}")
    if not 8 <= bars <= 16:
        raise ConfigError(f"--bars must be between 8 and 16, got {bars}")
    check_out_folder(out)

    from tunesmith.data.prepare import prepare
    from tunesmith.generation.generate import generate_from_checkpoint
    from tunesmith.generation.sampling import SamplingControls
    from tunesmith.training.trainer import train

    out = Path(out)
    run_dir = out / "run"
    if (run_dir / "run.json").is_file():  # the demo's own earlier run: start afresh
        shutil.rmtree(run_dir)
    times = {}
    start = time.perf_counter()
    prepared = prepare(DEMO_CORPUS, "pianoroll", dict(DEMO_REPR))
    times["prepare_s"] = time.perf_counter() - start

    start = time.perf_counter()
    train("wavenet", prepared, {}, run_dir, max_time=minutes, seed=seed, **DEMO_TRAIN)
    times["train_s"] = time.perf_counter() - start

    start = time.perf_counter()
    controls = SamplingControls(seed=seed, **DEMO_SAMPLING)
    paths = generate_from_checkpoint(run_dir, n=n, bars=bars, controls=controls, out_dir=out,
                                     stem="chorale")
    times["generate_s"] = time.perf_counter() - start
    loss_png = out / "loss.png"
    if (run_dir / "loss.png").is_file():
        shutil.copyfile(run_dir / "loss.png", loss_png)
    return {"midi": paths, "loss_png": loss_png, "run_dir": run_dir, "times": times}


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="Output folder."),
        minutes: float = typer.Option(4.0, "--minutes", help="Minutes of training."),
        bars: int = typer.Option(12, "--bars", help="Bars per chorale (8-16)."),
        seed: int = typer.Option(0, help="Random seed (training and sampling)."),
    ) -> None:
        """Train a WaveNet on Bach chorales for a few minutes and play four new ones."""
        begin = time.perf_counter()
        result = run_demo(out, minutes=minutes, bars=bars, seed=seed)

        from rich.console import Console

        from tunesmith.cli.generate import print_outputs
        from tunesmith.training.checkpoint import read_json

        console = Console()
        print_outputs(result["midi"], title="tunesmith demo: four new chorales (WaveNet)")
        meta = read_json(result["run_dir"] / "config.json")
        training = meta.get("training", {})
        best = training.get("best_val_loss")
        console.print(
            f"model: wavenet, {meta.get('n_parameters', 0):,} parameters; best validation "
            f"loss {'-' if best is None else f'{best:.3f}'} (epoch {training.get('best_epoch')}); "
            f"loss curves: {result['loss_png']}")
        times = result["times"]
        console.print(
            f"time: prepare {times['prepare_s']:.0f} s, train {times['train_s']:.0f} s, "
            f"generate+render {times['generate_s']:.0f} s; total "
            f"{time.perf_counter() - begin:.0f} s")
