"""``tunesmith demo``: four-part chorales you can hear in seconds, then your own model.

1. composes four chorales with the shipped ``bach-chorales`` model
   (``pretrained:bach-chorales``, no training; a source checkout without it says so and
   goes on) and writes MIDI, WAV and PNG for each;
2. prepares the Bach chorales shipped with music21 as four-track piano-rolls (Soprano,
   Alto, Tenor, Bass; sixteenth-note grid; MIDI 36-84, so K = 4 × 49 = 196 keys a step),
   cached after the first run, and trains the family that learns best in minutes on a CPU
   (benchmarks/chorale_families.py): the registry's ``wavenet`` (gated, kernel 2,
   dilations 1…128, 64 channels) with the ``voices`` head (one categorical per voice over
   its pitches or a rest, S→A→T→B within a step), dropout 0.3, on whole pieces (so the
   model learns how a chorale begins: the pickup, the first chord) in the keys Bach wrote
   them, for a fixed time, keeping the best-validation weights; then composes four
   chorales with it;
3. evaluates both models: ``tunesmith evaluate`` of :data:`DEMO_EVAL_SAMPLES` pieces drawn
   as the chorales are drawn, against ``bach-chorales:train`` with the test split's
   held-out band and the two-sample test.

The reference summaries the evaluations read are computed once, in a background process
(one worker) while the demo prepares and trains on one thread, and cached. Lightning's
own console output (banner, tips, notices, warnings) goes to the run's ``train.log``; the
console shows tunesmith's progress and results.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

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
#: how the demo trains it: whole pieces batched by length, no transposition (random
#: 128-step windows never show a piece's start, so samples never rested or began with a
#: pickup; transposition taught every key with nothing to hold one: the samples drifted
#: between keys. docs/benchmarks.md, "Chorale sample quality")
DEMO_TRAIN: dict[str, Any] = {"window": None, "length_buckets": True, "batch_size": 16, "lr": 2e-3,
              "gradient_clip": 1.0, "early_stopping_patience": 0, "lr_schedule": "plateau",
              "epochs": None, "threads": 1}
#: how it samples its own model: temperature 0.9 (fewer stray chromatic notes than 1.0, which
#: drifted out of key; benchmarks/sample_quality.py --sampling temperature=T), one note per
#: voice, no note held longer than a whole note (4/4 at 4 steps a quarter). A checkpoint
#: whose card names its sampling (the shipped model's, chosen on the valid split) is drawn
#: with that instead (:func:`demo_sampling`)
DEMO_SAMPLING = {"temperature": 0.9, "max_notes_per_step": 1, "max_sustain_steps": 16}
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


def _summarise_reference() -> None:
    """Cache the summaries of bach-chorales:train and :test (what every evaluation reads)."""
    from tunesmith.evaluation.reference import reference_summary

    for split in ("train", "test"):
        reference_summary(DEMO_CORPUS, split, workers=1, progress=False)


def start_reference_summary():
    """Summarise the reference corpus in a background process (one worker) while the
    demo prepares and trains on one thread, so that a cold cache costs no extra wall time
    on two cores; None when the summaries are cached already. ``join()`` it before
    evaluating (the evaluation computes whatever is still missing itself)."""
    import multiprocessing
    import sys

    from tunesmith.data import get_corpus
    from tunesmith.evaluation.reference import reference_cache_dir

    corpus = get_corpus(DEMO_CORPUS)
    if all((reference_cache_dir(corpus, split) / "summary.json").is_file()
           for split in ("train", "test")):
        return None
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux")
                                          else "spawn")
    process = context.Process(target=_summarise_reference, daemon=True)
    process.start()
    return process


def demo_sampling(checkpoint: Path) -> dict:
    """How the demo draws from a checkpoint: :data:`DEMO_SAMPLING`, under the checkpoint's
    own defaults where it has them (the shipped model's card, chosen on the valid split)."""
    from tunesmith.training.checkpoint import sampling_defaults

    return {**DEMO_SAMPLING, **sampling_defaults(checkpoint)}


def compose(checkpoint: Path, out_dir: Path, *, n: int, bars: int, seed: int) -> dict:
    """Four chorales (MIDI, WAV, PNG) in ``out_dir``, drawn the demo's way
    (:func:`demo_sampling`)."""
    from tunesmith.generation.generate import generate_from_checkpoint
    from tunesmith.models.sampling import SamplingControls

    controls = SamplingControls(seed=seed, **demo_sampling(checkpoint))
    start = time.perf_counter()
    paths = generate_from_checkpoint(checkpoint, n=n, bars=bars, controls=controls,
                                     out_dir=out_dir, stem="chorale")
    return {"midi": paths, "checkpoint": checkpoint, "out_dir": out_dir,
            "times": {"generate_s": time.perf_counter() - start}, "evaluation": None}


def evaluate_set(composed: dict, *, bars: int, seed: int, eval_samples: int) -> dict:
    """``eval_samples`` pieces drawn like the chorales, evaluated against
    bach-chorales:train (band: its test split) in ``out_dir/evaluate``."""
    from tunesmith.evaluation.report import run_evaluation
    from tunesmith.generation.generate import generate_from_checkpoint
    from tunesmith.models.sampling import SamplingControls

    start = time.perf_counter()
    out_dir = composed["out_dir"]
    samples = out_dir / "evaluate" / "samples"
    if samples.is_dir():
        shutil.rmtree(samples)  # the demo's own earlier samples
    controls = SamplingControls(seed=seed, **demo_sampling(composed["checkpoint"]))
    generate_from_checkpoint(composed["checkpoint"], n=eval_samples, bars=bars,
                             controls=controls, out_dir=samples, wav=False, png=False,
                             seed=seed + 1)
    results, written = run_evaluation(samples, f"{DEMO_CORPUS}:train", out_dir / "evaluate",
                                      samples=eval_samples, seed=seed, plots=True)
    composed["times"]["evaluate_s"] = time.perf_counter() - start
    composed["evaluation"] = {"results": results, "report": written.get("markdown")}
    return composed


def run_demo(out: Path, minutes: float = 4.0, bars: int = 12, seed: int = 0,
             n: int = 4, eval_samples: int = DEMO_EVAL_SAMPLES, evaluate: bool = True,
             shipped: str | None = SHIPPED_MODEL, say=print) -> dict:
    """Compose with the shipped model, then prepare, train, compose with the demo's own;
    evaluate both sets last (the reference corpus is summarised meanwhile).

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
    summarising = start_reference_summary() if evaluate else None

    if shipped and shipped in pretrained_names():
        say(f"1/3  composing {n} chorales with the shipped model pretrained:{shipped} ...")
        start = time.perf_counter()
        result["shipped"] = compose(resolve(PRETRAINED_PREFIX + shipped), out / "pretrained",
                                    n=n, bars=bars, seed=seed)
        times["shipped_s"] = time.perf_counter() - start
        say(f"     written to {out / 'pretrained'} in {times['shipped_s']:.0f} s")
    elif shipped:
        say(f"1/3  no shipped {shipped!r} model in this installation (its folder "
            f"tunesmith/pretrained/{shipped}/ is missing); going straight to training one")

    run_dir = out / "trained" / "run"
    if (run_dir / "run.json").is_file():  # the demo's own earlier run: start afresh
        shutil.rmtree(run_dir)
    say(f"2/3  training the demo's own model ({DEMO_MODEL} + {DEMO_OPTIONS['head']} head) "
        f"for {minutes:g} min, then composing with it ...")
    start = time.perf_counter()
    prepared = prepare(DEMO_CORPUS, "pianoroll", dict(DEMO_REPR), report=False)
    times["prepare_s"] = time.perf_counter() - start
    if prepared.skipped:
        say(f"     {DEMO_CORPUS}: {len(prepared.pieces('train'))} training pieces; "
            f"{len(prepared.skipped)} files skipped (analyses, not SATB: `tunesmith data "
            f"prepare {DEMO_CORPUS}` lists them)")

    start = time.perf_counter()
    log_path = run_dir / "train.log"
    bar = progress_callback(minutes, "training")
    with lightning_output_to(log_path):
        train(DEMO_MODEL, prepared, dict(DEMO_OPTIONS), run_dir, max_time=minutes, seed=seed,
              progress_bar=False, callbacks=[bar], **DEMO_TRAIN)
    times["train_s"] = time.perf_counter() - start

    start = time.perf_counter()
    trained = compose(run_dir, out / "trained", n=n, bars=bars, seed=seed)
    loss_png = out / "trained" / "loss.png"
    if (run_dir / "loss.png").is_file():
        shutil.copyfile(run_dir / "loss.png", loss_png)
    trained.update(loss_png=loss_png, run_dir=run_dir, log=log_path)
    result["trained"] = trained
    times["trained_compose_s"] = time.perf_counter() - start

    if evaluate:
        start = time.perf_counter()
        if summarising is not None:
            say("3/3  evaluating both sets (waiting for the reference summary) ...")
            summarising.join()
        else:
            say("3/3  evaluating both sets ...")
        for composed in (result["shipped"], trained):
            if composed is not None:
                evaluate_set(composed, bars=bars, seed=seed, eval_samples=eval_samples)
        times["evaluate_s"] = time.perf_counter() - start
    return result


def quality_table(sets: list[tuple[str, dict]]):
    """A rich table of each set's evaluation: voice activity per track, metrics within
    the held-out band, two-sample accuracy (50 % = the classifier cannot tell)."""
    from rich.table import Table

    table = Table(title="quality against bach-chorales:train (band: its test split)",
                  title_justify="left")
    for column in ("model", "voice activity", "within band", "two-sample"):
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
        accuracy = ((results.get("two_sample") or {}).get("samples") or {}).get("accuracy")
        table.add_row(label, activity, within, "-" if accuracy is None else f"{accuracy:.0%}")
    if real:
        table.add_row("real test chorales", real, "", "50% ideal")
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
        sets.append((f"your {minutes:g}-min model", trained))
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
            for label, data in sets:
                if data.get("evaluation"):
                    console.print(f"report ({label}): {data['evaluation']['report']}",
                                  highlight=False)
        times = result["times"]
        parts = []
        if "shipped_s" in times:
            parts.append(f"shipped model {times['shipped_s']:.0f} s")
        parts += [f"prepare {times['prepare_s']:.0f} s", f"train {times['train_s']:.0f} s",
                  f"compose {times['trained_compose_s']:.0f} s"]
        if "evaluate_s" in times:
            parts.append(f"evaluate {times['evaluate_s']:.0f} s")
        console.print(f"time: {', '.join(parts)}; total {time.perf_counter() - begin:.0f} s",
                      highlight=False)
