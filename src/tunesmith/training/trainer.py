"""The generic trainer. Nothing in this file is about a particular model family.

:func:`train` prepares the data, builds the model from the registry and hands both to
:func:`fit`, which runs PyTorch Lightning with: a rich progress bar, validation loss each
epoch, early stopping on it, a learning-rate schedule, gradient clipping, seeding, CSV
and TensorBoard logs, the best-validation weights kept as a checkpoint, and a PNG of the
loss curves at the end. Lightning's ``accelerator/devices/num_nodes/strategy`` are passed
straight through, so a multi-GPU or multi-node DDP run needs no change here.

A run folder holds::

    model.safetensors, config.json   best-validation checkpoint (what ``generate`` reads)
    last/                            in-progress state for --resume (see below)
    run.json                         model name, options, data spec and train settings
    history.json, loss.png           loss per epoch, and its plot
    logs/, tensorboard/              CSV and TensorBoard logs

Resuming never reads Lightning's pickled ``.ckpt`` files. ``last/`` is written at the
start of each epoch (i.e. after the previous one fully ended), every
``checkpoint_every`` steps, at the end, and when training is interrupted (Ctrl-C,
SIGTERM, an error): the model checkpoint, optimiser and scheduler states (tensors in
safetensors, the rest in JSON), random-number states and ``trainer_state.json``
(epochs done, global step, best validation loss, early-stopping and timer state,
history). ``resume=True`` restores all of it in ``on_fit_start`` and sets Lightning's
progress counters, so training continues at the next epoch with the same step count.
A run interrupted mid-epoch resumes at the start of that epoch with its step count,
weights and optimiser state (the part of the epoch already seen is seen again).
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import time
import tomllib
import warnings
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytorch_lightning as pl
import torch
from safetensors.torch import load_file, save_file

from tunesmith.cli.options import parse_value
from tunesmith.config import DictConfig
from tunesmith.errors import CheckpointError, ConfigError
from tunesmith.training.checkpoint import (
    CONFIG_FILE,
    jsonable,
    load_optimizer_states,
    load_weights,
    read_json,
    save_checkpoint,
    save_optimizer_states,
    write_json,
)
from tunesmith.training.task import LR_SCHEDULES, TrainingTask

LAST_DIR = "last"
RUN_FILE = "run.json"
HISTORY_FILE = "history.json"
LOSS_PLOT = "loss.png"


# ----------------------------------------------------------------------------- settings


@dataclasses.dataclass
class TrainSettings(DictConfig):
    """How to train; the ``[train]`` section of a config file."""

    config_name: ClassVar[str] = "train"

    epochs: int | None = 50  # most epochs (None = until max_steps or max_time)
    max_steps: int = -1  # most optimiser steps (-1 = no limit)
    max_time: float | None = None  # most minutes of training (None = no limit)
    batch_size: int = 16  # sequences per batch (per device)
    window: int | None = 64  # training window in steps/tokens (None = whole pieces)
    transpose: list[int] = dataclasses.field(default_factory=lambda: [0, 0])  # shift each
    # training item by a random number of semitones in [low, high] that keeps its notes in
    # range (piano-roll, melody); validation is never shifted; [0, 0] = off
    lr: float = 1e-3  # learning rate
    weight_decay: float = 0.0
    lr_schedule: str = "plateau"  # constant | cosine | plateau
    seed: int = 0  # seeds Python, numpy and torch (Lightning's seed_everything)
    accelerator: str = "auto"  # Lightning: cpu, gpu, mps, auto...
    devices: Any = "auto"  # Lightning: 1, 4, "auto", [0, 1]...
    num_nodes: int = 1  # Lightning: machines in a DDP run
    strategy: str = "auto"  # Lightning: auto, ddp, ddp_spawn, fsdp...
    precision: str = "32-true"  # Lightning: 32-true, 16-mixed, bf16-mixed...
    early_stopping_patience: int = 5  # epochs without a better val loss before stopping (0 = off)
    gradient_clip: float = 1.0  # clip the gradient norm to this (0 = off)
    log_every: int = 10  # log every this many steps
    checkpoint_every: int = 0  # also save last/ every this many steps (0 = epoch ends only)
    num_workers: int = 0  # data-loading worker processes
    threads: int = 0  # torch CPU threads (0 = torch's default); 1 is fastest for small models
    # on a busy CPU: threads of a small step spin against each other (see docs/benchmarks.md)
    limit_val_batches: float = 1.0  # Lightning: fraction (float) or number (int) of val batches
    progress_bar: bool = True  # a rich progress bar
    loggers: bool = True  # CSV and TensorBoard logs

    def __post_init__(self):
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"max_steps must be > 0 (or -1 for no limit), got {self.max_steps}")
        if self.max_time is not None and self.max_time <= 0:
            raise ConfigError(f"max_time must be > 0 minutes, got {self.max_time}")
        if self.epochs is None and self.max_steps == -1 and self.max_time is None:
            raise ConfigError("give at least one of epochs, max_steps or max_time")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.window is not None and self.window < 2:
            raise ConfigError(f"window must be >= 2 steps, got {self.window}")
        if len(self.transpose) != 2 or int(self.transpose[0]) > int(self.transpose[1]):
            raise ConfigError(f"transpose must be [low, high] semitones, got {self.transpose}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"unknown lr_schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}"
            )
        if self.early_stopping_patience < 0 or self.gradient_clip < 0:
            raise ConfigError("early_stopping_patience and gradient_clip must be >= 0")
        if self.log_every < 1 or self.checkpoint_every < 0 or self.num_workers < 0:
            raise ConfigError("log_every must be >= 1; checkpoint_every, num_workers >= 0")
        if self.num_nodes < 1:
            raise ConfigError(f"num_nodes must be >= 1, got {self.num_nodes}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}")



# ----------------------------------------------------------------------------- config files


def load_config_file(path: str | Path) -> dict[str, dict]:
    """Read a TOML run config with sections ``[model]``, ``[data]`` and ``[train]``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        config = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    unknown = sorted(set(config) - {"model", "data", "train"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)}; "
                          "expected [model], [data], [train]")
    for section in ("model", "data", "train"):
        if not isinstance(config.setdefault(section, {}), dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
    return config


def apply_overrides(config: dict[str, dict], overrides: Sequence[str]) -> dict[str, dict]:
    """Apply ``key=value`` overrides (``model.x``, ``data.x``, ``train.x``; ``data.options.x``).

    A key without a section prefix goes to ``[train]`` when it names a train setting.
    """
    config = {section: dict(config.get(section, {})) for section in ("model", "data", "train")}
    train_fields = {f.name for f in dataclasses.fields(TrainSettings)}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, _, text = item.partition("=")
        parts = key.strip().split(".")
        if parts[0] not in config:
            if len(parts) == 1 and parts[0] in train_fields:
                parts = ["train", *parts]
            else:
                raise ConfigError(
                    f"--set {key}: prefix the key with model., data. or train. (e.g. train.lr=3e-4)"
                )
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"--set {key}: expected section.name=value")
        target = config[parts[0]]
        for part in parts[1:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"--set {key}: {part} is not a table")
        target[parts[-1]] = parse_value(text.strip())
    return config


