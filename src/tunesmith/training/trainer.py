"""The generic trainer. Nothing in this file is about a particular model family.

:func:`train` prepares the data, builds the model from the registry and hands both to
:func:`fit`, which runs PyTorch Lightning with: a rich progress bar, validation loss each
epoch, early stopping on it, a learning-rate schedule, gradient clipping, seeding, CSV
and TensorBoard logs, the best-validation weights kept as a checkpoint, and a PNG of the
loss curves at the end. Lightning's ``accelerator/devices/num_nodes/strategy`` are passed
straight through, so a multi-GPU or multi-node DDP run needs no change here.

A run optimises its family's ``loss``, or an objective named in :data:`OBJECTIVES`:
``frame_nll``, the polyphonic benchmark's NLL of frames 2…T, is what ``bench nll``
trains on (:mod:`tunesmith.training.benchmark`), so a benchmark run is a training run
like any other and leaves the same folder.

A run folder holds::

    model.safetensors, config.json   best-validation checkpoint (what ``generate`` reads)
    last/                            in-progress state for --resume (see below)
    run.json                         model name, options, data spec and train settings
    history.json, loss.png           loss per epoch, and its plot
    logs/, tensorboard/              CSV and TensorBoard logs

Resuming never reads Lightning's pickled ``.ckpt`` files and is exact: a run killed at
step N and resumed ends with the same weights, bit for bit, as one never interrupted.
``last/`` holds the model checkpoint, optimiser and scheduler states (tensors in
safetensors, the rest in JSON), the random-number states, and ``trainer_state.json``:
Lightning's fit-loop counters (its own ``FitLoop.state_dict()``, which ``resume=True``
hands back to ``FitLoop.load_state_dict`` as Lightning's resume does; all the trainer
knows of them is in :mod:`tunesmith.training.loop_state`), the epoch's loss
sums and plateau schedule (:class:`TrainingTask`), early-stopping and timer state, best
validation loss and history. The data's order and random windows are functions of
(seed, epoch, position) (:class:`~tunesmith.data.datasets.EpochSampler`), so the resumed
run re-enters the epoch at the batch it stopped before. ``last/`` is written as each
epoch begins, every ``checkpoint_every`` steps, at the end, and on an interruption (Ctrl-C,
SIGTERM, an error) when the weights still match the last batch or epoch boundary; see
:class:`RunStateCallback`. (Exact on one device with the loaders of :func:`make_loaders`.)

Under DDP (``devices > 1`` or ``num_nodes > 1``) every process runs this code; the
loaders' :class:`~tunesmith.data.datasets.EpochSampler` deals each epoch's batches out to
the processes (a disjoint part each, no piece repeated), the epoch's loss sums are added
over the processes, and the first process alone writes the run folder. A DDP run resumed
part-way through an epoch re-enters it at the same batch with the same weights and
optimiser; the loss sums and random-number states saved are the first process's.
A run killed before anything was saved restarts from step 0 on ``--resume``;
``overwrite=True`` clears a run folder to start again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import re
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from safetensors.torch import load_file, save_file

from tunesmith.data.datasets import EpochSampler, make_dataloader
from tunesmith.data.prepare import prepare
from tunesmith.errors import CheckpointError, ConfigError
from tunesmith.models import registry
from tunesmith.models.likelihood import frame_nll_loss
from tunesmith.representations.adapter import get_representation, representation_names
from tunesmith.representations.info import DataInfo
from tunesmith.representations.output_mask import OutputMask
from tunesmith.training import loop_state
from tunesmith.training.averaging import AVERAGE_FILE, ModelAveraging, make_averaging
from tunesmith.training.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    build_model,
    check_like,
    check_tensor,
    checkpoint_model_options,
    first_line,
    jsonable,
    load_initial_weights,
    load_optimizer_states,
    load_weights,
    model_size_problem,
    read_json,
    require_fields,
    save_checkpoint,
    save_optimizer_states,
    write_json,
)
from tunesmith.training.plots import plot_loss_curves
from tunesmith.training.settings import (  # noqa: F401 (re-exported: the trainer's API)
    LR_SCHEDULES,
    TrainSettings,
    first_process,
    validate_lightning_flags,
)
from tunesmith.training.task import TrainingTask

LAST_DIR = "last"
RUN_FILE = "run.json"
HISTORY_FILE = "history.json"
LOSS_PLOT = "loss.png"
STATE_FILE = "trainer_state.json"
SCHEDULER_FILE = "scheduler.json"
RNG_FILE = "rng.safetensors"
STATE_VERSION = 2  # trainer_state.json's layout
#: what a run writes in its folder (and ``overwrite=True`` removes; nothing else is touched)
RUN_OUTPUTS = (WEIGHTS_FILE, CONFIG_FILE, RUN_FILE, HISTORY_FILE, LOSS_PLOT, LAST_DIR,
               LAST_DIR + ".tmp", LAST_DIR + ".old", "logs", "tensorboard")


#: what a run may optimise besides the family's own ``loss``: name -> objective(model, batch)
#: (the names are ``settings.OBJECTIVES``, checked before torch loads)
OBJECTIVES = {
    # the polyphonic benchmark protocol: NLL of frames 2..T per scored frame (piano-rolls)
    "frame_nll": frame_nll_loss,
}


# ----------------------------------------------------------------------------- run state


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """(torch and CUDA states as tensors, Python and numpy states: JSON after jsonable())."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = state
    return tensors, {"python": random.getstate(), "numpy": np.random.get_state()}


