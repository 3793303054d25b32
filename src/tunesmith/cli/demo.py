"""``tunesmith demo``: four-part chorales you can hear in seconds, then your own model.

1. composes four chorales with the shipped ``bach-chorales`` model
   (``pretrained:bach-chorales``, no training; a source checkout without it says so and
   goes on), writes MIDI, WAV and PNG for each and evaluates a set of its samples;
2. prepares the Bach chorales shipped with music21 as four-track piano-rolls (Soprano,
   Alto, Tenor, Bass; sixteenth-note grid; MIDI 36-84, so K = 4 × 49 = 196 keys a step),
   cached after the first run;
3. trains the family that learns best in minutes on a CPU (benchmarks/chorale_families.py):
   the registry's ``wavenet`` (gated, kernel 2, dilations 1…128, 64 channels) with the
   ``voices`` head (one categorical per voice over its pitches or a rest, S→A→T→B within a
   step), dropout 0.3 and random transposition by -6…+5 semitones, on 128-step windows
   for a fixed time, keeping the best-validation weights;
4. composes four chorales with it and evaluates it the same way.

Each evaluation is ``tunesmith evaluate`` of :data:`DEMO_EVAL_SAMPLES` pieces drawn as the
chorales are drawn, against ``bach-chorales:train`` with the test split's held-out band
and the two-sample test; the reference summaries are cached after the first run.
Lightning's own console output (banner, tips, notices, warnings) goes to the run's
``train.log``; the console shows tunesmith's progress and results.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
import warnings
from pathlib import Path

import typer

from tunesmith.cli.options import check_out_folder
from tunesmith.errors import ConfigError

#: the demo's data: bach-chorales as SATB piano-rolls
DEMO_CORPUS = "bach-chorales"
DEMO_REPR = {"resolution": 4, "pitch_low": 36, "pitch_high": 84, "merge_tracks": False}
#: the family the demo trains: wavenet + voices head (2.55 nats/frame test NLL after 4
#: minutes against 4.58 for independent sigmoids; 1.85 with dropout and transposition:
#: benchmarks/chorale_families.py, docs/benchmarks.md)
DEMO_MODEL = "wavenet"
DEMO_OPTIONS = {"head": "voices", "dropout": 0.3}
#: how the demo trains it (H3's settings for chorales, plus transposition by -6…+5)
DEMO_TRAIN = {"window": 128, "batch_size": 16, "lr": 2e-3, "gradient_clip": 1.0,
              "early_stopping_patience": 0, "lr_schedule": "plateau", "epochs": None,
              "threads": 1, "transpose": [-6, 5]}
#: how it samples: temperature 1, one note per voice, no note held longer than a whole
#: note (4/4 at 4 steps a quarter)
DEMO_SAMPLING = {"temperature": 1.0, "max_notes_per_step": 1, "max_sustain_steps": 16}
#: the shipped model the demo plays first
SHIPPED_MODEL = "bach-chorales"
#: pieces generated for each evaluation (the four chorales are for listening)
DEMO_EVAL_SAMPLES = 16
#: loggers whose console output (banner, tips, notices) goes to the run's log file
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning_fabric", "lightning", "lightning.pytorch",
                     "lightning.fabric")


@contextlib.contextmanager
def lightning_output_to(log_path: Path):
    """Send Lightning's log records and every warning raised inside to ``log_path``
    (appended), not to the console; restores the loggers and warning filters after."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    saved = []
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, list(logger.handlers), logger.propagate, logger.level))
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)

    def to_file(message, category, filename, lineno, file=None, line=None):
        handler.stream.write(warnings.formatwarning(message, category, filename, lineno, line))
        handler.stream.flush()

    try:
        with warnings.catch_warnings():
            warnings.showwarning = to_file
            yield
    finally:
        for logger, handlers, propagate, level in saved:
            logger.removeHandler(handler)
            for old in handlers:
                logger.addHandler(old)
            logger.propagate, logger.level = propagate, level
        handler.close()


def progress_callback(minutes: float, label: str, console=None):
    """A Lightning callback drawing one rich bar over the training budget: elapsed time,
    steps, epochs and the latest validation loss."""
    import pytorch_lightning as pl
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    class TimeBar(pl.Callback):
        def __init__(self):
            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                     TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                                     console=console, transient=False)
            self.task = None
            self.start = 0.0
            self.val = None

        def on_train_start(self, trainer, pl_module):
            self.start = time.perf_counter()
            self.progress.start()
            self.task = self.progress.add_task(label, total=minutes * 60, info="")

        def _update(self, trainer):
            val = "-" if self.val is None else f"{self.val:.3f}"
            self.progress.update(self.task, completed=time.perf_counter() - self.start,
                                 info=f"step {trainer.global_step}, epoch "
                                      f"{trainer.current_epoch}, val loss {val}")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if self.task is not None and trainer.global_step % 10 == 0:
                self._update(trainer)

        def on_validation_end(self, trainer, pl_module):
            value = trainer.callback_metrics.get("val_loss")
            if value is not None and not trainer.sanity_checking:
                self.val = float(value)

        def on_train_end(self, trainer, pl_module):
            if self.task is not None:
                self._update(trainer)
                self.progress.update(self.task, completed=minutes * 60)
                self.progress.stop()

        def on_exception(self, trainer, pl_module, exception):
            self.progress.stop()

    return TimeBar()


