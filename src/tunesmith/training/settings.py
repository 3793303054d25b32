"""How to train: :class:`TrainSettings`, and the checks of Lightning's
``accelerator/devices/strategy/precision`` flags (run config files and ``--set`` are read
by :mod:`tunesmith.cli.run_config`).

This module imports neither torch nor Lightning at import time, so the command line can
read and check a whole run config before it loads them (a typo is reported at once).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, ClassVar

from tunesmith.config import DictConfig
from tunesmith.errors import ConfigError

#: learning-rate schedules the training task knows
LR_SCHEDULES = ("constant", "cosine", "plateau")
#: what a run may optimise: "loss" (the family's own) or a named objective of the trainer
#: (``trainer.OBJECTIVES``: "frame_nll", the polyphonic benchmarks' frame NLL)
OBJECTIVES = ("loss", "frame_nll")


@dataclasses.dataclass
class TrainSettings(DictConfig):
    """How to train; the ``[train]`` section of a config file."""

    config_name: ClassVar[str] = "train"

    epochs: int | None = 50  # most epochs (None = until max_steps or max_time)
    max_steps: int = -1  # most optimiser steps (-1 = no limit)
    max_time: float | None = None  # most minutes of training (None = no limit)
    batch_size: int = 16  # sequences per batch (per device)
    window: int | None = 64  # training window in steps/tokens (None = whole pieces)
    transpose: list[int] | None = None  # [low, high]: shift each training item by a random
    # number of semitones in this range that keeps its notes in range (piano-roll, melody);
    # validation is never shifted; None or [0, 0] = off
    length_buckets: bool | None = None  # batch pieces of similar length (less padding);
    # None = on when training on whole pieces (window None), off for windows
    lr: float = 1e-3  # learning rate
    weight_decay: float = 0.0
    lr_schedule: str = "plateau"  # constant | cosine | plateau
    lr_decay_patience: int = 3  # plateau: halve the lr after this many epochs without gain
    objective: str = "loss"  # "loss": the family's own; "frame_nll": benchmark frame NLL
    train_first_frame: bool = False  # frame_nll on whole pieces: the training loss also
    # scores each piece's first frame (predicted from the empty start), so that a benchmark
    # checkpoint samples a real opening unprimed; validation, the checkpoint kept and the
    # reported figure stay the protocol's frames 2..T
    ema_decay: float = 0.0  # > 0: validate and keep an EMA of the weights with this decay
    # per step (training.averaging; 0 = off)
    swa_start: int = 0  # >= 1: validate and keep the equal average (SWA) of the weights at
    # each epoch's end from this epoch (1-based) on (training.averaging; 0 = off)
    seed: int = 0  # seeds Python, numpy and torch (Lightning's seed_everything)
    init_from: str | None = None  # fine-tune: start from the weights of this checkpoint (a run
    # folder or pretrained:NAME) of the same family and config; model and options default
    # to the checkpoint's (read at the start of a run, not on resume)
    accelerator: str = "auto"  # Lightning: cpu, gpu, mps, auto...
    devices: Any = "auto"  # Lightning: 1, 4, "auto", [0, 1]...
    num_nodes: int = 1  # Lightning: machines in a DDP run
    strategy: str = "auto"  # Lightning: auto, ddp, ddp_spawn, fsdp...
    precision: str | int = "32-true"  # Lightning: 32-true, 16-mixed, bf16-mixed, 32...
    early_stopping_patience: int = 5  # epochs without a better val loss before stopping (0 = off)
    gradient_clip: float = 1.0  # clip the gradient norm to this (0 = off)
    log_every: int = 10  # log every this many steps
    checkpoint_every: int = 0  # also save last/ every this many steps (0 = epoch ends only)
    num_workers: int = 0  # data-loading worker processes
    threads: int = 0  # torch CPU threads (0 = torch's default); 1 is fastest for small models
    # on a busy CPU: threads of a small step spin against each other (see docs/benchmarks.md)
    limit_val_batches: float = 1.0  # Lightning: fraction (float) or number (int) of val batches
    progress_bar: bool = True  # a rich progress bar
    model_summary: bool = True  # Lightning's table of the model's layers (with the bar only)
    loggers: bool = True  # CSV and TensorBoard logs

    def __post_init__(self):
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"max_steps must be > 0 (or -1 for no limit), got {self.max_steps}")
        if self.max_time is not None and not self.max_time > 0:  # NaN fails too
            raise ConfigError(f"max_time must be > 0 minutes, got {self.max_time}")
        if self.epochs is None and self.max_steps == -1 and self.max_time is None:
            raise ConfigError("give at least one of epochs, max_steps or max_time")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.transpose is not None:
            if (not isinstance(self.transpose, (list, tuple)) or len(self.transpose) != 2
                    or not all(isinstance(v, int) for v in self.transpose)
                    or self.transpose[0] > self.transpose[1]):
                raise ConfigError(f"transpose must be [low, high] semitones with low <= high, "
                                  f"got {self.transpose!r}")
            self.transpose = [int(v) for v in self.transpose]
        if self.lr_decay_patience < 1:
            raise ConfigError(f"lr_decay_patience must be >= 1, got {self.lr_decay_patience}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; choose one of "
                              f"{', '.join(OBJECTIVES)}")
        if self.train_first_frame and (self.objective != "frame_nll" or self.window is not None):
            raise ConfigError("train_first_frame needs the frame_nll objective on whole pieces "
                              "(window null): a window's first frame is not a piece's")
        if not 0 <= self.ema_decay < 1:  # NaN fails too
            raise ConfigError(f"ema_decay must be in [0, 1) (0 = off), got {self.ema_decay}")
        if self.swa_start < 0:
            raise ConfigError(f"swa_start must be >= 0 epochs (0 = off), got {self.swa_start}")
        if self.ema_decay and self.swa_start:
            raise ConfigError("give ema_decay (EMA) or swa_start (SWA), not both")
        if self.window is not None and self.window < 2:
            raise ConfigError(f"window must be >= 2 steps, got {self.window}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"unknown lr_schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}"
            )
        if not (self.early_stopping_patience >= 0 and self.gradient_clip >= 0):
            raise ConfigError("early_stopping_patience and gradient_clip must be >= 0")
        if self.log_every < 1 or self.checkpoint_every < 0 or self.num_workers < 0:
            raise ConfigError("log_every must be >= 1; checkpoint_every, num_workers >= 0")
        if self.num_nodes < 1:
            raise ConfigError(f"num_nodes must be >= 1, got {self.num_nodes}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}")


# ----------------------------------------------------------------------------- Lightning flags


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _device_request(devices: Any) -> int | list[int] | str:
    """``devices`` as Lightning reads it: "auto", a count (-1 = all) or a list of indices."""
    if isinstance(devices, str):
        text = devices.strip()
        if text == "auto":
            return "auto"
        try:
            if "," in text or text.startswith("["):
                return [int(p) for p in text.strip("[]").split(",") if p.strip()]
            return int(text)
        except ValueError:
            raise ConfigError(
                f"devices {devices!r}: expected auto, a count, -1 (all) or indices like [0,1]"
            ) from None
    if isinstance(devices, bool) or not isinstance(devices, (int, list, tuple)):
        raise ConfigError(
            f"devices {devices!r}: expected auto, a count, -1 (all) or indices like [0,1]")
    if isinstance(devices, (list, tuple)):
        if not devices or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                  for d in devices) or len(set(devices)) != len(devices):
            raise ConfigError(f"devices {list(devices)}: expected distinct indices >= 0")
        return list(devices)
    if devices == 0 or devices < -1:
        raise ConfigError(f"devices must be >= 1 (or -1 for all, or auto), got {devices}")
    return devices


#: environment variables a launcher sets to tell a training process its place
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def first_process() -> bool:
    """Whether this is the first (or only) process of a training run: False in the other
    processes that Lightning's DDP launcher, torchrun or SLURM start, which run the same
    command but leave the run folder to the first (it alone writes there)."""
    for name in RANK_VARIABLES:
        try:
            if int(os.environ.get(name, "0")) > 0:
                return False
        except ValueError:
            continue
    return True


def multi_node_launcher() -> bool:
    """Whether something starts the other machines' processes of a multi-node run: SLURM,
    torchrun, LSF, or MASTER_ADDR set on each machine (by hand, or by Kubeflow)."""
    from lightning_fabric.plugins.environments import (
        LSFEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )

    if "MASTER_ADDR" in os.environ:
        return True
    return any(env.detect() for env in (SLURMEnvironment, TorchElasticEnvironment,
                                        LSFEnvironment))


def validate_lightning_flags(settings: TrainSettings) -> None:
    """Refuse ``accelerator/devices/strategy/precision/num_nodes/threads`` values that
    Lightning or torch would reject with a traceback or a crash, or that ask for hardware
    this machine lacks, before any data work or training process starts.

    Each CPU "device" is a separate training process, so more CPU devices than cores are
    refused (``--devices 99 --accelerator cpu`` would start 99 processes); so are more
    torch threads than cores (100,000 threads ran libgomp out of memory), and
    ``num_nodes > 1`` without a launcher for the other machines (rank 0 waits for ever).
    """
    import torch
    from pytorch_lightning.accelerators import AcceleratorRegistry
    from pytorch_lightning.strategies import StrategyRegistry

    accelerator = str(settings.accelerator).lower()
    names = sorted(AcceleratorRegistry.available_accelerators())
    if accelerator not in {"auto", "gpu", *names}:
        raise ConfigError(f"unknown accelerator {settings.accelerator!r}; choose one of "
                          f"auto, gpu, {', '.join(names)}")
    cuda = torch.cuda.is_available()
    mps = AcceleratorRegistry["mps"]["accelerator"].is_available() if "mps" in names else False
    if accelerator == "gpu" and not (cuda or mps):
        raise ConfigError("accelerator 'gpu': no GPU is available here (torch sees no CUDA "
                          "or MPS device); use --accelerator cpu or auto")
    if accelerator in names and not AcceleratorRegistry[accelerator]["accelerator"].is_available():
        raise ConfigError(f"accelerator {accelerator!r}: not available on this machine; "
                          "use --accelerator cpu or auto")
    resolved = accelerator
    if accelerator in ("auto", "gpu"):
        resolved = "cuda" if cuda else "mps" if mps else "cpu"

    request = _device_request(settings.devices)
    if resolved == "cpu":
        cores = cpu_cores()
        if isinstance(request, list):
            raise ConfigError(f"devices {request}: the CPU accelerator takes a count of "
                              "processes, not device indices")
        if isinstance(request, int) and (request == -1 or request > cores):
            raise ConfigError(
                f"devices {settings.devices}: each CPU device is a training process, and this "
                f"machine has {cores} CPU core(s); ask for at most {cores}"
            )
    else:
        available = AcceleratorRegistry[resolved]["accelerator"].auto_device_count()
        wanted = request if isinstance(request, int) else len(request) if isinstance(
            request, list) else 1
        highest = max(request) if isinstance(request, list) else -1
        if wanted > available or highest >= available:
            raise ConfigError(f"devices {settings.devices}: this machine has {available} "
                              f"{resolved} device(s)")

    if settings.threads > cpu_cores():
        raise ConfigError(f"threads {settings.threads}: this machine has {cpu_cores()} CPU "
                          f"core(s); ask for at most {cpu_cores()} (0 = torch's default)")
    if settings.num_nodes > 1 and not multi_node_launcher():
        raise ConfigError(
            f"num_nodes {settings.num_nodes}: no multi-node launcher found (SLURM, torchrun, "
            "LSF, or MASTER_ADDR and NODE_RANK set on each machine); without one this process "
            "would wait for the other machines for ever")

    strategy = str(settings.strategy).lower()
    strategies = StrategyRegistry.available_strategies()
    if strategy != "auto" and strategy not in strategies:
        main = [s for s in strategies if "find_unused" not in s]
        raise ConfigError(f"unknown strategy {settings.strategy!r}; choose one of auto, "
                          f"{', '.join(main)}")

    try:
        from lightning_fabric.connector import _convert_precision_to_unified_args
    except ImportError:  # a Lightning without this helper checks precision itself
        return
    try:
        with warnings.catch_warnings():  # Lightning warns about legacy names ("bf16") itself
            warnings.simplefilter("ignore")
            _convert_precision_to_unified_args(settings.precision)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f"train option precision: {exc}") from None
