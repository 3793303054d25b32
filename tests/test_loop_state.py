"""Lightning's fit-loop counters, as exact resume reads and rewrites them
(:mod:`tunesmith.training.loop_state`): a Lightning release that renames or moves them,
or changes when it counts a batch, fails here rather than in a resumed run."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tunesmith.errors import TunesmithError
from tunesmith.training import loop_state

BATCHES, EPOCHS = 4, 2


class _Linear(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return self.net(x).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Recorder(pl.Callback):
    """Resume points at every hook exact resume captures one, with the live step."""

    def __init__(self):
        self.points: list[tuple[str, int, int, dict, int]] = []

    def _note(self, trainer, event, batch_idx=-1):
        loops = loop_state.resume_point_loops(loop_state.fit_loop_state(trainer), event)
        self.points.append((event, trainer.current_epoch, batch_idx, loops, trainer.global_step))

    def setup(self, trainer, pl_module, stage):
        loop_state.check_layout(trainer)

    def on_train_epoch_start(self, trainer, pl_module):
        self._note(trainer, "epoch_start")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._note(trainer, "batch_start", batch_idx)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        assert loop_state.on_last_batch(trainer) == (batch_idx == BATCHES - 1)
        assert not loop_state.between_epochs(trainer)
        self._note(trainer, "batch_end", batch_idx)

    def on_train_end(self, trainer, pl_module):
        assert loop_state.between_epochs(trainer)
        self._note(trainer, "between_epochs")


def _trainer(callbacks=()):
    return pl.Trainer(max_epochs=EPOCHS, accelerator="cpu", logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=list(callbacks))


@pytest.fixture(scope="module")
def points():
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(BATCHES * 2, 3)), batch_size=2)
    recorder = _Recorder()
    _trainer([recorder]).fit(_Linear(), loader)
    return recorder.points


def test_the_installed_lightning_keeps_the_counters_where_resume_looks():
    assert loop_state.layout_problems(_trainer()) == []


def test_a_renamed_counter_stops_a_run_with_one_line_naming_the_lightning_version(monkeypatch):
    trainer = _trainer()
    saved = trainer.fit_loop.state_dict()
    renamed = {("epoch_loop.batch_tracker" if k == loop_state.BATCHES else k): v
               for k, v in saved.items()}
    renamed[loop_state.EPOCH_LOOP] = {"batches_stepped": 0}
    monkeypatch.setattr(trainer.fit_loop, "state_dict", lambda: renamed)
    with pytest.raises(TunesmithError) as caught:
        loop_state.check_layout(trainer)
    message = str(caught.value)
    assert "\n" not in message and pl.__version__ in message
    assert loop_state.LIGHTNING_TESTED in message
    assert f"no {loop_state.BATCHES!r}" in message and loop_state.BATCHES_THAT_STEPPED in message


def _counters(loops: dict) -> tuple:
    return (loops[loop_state.EPOCHS], loops[loop_state.BATCHES], loops[loop_state.EPOCH_LOOP],
            loop_state.loop_global_step(loops))


def test_the_two_sides_of_a_batch_boundary_are_the_same_resume_point(points):
    starts = {(e, b): loops for event, e, b, loops, _ in points if event == "batch_start"}
    ends = {(e, b): loops for event, e, b, loops, _ in points if event == "batch_end"}
    epoch_starts = {e: loops for event, e, _, loops, _ in points if event == "epoch_start"}
    assert len(starts) == len(ends) == BATCHES * EPOCHS and len(epoch_starts) == EPOCHS
    for epoch in range(EPOCHS):
        # an epoch's start and its first batch's start are both "between epochs"
        # (in the counters resume rewrites: the optimiser's per-epoch "current" counts are
        # zeroed as the epoch loop resets, and zeroed again by a restart)
        assert _counters(starts[epoch, 0]) == _counters(epoch_starts[epoch])
        for batch in range(BATCHES - 1):
            # but for is_last_batch, which Lightning sets as it fetches the last batch
            start = starts[epoch, batch + 1]
            start[loop_state.BATCHES] = {**start[loop_state.BATCHES], "is_last_batch": False}
            assert ends[epoch, batch] == start, (epoch, batch)
    # the end of one epoch's last batch, counted done, is the next epoch's start
    # once the epoch itself is counted (what validation and the epoch's end add)
    last = ends[0, BATCHES - 1]
    assert last[loop_state.BATCHES]["total"] == epoch_starts[1][loop_state.BATCHES]["total"]


def test_resume_points_count_epochs_batches_and_steps_as_the_trainer_does(points):
    for event, epoch, batch, loops, step in points:
        assert loop_state.loop_global_step(loops) == step, (event, epoch, batch)
        if event == "batch_start":
            assert loop_state.batches_done(loops) == batch
            assert loop_state.epochs_done(loops) == epoch
        elif event == "batch_end":
            assert loop_state.batches_done(loops) == batch + 1
            assert step == epoch * BATCHES + batch + 1
        elif event == "between_epochs":
            assert loop_state.epochs_done(loops) == EPOCHS and step == EPOCHS * BATCHES
            assert loop_state.batches_done(loops) == 0


def test_a_resume_point_goes_back_into_a_fresh_fit_loop_unchanged(points):
    _, _, _, loops, _ = next(p for p in points if p[0] == "batch_start" and p[2] == 2)
    trainer = _trainer()
    loop_state.load_fit_loop_state(trainer, loops)
    assert loop_state.fit_loop_state(trainer) == loops


def test_an_unknown_event_is_refused():
    with pytest.raises(ValueError, match="unknown resume-point event"):
        loop_state.resume_point_loops({}, "batch_middle")