def compose_and_evaluate(checkpoint: Path, out_dir: Path, *, n: int, bars: int, seed: int,
                         eval_samples: int, evaluate: bool = True) -> dict:
    """Four chorales (MIDI, WAV, PNG) in ``out_dir``, then ``eval_samples`` pieces drawn
    the same way evaluated against bach-chorales:train in ``out_dir/evaluate``."""
    from tunesmith.evaluation.report import run_evaluation
    from tunesmith.generation.generate import generate_from_checkpoint
    from tunesmith.generation.sampling import SamplingControls

    controls = SamplingControls(seed=seed, **DEMO_SAMPLING)
    times = {}
    start = time.perf_counter()
    paths = generate_from_checkpoint(checkpoint, n=n, bars=bars, controls=controls,
                                     out_dir=out_dir, stem="chorale")
    times["generate_s"] = time.perf_counter() - start
    result = {"midi": paths, "checkpoint": checkpoint, "times": times, "evaluation": None}
    if not evaluate:
        return result
    start = time.perf_counter()
    samples = out_dir / "evaluate" / "samples"
    if samples.is_dir():
        shutil.rmtree(samples)  # the demo's own earlier samples
    generate_from_checkpoint(checkpoint, n=eval_samples, bars=bars, controls=controls,
                             out_dir=samples, wav=False, png=False, seed=seed + 1)
    results, written = run_evaluation(samples, f"{DEMO_CORPUS}:train", out_dir / "evaluate",
                                      samples=eval_samples, seed=seed, plots=True)
    times["evaluate_s"] = time.perf_counter() - start
    result["evaluation"] = {"results": results, "report": written.get("markdown")}
    return result


def run_demo(out: Path, minutes: float = 4.0, bars: int = 12, seed: int = 0,
             n: int = 4, eval_samples: int = DEMO_EVAL_SAMPLES, evaluate: bool = True,
             shipped: str | None = SHIPPED_MODEL, say=print) -> dict:
    """Compose with the shipped model, then prepare, train, compose with the demo's own.

    Returns ``{"shipped": set or None, "trained": set, "times": ...}``; a set holds the
    MIDI paths, the checkpoint and the evaluation (``results`` and the report's path).
    ``say`` prints a line of the demo's own progress.
    """
    if not 0 < minutes < math.inf:  # NaN fails too
        raise ConfigError(f"--minutes must be > 0 and finite, got {minutes}")
    if not 8 <= bars <= 16:
        raise ConfigError(f"--bars must be between 8 and 16, got {bars}")
    check_out_folder(out)

    from tunesmith.data.prepare import prepare
    from tunesmith.training.checkpoint import PRETRAINED_PREFIX, pretrained_names
    from tunesmith.training.checkpoint import resolve_checkpoint as resolve
    from tunesmith.training.trainer import train

    out = Path(out)
    result: dict = {"shipped": None, "trained": None, "times": {}}
    times = result["times"]

    if shipped and shipped in pretrained_names():
        say(f"1/2  composing {n} chorales with the shipped model pretrained:{shipped} ...")
        start = time.perf_counter()
        result["shipped"] = compose_and_evaluate(
            resolve(PRETRAINED_PREFIX + shipped), out / "pretrained", n=n, bars=bars,
            seed=seed, eval_samples=eval_samples, evaluate=evaluate)
        times["shipped_s"] = time.perf_counter() - start
    elif shipped:
        say(f"1/2  no shipped {shipped!r} model in this installation (its folder "
            f"tunesmith/pretrained/{shipped}/ is missing); going straight to training one")

    run_dir = out / "trained" / "run"
    if (run_dir / "run.json").is_file():  # the demo's own earlier run: start afresh
        shutil.rmtree(run_dir)
    say(f"2/2  training the demo's own model ({DEMO_MODEL} + {DEMO_OPTIONS['head']} head) "
        f"for {minutes:g} min, then composing with it ...")
    start = time.perf_counter()
    prepared = prepare(DEMO_CORPUS, "pianoroll", dict(DEMO_REPR))
    times["prepare_s"] = time.perf_counter() - start

    start = time.perf_counter()
    log_path = run_dir / "train.log"
    bar = progress_callback(minutes, "training")
    with lightning_output_to(log_path):
        train(DEMO_MODEL, prepared, dict(DEMO_OPTIONS), run_dir, max_time=minutes, seed=seed,
              progress_bar=False, callbacks=[bar], **DEMO_TRAIN)
    times["train_s"] = time.perf_counter() - start

    start = time.perf_counter()
    trained = compose_and_evaluate(run_dir, out / "trained", n=n, bars=bars, seed=seed,
                                   eval_samples=eval_samples, evaluate=evaluate)
    times["trained_compose_s"] = time.perf_counter() - start
    loss_png = out / "trained" / "loss.png"
    if (run_dir / "loss.png").is_file():
        shutil.copyfile(run_dir / "loss.png", loss_png)
    trained.update(loss_png=loss_png, run_dir=run_dir, log=log_path)
    result["trained"] = trained
    return result


