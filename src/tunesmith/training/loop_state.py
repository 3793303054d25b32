"""Everything tunesmith knows about Lightning's fit-loop counters, in one file.

Exact resume (:class:`~tunesmith.training.trainer.RunStateCallback`) saves Lightning's
own fit-loop state, ``trainer.fit_loop.state_dict()``, and hands it back to
``trainer.fit_loop.load_state_dict()``, the call Lightning's own ``ckpt_path`` resume
makes (``_CheckpointConnector.restore_loops``). What Lightning does not offer is a
state *between two batches*: its ``state_dict()`` at a hook holds the counters of a
batch half-done. :func:`resume_point_loops` rewrites them to the boundary, which reads
and writes these keys of the dict (not of the live loop):

- ``epoch_progress`` and ``epoch_loop.batch_progress``: ``_Progress`` trackers
  (``total``/``current`` × ``ready/started/processed/completed``) and ``is_last_batch``;
- ``epoch_loop.state_dict._batches_that_stepped``: the loggers' step (a private field);
- ``epoch_loop.automatic_optimization.optim_progress`` and
  ``epoch_loop.manual_optimization.optim_step_progress``: what ``global_step`` counts;

and two live attributes are read: ``fit_loop.epoch_loop.batch_progress.is_last_batch``
and ``fit_loop.epoch_progress.current``. This is written for, and tested with,
pytorch_lightning :data:`LIGHTNING_TESTED` (``pytorch_lightning/loops/progress.py``,
``training_epoch_loop.py``); :func:`check_layout` runs as each fit begins and stops a
run with one line if a Lightning release renames or moves any of them
(tests/test_loop_state.py fails loudly too).

Why not Lightning's public ``trainer.fit(ckpt_path=...)`` with a safetensors
``CheckpointIO`` plugin: loading could go through it (``_CheckpointConnector.resume_start``
calls ``strategy.load_checkpoint`` -> ``CheckpointIO.load_checkpoint``; no ``torch.load`` is
forced), but what is saved is the problem. ``Trainer.save_checkpoint`` writes
``_CheckpointConnector.dump_checkpoint()``, the loops as they stand when it runs, then
waits on ``strategy.barrier``:

(a) on an interruption that is a batch half-done, where ``last/`` must hold the last
    boundary the weights still match (a resume point captured earlier);
(b) the barrier rules it out from one process's ``on_exception``, and at every batch;
(c) of the moments a run saves, Lightning 2.6 restarts cleanly only from
    ``on_train_batch_end`` (``_TrainingEpochLoop.update_restart_stage`` ->
    ``RESTARTED_ON_TRAIN_BATCH_END`` adds the batch to ``completed`` and one to
    ``_batches_that_stepped``, as :func:`resume_point_loops` does). A state taken as an
    epoch's first batch begins (where each epoch is saved, after the loader's draws) is
    ``RESTARTED_MID_EPOCH``: ``FitLoop.on_advance_start`` would then skip
    ``on_train_epoch_start`` (the task's epoch sums, our resume point) and
    ``_TrainingEpochLoop.reset`` would add a step to ``_batches_that_stepped``.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from tunesmith.errors import TunesmithError

#: the pytorch_lightning release this file's knowledge of the fit loop is tested with
LIGHTNING_TESTED = "2.6"

EPOCHS = "epoch_progress"
BATCHES = "epoch_loop.batch_progress"
EPOCH_LOOP = "epoch_loop.state_dict"
BATCHES_THAT_STEPPED = "_batches_that_stepped"
AUTO_STEPS = "epoch_loop.automatic_optimization.optim_progress"
MANUAL_STEPS = "epoch_loop.manual_optimization.optim_step_progress"
TRACKER_FIELDS = ("ready", "started", "processed", "completed")

#: resume points: what :func:`resume_point_loops` is told about the moment it is called
EVENTS = ("epoch_start", "batch_start", "batch_end", "between_epochs")


class LoopLayoutError(TunesmithError):
    """The installed pytorch_lightning keeps its fit-loop counters where this file does not
    look (the CLI prints it as one line, like any bad input)."""


def check_layout(trainer: pl.Trainer) -> None:
    """Raise :class:`LoopLayoutError` (one line) unless ``trainer``'s fit loop holds every
    counter this file reads or rewrites, where it expects them."""
    problems = layout_problems(trainer)
    if problems:
        raise LoopLayoutError(
            f"pytorch_lightning {pl.__version__} keeps its fit-loop state differently from "
            f"{LIGHTNING_TESTED}, which exact resume is written for "
            f"(tunesmith/training/loop_state.py): {'; '.join(problems[:3])}")


def layout_problems(trainer: pl.Trainer) -> list[str]:
    """What :func:`check_layout` finds missing (an empty list when all is where expected)."""
    problems: list[str] = []
    loops = trainer.fit_loop.state_dict()

    def tracker(where: str, value: Any, fields: tuple[str, ...] = TRACKER_FIELDS) -> None:
        if not isinstance(value, dict) or any(not isinstance(value.get(f), int) for f in fields):
            problems.append(f"{where} is not a progress tracker ({', '.join(fields)})")

    for key in (EPOCHS, BATCHES):
        progress = loops.get(key)
        if not isinstance(progress, dict):
            problems.append(f"no {key!r} in FitLoop.state_dict()")
            continue
        for part in ("total", "current"):
            tracker(f"{key}.{part}", progress.get(part))
    if not isinstance(loops.get(BATCHES), dict) or "is_last_batch" not in loops[BATCHES]:
        problems.append(f"no {BATCHES}.is_last_batch")
    if not isinstance((loops.get(EPOCH_LOOP) or {}).get(BATCHES_THAT_STEPPED), int):
        problems.append(f"no {EPOCH_LOOP}.{BATCHES_THAT_STEPPED}")
    try:
        steps = ("ready", "completed")  # optimiser steps: _ReadyCompletedTracker
        tracker(f"{AUTO_STEPS}.optimizer.step.total",
                loops[AUTO_STEPS]["optimizer"]["step"]["total"], steps)
        tracker(f"{MANUAL_STEPS}.total", loops[MANUAL_STEPS]["total"], steps)
    except (KeyError, TypeError):
        problems.append(f"no optimiser-step counters at {AUTO_STEPS} / {MANUAL_STEPS}")
    live = trainer.fit_loop
    if not hasattr(getattr(getattr(live, "epoch_loop", None), "batch_progress", None),
                   "is_last_batch"):
        problems.append("no fit_loop.epoch_loop.batch_progress.is_last_batch")
    current = getattr(getattr(live, "epoch_progress", None), "current", None)
    if not all(isinstance(getattr(current, f, None), int) for f in TRACKER_FIELDS):
        problems.append("fit_loop.epoch_progress.current is not a progress tracker")
    return problems


def fit_loop_state(trainer: pl.Trainer) -> dict:
    """Lightning's fit-loop state as it stands (``FitLoop.state_dict()``)."""
    return trainer.fit_loop.state_dict()


