"""``bench nll``: a polyphonic benchmark run through the generic trainer, tested once.

The protocol (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012; Bai, Kolter & Koltun
2018; see :mod:`tunesmith.models.likelihood`): train on the published train split, choose
the model on valid, score test once; a split's figure is the NLL of frames 2…T summed over
the 88 keys, divided by Σ(T_i − 1).

A benchmark run is a normal training run (:func:`tunesmith.training.trainer.train`): the
``.mat`` file is the corpus ``jsb``, ``nottingham`` or ``mat:PATH`` prepared as one-track
88-key piano-rolls from MIDI 21 (its split kept exactly); the objective is the protocol's
NLL of scored frames (``objective="frame_nll"``), so the trainer's validation loss is the
valid figure and its best-on-valid checkpoint is the model the protocol chooses; early
stopping, the plateau schedule, clipping, the time limit, Ctrl-C and ``--resume`` are the
trainer's. Whole pieces are batched with pieces of similar length (``length_buckets``);
with ``window`` (``--window N``, for long pieces) training and the trainer's validation read
random (valid: the first) windows of N frames instead, so memory is bounded by N, while the
figures reported are still scored over whole pieces, exactly
(:func:`~tunesmith.models.likelihood.score_split` scores a long piece alone, whole).
When training ends, :func:`bench_nll` reloads the best checkpoint, scores valid and test
once (float64 sums, :func:`~tunesmith.models.likelihood.score_split`), and writes the
figures to ``bench.json`` in the run folder (and beside the checkpoint's config).

``preset="auto"`` (``--preset auto``, the CLI's default without ``--model`` and ``--set``)
takes the model and settings from the data by the rules of
:mod:`tunesmith.training.presets`. :func:`bench_nll_seeds` (``--seeds N``) repeats a run
with seeds s, s+1, …, s+N−1, each a normal run in ``<out>/seed-<k>``, and reports the mean,
the spread (sample standard deviation and range) and every run (``<out>/seeds.json``).
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from tunesmith.data.corpora import PolyphonicBenchmark, get_corpus
from tunesmith.errors import ConfigError
from tunesmith.models.likelihood import model_pieces, score_split
from tunesmith.training.checkpoint import CONFIG_FILE, load_checkpoint, read_json, write_json
from tunesmith.training.trainer import (
    HISTORY_FILE,
    LAST_DIR,
    RUN_FILE,
    STATE_FILE,
    prepare_data,
    train,
)

#: the result file a benchmark run writes in its folder
RESULT_FILE = "bench.json"
#: what a fresh benchmark run records in its folder as training starts (its command and
#: ``--preset auto`` choice), so that the result of a resumed run still reports them
START_FILE = "bench_start.json"
#: the summary a ``--seeds`` run writes in its folder (each seed's run is ``seed-<k>/``)
SEEDS_FILE = "seeds.json"
#: what the protocol scores: 88 keys from MIDI 21 (A0) to 108 (C8), one track
BENCHMARK_REPR = {"pitch_low": 21, "pitch_high": 108}
BENCHMARKS = ("jsb", "nottingham")
PROTOCOL = ("frame-level NLL: frames 2..T of each piece, nats summed over 88 keys, "
            "divided by the scored frames sum(T_i - 1); chosen on valid, test scored once")

#: train settings of a fresh benchmark run unless given (the defaults `bench nll` had)
DEFAULTS: dict[str, Any] = {
    "epochs": 100, "early_stopping_patience": 10, "batch_size": 16, "lr": 1e-3,
    "gradient_clip": 1.0, "lr_decay_patience": 3, "weight_decay": 0.0, "seed": 0, "threads": 2,
    "accelerator": "cpu", "devices": 1, "window": None,
}
#: what makes a run the protocol's (fixed for every benchmark run)
PROTOCOL_SETTINGS: dict[str, Any] = {
    "objective": "frame_nll", "length_buckets": True, "lr_schedule": "plateau",
    "limit_val_batches": 1.0,
}


def benchmark_data(data: str, path: str | Path | None = None) -> dict:
    """The data spec of a benchmark: ``jsb`` | ``nottingham`` (found by
    :func:`~tunesmith.data.corpora.find_benchmark_file`: ``path``, else
    ``$TUNESMITH_BENCHMARKS``, else ``../shared/benchmarks/polyphonic``) or a ``.mat`` file.

    The file is resolved now and recorded, so the checkpoint names the data it saw.
    """
    key = str(data).strip()
    if key.lower() in BENCHMARKS:
        corpus = key.lower()
    elif key.lower().endswith(".mat") or key.startswith("mat:"):
        corpus = key if key.startswith("mat:") else f"mat:{Path(key).expanduser().resolve()}"
    else:
        raise ConfigError(f"--data expects jsb, nottingham or a .mat file; got {data!r}")
    found = get_corpus(corpus, path)
    assert isinstance(found, PolyphonicBenchmark)  # what a benchmark name or .mat gives
    return {"corpus": corpus, "path": str(found.file), "options": dict(BENCHMARK_REPR)}


def default_run_dir(data: str, model_name: str) -> Path:
    """``runs/bench-<data>-<model>``: where a benchmark run goes without ``--out``."""
    stem = Path(data.removeprefix("mat:")).stem.lower() if data else "resumed"
    return Path("runs") / f"bench-{stem}-{model_name}"


def _check_prepared(prepared) -> None:
    """The protocol scores every published piece on 88 keys of one track."""
    info = prepared.info
    if info.n_tracks != 1 or info.keys != 88:
        raise ConfigError(f"{prepared.corpus}: benchmark data must be one track of 88 keys, "
                          f"got {info.n_tracks} track(s) of {info.n_pitches}")
    if prepared.skipped:
        raise ConfigError(f"{prepared.corpus}: {len(prepared.skipped)} piece(s) could not be "
                          f"used (first: {prepared.skipped[0][0]}: {prepared.skipped[0][1]}); "
                          "the protocol scores every piece")


def write_result_json(path: Path, result: dict) -> None:
    """``--json``: a result where the user asked for it (its folder made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, result)