# ----------------------------------------------------------------------------- run state


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = state
    np_state = np.random.get_state()
    extra = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    return tensors, extra


def _set_rng_state(tensors: dict[str, torch.Tensor], extra: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    if "python" in extra:
        version, state, gauss = extra["python"]
        random.setstate((version, tuple(state), gauss))
    if "numpy" in extra:
        name, keys, pos, has_gauss, cached = extra["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def _set_loop_progress(trainer: pl.Trainer, epochs_done: int, global_step: int,
                       batches_seen: int) -> None:
    """Put Lightning's loop counters at the start of epoch ``epochs_done``, step ``global_step``.

    These are the counters Lightning itself restores from a ``.ckpt`` (``fit_loop``
    progress); we set them for a clean epoch boundary instead of unpickling a file.
    """
    fit_loop = trainer.fit_loop
    for tracker in (fit_loop.epoch_progress.total, fit_loop.epoch_progress.current):
        tracker.ready = tracker.started = tracker.processed = tracker.completed = epochs_done
    epoch_loop = fit_loop.epoch_loop
    step_trackers = [
        epoch_loop.automatic_optimization.optim_progress.optimizer.step.total,
        epoch_loop.manual_optimization.optim_step_progress.total,
    ]
    for tracker in step_trackers:
        tracker.ready = tracker.completed = global_step
    total = epoch_loop.batch_progress.total
    total.ready = total.started = total.processed = total.completed = batches_seen
    epoch_loop._batches_that_stepped = global_step  # the step loggers write
    # like a restore from a checkpoint: the train iterator is already fresh for this epoch
    fit_loop._resuming_from_checkpoint = epochs_done > 0


class RunStateCallback(pl.Callback):
    """Keeps the best-validation checkpoint, the history, and ``last/`` for resuming."""

    def __init__(
        self,
        run_dir: Path,
        *,
        model_name: str,
        data_info: dict,
        corpus: Any,
        split: Any,
        settings: TrainSettings,
        resume: bool = False,
    ):
        self.run_dir = Path(run_dir)
        self.model_name = model_name
        self.data_info = data_info
        self.corpus = corpus
        self.split = split
        self.settings = settings
        self.resume = resume
        self.best_val = math.inf
        self.best_epoch: int | None = None
        self.history: list[dict] = []
        self.wall_time_before = 0.0
        self._started = time.monotonic()
        self._start_epoch = 0
        self._last_saved: tuple[int, int] | None = None
        self.monitor = "val_loss"

    # ---- what gets written --------------------------------------------------------
    def wall_time(self) -> float:
        return self.wall_time_before + time.monotonic() - self._started

    def training_metadata(self, trainer: pl.Trainer) -> dict:
        return {
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "best_val_loss": self.best_val if math.isfinite(self.best_val) else None,
            "best_epoch": self.best_epoch,
            "wall_time_s": round(self.wall_time(), 2),
            "settings": self.settings.to_dict(),
        }

    def _early_stopping(self, trainer):
        from pytorch_lightning.callbacks import EarlyStopping

        return next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)

    def _timer(self, trainer):
        from pytorch_lightning.callbacks import Timer

        return next((c for c in trainer.callbacks if isinstance(c, Timer)), None)

    def save_last(self, trainer: pl.Trainer, pl_module: TrainingTask, epochs_done: int) -> None:
        """Write ``last/`` (atomically: a new folder replaces the old one)."""
        if not trainer.is_global_zero:
            return
        key = (epochs_done, trainer.global_step)
        if key == self._last_saved:
            return
        tmp = self.run_dir / (LAST_DIR + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        save_checkpoint(
            tmp, pl_module.model, model_name=self.model_name, data_info=self.data_info,
            corpus=self.corpus, split=self.split, training=self.training_metadata(trainer),
        )
        save_optimizer_states(list(trainer.optimizers), tmp)
        schedulers = [jsonable(cfg.scheduler.state_dict()) for cfg in trainer.lr_scheduler_configs]
        write_json(tmp / "scheduler.json", {"schedulers": schedulers})
        rng_tensors, rng_extra = _rng_state()
        save_file(rng_tensors, str(tmp / "rng.safetensors"))
        early = self._early_stopping(trainer)
        timer = self._timer(trainer)
        state = {
            "epochs_done": epochs_done,
            "global_step": trainer.global_step,
            "batches_seen": trainer.fit_loop.epoch_loop.batch_progress.total.completed,
            "best_val": self.best_val,
            "best_epoch": self.best_epoch,
            "wall_time_s": self.wall_time(),
            "history": self.history,
            "early_stopping": None if early is None else {
                "wait_count": early.wait_count,
                "best_score": float(early.best_score),
                "stopped_epoch": early.stopped_epoch,
            },
            "timer_elapsed_s": None if timer is None else timer.time_elapsed("train"),
            "rng": rng_extra,
        }
        write_json(tmp / "trainer_state.json", state)
        last = self.run_dir / LAST_DIR
        old = self.run_dir / (LAST_DIR + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if last.exists():
            last.replace(old)
        tmp.replace(last)
        shutil.rmtree(old, ignore_errors=True)
        self._last_saved = key

    def restore(self, trainer: pl.Trainer, pl_module: TrainingTask) -> None:
        """Load ``last/`` into the model, optimisers, schedulers, counters and RNGs."""
        last = self.run_dir / LAST_DIR
        state = read_json(last / "trainer_state.json")
        load_weights(pl_module.model, last / "model.safetensors")
        load_optimizer_states(list(trainer.optimizers), last)
        schedulers = read_json(last / "scheduler.json").get("schedulers", [])
        configs = trainer.lr_scheduler_configs
        if len(schedulers) != len(configs):
            raise CheckpointError(
                last / "scheduler.json",
                f"holds {len(schedulers)} scheduler(s), the run has {len(configs)}",
            )
        for config, saved in zip(configs, schedulers, strict=True):
            config.scheduler.load_state_dict(saved)
        self.best_val = state["best_val"] if state["best_val"] is not None else math.inf
        self.best_epoch = state.get("best_epoch")
        self.history = list(state.get("history", []))
        self.wall_time_before = float(state.get("wall_time_s", 0.0))
        early = self._early_stopping(trainer)
        if early is not None and state.get("early_stopping"):
            saved = state["early_stopping"]
            early.wait_count = int(saved["wait_count"])
            early.best_score = torch.tensor(float(saved["best_score"]))
            early.stopped_epoch = int(saved["stopped_epoch"])
        timer = self._timer(trainer)
        if timer is not None and state.get("timer_elapsed_s") is not None:
            timer.load_state_dict({"time_elapsed": {"train": state["timer_elapsed_s"]}})
        _set_loop_progress(trainer, int(state["epochs_done"]), int(state["global_step"]),
                           int(state.get("batches_seen", 0)))
        try:
            rng_tensors = load_file(str(last / "rng.safetensors"))
        except Exception as exc:
            raise CheckpointError(last / "rng.safetensors", f"unreadable ({exc})") from exc
        _set_rng_state(rng_tensors, state.get("rng", {}))
        self._start_epoch = int(state["epochs_done"])
        self._last_saved = (int(state["epochs_done"]), int(state["global_step"]))

    # ---- Lightning hooks ------------------------------------------------------------
    def on_fit_start(self, trainer, pl_module):
        self._started = time.monotonic()
        if self.resume:
            self.restore(trainer, pl_module)

    def on_train_epoch_start(self, trainer, pl_module):
        # the previous epoch has fully ended (scheduler stepped, counters complete)
        if trainer.current_epoch > self._start_epoch:
            self.save_last(trainer, pl_module, epochs_done=trainer.current_epoch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        every = self.settings.checkpoint_every
        if every and trainer.global_step % every == 0:
            self.save_last(trainer, pl_module, epochs_done=trainer.current_epoch)

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = trainer.callback_metrics
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key, name in (("train_loss_epoch", "train_loss"), ("val_loss", "val_loss")):
            if key in metrics:
                row[name] = float(metrics[key])
        if trainer.optimizers:
            row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.history.append(row)
        score = row.get(self.monitor if self.monitor == "val_loss" else "train_loss")
        if score is not None and math.isfinite(score) and score < self.best_val:
            self.best_val = score
            self.best_epoch = trainer.current_epoch
            if trainer.is_global_zero:
                save_checkpoint(
                    self.run_dir, pl_module.model, model_name=self.model_name,
                    data_info=self.data_info, corpus=self.corpus, split=self.split,
                    training=self.training_metadata(trainer),
                )
        if trainer.is_global_zero:
            write_json(self.run_dir / HISTORY_FILE, {"history": self.history})

    def on_train_end(self, trainer, pl_module):
        self.save_last(trainer, pl_module, epochs_done=trainer.current_epoch)

    def on_exception(self, trainer, pl_module, exception):
        if trainer.optimizers:  # nothing to save before the optimisers exist
            self.save_last(trainer, pl_module, epochs_done=trainer.current_epoch)


# ----------------------------------------------------------------------------- fit


class EpochProgressBar(pl.callbacks.RichProgressBar):
    """Lightning's Rich bar, reading "Epoch 19" rather than "Epoch 19/-2" when training
    is bounded by time or steps (``max_epochs=-1``)."""

    def _get_train_description(self, current_epoch: int) -> str:
        description = super()._get_train_description(current_epoch)
        if self.trainer.max_epochs is not None and self.trainer.max_epochs < 0:
            description = description.replace(f"/{self.trainer.max_epochs - 1}", "", 1)
        return description


def fit(
    model,
    train_loader,
    val_loader,
    run_dir: str | Path,
    *,
    model_name: str,
    settings: TrainSettings,
    data_info: dict | None = None,
    corpus: Any = None,
    split: Any = None,
    resume: bool = False,
    callbacks: Sequence[pl.Callback] = (),
) -> Path:
    """Train ``model`` on the given loaders with Lightning; return the run folder.

    The run folder's ``model.safetensors``/``config.json`` hold the best-validation
    weights (the last ones when there is no validation data).
    """
    from pytorch_lightning.callbacks import EarlyStopping

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data_info = dict(data_info or {})
    has_val = val_loader is not None and len(val_loader) > 0
    monitor = "val_loss" if has_val else "train_loss_epoch"
    pl.seed_everything(settings.seed, workers=True, verbose=False)
    # Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates: not the user's
    # concern, and it would be the one warning in every training run's output.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    # Denormal gradients (long LSTM sequences late in training) run ~8x slower on x86 CPUs;
    # flushing them to zero changes no result beyond 1e-5 (tests/test_music_vae.py).
    torch.set_flush_denormal(True)

    task = TrainingTask(model, lr=settings.lr, weight_decay=settings.weight_decay,
                        lr_schedule=settings.lr_schedule, monitor=monitor)
    state = RunStateCallback(run_dir, model_name=model_name, data_info=data_info, corpus=corpus,
                             split=split, settings=settings, resume=resume)
    state.monitor = monitor
    all_callbacks: list[pl.Callback] = [state]
    if settings.early_stopping_patience:
        all_callbacks.append(EarlyStopping(monitor=monitor, mode="min",
                                           patience=settings.early_stopping_patience))
    if settings.progress_bar:
        all_callbacks.append(EpochProgressBar())
    all_callbacks.extend(callbacks)
    loggers: list | bool = False
    if settings.loggers:
        from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

        loggers = [CSVLogger(run_dir, name="logs"), TensorBoardLogger(run_dir, name="tensorboard")]
    clip = None  # Lightning clips only under automatic optimisation
    if settings.gradient_clip and task.automatic_optimization:
        clip = settings.gradient_clip
    trainer = pl.Trainer(
        max_epochs=settings.epochs if settings.epochs is not None else -1,
        max_steps=settings.max_steps,
        max_time=timedelta(minutes=settings.max_time) if settings.max_time else None,
        accelerator=settings.accelerator,
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=settings.strategy,
        precision=settings.precision,
        gradient_clip_val=clip,
        callbacks=all_callbacks,
        logger=loggers,
        log_every_n_steps=settings.log_every,
        enable_checkpointing=False,  # our checkpoints are safetensors, see RunStateCallback
        enable_progress_bar=settings.progress_bar,
        enable_model_summary=settings.progress_bar,
        default_root_dir=str(run_dir),
        limit_val_batches=settings.limit_val_batches,
        # a sanity check would draw random numbers before the restored epoch
        num_sanity_val_steps=0 if resume else 2,
    )
    trainer.fit(task, train_dataloaders=train_loader,
                val_dataloaders=val_loader if has_val else None)

    if trainer.is_global_zero:
        final = state.training_metadata(trainer)
        if not (run_dir / CONFIG_FILE).is_file() or not math.isfinite(state.best_val):
            save_checkpoint(run_dir, task.model, model_name=model_name, data_info=data_info,
                            corpus=corpus, split=split, training=final)
        else:  # keep the best weights; record how the whole run went beside them
            meta = read_json(run_dir / CONFIG_FILE)
            meta["training"] = {**meta.get("training", {}), "run": final}
            write_json(run_dir / CONFIG_FILE, meta)
        write_json(run_dir / HISTORY_FILE, {"history": state.history})
        if state.history:
            from tunesmith.training.plots import plot_loss_curves

            plot_loss_curves(state.history, run_dir / LOSS_PLOT, title=f"{model_name}: loss")
    return run_dir


# ----------------------------------------------------------------------------- train


def _data_spec_dict(data_spec: Any) -> dict:
    """Normalise a data spec (corpus name, dict, or PreparedData) to a dict for run.json."""
    if isinstance(data_spec, str):
        return {"corpus": data_spec}
    if isinstance(data_spec, dict):
        if "corpus" not in data_spec:
            raise ConfigError("the data spec needs a corpus (e.g. corpus = \"bach-chorales\")")
        return dict(data_spec)
    if hasattr(data_spec, "info") and hasattr(data_spec, "pieces"):  # PreparedData
        return {"corpus": data_spec.corpus, "representation": data_spec.representation,
                "options": dict(data_spec.repr_config)}
    raise ConfigError(f"cannot use {type(data_spec).__name__} as a data spec")


DATA_KEYS = ("corpus", "path", "representation", "options", "transpose_to_c", "limit", "workers")


def prepare_data(data: dict, representation: str, progress: bool = True):
    """Prepare (or read from the cache) the data a run asks for."""
    from tunesmith.data.prepare import prepare

    unknown = sorted(set(data) - set(DATA_KEYS))
    if unknown:
        raise ConfigError(f"unknown data option(s) {', '.join(unknown)}; known: "
                          f"{', '.join(DATA_KEYS)}")
    wanted = data.get("representation") or representation
    if wanted != representation:
        raise ConfigError(
            f"the model reads the {representation!r} representation, "
            f"but the data asks for {wanted!r}"
        )
    return prepare(
        data["corpus"], representation, dict(data.get("options") or {}), path=data.get("path"),
        workers=data.get("workers"), transpose_to_c=bool(data.get("transpose_to_c", False)),
        limit=data.get("limit"), progress=progress,
    )


def train(
    model_name: str | None,
    data_spec: Any,
    options: dict | None = None,
    out_dir: str | Path = "runs/run",
    *,
    resume: bool = False,
    callbacks: Sequence[pl.Callback] = (),
    **settings: Any,
) -> Path:
    """Train a registered model on a corpus; return the run folder (a checkpoint).

    Args:
        model_name: a registry name (``tunesmith models``); may be None on resume.
        data_spec: a corpus name, a dict (``corpus``, ``path``, ``representation``,
            ``options`` for the representation, ``transpose_to_c``, ``limit``), or a
            prepared :class:`~tunesmith.data.prepare.PreparedData`; may be None on resume.
        options: model config overrides.
        out_dir: the run folder.
        resume: continue the run saved in ``out_dir/last`` (model, options and data
            come from ``out_dir/run.json``; ``settings`` given here override the saved ones).
        settings: :class:`TrainSettings` fields (epochs, max_steps, max_time in minutes,
            batch_size, window, lr, seed, accelerator, devices, num_nodes, strategy...).
    """
    from tunesmith.models import registry

    out_dir = Path(out_dir)
    run_file = out_dir / RUN_FILE
    prepared = None
    if resume:
        state_file = out_dir / LAST_DIR / "trainer_state.json"
        if not state_file.is_file():
            raise CheckpointError(out_dir / LAST_DIR, "nothing to resume: no saved training state")
        run = read_json(run_file)
        if model_name and model_name != run["model_name"]:
            raise ConfigError(f"{out_dir} trained {run['model_name']!r}, not {model_name!r}")
        model_name = run["model_name"]
        options = {**run.get("options", {}), **(options or {})}
        if data_spec is None or isinstance(data_spec, (str, dict)):
            data_spec = run["data"]
        merged = {**run.get("settings", {}), **settings}
    else:
        if model_name is None or data_spec is None:
            raise ConfigError("give a model (--model) and data (--data)")
        if run_file.exists() or (out_dir / LAST_DIR).exists():
            raise ConfigError(
                f"{out_dir} already holds a training run; pass --resume to continue it, "
                "or choose another --out"
            )
        merged = dict(settings)
    train_settings = TrainSettings.from_dict(merged)
    cls = registry.get_family(model_name)  # unknown names fail before any data work
    model_options = {**registry.preset_options(model_name), **(options or {})}
    cls.config_class.from_dict(model_options)  # typos fail before any data work too

    data = _data_spec_dict(data_spec)
    if hasattr(data_spec, "info") and hasattr(data_spec, "pieces"):
        prepared = data_spec
        if prepared.representation != cls.representation:
            raise ConfigError(f"model {model_name!r} needs the {cls.representation!r} "
                              f"representation, but the data is {prepared.representation!r}")
    else:
        prepared = prepare_data(data, cls.representation, progress=train_settings.progress_bar)

    pl.seed_everything(train_settings.seed, workers=True, verbose=False)
    model = registry.build(model_name, options, prepared.info)
    loaders = make_loaders(prepared, train_settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_file, {"model_name": model_name, "options": dict(options or {}), "data": data,
                          "settings": train_settings.to_dict()})
    info = prepared.info
    split = {"counts": info.get("n_pieces"), "method": info.get("split_source"),
             "valid_ids": prepared.ids("valid")[:1000], "test_ids": prepared.ids("test")[:1000]}
    return fit(model, loaders[0], loaders[1], out_dir, model_name=model_name,
               settings=train_settings, data_info=dict(info), corpus=data, split=split,
               resume=resume, callbacks=callbacks)


def make_loaders(prepared, settings: TrainSettings):
    """Train and validation loaders from the data layer (validation may be None)."""
    from tunesmith.data.datasets import make_dataloader

    train_loader = make_dataloader(prepared, "train", batch_size=settings.batch_size,
                                   window=settings.window, shuffle=True,
                                   transpose=tuple(int(s) for s in settings.transpose),
                                   num_workers=settings.num_workers)
    if not prepared.ids("valid"):
        return train_loader, None
    val_loader = make_dataloader(prepared, "valid", batch_size=settings.batch_size,
                                 window=settings.window, shuffle=False,
                                 num_workers=settings.num_workers)
    return train_loader, val_loader
