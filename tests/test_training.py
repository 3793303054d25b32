"""The generic trainer: fit, logs, best checkpoint, and resuming from our safetensors state."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch

from tiny_model import (
    TINY_INFO,
    TinyFrameModel,
    TinyManualConfig,
    TinyManualModel,
    register_tiny_families,
    tiny_loader,
    tiny_pieces,
)
from tunesmith.errors import ConfigError
from tunesmith.training.checkpoint import load_checkpoint, read_json
from tunesmith.training.trainer import (
    TrainSettings,
    apply_overrides,
    fit,
    load_config_file,
)

FAST = dict(accelerator="cpu", devices=1, progress_bar=False, loggers=False, batch_size=2,
            early_stopping_patience=0, log_every=1)


@pytest.fixture(autouse=True)
def _tiny_registry(monkeypatch):
    register_tiny_families(monkeypatch)
    torch.set_num_threads(1)


def _loaders(shuffle=True):
    return (tiny_loader(tiny_pieces(6, seed=1), shuffle=shuffle),
            tiny_loader(tiny_pieces(2, seed=2)))


def _run(tmp_path, name="run", model=None, resume=False, callbacks=(), model_cls=TinyFrameModel,
         **settings):
    torch.manual_seed(0)
    if model is None:
        config = model_cls.config_class()
        model = model_cls(model_cls.config_for_data(config, TINY_INFO))
    train_loader, val_loader = _loaders()
    return fit(model, train_loader, val_loader, tmp_path / name, model_name=model_cls.family,
               settings=TrainSettings(**{**FAST, **settings}), data_info=TINY_INFO,
               corpus={"corpus": "tiny"}, resume=resume, callbacks=callbacks), model


class StopAt(pl.Callback):
    """Interrupt training like a crash, at an epoch start or after a given step."""

    def __init__(self, epoch=None, step=None):
        self.epoch, self.step, self.weights = epoch, step, None

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            self.weights = {k: v.clone() for k, v in pl_module.model.state_dict().items()}
            raise RuntimeError("simulated crash")


class Watch(pl.Callback):
    """Record the step and the weights a (resumed) run starts training from."""

    def on_train_start(self, trainer, pl_module):
        self.start_step = trainer.global_step
        self.start_epoch = trainer.current_epoch
        self.weights = {k: v.clone() for k, v in pl_module.model.state_dict().items()}


def test_fit_writes_checkpoint_history_and_plot(tmp_path):
    run, _ = _run(tmp_path, epochs=3, lr=0.05, loggers=True)
    history = json.loads((run / "history.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert all("train_loss" in row and "val_loss" in row for row in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert (run / "loss.png").stat().st_size > 1000
    assert list((run / "logs").rglob("metrics.csv"))
    assert list((run / "tensorboard").rglob("events*"))
    model, meta = load_checkpoint(run)
    assert isinstance(model, TinyFrameModel) and meta["model_name"] == "tiny-frames"
    best = min(row["val_loss"] for row in history)
    assert meta["training"]["best_val_loss"] == pytest.approx(best)
    assert meta["training"]["run"]["epochs"] == 3 and meta["training"]["run"]["global_step"] == 9
    assert meta["representation"] == "pianoroll" and meta["data_info"] == TINY_INFO.to_dict()
    state = read_json(run / "last" / "trainer_state.json")
    assert state["epochs_done"] == 3 and state["global_step"] == 9


def test_best_checkpoint_holds_best_validation_weights(tmp_path):
    run, _ = _run(tmp_path, epochs=4, lr=0.05)
    history = json.loads((run / "history.json").read_text())["history"]
    best_epoch = min(history, key=lambda r: r["val_loss"])["epoch"]
    best, meta = load_checkpoint(run)
    assert meta["training"]["best_epoch"] == best_epoch
    # the best model's validation loss is the best one logged
    val = tiny_loader(tiny_pieces(2, seed=2))
    with torch.no_grad():
        losses = [best.loss(b)["loss"].item() for b in val]
    assert sum(losses) / len(losses) == pytest.approx(history[best_epoch]["val_loss"], rel=1e-5)


def test_resume_after_interrupt_at_epoch_boundary_matches_uninterrupted_run(tmp_path):
    full, full_model = _run(tmp_path, "full", epochs=4, lr=0.05)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        _run(tmp_path, "cut", epochs=4, lr=0.05, callbacks=[StopAt(epoch=2)])
    state = read_json(tmp_path / "cut" / "last" / "trainer_state.json")
    assert state["epochs_done"] == 2 and state["global_step"] == 6
    watch = Watch()
    resumed, resumed_model = _run(tmp_path, "cut", epochs=4, lr=0.05, resume=True,
                                  callbacks=[watch])
    assert (watch.start_epoch, watch.start_step) == (2, 6)
    for name, tensor in full_model.state_dict().items():
        torch.testing.assert_close(resumed_model.state_dict()[name], tensor, rtol=0, atol=1e-6)
    full_history = json.loads((full / "history.json").read_text())["history"]
    resumed_history = json.loads((resumed / "history.json").read_text())["history"]
    assert [r["epoch"] for r in resumed_history] == [0, 1, 2, 3]
    for a, b in zip(full_history, resumed_history, strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-6)
        assert a["lr"] == b["lr"]


def test_resume_after_crash_mid_epoch_continues_from_saved_step(tmp_path):
    stop = StopAt(step=4)  # 3 batches an epoch: step 4 is inside epoch 1
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path, "crash", max_steps=8, epochs=None, lr=0.05, callbacks=[stop])
    last = tmp_path / "crash" / "last"
    state = read_json(last / "trainer_state.json")
    assert state["global_step"] == 4 and state["epochs_done"] == 1
    saved, _ = load_checkpoint(last)
    for name, tensor in stop.weights.items():
        assert torch.equal(saved.state_dict()[name], tensor)
    watch = Watch()
    _run(tmp_path, "crash", max_steps=8, epochs=None, lr=0.05, resume=True, callbacks=[watch])
    assert watch.start_step == 4 and watch.start_epoch == 1
    for name, tensor in stop.weights.items():
        assert torch.equal(watch.weights[name], tensor)
    assert read_json(last / "trainer_state.json")["global_step"] == 8


def test_manual_optimisation_trains_and_resumes_both_optimisers(tmp_path):
    run, _ = _run(tmp_path, "gan", epochs=1, model_cls=TinyManualModel,
                      model=TinyManualModel(TinyManualConfig(keys=8)))
    optimizer = json.loads((run / "last" / "optimizer.json").read_text())["optimizers"]
    assert [o["class"] for o in optimizer] == ["Adam", "SGD"]
    watch = Watch()
    _run(tmp_path, "gan", epochs=2, model_cls=TinyManualModel, resume=True, callbacks=[watch],
         model=TinyManualModel(TinyManualConfig(keys=8)))
    assert watch.start_step == 6  # Lightning counts every optimiser step: 2 a batch, 3 batches
    assert read_json(run / "last" / "trainer_state.json")["epochs_done"] == 2


def test_plateau_schedule_and_early_stopping_stop_a_run(tmp_path):
    # lr so small that validation cannot improve beyond float noise -> early stop
    run, _ = _run(tmp_path, epochs=30, lr=1e-12, early_stopping_patience=2)
    history = json.loads((run / "history.json").read_text())["history"]
    assert len(history) < 30


def test_cosine_schedule_reaches_min_lr(tmp_path):
    run, _ = _run(tmp_path, epochs=2, lr=0.01, lr_schedule="cosine")
    history = json.loads((run / "history.json").read_text())["history"]
    assert history[0]["lr"] < 0.01 and history[-1]["lr"] == pytest.approx(1e-6, abs=1e-9)


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nhidden = 32\n[data]\ncorpus = "bach-chorales"\n'
                    '[train]\nepochs = 3\nlr = 0.01\n')
    config = load_config_file(path)
    config = apply_overrides(config, ["model.hidden=64", "train.lr=3e-4", "batch_size=4",
                                      "data.options.resolution=2", "train.devices=[0, 1]",
                                      "train.strategy=ddp"])
    assert config["model"] == {"hidden": 64}
    assert config["train"] == {"epochs": 3, "lr": 3e-4, "batch_size": 4, "devices": [0, 1],
                               "strategy": "ddp"}
    assert config["data"] == {"corpus": "bach-chorales", "options": {"resolution": 2}}
    with pytest.raises(ConfigError, match="prefix"):
        apply_overrides(config, ["hidden=3"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(config, ["train.lr"])
    (tmp_path / "bad.toml").write_text("[model\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config_file(tmp_path / "bad.toml")
    (tmp_path / "extra.toml").write_text("[optimizer]\nlr = 1\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_config_file(tmp_path / "extra.toml")


@pytest.mark.parametrize("bad, match", [
    ({"epochs": 0}, "epochs"), ({"lr": -1}, "lr"), ({"lr_schedule": "warp"}, "lr_schedule"),
    ({"epochs": None}, "at least one"), ({"batch_size": 0}, "batch_size"),
    ({"typo": 1}, "unknown train option"),
])
def test_impossible_settings_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        TrainSettings.from_dict(bad)


def test_progress_bar_reads_epoch_without_a_negative_total_when_time_bounded():
    from types import SimpleNamespace

    from tunesmith.training.trainer import EpochProgressBar

    bar = EpochProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=-1)  # what fit() passes without an epoch cap
    assert bar._get_train_description(19).strip() == "Epoch 19"
    bar._trainer = SimpleNamespace(max_epochs=50)
    assert bar._get_train_description(19).strip() == "Epoch 19/49"
