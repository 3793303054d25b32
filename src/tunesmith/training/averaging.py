"""Weight averaging for a training run: an exponential moving average (EMA) of the weights,
or stochastic weight averaging (SWA), through Lightning's
:class:`~pytorch_lightning.callbacks.WeightAveraging` (a
:class:`torch.optim.swa_utils.AveragedModel` of the training task).

* ``ema_decay`` d (``TrainSettings.ema_decay``, ``--set train.ema_decay=0.999``): after
  every optimiser step, W̄ ← d·W̄ + (1 − d)·W, starting from W̄ = W after the first step
  (:func:`torch.optim.swa_utils.get_ema_multi_avg_fn`). Polyak & Juditsky (1992),
  "Acceleration of stochastic approximation by averaging"; the EMA form as used e.g. by
  Kingma & Ba (2015), section 7.2.
* ``swa_start`` s (``--set train.swa_start=40``): the equal average of the weights at the
  end of each epoch from epoch s (1-based) on, W̄ = (1/n) Σ W_epoch. Izmailov, Podoprikhin,
  Garipov, Vetrov & Wilson (2018), "Averaging weights leads to wider optima and better
  generalization", with the run's own learning-rate schedule instead of their cyclic one.

What the averaged weights change: validation (hence early stopping, the plateau schedule
and the choice of the best epoch) reads them once there is an average (before ``swa_start``
the live weights), and the best-validation checkpoint holds them, so ``bench nll`` scores
the averaged model. The optimiser keeps stepping the live weights. Only parameters are
averaged; buffers (an output mask, normalisation statistics) follow the live model.
``last/`` keeps both, so a resumed run continues the same average.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import WeightAveraging
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from tunesmith.errors import CheckpointError, ConfigError
from tunesmith.training import loop_state

#: the averaged weights of a run in ``last/`` (tensors: ``n_averaged`` and the parameters)
AVERAGE_FILE = "average.safetensors"


class ModelAveraging(WeightAveraging):
    """EMA (``ema_decay`` in (0, 1)) or SWA (``swa_start`` ≥ 1) of the weights; exactly one.

    Differences from Lightning's callback: validation swaps the averaged weights in only
    once there is an average (SWA starts late), training's end leaves the live weights in
    the model (the checkpoint already holds the average; ``last/`` needs the live ones),
    and an interruption during validation swaps the live weights back first.
    """

    def __init__(self, ema_decay: float = 0.0, swa_start: int = 0):
        if bool(ema_decay) == bool(swa_start):
            raise ConfigError("weight averaging: give ema_decay or swa_start, not both")
        if ema_decay and not 0 < ema_decay < 1:
            raise ConfigError(f"ema_decay must be in (0, 1) (0 = off), got {ema_decay}")
        if swa_start < 0:
            raise ConfigError(f"swa_start must be >= 1 (0 = off), got {swa_start}")
        if ema_decay:
            super().__init__(use_buffers=False, multi_avg_fn=get_ema_multi_avg_fn(ema_decay))
        else:  # AveragedModel's default: the running equal average
            super().__init__(use_buffers=False)
        self.ema_decay = float(ema_decay)
        self.swa_start = int(swa_start)
        self._swapped = False

    # ---- when to average ------------------------------------------------------------
    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return self.ema_decay > 0 and step_idx is not None  # SWA: see on_train_batch_end

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.ema_decay:
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        # SWA: the weights at the epoch's last step, before that epoch's validation
        if loop_state.on_last_batch(trainer) and trainer.current_epoch + 1 >= self.swa_start \
                and trainer.global_step > self._latest_update_step:
            self._average_model.update_parameters(pl_module)
            self._latest_update_step = trainer.global_step

    @property
    def n_averaged(self) -> int:
        return 0 if self._average_model is None else int(self._average_model.n_averaged)

    def _averaged(self) -> tuple[nn.Module, torch.Tensor]:
        """The averaged network and its ``n_averaged`` counter (the average must exist:
        Lightning makes it at the start of fitting)."""
        if self._average_model is None:
            raise RuntimeError("weight averaging has not started (no averaged model yet)")
        network = self._average_model.module.model
        assert isinstance(network, nn.Module)
        return network, self._average_model.n_averaged

    def validated_model(self, pl_module: pl.LightningModule):
        """The model validation reads: the average once there is one, else the live one."""
        if self.n_averaged:
            return self._averaged()[0]
        return pl_module.model

    # ---- swapping -------------------------------------------------------------------
    def on_validation_epoch_start(self, trainer, pl_module):
        if self.n_averaged and not self._swapped:
            self._swap_models(pl_module)
            self._swapped = True

    def on_validation_epoch_end(self, trainer, pl_module):
        if self._swapped:
            self._swap_models(pl_module)
            self._swapped = False

    def on_exception(self, trainer, pl_module, exception):
        self.on_validation_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        pass  # the live weights stay: last/ is saved after this, the checkpoint holds W̄

    # ---- last/ ----------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """``n_averaged`` and the averaged parameters (names as in the model), for ``last/``."""
        network, n_averaged = self._averaged()
        tensors = {f"model.{name}": p.detach().clone()
                   for name, p in network.named_parameters()}
        tensors["n_averaged"] = n_averaged.detach().clone()
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], path: Path) -> None:
        """Restore :meth:`state_tensors` (every name and shape checked first)."""
        reference = self.state_tensors()
        if set(tensors) != set(reference):
            missing = sorted(set(reference) - set(tensors))
            extra = sorted(set(tensors) - set(reference))
            raise CheckpointError(path, f"averaged weights do not fit this model (missing "
                                  f"{missing[:3]}, unexpected {extra[:3]})")
        for name, value in tensors.items():
            if value.shape != reference[name].shape:
                raise CheckpointError(path, f"averaged tensor {name} has shape "
                                      f"{tuple(value.shape)}, expected "
                                      f"{tuple(reference[name].shape)}")
        network, n_averaged = self._averaged()
        with torch.no_grad():
            for name, p in network.named_parameters():
                p.copy_(tensors[f"model.{name}"])
            n_averaged.copy_(tensors["n_averaged"])


def make_averaging(ema_decay: float, swa_start: int) -> ModelAveraging | None:
    """The averaging callback the settings ask for, or None when both are off."""
    if not ema_decay and not swa_start:
        return None
    return ModelAveraging(ema_decay=ema_decay, swa_start=swa_start)