def bench_nll(
    model_name: str | None,
    data: str | None,
    options: dict | None = None,
    out_dir: str | Path | None = None,
    *,
    path: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    json_out: str | Path | None = None,
    command: str | None = None,
    callbacks: Sequence = (),
    print_table: bool = True,
    preset: str | None = None,
    **settings: Any,
) -> dict:
    """Train ``model_name`` on a benchmark with the generic trainer; score valid and test.

    Args:
        model_name: a registered piano-roll model (None on resume: the run's).
        data: ``jsb``, ``nottingham`` or a ``.mat`` path (None on resume).
        options: model options.
        out_dir: the run folder (default ``runs/bench-<data>-<model>``); it ends as a
            normal checkpoint that ``generate``, ``evaluate`` and ``render`` read.
        path: the folder (or file) of the benchmark ``.mat`` (see :func:`benchmark_data`).
        resume, overwrite: as for ``tunesmith train`` (continue the run in ``out_dir``;
            start it again).
        json_out: also write the result JSON here (e.g. ``benchmarks/results/NAME.json``).
        command: the command line recorded in the result.
        preset: ``"auto"``: the model, its options and the settings not given come from
            the data's train split (:func:`~tunesmith.training.presets.auto_preset`); a
            ``model_name`` other than the preset's is refused, ``options`` and ``settings``
            given override the preset's. None / ``"none"``: no preset.
        settings: :class:`~tunesmith.training.trainer.TrainSettings` fields; a fresh run
            takes :data:`DEFAULTS` for those not given, and always :data:`PROTOCOL_SETTINGS`.

    Returns the result (also in ``out_dir/bench.json``): test and valid NLL of the
    best-valid weights, epochs, stop reason, settings, history, machine, command.
    """
    fixed = {k: v for k, v in settings.items() if k in PROTOCOL_SETTINGS and
             v != PROTOCOL_SETTINGS[k]}
    if fixed:
        raise ConfigError(f"a benchmark run fixes {', '.join(sorted(fixed))} (the protocol)")
    if preset not in (None, "none", "auto"):
        raise ConfigError(f"--preset expects auto or none, got {preset!r}")
    chosen = None
    if resume:
        if preset == "auto":
            raise ConfigError("--resume continues a run with its own settings; drop --preset")
        if out_dir is None:
            raise ConfigError("give the run folder to resume with --out")
        out_dir = Path(out_dir)
        run_file = out_dir / RUN_FILE
        if run_file.is_file() and read_json(run_file).get("settings", {}).get(
                "objective") != "frame_nll":
            raise ConfigError(f"{out_dir} holds a `tunesmith train` run, not a benchmark run; "
                              "resume it with tunesmith train --resume")
        data_spec = None
        run_settings = dict(settings)
    else:
        if preset == "auto":
            if data is None:
                raise ConfigError("give a benchmark (--data)")
            chosen = resolve_preset(model_name, data, path)
            model_name = chosen.model
            options = {**chosen.options, **(options or {})}
            settings = {**chosen.settings, **settings}
            if print_table:
                print(f"--preset auto on {Path(benchmark_data(data, path)['path']).name}: "
                      + "; ".join(chosen.reasons))
        if model_name is None or data is None:
            raise ConfigError("give a model (--model) and a benchmark (--data)")
        data_spec = benchmark_data(data, path)
        out_dir = Path(out_dir) if out_dir is not None else \
            default_run_dir(data_spec["corpus"], model_name)
        run_settings = {**DEFAULTS, **settings, **PROTOCOL_SETTINGS}

    command = command or " ".join(sys.argv)
    preset_record = None if chosen is None else chosen.to_dict()
    if resume:  # the command and preset of the run's start, when it recorded them
        start_file = Path(out_dir) / START_FILE
        start = read_json(start_file) if start_file.is_file() else {}
        if isinstance(start.get("command"), str):
            command = f"{start['command']} (resumed: {command})"
        preset_record = start.get("preset") if isinstance(start.get("preset"), dict) else None
    else:
        callbacks = [*callbacks, RecordStart(Path(out_dir) / START_FILE,
                                             {"command": command, "preset": preset_record})]
    started = time.perf_counter()
    try:
        run_dir = train(model_name, data_spec, options, out_dir, resume=resume,
                        overwrite=overwrite, callbacks=callbacks, **run_settings)
    except (KeyboardInterrupt, SystemExit):
        if (Path(out_dir) / LAST_DIR).is_dir():
            print(f"note: the run stopped; its best checkpoint so far is {out_dir}; continue "
                  f"it with tunesmith bench nll --resume --out {out_dir}", file=sys.stderr)
        raise
    result = score_run(run_dir, command=command,
                       session_minutes=(time.perf_counter() - started) / 60,
                       preset=preset_record)
    if json_out is not None:
        write_result_json(Path(json_out), result)
    if print_table:
        print_result(result)
    return result