def quality_table(sets: list[tuple[str, dict]]):
    """A rich table of each set's evaluation: voice activity per track, metrics within
    the held-out band, two-sample accuracy, the report."""
    from rich.table import Table

    table = Table(title="quality against bach-chorales:train (held-out band: its test split)",
                  title_justify="left")
    for column in ("model", "voice activity", "within band", "two-sample", "report"):
        table.add_column(column)
    real = None
    for label, data in sets:
        evaluation = data.get("evaluation")
        if not evaluation:
            continue
        results = evaluation["results"]
        tracks = results["voice_activity"]["tracks"]
        activity = " ".join(f"{name[:1]} {value['generated']['mean']:.0%}"
                            for name, value in tracks.items())
        band = results.get("band") or {}
        rows = band.get("rows", {})
        real = real or " ".join(
            f"{name[:1]} {rows[f'voice_activity[{name}]']['test']:.0%}" for name in tracks
            if rows.get(f"voice_activity[{name}]", {}).get("test") is not None)
        within = f"{band['n_within']} / {band['n_judged']}" if band else "-"
        two = (results.get("two_sample") or {}).get("samples") or {}
        accuracy = two.get("accuracy")
        table.add_row(label, activity, within,
                      "-" if accuracy is None else f"{accuracy:.0%} (50% = like real)",
                      str(evaluation["report"]))
    if real:
        table.add_row("real test chorales", real, "", "", "")
    return table


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="Output folder."),
        minutes: float = typer.Option(4.0, "--minutes", help="Minutes of training."),
        bars: int = typer.Option(12, "--bars", help="Bars per chorale (8-16)."),
        seed: int = typer.Option(0, help="Random seed (training and sampling)."),
        samples: int = typer.Option(DEMO_EVAL_SAMPLES, "--samples",
                                    help="Pieces generated for each evaluation."),
        evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate",
                                      help="Evaluate both sets against the chorales."),
    ) -> None:
        """Play four chorales of the shipped model, then train your own for a few minutes."""
        if samples < 2:
            raise ConfigError(f"--samples must be >= 2, got {samples}")
        from rich.console import Console

        console = Console()
        begin = time.perf_counter()
        result = run_demo(out, minutes=minutes, bars=bars, seed=seed, eval_samples=samples,
                          evaluate=evaluate,
                          say=lambda text: console.print(f"[bold]{text}[/]", highlight=False))

        from tunesmith.cli.generate import print_outputs
        from tunesmith.training.checkpoint import read_json

        sets = []
        shipped = result["shipped"]
        if shipped:
            print_outputs(shipped["midi"], title=f"shipped model pretrained:{SHIPPED_MODEL}: "
                          "four chorales")
            sets.append((f"pretrained:{SHIPPED_MODEL}", shipped))
        trained = result["trained"]
        print_outputs(trained["midi"], title=f"your model ({DEMO_MODEL} + voices, "
                      f"{minutes:g} min): four chorales")
        sets.append((f"demo's {minutes:g}-min model", trained))
        meta = read_json(trained["run_dir"] / "config.json")
        training = meta.get("training", {})
        best = training.get("best_val_loss")
        run = training.get("run", training)
        console.print(
            f"your model: {DEMO_MODEL} + voices head, {meta.get('n_parameters', 0):,} "
            f"parameters, {run.get('global_step')} steps; best validation loss "
            f"{'-' if best is None else f'{best:.3f}'} nats/step (epoch "
            f"{training.get('best_epoch')}); loss curves: {trained['loss_png']}; "
            f"checkpoint {trained['run_dir']} (Lightning's log: {trained['log']})",
            highlight=False)
        if evaluate:
            console.print(quality_table(sets))
        times = result["times"]
        parts = []
        if "shipped_s" in times:
            parts.append(f"shipped model {times['shipped_s']:.0f} s")
        parts += [f"prepare {times['prepare_s']:.0f} s", f"train {times['train_s']:.0f} s",
                  f"compose+evaluate {times['trained_compose_s']:.0f} s"]
        console.print(f"time: {', '.join(parts)}; total {time.perf_counter() - begin:.0f} s",
                      highlight=False)
