"""The LightningModule every family trains in. Nothing here is about a particular model.

As in minGPT's ``trainer.py``, the model brings its own step: :class:`TrainingTask` calls
``model.loss(batch)`` (or ``model.manual_training_step`` for families with several
optimisers, such as a GAN), logs the losses, and sets up the optimiser and the
learning-rate schedule. A run may instead optimise an *objective* given from outside,
``objective(model, batch)`` with the same return value (the polyphonic benchmark's
frame NLL, :func:`tunesmith.models.likelihood.frame_nll_loss`).

A loss may return ``count``, the number of items it averages over (scored frames, say):
the batch is then weighted by it instead of by its size, so that the epoch's mean train
and validation losses are exact means over the items (Σ loss / Σ count), and ``count``
itself is not logged.

Two things Lightning would otherwise keep out of reach of a resumed run are kept here, in
:meth:`TrainingTask.run_state`: the sums behind the epoch's mean training losses, and the
plateau schedule (stepped here at each epoch end; Lightning skips that step in an epoch
resumed part-way through).
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from tunesmith.errors import ConfigError
from tunesmith.training.settings import LR_SCHEDULES

#: the optional output of a loss that says how many items it averages over
COUNT = "count"


def batch_size_of(batch: dict[str, torch.Tensor]) -> int:
    """Number of sequences in a batch dict (its first tensor's leading size)."""
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return int(value.shape[0])
    return 1


class TrainingTask(pl.LightningModule):
    """Wrap a :class:`~tunesmith.models.base.GenerativeModel` for Lightning.

    Logs ``train_loss`` (per step and per epoch, as ``train_loss_step`` /
    ``train_loss_epoch``) and ``val_loss`` (per epoch), plus any other scalar the
    model's ``loss`` returns, prefixed ``train_`` / ``val_`` (training ones as epoch means).

    Args:
        model: the model; its ``loss(batch)`` returns a dict with ``"loss"``.
        lr, weight_decay: passed to ``model.configure_optimizers``.
        lr_schedule: ``"constant"``, ``"cosine"`` (per step, down to ``min_lr`` over
            the run; needs a known number of steps) or ``"plateau"`` (halve the rate
            when ``monitor`` stops improving for ``plateau_patience`` epochs).
        monitor: the logged value a plateau schedule watches.
        objective: ``objective(model, batch)`` used instead of ``model.loss(batch)``
            (automatic optimisation only); None for the model's own loss.
        train_objective: the objective of training steps, when it is not ``objective``
            (validation always uses ``objective``); None: the same.
    """

    def __init__(
        self,
        model,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_schedule: str = "plateau",
        min_lr: float = 1e-6,
        plateau_patience: int = 2,
        plateau_factor: float = 0.5,
        monitor: str = "val_loss",
        objective=None,
        train_objective=None,
    ):
        super().__init__()
        if lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"unknown lr_schedule {lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}"
            )
        if lr <= 0:
            raise ConfigError(f"lr must be > 0, got {lr}")
        self.model = model
        self.lr = float(lr)  # floats, as a resumed optimiser state has them
        self.weight_decay = float(weight_decay)
        self.lr_schedule = lr_schedule
        self.min_lr = min_lr
        self.plateau_patience = plateau_patience
        self.plateau_factor = plateau_factor
        self.monitor = monitor
        self.automatic_optimization = bool(type(model).automatic_optimization)
        if objective is not None and not self.automatic_optimization:
            raise ConfigError(f"{type(model).__name__} trains with its own optimisation steps; "
                              "it cannot be trained on another objective")
        if train_objective is not None and objective is None:
            raise ConfigError("a training objective needs the validation objective too")
        self.objective = objective
        self.train_objective = train_objective or objective
        self.plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        # this epoch's training scalars: name -> [sum of value * batch size, sum of sizes];
        # the sums stay tensors (on the model's device) until read: no sync each step
        self.epoch_sums: dict[str, list] = {}
        self.val_sums: dict[str, list] = {}  # this validation's, likewise

    # ---- what a resumed run needs -----------------------------------------------------
    def run_state(self) -> dict:
        """The epoch's loss sums so far and the plateau schedule's state (JSON-able after
        :func:`~tunesmith.training.checkpoint.jsonable`)."""
        plateau = None if self.plateau is None else self.plateau.state_dict()
        return {"epoch_sums": {k: list(v) for k, v in self.epoch_sums.items()},
                "plateau": plateau}

    def load_run_state(self, state: dict) -> None:
        """Restore :meth:`run_state` (checked by the caller)."""
        self.epoch_sums = {k: [float(v[0]), int(v[1])] for k, v in state["epoch_sums"].items()}
        if self.plateau is not None and state.get("plateau") is not None:
            self.plateau.load_state_dict(state["plateau"])

    # ---- steps ----------------------------------------------------------------------
    def compute_loss(self, batch, training: bool = False) -> dict:
        """The objective's (or the model's) loss outputs for a batch; ``training``: the
        training objective's."""
        objective = self.train_objective if training else self.objective
        if objective is not None:
            return objective(self.model, batch)
        return self.model.loss(batch)

    @staticmethod
    def _weight(outputs: dict, batch) -> int:
        """What a batch weighs in the epoch's means: its ``count``, else its size."""
        count = outputs.get(COUNT)
        return int(count) if count is not None else batch_size_of(batch)

    @staticmethod
    def _scalars(outputs: dict):
        for name, value in outputs.items():
            if name == COUNT:
                continue
            if isinstance(value, torch.Tensor):
                if value.numel() == 1:
                    yield name, value.detach().float()
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                yield name, value

    def _log_train(self, outputs: dict, batch_size: int) -> None:
        """The step's loss now; every scalar into the epoch's sums (logged at epoch end)."""
        for name, value in self._scalars(outputs):
            if name == "loss":
                self.log("train_loss_step", value, on_step=True, on_epoch=False, prog_bar=True,
                         batch_size=batch_size)
            sums = self.epoch_sums.setdefault(name, [0.0, 0])
            sums[0] = sums[0] + value * batch_size  # a new object: run_state() copies stay
            sums[1] += batch_size

    def epoch_means(self) -> dict[str, float]:
        """Means of this epoch's training scalars so far, each batch weighted by its size
        (or its ``count``); under DDP, over every process's batches (call it on all)."""
        return self._means(self.epoch_sums)

    def _means(self, sums: dict[str, list]) -> dict[str, float]:
        """Σ value / Σ weight of each scalar, the sums added over the processes first."""
        names = sorted(sums)
        totals = [[float(sums[n][0]), float(sums[n][1])] for n in names]
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:  # one collective for all names
            reduced = trainer.strategy.reduce(
                torch.tensor(totals, dtype=torch.float64, device=self.device).reshape(-1, 2),
                reduce_op="sum")
            totals = reduced.cpu().tolist()
        return {name: total / count for name, (total, count) in zip(names, totals, strict=True)
                if count}

    def on_train_epoch_end(self):
        means = self.epoch_means()
        for name, value in means.items():
            key = "train_loss_epoch" if name == "loss" else f"train_{name}"
            self.log(key, value, on_step=False, on_epoch=True, prog_bar=(name == "loss"))
        if self.plateau is not None:
            value = means.get("loss") if self.monitor == "train_loss_epoch" \
                else self.trainer.callback_metrics.get(self.monitor)
            if value is None and self.monitor == "val_loss":
                pass  # a step limit ended this epoch before its validation: nothing to compare
            elif value is None:
                raise ConfigError(f"the plateau schedule watches {self.monitor}, which this "
                                  "run does not log; use lr_schedule='cosine' or 'constant'")
            else:
                self.plateau.step(float(value))
        self.epoch_sums = {}

    def training_step(self, batch, batch_idx):
        size = batch_size_of(batch)
        if self.automatic_optimization:
            outputs = self.compute_loss(batch, training=True)
            size = self._weight(outputs, batch)
            loss = outputs["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss became {loss.item()} at step {self.global_step}; "
                    "lower the learning rate or raise gradient clipping"
                )
            self._log_train(outputs, size)
            return loss
        logs = self.model.manual_training_step(batch, self.optimizers(), self.manual_backward)
        self._log_train(dict(logs or {}), size)
        return None

    def on_validation_epoch_start(self):
        self.val_sums = {}

    def validation_step(self, batch, batch_idx):
        with torch.no_grad():
            outputs = self.compute_loss(batch)
        weight = self._weight(outputs, batch)
        for name, value in self._scalars(outputs):
            sums = self.val_sums.setdefault(name, [0.0, 0])
            sums[0] = sums[0] + value * weight
            sums[1] += weight

    def on_validation_epoch_end(self):
        # exact means over every process's part of the validation data (Lightning's
        # sync_dist would average the processes' means)
        for name, value in self._means(self.val_sums).items():
            self.log(f"val_{name}", value, on_step=False, on_epoch=True,
                     prog_bar=(name == "loss"))
        self.val_sums = {}

    # ---- optimisation ----------------------------------------------------------------
    def configure_optimizers(self):
        optimizers = self.model.configure_optimizers(self.lr, self.weight_decay)
        if isinstance(optimizers, (list, tuple, dict)):
            return optimizers  # several optimisers or a full Lightning config: the model's own
        optimizer = optimizers
        if self.lr_schedule == "constant" or not self.automatic_optimization:
            return optimizer
        if self.lr_schedule == "cosine":
            total = self.trainer.estimated_stepping_batches
            if not math.isfinite(total) or total <= 0:
                raise ConfigError(
                    "the cosine schedule needs a known number of steps: set epochs or max_steps, "
                    "or use lr_schedule='plateau' with a time limit"
                )
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=int(total), eta_min=self.min_lr
            )
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        # stepped in on_train_epoch_end, not by Lightning (see the module docstring)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=self.plateau_factor, patience=self.plateau_patience,
            min_lr=self.min_lr,
        )
        return optimizer