def bench_nll_seeds(
    model_name: str,
    data: str,
    options: dict | None = None,
    out_dir: str | Path | None = None,
    *,
    seeds: int = 2,
    json_out: str | Path | None = None,
    command: str | None = None,
    print_table: bool = True,
    **kwargs: Any,
) -> dict:
    """Run :func:`bench_nll` ``seeds`` times (seeds s … s+N−1, s = the ``seed`` setting,
    default 0), each in ``out_dir/seed-<k>``; report the mean, spread and each run.

    A run already finished in its folder (its ``bench.json`` there, same seed) is read, not
    trained again, so a cut ``--seeds`` run continues where it stopped (``overwrite``
    trains every seed again). Returns the summary (also ``out_dir/seeds.json`` and
    ``json_out``): the first run's fields (model, benchmark, config, training...) with
    ``test_nll``/``valid_nll`` the means over seeds, ``test_nll_std``/``valid_nll_std`` the
    sample standard deviations, ``test_nll_range`` [min, max], and ``seeds`` (one row per
    run: seed, test, valid, epochs, best epoch, stop reason, minutes, checkpoint).
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if kwargs.get("resume"):
        raise ConfigError("--seeds continues a cut run by itself: give the same command again "
                          "without --resume")
    if kwargs.get("preset") == "auto" and data is not None:
        model_name = resolve_preset(model_name, data, kwargs.get("path")).model
    if model_name is None or data is None:
        raise ConfigError("give a model (--model) and a benchmark (--data)")
    first = int(kwargs.pop("seed", DEFAULTS["seed"]))
    out_dir = Path(out_dir) if out_dir is not None else \
        default_run_dir(benchmark_data(data, kwargs.get("path"))["corpus"], model_name)
    command = command or " ".join(sys.argv)
    runs = []
    for seed in range(first, first + seeds):
        run_dir = out_dir / f"seed-{seed}"
        done = run_dir / RESULT_FILE
        if done.is_file() and not kwargs.get("overwrite") and \
                read_json(done).get("training", {}).get("seed") == seed:
            runs.append(read_json(done))
            continue
        runs.append(bench_nll(model_name, data, options, run_dir, seed=seed,
                              command=f"{command} (seed {seed})", print_table=False,
                              **kwargs))
    result = seeds_summary(runs, command=command)
    write_json(out_dir / SEEDS_FILE, result)
    if json_out is not None:
        write_result_json(Path(json_out), result)
    if print_table:
        print_seeds(result)
    return result


def seeds_summary(runs: Sequence[dict], *, command: str = "") -> dict:
    """Mean, sample standard deviation (0 for one run) and range of the runs' figures."""

    def spread(values: list[float]) -> tuple[float, float]:
        mean = sum(values) / len(values)
        if len(values) < 2:
            return mean, 0.0
        return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))

    tests = [float(r["test_nll"]) for r in runs]
    valids = [float(r["valid_nll"]) for r in runs]
    test_mean, test_std = spread(tests)
    valid_mean, valid_std = spread(valids)
    base = {k: v for k, v in runs[0].items() if k not in ("history", "checkpoint", "command")}
    base["training"] = {k: v for k, v in base.get("training", {}).items() if k != "seed"}
    return {
        **base,
        "test_nll": test_mean,
        "valid_nll": valid_mean,
        "test_nll_std": test_std,
        "valid_nll_std": valid_std,
        "test_nll_range": [min(tests), max(tests)],
        "epochs": round(sum(r["epochs"] for r in runs) / len(runs), 1),
        "best_epoch": round(sum(r["best_epoch"] or 0 for r in runs) / len(runs), 1),
        "wall_minutes": round(sum(r["wall_minutes"] for r in runs), 2),
        "stop_reason": ", ".join(sorted({r["stop_reason"] for r in runs})),
        "seeds": [
            {"seed": r["training"]["seed"], "test_nll": r["test_nll"],
             "valid_nll": r["valid_nll"], "epochs": r["epochs"], "best_epoch": r["best_epoch"],
             "stop_reason": r["stop_reason"], "wall_minutes": r["wall_minutes"],
             "checkpoint": r["checkpoint"]}
            for r in runs
        ],
        "command": command,
    }