def load_fit_loop_state(trainer: pl.Trainer, loops: dict) -> None:
    """Hand a saved fit-loop state back to Lightning (what its own resume calls)."""
    trainer.fit_loop.load_state_dict(loops)


def resume_point_loops(loops: dict, event: str) -> dict:
    """Lightning's fit-loop state (``FitLoop.state_dict()``) taken at ``event``, rewritten
    as the state between two batches (or epochs), from which ``FitLoop.load_state_dict``
    resumes cleanly (see ``pytorch_lightning/loops/progress.py`` for the counters).

    ``"epoch_start"``: the epoch is marked ``ready`` only: back to between epochs.
    ``"batch_start"``: the batch is fetched (``ready`` counted) but not begun; at batch 0
    the epoch is also only marked ready, so the state goes back to between epochs.
    ``"batch_end"``: the batch is done but not yet counted ``completed``, nor in the
    loggers' step. ``"between_epochs"``: as it is (the run has ended, or stands between
    epochs). Between epochs, the last epoch's batch counters are zeroed, as the next
    epoch's start would.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown resume-point event {event!r}; known: {', '.join(EVENTS)}")
    batches = loops[BATCHES]
    epochs = loops[EPOCHS]
    if event == "epoch_start":
        for tracker in (epochs["total"], epochs["current"]):
            tracker["ready"] -= 1
    elif event == "batch_start":
        for tracker in (batches["total"], batches["current"]):
            tracker["ready"] -= 1
        if batches["current"]["ready"] == 0:  # batch 0: back to before the epoch began
            for tracker in (epochs["total"], epochs["current"]):
                tracker["ready"] -= 1
                tracker["started"] -= 1
    elif event == "batch_end":
        for tracker in (batches["total"], batches["current"]):
            tracker["completed"] += 1
        loops[EPOCH_LOOP][BATCHES_THAT_STEPPED] += 1
    if epochs["current"]["ready"] == epochs["current"]["processed"]:  # between epochs
        batches["current"] = dict.fromkeys(batches["current"], 0)
        batches["is_last_batch"] = False
    return loops


def epochs_done(loops: dict) -> int:
    """Epochs a (resume-point) fit-loop state has finished."""
    return int(loops[EPOCHS]["current"]["processed"])


def batches_done(loops: dict) -> int:
    """Batches of the current epoch a (resume-point) fit-loop state has finished."""
    return int(loops[BATCHES]["current"]["completed"])


def loop_global_step(loops: dict) -> int:
    """The optimiser steps a fit-loop state counts (what ``trainer.global_step`` reads)."""
    auto = loops[AUTO_STEPS]["optimizer"]["step"]
    manual = loops[MANUAL_STEPS]
    return int(auto["total"]["completed"]) + int(manual["total"]["completed"])


def on_last_batch(trainer: pl.Trainer) -> bool:
    """Whether the batch now ending is the epoch's last one."""
    return bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


def between_epochs(trainer: pl.Trainer) -> bool:
    """Whether the live fit loop stands between two epochs (none begun and unfinished)."""
    epoch: Any = trainer.fit_loop.epoch_progress.current  # a _StartedTracker, typed as its base
    return bool(epoch.ready == epoch.started == epoch.completed)