def _set_rng_state(tensors: dict[str, torch.Tensor], extra: Any, last: Path) -> None:
    """Set every random-number generator from ``last/``, refusing a state that does not fit."""
    tensor_path, state_path = last / RNG_FILE, last / STATE_FILE
    if "torch" not in tensors:
        raise CheckpointError(tensor_path, "missing tensor torch")
    unexpected = sorted(k for k in tensors if k != "torch" and not re.fullmatch(r"cuda\.\d+", k))
    if unexpected:
        raise CheckpointError(tensor_path, f"unexpected tensor(s) {', '.join(unexpected[:5])}")
    check_tensor(tensor_path, "tensor torch", tensors["torch"], torch.get_rng_state())
    cuda = [tensors[f"cuda.{i}"] for i in range(len(tensors) - 1) if f"cuda.{i}" in tensors]
    for i, state in enumerate(cuda):
        if state.dtype != torch.uint8 or state.ndim != 1:
            raise CheckpointError(tensor_path, f"tensor cuda.{i} is not a CUDA generator state")
    check_like(extra, jsonable(_rng_state()[1]), state_path, "rng")
    try:  # Mersenne-Twister words are 32-bit; then try the states on throwaway generators
        version, keys, gauss = extra["python"]
        name, np_keys, pos, has_gauss, cached = extra["numpy"]
        if any(k >= 2**32 for k in [*keys, *np_keys]):
            raise ValueError("a generator word is not 32-bit")
        if not (0 <= pos <= len(np_keys) and has_gauss in (0, 1)):  # numpy would crash later
            raise ValueError(f"numpy position {pos} outside its {len(np_keys)} words")
        python_state = (version, tuple(keys), gauss)
        random.Random().setstate(python_state)
        np_state = (name, np.asarray(np_keys, dtype=np.uint32), pos, has_gauss, cached)
        np.random.RandomState().set_state(np_state)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(state_path, f"bad random-number state ({first_line(exc)})") from exc
    torch.set_rng_state(tensors["torch"])
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    random.setstate(python_state)
    np.random.set_state(np_state)


#: trainer_state.json: field -> accepted types (checked on resume)
STATE_FIELDS: dict[str, tuple] = {
    "format_version": (int,), "epochs_done": (int,), "global_step": (int,),
    "batches_done": (int,), "items_done": (int,), "best_val": (float, type(None)),
    "best_epoch": (int, type(None)), "wall_time_s": (float,), "history": (list,),
    "early_stopping": (dict, type(None)), "timer_elapsed_s": (float, type(None)),
    "rng": (dict,), "task": (dict,), "loops": (dict,),
}
#: fields a trainer_state.json may lack (older runs): field -> (types, value when absent)
OPTIONAL_STATE_FIELDS: dict[str, tuple] = {
    "world_size": ((int,), 1),  # training processes: batches_done counts each one's batches
}