def print_seeds(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['model']} on {result['benchmark']}: "
                        f"{len(result['seeds'])} seeds (frame NLL, nats)")
    for column in ("seed", "test NLL", "valid NLL", "epochs (best)", "stop", "minutes",
                   "checkpoint"):
        table.add_column(column)
    for run in result["seeds"]:
        table.add_row(str(run["seed"]), f"{run['test_nll']:.4f}", f"{run['valid_nll']:.4f}",
                      f"{run['epochs']} ({run['best_epoch']})", run["stop_reason"],
                      f"{run['wall_minutes']:.1f}", str(run["checkpoint"]))
    low, high = result["test_nll_range"]
    table.add_section()
    table.add_row("mean ± sd", f"{result['test_nll']:.4f} ± {result['test_nll_std']:.4f}",
                  f"{result['valid_nll']:.4f} ± {result['valid_nll_std']:.4f}", "", "",
                  f"{result['wall_minutes']:.1f}", f"test range {low:.4f}–{high:.4f}")
    Console().print(table)


def resolve_preset(model_name: str | None, data: str, path: str | Path | None = None):
    """The ``--preset auto`` choice for a benchmark (its train split, this process's cores)."""
    from tunesmith.data.polyphonic import load_polyphonic_mat
    from tunesmith.training.presets import auto_preset
    from tunesmith.training.settings import cpu_cores

    file = benchmark_data(data, path)["path"]
    chosen = auto_preset(load_polyphonic_mat(file)["train"], cpu_cores())
    if model_name is not None and model_name != chosen.model:
        raise ConfigError(f"--preset auto chooses {chosen.model} for {Path(file).name}; drop "
                          f"--model {model_name} or give --preset none")
    return chosen


class RecordStart(pl.Callback):
    """Write ``record`` (a fresh run's command and preset) to ``path`` as training starts,
    once the trainer has accepted the run folder (first process only)."""

    def __init__(self, path: Path, record: dict):
        self.path, self.record = path, record

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            write_json(self.path, self.record)


