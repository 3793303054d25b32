"""EMA and SWA weights (training.averaging): hand computations, off changes nothing, resume."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch
from safetensors.torch import load_file

from test_training import (  # noqa: F401 (_tiny_registry: the autouse fixture)
    StopAt,
    _loaders,
    _run,
    _tiny_registry,
    assert_same_run,
)
from tunesmith.errors import ConfigError
from tunesmith.training.averaging import AVERAGE_FILE
from tunesmith.training.checkpoint import load_checkpoint, read_json
from tunesmith.training.trainer import TrainSettings


class Record(pl.Callback):
    """The live weights after every optimiser step and at every epoch's end."""

    def __init__(self):
        self.steps, self.epochs = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append({k: v.detach().clone() for k, v in pl_module.model.named_parameters()})

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append(self.steps[-1])


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in model.named_parameters()}


CONSTANT = dict(lr=0.05, lr_schedule="constant")  # no schedule: the live run is the same


def test_ema_weights_equal_a_hand_computation_and_are_what_validation_reads(tmp_path):
    decay = 0.7
    record = Record()
    run, live = _run(tmp_path, epochs=2, ema_decay=decay, callbacks=[record], **CONSTANT)
    assert len(record.steps) == 6  # 3 steps an epoch
    expected = dict(record.steps[0])  # W̄_1 = W_1, then W̄ ← d W̄ + (1 − d) W
    at_epoch_end = []
    for step, weights in enumerate(record.steps[1:], start=2):
        expected = {k: decay * expected[k] + (1 - decay) * weights[k] for k in expected}
        if step % 3 == 0:
            at_epoch_end.append(expected)
    saved = load_file(str(run / "last" / AVERAGE_FILE))
    assert int(saved["n_averaged"]) == 6
    for name, value in expected.items():
        assert torch.allclose(saved[f"model.{name}"], value, atol=1e-6), name
        # the live weights (what last/ resumes) are the optimiser's, not the average
        assert torch.equal(_params(live)[name], record.steps[-1][name])
    history = json.loads((run / "history.json").read_text())["history"]
    best, meta = load_checkpoint(run)
    best_epoch = meta["training"]["best_epoch"]
    # the checkpoint holds the EMA validated at the best epoch, and scores as logged
    for name, value in _params(best).items():
        assert torch.allclose(value, at_epoch_end[best_epoch][name], atol=1e-6), name
    best.eval()
    with torch.no_grad():
        losses = [best.loss(b)["loss"].item() for b in _loaders()[1]]
    assert sum(losses) / len(losses) == pytest.approx(history[best_epoch]["val_loss"], rel=1e-5)


def test_swa_is_the_mean_of_the_epoch_end_weights_from_its_start_epoch(tmp_path):
    record = Record()
    run, _ = _run(tmp_path, epochs=4, swa_start=2, callbacks=[record], **CONSTANT)
    saved = load_file(str(run / "last" / AVERAGE_FILE))
    assert int(saved["n_averaged"]) == 3  # epochs 2, 3, 4
    for name in record.epochs[0]:
        mean = sum(epoch[name] for epoch in record.epochs[1:]) / 3
        assert torch.allclose(saved[f"model.{name}"], mean, atol=1e-6), name
    # epoch 1 is validated with the live weights (no average yet) and epoch 2 with the
    # average of one, the live weights again: the plain run's losses; epochs 3 and 4 read
    # the average of 2 and 3 epochs' weights, so theirs differ
    plain, _ = _run(tmp_path, "plain", epochs=4, **CONSTANT)
    history = json.loads((run / "history.json").read_text())["history"]
    plain_history = json.loads((plain / "history.json").read_text())["history"]
    assert history[:2] == plain_history[:2]
    assert all(history[i]["val_loss"] != plain_history[i]["val_loss"] for i in (2, 3))
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in plain_history]


def test_averaging_off_changes_nothing_and_never_touches_the_live_weights(tmp_path):
    plain, plain_model = _run(tmp_path, "plain", epochs=2, **CONSTANT)
    zero, zero_model = _run(tmp_path, "zero", epochs=2, ema_decay=0.0, swa_start=0, **CONSTANT)
    assert_same_run(plain, plain_model, zero, zero_model)
    assert not (zero / "last" / AVERAGE_FILE).exists()
    ema, ema_model = _run(tmp_path, "ema", epochs=2, ema_decay=0.9, **CONSTANT)
    for name, value in plain_model.state_dict().items():  # same optimisation path
        assert torch.equal(ema_model.state_dict()[name], value), name
    best, _ = load_checkpoint(ema)
    assert not all(torch.equal(best.state_dict()[k], v) for k, v in ema_model.state_dict().items())


@pytest.mark.parametrize("averaging", [dict(ema_decay=0.8), dict(swa_start=2)])
def test_a_resumed_averaging_run_is_bit_identical(tmp_path, averaging):
    settings = dict(epochs=4, lr=0.05, early_stopping_patience=3, **averaging)
    full, full_model = _run(tmp_path, "full", **settings)
    with pytest.raises(RuntimeError):
        _run(tmp_path, "cut", callbacks=[StopAt(step=7)], **settings)
    resumed, resumed_model = _run(tmp_path, "cut", resume=True, **settings)
    assert_same_run(full, full_model, resumed, resumed_model)
    a = load_file(str(full / "last" / AVERAGE_FILE))
    b = load_file(str(resumed / "last" / AVERAGE_FILE))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_json(full / "config.json")["training"]["best_epoch"] == \
        read_json(resumed / "config.json")["training"]["best_epoch"]


@pytest.mark.parametrize("bad, match", [
    (dict(ema_decay=1.0), "ema_decay"), (dict(ema_decay=-0.1), "ema_decay"),
    (dict(swa_start=-1), "swa_start"), (dict(ema_decay=0.9, swa_start=3), "not both"),
])
def test_bad_averaging_settings_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        TrainSettings(**bad)