class RunStateCallback(pl.Callback):
    """Keeps the best-validation checkpoint, the history, and ``last/`` for resuming.

    As each epoch starts and each batch ends it notes a *resume point* (about 0.3 ms): all
    a resumed run needs but the weights and optimiser states, which stay as they are
    until the next optimiser step (the model's buffers, which a forward pass may change,
    are copied). ``last/`` is
    written from the latest point: at each epoch's first batch, every ``checkpoint_every``
    steps, at the end, and on an interruption if no optimiser step has been taken since
    the point or the run stands between epochs (else ``last/`` keeps the previous save).
    Epochs are saved at their first batch, not before: for a loader that draws from the
    global generator as its epoch begins, that is after the draw, where the resumed run
    restores the generators.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        model_name: str,
        data_info: DataInfo | None,
        corpus: Any,
        split: Any,
        settings: TrainSettings,
        resume: bool = False,
        train_loader: Any = None,
        val_loader: Any = None,
    ):
        self.run_dir = Path(run_dir)
        self.model_name = model_name
        self.data_info = data_info
        self.corpus = corpus
        self.split = split
        self.settings = settings
        self.resume = resume
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.best_val = math.inf
        self.best_epoch: int | None = None
        self.history: list[dict] = []
        self.wall_time_before = 0.0
        self._started = time.monotonic()
        self._point: dict | None = None
        self._last_saved: int | None = None  # global step of the last save
        self._rng_to_restore: tuple | None = None
        self.monitor = "val_loss"
        self.averaging: ModelAveraging | None = None  # EMA/SWA: what validation reads

    def validated_model(self, pl_module: TrainingTask):
        """The weights validation scored: the averaged ones under EMA/SWA, else the live."""
        if self.averaging is None:
            return pl_module.model
        return self.averaging.validated_model(pl_module)

    # ---- what gets written --------------------------------------------------------
    def wall_time(self) -> float:
        return self.wall_time_before + time.monotonic() - self._started

    def training_metadata(self, trainer: pl.Trainer) -> dict:
        return self._metadata(trainer.current_epoch, trainer.global_step, self.best_val,
                              self.best_epoch, self.wall_time())

    def _metadata(self, epochs, step, best_val, best_epoch, wall_time) -> dict:
        return {
            "epochs": epochs,
            "global_step": step,
            "best_val_loss": best_val if math.isfinite(best_val) else None,
            "best_epoch": best_epoch,
            "wall_time_s": round(wall_time, 2),
            "settings": self.settings.to_dict(),
        }

    def _early_stopping(self, trainer):
        from pytorch_lightning.callbacks import EarlyStopping

        return next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)

    def _timer(self, trainer):
        from pytorch_lightning.callbacks import Timer

        return next((c for c in trainer.callbacks if isinstance(c, Timer)), None)

    def _sampler(self, loader: Any = None):
        """The train loader's (or ``loader``'s) :class:`EpochSampler`, if it has one."""
        return epoch_sampler(self.train_loader if loader is None else loader)

    def capture(self, trainer: pl.Trainer, pl_module: TrainingTask, event: str) -> dict:
        """A resume point at ``event`` (see :func:`.loop_state.resume_point_loops`)."""
        loops = loop_state.resume_point_loops(loop_state.fit_loop_state(trainer), event)
        batches = loop_state.batches_done(loops)
        early = self._early_stopping(trainer)
        timer = self._timer(trainer)
        rng_tensors, rng_extra = _rng_state()
        sampler = self._sampler()
        state = {
            "format_version": STATE_VERSION,
            "epochs_done": loop_state.epochs_done(loops),
            "global_step": trainer.global_step,
            "batches_done": batches,
            # where the sampler resumes, whatever batch size the resumed run is given
            "items_done": batches * (getattr(sampler, "batch_size", None)
                                     or getattr(self.train_loader, "batch_size", 0) or 0),
            "world_size": trainer.world_size,
            "best_val": self.best_val if math.isfinite(self.best_val) else None,
            "best_epoch": self.best_epoch,
            "wall_time_s": self.wall_time(),
            "history": len(self.history),  # rows are only appended: keep the count
            # tensors in these two (on the GPU perhaps) are read only when saving
            "early_stopping": None if early is None else {
                k: v for k, v in early.state_dict().items() if k != "patience"},
            "timer_elapsed_s": None if timer is None else timer.time_elapsed("train"),
            "rng": rng_extra,
            "task": pl_module.run_state(),
            "loops": loops,
        }
        return {
            "state": state,
            "rng": rng_tensors,
            "schedulers": [jsonable(c.scheduler.state_dict())
                           for c in trainer.lr_scheduler_configs],
            "buffers": {n: b.detach().clone() for n, b in pl_module.model.named_buffers()},
        }

    def save_last(self, trainer: pl.Trainer, pl_module: TrainingTask, point: dict) -> None:
        """Write ``last/`` from ``point`` and the current weights and optimiser states
        (atomically: a new folder replaces the old one)."""
        state = jsonable(point["state"])
        if not trainer.is_global_zero or state["global_step"] == self._last_saved:
            return
        state["history"] = self.history[: state["history"]]
        tmp = self.run_dir / (LAST_DIR + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        best = math.inf if state["best_val"] is None else state["best_val"]
        training = self._metadata(state["epochs_done"], state["global_step"], best,
                                  state["best_epoch"], state["wall_time_s"])
        save_checkpoint(tmp, pl_module.model, model_name=self.model_name,
                        data_info=self.data_info, corpus=self.corpus, split=self.split,
                        training=training)
        save_optimizer_states(list(trainer.optimizers), tmp)
        write_json(tmp / SCHEDULER_FILE, {"schedulers": point["schedulers"]})
        save_file(point["rng"], str(tmp / RNG_FILE))
        if self.averaging is not None:
            save_file(self.averaging.state_tensors(), str(tmp / AVERAGE_FILE))
        write_json(tmp / STATE_FILE, state)
        last = self.run_dir / LAST_DIR
        old = self.run_dir / (LAST_DIR + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if last.exists():
            last.replace(old)
        tmp.replace(last)
        shutil.rmtree(old, ignore_errors=True)
        self._last_saved = state["global_step"]

    # ---- reading it back ------------------------------------------------------------
    def restore(self, trainer: pl.Trainer, pl_module: TrainingTask) -> None:
        """Load ``last/`` into the model, optimisers, schedulers, loops and sampler (the
        random-number generators follow in ``on_train_start``); every file is checked
        first and a bad one is a one-line :class:`CheckpointError`."""
        last = self.run_dir / LAST_DIR
        state_path = last / STATE_FILE
        state = read_json(state_path)
        version = state.get("format_version", 1)
        if version != STATE_VERSION:
            raise CheckpointError(state_path, f"format version {version}, this tunesmith reads "
                                  f"{STATE_VERSION}; start the run again with --overwrite")
        require_fields(state, STATE_FIELDS, state_path)
        for name, (_, absent) in OPTIONAL_STATE_FIELDS.items():
            state.setdefault(name, absent)
        require_fields(state, {k: v[0] for k, v in OPTIONAL_STATE_FIELDS.items()}, state_path)
        unknown = sorted(set(state) - set(STATE_FIELDS) - set(OPTIONAL_STATE_FIELDS))
        if unknown:
            raise CheckpointError(state_path, f"unexpected field(s) {', '.join(unknown[:5])}")
        fresh_loops = loop_state.fit_loop_state(trainer)
        loops = state["loops"]
        check_like({k: v for k, v in loops.items() if k != "state_dict"},
                   {k: v for k, v in fresh_loops.items() if k != "state_dict"},
                   state_path, "loops")
        if loop_state.loop_global_step(loops) != state["global_step"]:
            raise CheckpointError(state_path, f"global_step {state['global_step']} does not "
                                  f"match the loop state's {loop_state.loop_global_step(loops)}")
        for i, row in enumerate(state["history"]):
            if not isinstance(row, dict) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in row.values()):
                raise CheckpointError(state_path, f"history row {i} must map names to numbers")
        task_state = state["task"]
        check_like({k: v for k, v in task_state.items() if k != "epoch_sums"},
                   {k: v for k, v in jsonable(pl_module.run_state()).items()
                    if k != "epoch_sums"}, state_path, "task")
        sums = task_state.get("epoch_sums")
        if not isinstance(sums, dict) or not all(
                isinstance(v, list) and len(v) == 2 and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                    for x in v) for v in sums.values()):
            raise CheckpointError(state_path, "task.epoch_sums must map names to [sum, count]")
        early = self._early_stopping(trainer)
        saved_early = state["early_stopping"]
        if early is not None and saved_early is not None:
            reference = jsonable({k: v for k, v in early.state_dict().items() if k != "patience"})
            check_like(saved_early, reference, state_path, "early_stopping")
        scheduler_path = last / SCHEDULER_FILE
        schedulers = read_json(scheduler_path)
        require_fields(schedulers, {"schedulers": (list,)}, scheduler_path)
        configs = trainer.lr_scheduler_configs
        check_like(schedulers["schedulers"], [jsonable(c.scheduler.state_dict()) for c in configs],
                   scheduler_path, "schedulers")
        sampler = self._sampler()
        position = state["items_done"]
        same_processes = state["world_size"] == trainer.world_size
        if sampler is not None and trainer.world_size > 1 and same_processes:
            position = state["batches_done"]  # each process skips its own first batches
            if position > len(sampler.batches(state["epochs_done"])):
                raise CheckpointError(state_path, f"batches_done {position} is past the end "
                                      f"of an epoch of this data")
        elif sampler is not None and position > sampler.n_items:
            raise CheckpointError(state_path, f"items_done {position} is past the end of an "
                                  f"epoch of this data ({sampler.n_items} items)")
        try:
            rng_tensors = load_file(str(last / RNG_FILE))
        except Exception as exc:
            raise CheckpointError(last / RNG_FILE, f"corrupt or unreadable ({first_line(exc)})") \
                from exc
        _set_rng_state(dict(rng_tensors), state["rng"], last)  # checks; set again at train start
        average = None
        if self.averaging is not None:
            if not (last / AVERAGE_FILE).is_file():
                raise CheckpointError(last / AVERAGE_FILE, "missing: the run was saved without "
                                      "weight averaging (ema_decay/swa_start)")
            try:
                average = load_file(str(last / AVERAGE_FILE))
            except Exception as exc:
                raise CheckpointError(last / AVERAGE_FILE, f"corrupt or unreadable "
                                      f"({first_line(exc)})") from exc

        # all checked: load
        load_weights(pl_module.model, last / WEIGHTS_FILE)
        if self.averaging is not None and average is not None:
            self.averaging.load_state_tensors(average, last / AVERAGE_FILE)
        load_optimizer_states(list(trainer.optimizers), last)
        for config, saved in zip(configs, schedulers["schedulers"], strict=True):
            config.scheduler.load_state_dict(saved)
        pl_module.load_run_state(task_state)
        if early is not None and saved_early is not None:
            early.load_state_dict({**saved_early, "patience": early.patience,
                                   "best_score": torch.tensor(saved_early["best_score"])})
        timer = self._timer(trainer)
        if timer is not None and state["timer_elapsed_s"] is not None:
            timer.load_state_dict({"time_elapsed": {"train": state["timer_elapsed_s"]}})
        self.best_val = math.inf if state["best_val"] is None else float(state["best_val"])
        self.best_epoch = state["best_epoch"]
        self.history = list(state["history"])
        self.wall_time_before = float(state["wall_time_s"])
        if sampler is not None and same_processes:
            sampler.start_at(state["epochs_done"], position, batches=trainer.world_size > 1)
        else:  # a plain loader, or the epoch dealt out to another number of processes
            if sampler is not None:
                sampler.start_at(state["epochs_done"], 0)
            if state["batches_done"]:
                why = ("this data loader cannot start part-way through an epoch"
                       if sampler is None else f"the run was saved with {state['world_size']} "
                       f"training process(es), not {trainer.world_size}")
                _note(f"{self.run_dir}: {why}; epoch {state['epochs_done']} restarts from its "
                      "first batch")
        loop_state.load_fit_loop_state(trainer, loops)  # what Lightning's own resume calls
        self._rng_to_restore = (rng_tensors, state["rng"], last)
        self._last_saved = state["global_step"]

    # ---- Lightning hooks ------------------------------------------------------------
    def setup(self, trainer, pl_module, stage):
        loop_state.check_layout(trainer)  # a Lightning that moved its counters stops here
        # each process serves its part of every epoch (the process group exists by now)
        for loader in (self.train_loader, self.val_loader):
            sampler = self._sampler(loader) if loader is not None else None
            if sampler is not None:  # the same steps for all only where gradients sync
                sampler.set_replicas(trainer.world_size, trainer.global_rank,
                                     even=loader is self.train_loader)

    def on_fit_start(self, trainer, pl_module):
        self._started = time.monotonic()
        if self.resume:
            self.restore(trainer, pl_module)

    def on_train_start(self, trainer, pl_module):
        # the data loader's iterator exists by now: nothing else draws before the first step
        if self._rng_to_restore is not None:
            _set_rng_state(*self._rng_to_restore)
            self._rng_to_restore = None

    def on_train_epoch_start(self, trainer, pl_module):
        self._point = self.capture(trainer, pl_module, "epoch_start")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        # the previous batch's end (or the epoch's start) stays the point until this
        # batch's optimiser step; each epoch is saved here, as its first batch begins
        if batch_idx == 0:
            self._point = self.capture(trainer, pl_module, "batch_start")
            self.save_last(trainer, pl_module, self._point)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if loop_state.on_last_batch(trainer):
            return  # validation and the epoch's end follow: the next point is the next epoch's
        self._point = self.capture(trainer, pl_module, "batch_end")
        every = self.settings.checkpoint_every
        if every and trainer.global_step // every > (self._last_saved or 0) // every:
            self.save_last(trainer, pl_module, self._point)

    def on_train_epoch_end(self, trainer, pl_module):
        means = pl_module.epoch_means()
        metrics = trainer.callback_metrics
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        if "loss" in means:
            row["train_loss"] = float(means["loss"])
        if "val_loss" in metrics:
            row["val_loss"] = float(metrics["val_loss"])
        if trainer.optimizers:
            row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.history.append(row)
        score = row.get(self.monitor if self.monitor == "val_loss" else "train_loss")
        if score is not None and math.isfinite(score) and score < self.best_val:
            self.best_val = score
            self.best_epoch = trainer.current_epoch
            if trainer.is_global_zero:
                save_checkpoint(
                    self.run_dir, self.validated_model(pl_module), model_name=self.model_name,
                    data_info=self.data_info, corpus=self.corpus, split=self.split,
                    training=self.training_metadata(trainer),
                )
        if trainer.is_global_zero:
            write_json(self.run_dir / HISTORY_FILE, {"history": self.history})

    def on_train_end(self, trainer, pl_module):
        self.save_last(trainer, pl_module, self.capture(trainer, pl_module, "between_epochs"))

    def on_exception(self, trainer, pl_module, exception):
        point = self._point
        if point is None or point["state"]["global_step"] != trainer.global_step:
            if trainer.global_step and loop_state.between_epochs(trainer):
                # between epochs (e.g. SIGTERM, which Lightning raises as an epoch ends)
                point = self.capture(trainer, pl_module, "between_epochs")
                self.save_last(trainer, pl_module, point)
            return  # else the weights moved past the last point: keep last/ as it is
        with torch.no_grad():  # undo what a forward pass since the point did to buffers
            for name, value in point["buffers"].items():
                pl_module.model.get_buffer(name).copy_(value)
        self.save_last(trainer, pl_module, point)


def epoch_sampler(loader: Any):
    """The :class:`~tunesmith.data.datasets.EpochSampler` behind a loader of
    :func:`~tunesmith.data.datasets.make_dataloader` (its ``batch_sampler.sampler``), or
    None for another loader."""
    for sampler in (getattr(getattr(loader, "batch_sampler", None), "sampler", None),
                    getattr(loader, "sampler", None)):
        if isinstance(sampler, EpochSampler):
            return sampler
    return None


def _note(message: str) -> None:
    """A one-line note on stderr."""
    print(f"note: {message}", file=sys.stderr)


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
    data_info: DataInfo | None = None,
    corpus: Any = None,
    split: Any = None,
    resume: bool = False,
    callbacks: Sequence[pl.Callback] = (),
) -> Path:
    """Train ``model`` on the given loaders with Lightning; return the run folder.

    The run folder's ``model.safetensors``/``config.json`` hold the best-validation
    weights (the last ones when there is no validation data). torch's thread count and
    denormal flushing are set for the run and restored after it (:func:`torch_settings`).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    has_val = val_loader is not None and len(val_loader) > 0
    monitor = "val_loss" if has_val and settings.limit_val_batches else "train_loss_epoch"
    pl.seed_everything(settings.seed, workers=True, verbose=False)
    with torch_settings(settings.threads):
        return _fit(model, train_loader, val_loader, run_dir, has_val, monitor,
                    model_name=model_name, settings=settings, data_info=data_info,
                    corpus=corpus, split=split, resume=resume, callbacks=callbacks)