def score_run(run_dir: str | Path, *, command: str = "", session_minutes: float = 0.0,
              preset: dict | None = None) -> dict:
    """Score a finished benchmark run's best checkpoint on valid and test (once each),
    write ``bench.json`` and record the figures in the checkpoint's ``config.json``."""
    run_dir = Path(run_dir)
    run = read_json(run_dir / RUN_FILE)
    settings = run["settings"]
    accelerator = str(settings.get("accelerator", "cpu"))
    device = "cuda" if accelerator in ("gpu", "cuda") and torch.cuda.is_available() else "cpu"
    model, meta = load_checkpoint(run_dir, device=device)
    prepared = prepare_data(run["data"], "pianoroll", progress=False)
    _check_prepared(prepared)
    started = time.perf_counter()
    batch = 2 * int(settings["batch_size"])
    valid_nll = score_split(model, model_pieces(model, prepared.pieces("valid"),
                                                prepared.onsets("valid")), batch)
    test_nll = score_split(model, model_pieces(model, prepared.pieces("test"),
                                               prepared.onsets("test")), batch)
    score_minutes = (time.perf_counter() - started) / 60

    history = read_json(run_dir / HISTORY_FILE)["history"]
    state_path = run_dir / LAST_DIR / STATE_FILE
    state = read_json(state_path) if state_path.is_file() else {}
    training = meta.get("training", {})
    final = training.get("run", training)
    best_epoch = final.get("best_epoch")
    train_minutes = float(final.get("wall_time_s", 0.0)) / 60
    file = Path(run["data"]["path"])
    result = {
        "model": run["model_name"],
        "data": str(file),
        "benchmark": file.stem,
        "test_nll": test_nll,
        "valid_nll": valid_nll,
        "best_epoch": None if best_epoch is None else int(best_epoch) + 1,  # 1-based
        "epochs": len(history),
        "stop_reason": stop_reason(settings, state, len(history), train_minutes),
        "parameters": model.n_parameters(),
        "train_minutes": round(train_minutes, 2),
        "wall_minutes": round(max(train_minutes + score_minutes, session_minutes), 2),
        "config": model.config.to_dict(),
        "options": run["options"],
        "training": {
            "batch_size": settings["batch_size"],
            "lr": settings["lr"],
            "clip": settings["gradient_clip"],
            "lr_decay_patience": settings["lr_decay_patience"],
            "weight_decay": settings["weight_decay"],
            "max_epochs": settings["epochs"],
            "patience": settings["early_stopping_patience"],
            "max_minutes": settings["max_time"],
            "transpose_augment": settings.get("transpose"),
            "window": settings.get("window"),
            "ema_decay": settings.get("ema_decay", 0.0),
            "swa_start": settings.get("swa_start", 0),
            "train_first_frame": settings.get("train_first_frame", False),
            "seed": settings["seed"],
            "trainer": "tunesmith.training.trainer (Lightning), objective frame_nll",
        },
        "protocol": PROTOCOL,
        "preset": preset,
        "checkpoint": str(run_dir),
        "machine": machine_description(),
        "command": command,
        "history": [
            {"epoch": int(row["epoch"]) + 1, "train_nll": row.get("train_loss"),
             "valid_nll": row.get("val_loss"), "lr": row.get("lr")}
            for row in history
        ],
    }
    write_json(run_dir / RESULT_FILE, result)
    config = read_json(run_dir / CONFIG_FILE)
    config["benchmark"] = {"test_nll": test_nll, "valid_nll": valid_nll, "protocol": PROTOCOL,
                           "result": RESULT_FILE}
    write_json(run_dir / CONFIG_FILE, config)
    return result


def stop_reason(settings: dict, state: dict, epochs: int, minutes: float) -> str:
    """Why training ended: patience, max_epochs, time limit or max_steps."""
    early = state.get("early_stopping") or {}
    if early.get("stopped_epoch"):
        return "patience"
    if settings.get("epochs") is not None and epochs >= int(settings["epochs"]):
        return "max_epochs"
    if settings.get("max_time") is not None and minutes >= 0.99 * float(settings["max_time"]):
        return "time limit"
    if int(settings.get("max_steps", -1)) > 0 and \
            int(state.get("global_step", 0)) >= int(settings["max_steps"]):
        return "max_steps"
    return "unknown"


def print_result(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['model']} on {result['benchmark']} (frame NLL, nats)",
                  caption=f"checkpoint: {result['checkpoint']}")
    for column in ("test NLL", "valid NLL", "parameters", "epochs (best)", "stop", "minutes"):
        table.add_column(column)
    table.add_row(f"{result['test_nll']:.4f}", f"{result['valid_nll']:.4f}",
                  f"{result['parameters']:,}", f"{result['epochs']} ({result['best_epoch']})",
                  result["stop_reason"], f"{result['wall_minutes']:.1f}")
    Console().print(table)


# ----------------------------------------------------------------------------- machine


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
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