@contextlib.contextmanager
def torch_settings(threads: int):
    """torch's thread count and denormal flushing for one training run, restored when it
    returns (torch has no getter for flushing: it goes back to torch's default, off).

    Denormal gradients (long LSTM sequences late in training) run ~8x slower on x86 CPUs;
    flushing them to zero changes no result beyond 1e-5 (tests/test_music_vae.py).
    """
    threads_before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads_before)
        torch.set_flush_denormal(False)


def _fit(model, train_loader, val_loader, run_dir: Path, has_val: bool, monitor: str, *,
         model_name: str, settings: TrainSettings, data_info: DataInfo | None, corpus: Any,
         split: Any, resume: bool, callbacks: Sequence[pl.Callback]) -> Path:
    """:func:`fit`'s body, under its torch settings."""
    from pytorch_lightning.callbacks import EarlyStopping

    task = TrainingTask(model, lr=settings.lr, weight_decay=settings.weight_decay,
                        lr_schedule=settings.lr_schedule, monitor=monitor,
                        # torch's patience counts the epochs tolerated, ours the one that halves
                        plateau_patience=settings.lr_decay_patience - 1,
                        objective=OBJECTIVES.get(settings.objective),
                        train_objective=partial(OBJECTIVES[settings.objective], first_frame=True)
                        if settings.train_first_frame else None)
    state = RunStateCallback(run_dir, model_name=model_name, data_info=data_info, corpus=corpus,
                             split=split, settings=settings, resume=resume,
                             train_loader=train_loader, val_loader=val_loader if has_val else None)
    state.monitor = monitor
    state.averaging = make_averaging(settings.ema_decay, settings.swa_start)
    # the average is updated before the run state reads it at each batch's end
    all_callbacks: list[pl.Callback] = [c for c in (state.averaging, state) if c is not None]
    if settings.early_stopping_patience:
        # not strict: a step limit may end the run before the first validation; the
        # monitor is chosen above from the data, so it is never a typo
        all_callbacks.append(EarlyStopping(monitor=monitor, mode="min", strict=False,
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
        precision=settings.precision,  # type: ignore[arg-type]  # validate_lightning_flags
        gradient_clip_val=clip,
        callbacks=all_callbacks,
        logger=loggers,
        log_every_n_steps=settings.log_every,
        enable_checkpointing=False,  # our checkpoints are safetensors, see RunStateCallback
        enable_progress_bar=settings.progress_bar,
        enable_model_summary=settings.progress_bar and settings.model_summary,
        default_root_dir=str(run_dir),
        limit_val_batches=settings.limit_val_batches,
        # our loaders deal each epoch out to the processes themselves (EpochSampler):
        # disjoint parts that cover it, and a resume part-way through an epoch
        use_distributed_sampler=not all(epoch_sampler(loader) is not None for loader in
                                        (train_loader, val_loader if has_val else None)
                                        if loader is not None),
        # a sanity check would draw random numbers before the restored epoch
        num_sanity_val_steps=0 if resume else 2,
    )
    with warnings.catch_warnings():
        # Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates: not the user's
        # concern, and it would be the one warning in every training run's output.
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
        if state._sampler() is not None:  # it does resume mid-epoch, though not _Stateful
            warnings.filterwarnings("ignore", message=r".*ended before the epoch ended.*")
        trainer.fit(task, train_dataloaders=train_loader,
                    val_dataloaders=val_loader if has_val else None)

    if trainer.is_global_zero:
        final = state.training_metadata(trainer)
        if not (run_dir / CONFIG_FILE).is_file() or not math.isfinite(state.best_val):
            save_checkpoint(run_dir, state.validated_model(task), model_name=model_name,
                            data_info=data_info, corpus=corpus, split=split, training=final)
        else:  # keep the best weights; record how the whole run went beside them
            meta = read_json(run_dir / CONFIG_FILE)
            meta["training"] = {**meta.get("training", {}), "run": final}
            write_json(run_dir / CONFIG_FILE, meta)
        write_json(run_dir / HISTORY_FILE, {"history": state.history})
        if state.history:
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


@dataclasses.dataclass
class RunStart:
    """What :func:`open_run` decides: the run's model, data spec, options and settings
    (on resume: those of its ``run.json``, overridden by the ones given), and whether it
    resumes (False too when a resumed run had saved nothing yet)."""

    model_name: str
    data_spec: Any
    options: dict
    settings: TrainSettings
    resume: bool
    run: dict  # the saved run.json on resume, else {}


def open_run(out_dir: Path, model_name: str | None, data_spec: Any, options: dict | None,
             settings: dict, *, resume: bool, overwrite: bool) -> RunStart:
    """Start or continue the run in ``out_dir``: the one path every trainer entry point
    (:func:`train`, :func:`tunesmith.training.audio.train_audio`) takes.

    Resume: ``run.json`` gives the model name, options (overridden by ``options``), data
    spec (unless ``data_spec`` is prepared data) and settings (overridden by
    ``settings``); without ``last/`` the run starts again from step 0, with a note. A new
    run: a folder that holds a run is refused unless ``overwrite`` (then cleared).
    """
    run_file = out_dir / RUN_FILE
    if resume and overwrite:
        raise ConfigError("give --resume (continue the run) or --overwrite (start again), not both")
    run: dict = {}
    if resume:
        if not run_file.is_file():
            raise CheckpointError(run_file, "nothing to resume: no training run here; "
                                  "train without --resume to start one")
        run = read_json(run_file)
        require_fields(run, {"model_name": (str,), "options": (dict,), "data": (dict,),
                             "settings": (dict,)}, run_file)
        if model_name and model_name != run["model_name"]:
            raise ConfigError(f"{out_dir} trained {run['model_name']!r}, not {model_name!r}")
        model_name = run["model_name"]
        options = {**run["options"], **(options or {})}
        if data_spec is None or isinstance(data_spec, (str, dict)):
            data_spec = run["data"]
        merged = {**run["settings"], **settings}
        if not (out_dir / LAST_DIR / STATE_FILE).is_file():
            _note(f"{out_dir}: no saved training state (the run stopped before its first "
                  "save); starting it again from step 0")
            resume = False
    else:
        model_name, options = fine_tune_model(model_name, options, settings.get("init_from"))
        if model_name is None or data_spec is None:
            raise ConfigError("give a model (--model) and data (--data)")
        # DDP's other processes run this command again once the first has begun: the
        # folder is the first one's to check, clear and write
        if first_process() and (run_file.exists() or (out_dir / LAST_DIR).exists()):
            if not overwrite:
                raise ConfigError(
                    f"{out_dir} already holds a training run; pass --resume to continue it, "
                    "--overwrite to start it again, or choose another --out"
                )
            clear_run(out_dir)
        merged = dict(settings)
    try:
        train_settings = TrainSettings.from_dict(merged)
    except ConfigError as exc:
        if run:
            raise CheckpointError(run_file, str(exc)) from exc
        raise
    return RunStart(model_name, data_spec, options or {}, train_settings, resume, run)


def fine_tune_model(model_name: str | None, options: dict | None, init_from: str | None
                    ) -> tuple[str | None, dict | None]:
    """The model and options of a run that starts from ``init_from``'s weights: the
    checkpoint's family and config unless given (options given override the saved ones)."""
    if not init_from:
        return model_name, options
    saved_name, saved_options = checkpoint_model_options(init_from)
    if model_name is None:
        model_name = saved_name
    if model_name != saved_name:
        return model_name, options  # load_initial_weights names the mismatch
    return model_name, {**saved_options, **(options or {})}


def train(
    model_name: str | None,
    data_spec: Any,
    options: dict | None = None,
    out_dir: str | Path = "runs/run",
    *,
    resume: bool = False,
    overwrite: bool = False,
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
            A run stopped before its first save starts again from step 0, with a note.
        overwrite: remove what an earlier run wrote in ``out_dir`` (only that) and start
            afresh; without it a folder holding a run is refused.
        settings: :class:`TrainSettings` fields (epochs, max_steps, max_time in minutes,
            batch_size, window, lr, seed, accelerator, devices, num_nodes, strategy...).
    """
    out_dir = Path(out_dir)
    run_file = out_dir / RUN_FILE
    start = open_run(out_dir, model_name, data_spec, options, settings, resume=resume,
                     overwrite=overwrite)
    model_name, data_spec, options = start.model_name, start.data_spec, start.options
    resume, train_settings = start.resume, start.settings
    validate_lightning_flags(train_settings)  # before any data work or process starts
    cls = registry.get_family(model_name)  # unknown names fail before any data work
    if train_settings.objective == "frame_nll" and not (
            cls.representation in representation_names()
            and get_representation(cls.representation).frames):  # audio families: no adapter
        raise ConfigError(f"the frame_nll objective scores piano-roll frames; {model_name!r} "
                          f"reads {cls.representation!r}")
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

    def build():
        return registry.build(model_name, options, prepared.info)

    if resume:
        model = build_model(build, run_file)
    else:
        problem = model_size_problem(build)
        if problem:
            raise ConfigError(problem)
        model = build()
        if train_settings.init_from:  # fine-tuning
            load_initial_weights(model, train_settings.init_from)
    # what the train split holds is all the model may emit (saved in every checkpoint)
    model.set_output_mask(OutputMask.from_pieces(prepared.info, prepared.pieces("train")))
    loaders = make_loaders(prepared, train_settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    if first_process():
        write_json(run_file, {"model_name": model_name, "options": dict(options or {}),
                              "data": data, "settings": train_settings.to_dict()})
    split = {"counts": prepared.n_pieces, "method": prepared.split_source,
             "valid_ids": prepared.ids("valid")[:1000], "test_ids": prepared.ids("test")[:1000]}
    return fit(model, loaders[0], loaders[1], out_dir, model_name=model_name,
               settings=train_settings, data_info=prepared.info, corpus=data, split=split,
               resume=resume, callbacks=callbacks)


def clear_run(out_dir: Path) -> None:
    """Remove what a training run writes in ``out_dir`` (:data:`RUN_OUTPUTS`), nothing else."""
    for name in RUN_OUTPUTS:
        path = Path(out_dir) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def make_loaders(prepared, settings: TrainSettings):
    """Train and validation loaders from the data layer (validation may be None)."""
    low, high = settings.transpose or (0, 0)
    buckets = settings.length_buckets
    if buckets is None:  # whole pieces of very different lengths: batch like with like
        buckets = settings.window is None
    train_loader = make_dataloader(prepared, "train", batch_size=settings.batch_size,
                                   window=settings.window, shuffle=True, seed=settings.seed,
                                   num_workers=settings.num_workers,
                                   transpose=(low, high),
                                   length_buckets=buckets)
    if not prepared.ids("valid"):
        return train_loader, None
    val_loader = make_dataloader(prepared, "valid", batch_size=settings.batch_size,
                                 window=settings.window, shuffle=False, seed=settings.seed,
                                 num_workers=settings.num_workers,
                                 length_buckets=buckets)
    return train_loader, val_loader
