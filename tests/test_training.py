"""The generic trainer: fit, logs, best checkpoint, and exact resuming from safetensors state."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException
from safetensors.torch import load_file, save_file

import tunesmith
from tiny_model import (
    TINY_INFO,
    TinyFrameModel,
    TinyManualConfig,
    TinyManualModel,
    register_tiny_families,
    tiny_loader,
    tiny_pieces,
    tiny_prepared,
)
from tunesmith.cli.run_config import apply_overrides, load_config_file
from tunesmith.data.datasets import make_dataloader
from tunesmith.errors import CheckpointError, ConfigError
from tunesmith.training.checkpoint import load_checkpoint, read_json
from tunesmith.training.trainer import TrainSettings, fit, train

FAST = dict(accelerator="cpu", devices=1, progress_bar=False, loggers=False, batch_size=2,
            early_stopping_patience=0, log_every=1, threads=1)


@pytest.fixture(autouse=True)
def _tiny_registry(monkeypatch):
    register_tiny_families(monkeypatch)
    torch.set_num_threads(1)


def _loaders(val=True):
    """6 training pieces (3 batches an epoch) in random 8-step windows, each transposed
    by -1, 0 or +1: the data's draws matter to an exact resume."""
    prepared = tiny_prepared()
    train_loader = make_dataloader(prepared, "train", batch_size=2, window=8, shuffle=True,
                                   transpose=(-1, 1))
    val_loader = make_dataloader(prepared, "valid", batch_size=2, shuffle=False) if val else None
    return train_loader, val_loader


def _run(tmp_path, name="run", model=None, resume=False, callbacks=(), model_cls=TinyFrameModel,
         val=True, **settings):
    torch.manual_seed(0)
    if model is None:
        config = model_cls.config_class()
        model = model_cls(model_cls.config_for_data(config, TINY_INFO))
    train_loader, val_loader = _loaders(val)
    return fit(model, train_loader, val_loader, tmp_path / name, model_name=model_cls.family,
               settings=TrainSettings(**{**FAST, **settings}), data_info=TINY_INFO,
               corpus={"corpus": "tiny"}, resume=resume, callbacks=callbacks), model


class StopAt(pl.Callback):
    """Interrupt training like a crash, at an epoch start or after a given step (or send
    this process SIGTERM there, which Lightning turns into an exception at a boundary)."""

    def __init__(self, epoch=None, step=None, sigterm=False):
        self.epoch, self.step, self.sigterm, self.weights = epoch, step, sigterm, None

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            self.weights = {k: v.clone() for k, v in pl_module.model.state_dict().items()}
            if self.sigterm:
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise RuntimeError("simulated crash")


class Watch(pl.Callback):
    """Record the step and the weights a (resumed) run starts training from."""

    def on_train_start(self, trainer, pl_module):
        self.start_step = trainer.global_step
        self.start_epoch = trainer.current_epoch
        self.weights = {k: v.clone() for k, v in pl_module.model.state_dict().items()}


def assert_same_run(run_a: Path, model_a, run_b: Path, model_b) -> None:
    """Bit-identical weights, optimiser states, history and final loop counters."""
    for name, tensor in model_a.state_dict().items():
        assert torch.equal(model_b.state_dict()[name], tensor), name
    opt_a = load_file(str(run_a / "last" / "optimizer.safetensors"))
    opt_b = load_file(str(run_b / "last" / "optimizer.safetensors"))
    assert opt_a.keys() == opt_b.keys()
    assert all(torch.equal(opt_a[k], opt_b[k]) for k in opt_a)
    history_a = json.loads((run_a / "history.json").read_text())["history"]
    history_b = json.loads((run_b / "history.json").read_text())["history"]
    assert history_a == history_b  # losses and learning rates exactly
    state_a = read_json(run_a / "last" / "trainer_state.json")
    state_b = read_json(run_b / "last" / "trainer_state.json")
    for key in ("epochs_done", "global_step", "batches_done", "best_val", "best_epoch",
                "early_stopping", "task", "loops"):
        assert state_a[key] == state_b[key], key


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
    with torch.no_grad():
        losses = [best.loss(b)["loss"].item() for b in _loaders()[1]]
    assert sum(losses) / len(losses) == pytest.approx(history[best_epoch]["val_loss"], rel=1e-5)


EXACT = dict(epochs=5, lr=0.05, early_stopping_patience=3)


@pytest.mark.parametrize("stop, saved_step, val", [
    (dict(step=1), 1, True),  # in the first epoch (3 batches an epoch)
    (dict(step=4), 4, True),  # mid-epoch
    (dict(step=4), 4, False),  # mid-epoch, no validation data: train loss is monitored
    (dict(step=6), 3, True),  # an epoch's last batch: its validation had not run, so
    # last/ keeps the state saved as that epoch began
    (dict(epoch=2), 6, True),  # Ctrl-C as an epoch begins
    (dict(step=4, sigterm=True), 4, True),  # Lightning stops at the batch's end
    (dict(step=6, sigterm=True), 6, True),  # ... and at the epoch's end, after validation
])
def test_interrupted_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(
        tmp_path, stop, saved_step, val):
    full, full_model = _run(tmp_path, "full", val=val, **EXACT)
    with pytest.raises((RuntimeError, KeyboardInterrupt, SystemExit, SIGTERMException)):
        _run(tmp_path, "cut", val=val, callbacks=[StopAt(**stop)], **EXACT)
    assert read_json(tmp_path / "cut" / "last" / "trainer_state.json")["global_step"] == saved_step
    watch = Watch()
    resumed, resumed_model = _run(tmp_path, "cut", val=val, resume=True, callbacks=[watch], **EXACT)
    assert watch.start_step == saved_step
    assert_same_run(full, full_model, resumed, resumed_model)


@pytest.mark.parametrize("settings", [
    dict(epochs=None, max_steps=11, lr=0.05),  # iteration-based
    dict(epochs=4, lr=0.05, lr_schedule="cosine"),  # a schedule stepped every batch
])
def test_resume_is_exact_with_step_limits_and_step_schedules(tmp_path, settings):
    full, full_model = _run(tmp_path, "full", **settings)
    with pytest.raises(RuntimeError):
        _run(tmp_path, "cut", callbacks=[StopAt(step=5)], **settings)
    resumed, resumed_model = _run(tmp_path, "cut", resume=True, **settings)
    assert_same_run(full, full_model, resumed, resumed_model)


def test_resume_of_manual_optimisation_is_exact_mid_epoch(tmp_path):
    def model():
        torch.manual_seed(0)
        return TinyManualModel(TinyManualConfig(keys=8))

    full, full_model = _run(tmp_path, "full", epochs=3, model=model(), model_cls=TinyManualModel)
    with pytest.raises(RuntimeError):  # 2 optimiser steps a batch: step 8 is inside epoch 1
        _run(tmp_path, "cut", epochs=3, model=model(), model_cls=TinyManualModel,
             callbacks=[StopAt(step=8)])
    resumed, resumed_model = _run(tmp_path, "cut", epochs=3, model=model(),
                                  model_cls=TinyManualModel, resume=True)
    assert_same_run(full, full_model, resumed, resumed_model)


class KillAt(pl.Callback):
    """kill -9 this process after a given step: nothing gets the chance to save."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("kill_step, every, saved_step", [
    (1, 0, 0),  # in epoch 0: the state saved as it began (issue 14: this was unresumable)
    (5, 2, 4),  # the last save of checkpoint_every
])
def test_kill_9_then_resume_is_exact_from_the_last_save(tmp_path, kill_step, every, saved_step):
    settings = dict(EXACT, checkpoint_every=every)
    script = (f"from pathlib import Path; import test_training as t; "
              f"t.register_tiny_families(t.pytest.MonkeyPatch()); "
              f"t._run(Path({str(tmp_path)!r}), 'killed', callbacks=[t.KillAt({kill_step})], "
              f"**{settings!r})")
    paths = [str(Path(tunesmith.__file__).parents[1]), str(Path(__file__).parent)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    state = read_json(tmp_path / "killed" / "last" / "trainer_state.json")
    assert state["global_step"] == saved_step
    full, full_model = _run(tmp_path, "full", **settings)
    resumed, resumed_model = _run(tmp_path, "killed", resume=True, **settings)
    assert_same_run(full, full_model, resumed, resumed_model)


def test_resume_after_crash_mid_epoch_continues_from_saved_step(tmp_path):
    stop = StopAt(step=4)  # 3 batches an epoch: step 4 is inside epoch 1
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path, "crash", max_steps=8, epochs=None, lr=0.05, callbacks=[stop])
    last = tmp_path / "crash" / "last"
    state = read_json(last / "trainer_state.json")
    assert (state["global_step"], state["epochs_done"], state["batches_done"]) == (4, 1, 1)
    assert state["items_done"] == 2
    saved, _ = load_checkpoint(last)
    for name, tensor in stop.weights.items():
        assert torch.equal(saved.state_dict()[name], tensor)
    watch = Watch()
    _run(tmp_path, "crash", max_steps=8, epochs=None, lr=0.05, resume=True, callbacks=[watch])
    assert watch.start_step == 4 and watch.start_epoch == 1
    for name, tensor in stop.weights.items():
        assert torch.equal(watch.weights[name], tensor)
    assert read_json(last / "trainer_state.json")["global_step"] == 8


def test_a_plain_loader_resumes_mid_epoch_from_the_epochs_first_batch(tmp_path, capsys):
    def plain_run(**kwargs):
        torch.manual_seed(0)
        model = TinyFrameModel(TinyFrameModel.config_for_data(TinyFrameModel.config_class(),
                                                              TINY_INFO))
        fit(model, tiny_loader(tiny_pieces(6, seed=1), shuffle=True), None, tmp_path / "plain",
            model_name="tiny-frames", settings=TrainSettings(**{**FAST, "max_steps": 6,
                                                                "epochs": None}), **kwargs)

    with pytest.raises(RuntimeError):
        plain_run(callbacks=[StopAt(step=4)])
    plain_run(resume=True)
    assert "restarts from its first batch" in capsys.readouterr().err
    assert read_json(tmp_path / "plain" / "last" / "trainer_state.json")["global_step"] == 6


def test_manual_optimisation_trains_and_extends_a_finished_run(tmp_path):
    run, _ = _run(tmp_path, "gan", epochs=1, model_cls=TinyManualModel,
                  model=TinyManualModel(TinyManualConfig(keys=8)))
    optimizer = json.loads((run / "last" / "optimizer.json").read_text())["optimizers"]
    assert [o["class"] for o in optimizer] == ["Adam", "SGD"]
    watch = Watch()
    _run(tmp_path, "gan", epochs=2, model_cls=TinyManualModel, resume=True, callbacks=[watch],
         model=TinyManualModel(TinyManualConfig(keys=8)))
    assert watch.start_step == 6  # Lightning counts every optimiser step: 2 a batch, 3 batches
    state = read_json(run / "last" / "trainer_state.json")
    assert (state["epochs_done"], state["global_step"]) == (2, 12)
    history = json.loads((run / "history.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [0, 1]


def test_a_step_limited_run_extends_past_an_epoch_boundary(tmp_path):
    run, _ = _run(tmp_path, epochs=None, max_steps=6, lr=0.05)  # exactly 2 epochs
    _run(tmp_path, epochs=None, max_steps=9, lr=0.05, resume=True)
    state = read_json(run / "last" / "trainer_state.json")
    assert (state["epochs_done"], state["global_step"]) == (3, 9)
    history = json.loads((run / "history.json").read_text())["history"]
    assert [(row["epoch"], row["step"]) for row in history] == [(0, 3), (1, 6), (2, 9)]


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
    ({"typo": 1}, "unknown train option"), ({"objective": "elbo"}, "objective"),
    ({"lr_decay_patience": 0}, "lr_decay_patience"), ({"transpose": [2, -2]}, "transpose"),
    ({"transpose": 3}, "transpose"),
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


# ----------------------------------------------------------------------------- run folders


class FailAtStart(pl.Callback):
    """Stop a run before anything is saved (like a kill -9 during Lightning's set-up)."""

    def on_train_start(self, trainer, pl_module):
        raise RuntimeError("killed before the first save")


def _train(out, **kwargs):
    torch.manual_seed(0)
    settings = {**FAST, "epochs": 2, "lr": 0.05, "window": 8, **kwargs}
    return train("tiny-frames", tiny_prepared(), {}, out, **settings)


def test_resume_of_a_run_stopped_before_its_first_save_starts_from_step_0(tmp_path, capsys):
    with pytest.raises(RuntimeError, match="first save"):
        _train(tmp_path / "cut", callbacks=[FailAtStart()])
    assert (tmp_path / "cut" / "run.json").is_file()
    assert not (tmp_path / "cut" / "last").exists()
    with pytest.raises(ConfigError, match="--resume to continue it, --overwrite to start"):
        _train(tmp_path / "cut")
    _train(tmp_path / "cut", resume=True)
    assert "starting it again from step 0" in capsys.readouterr().err
    _train(tmp_path / "full")
    full, _ = load_checkpoint(tmp_path / "full" / "last")
    resumed, _ = load_checkpoint(tmp_path / "cut" / "last")
    for name, tensor in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor)


def test_overwrite_starts_a_run_again_and_removes_only_what_a_run_writes(tmp_path):
    out = tmp_path / "run"
    _train(out, epochs=1)
    (out / "notes.txt").write_text("mine")
    first = json.loads((out / "history.json").read_text())["history"]
    with pytest.raises(ConfigError, match="not both"):
        _train(out, resume=True, overwrite=True)
    _train(out, overwrite=True, epochs=2)
    assert (out / "notes.txt").read_text() == "mine"
    history = json.loads((out / "history.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [0, 1] and history[0] == first[0]
    assert read_json(out / "last" / "trainer_state.json")["global_step"] == 6


class WeightsAtStart(pl.Callback):
    """Keep a copy of the model's weights as training starts."""

    def on_train_start(self, trainer, pl_module):
        self.weights = {k: v.clone() for k, v in pl_module.model.state_dict().items()}


def test_init_from_starts_a_new_run_from_a_checkpoints_weights_and_model(tmp_path):
    """Fine-tuning: the new run's first step starts from the checkpoint's weights, and it
    takes the checkpoint's family and options when given none."""
    _train(tmp_path / "base", epochs=2)
    base, _ = load_checkpoint(tmp_path / "base")
    fresh, at_start = WeightsAtStart(), WeightsAtStart()
    _train(tmp_path / "fresh", epochs=1, callbacks=[fresh])
    torch.manual_seed(0)
    run = train(None, tiny_prepared(), None, tmp_path / "tuned", callbacks=[at_start],
                **{**FAST, "epochs": 1, "lr": 0.05, "window": 8,
                   "init_from": str(tmp_path / "base")})
    for name, tensor in base.state_dict().items():
        assert torch.equal(at_start.weights[name], tensor)
    assert any(not torch.equal(fresh.weights[k], v) for k, v in base.state_dict().items())
    assert read_json(run / "run.json")["model_name"] == "tiny-frames"
    tuned, _ = load_checkpoint(run)
    assert any(not torch.equal(tuned.state_dict()[k], v) for k, v in base.state_dict().items())


def test_init_from_a_checkpoint_of_another_model_names_what_differs(tmp_path):
    _train(tmp_path / "base", epochs=1)
    hidden = TinyFrameModel.config_class().hidden
    with pytest.raises(CheckpointError, match=rf"config\.json.*hidden {hidden} \(this run: 3\)"):
        train("tiny-frames", tiny_prepared(), {"hidden": 3}, tmp_path / "other",
              **{**FAST, "epochs": 1, "window": 8, "init_from": str(tmp_path / "base")})
    with pytest.raises(CheckpointError, match="missing: no such checkpoint folder"):
        train("tiny-frames", tiny_prepared(), None, tmp_path / "none",
              **{**FAST, "epochs": 1, "window": 8, "init_from": str(tmp_path / "missing")})


def test_a_model_too_big_for_memory_is_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match=r"1\.7e\+13 parameters \(68\.0 TB of weights\)"):
        torch.manual_seed(0)
        train("tiny-frames", tiny_prepared(), {"hidden": 10**12}, tmp_path / "big", **FAST)


def test_resume_of_a_folder_without_a_run_says_so(tmp_path):
    with pytest.raises(CheckpointError, match=r"run\.json: nothing to resume"):
        _train(tmp_path / "empty", resume=True)


@pytest.mark.parametrize("change, match", [
    (lambda r: r.pop("model_name"), r"run\.json: missing field 'model_name'"),
    (lambda r: r.update(options=[1]), r"run\.json: field 'options' must be dict"),
    (lambda r: r["options"].update(hidden=10**12), r"run\.json: .*parameters .* TB"),
    (lambda r: r["settings"].update(gradient_clip=-1), r"run\.json: .*gradient_clip must be"),
])
def test_a_bad_run_json_is_one_line_error(tmp_path, change, match):
    out = tmp_path / "run"
    _train(out, epochs=1)
    run = read_json(out / "run.json")
    change(run)
    (out / "run.json").write_text(json.dumps(run))
    with pytest.raises(CheckpointError, match=match) as error:
        _train(out, resume=True)
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 2-epoch run with early stopping: its last/ is what the tamper tests spoil."""
    run, _ = _run(tmp_path_factory.mktemp("finished"), epochs=2, lr=0.05,
                  early_stopping_patience=3)
    return run


def _edit_json(name, change):
    def edit(last: Path):
        data = read_json(last / name)
        change(data)
        (last / name).write_text(json.dumps(data))
    return edit


def _edit_tensors(name, change):
    def edit(last: Path):
        tensors = dict(load_file(str(last / name)))
        change(tensors)
        save_file(tensors, str(last / name))
    return edit


def _first_exp_avg(tensors, change):
    key = next(k for k in tensors if k.endswith(".exp_avg"))
    tensors[key] = change(tensors[key])


STATE = "trainer_state.json"


@pytest.mark.parametrize("tamper, match", [
    (_edit_json(STATE, lambda s: s.pop("global_step")), "missing field 'global_step'"),
    (_edit_json(STATE, lambda s: s.update(global_step="6")), "'global_step' must be int"),
    (_edit_json(STATE, lambda s: s.update(global_step=-6)), "'global_step' is negative"),
    (_edit_json(STATE, lambda s: s.update(global_step=7)), "does not match the loop state"),
    (_edit_json(STATE, lambda s: s.update(epochs_done=1.5)), "'epochs_done' must be int"),
    (_edit_json(STATE, lambda s: s.update(junk=1)), "unexpected field"),
    (_edit_json(STATE, lambda s: s.update(items_done=7)), "items_done 7 is past the end"),
    (_edit_json(STATE, lambda s: s.update(format_version=1)), "format version 1"),
    (_edit_json(STATE, lambda s: s.pop("format_version")), "format version 1, this"),
    (_edit_json(STATE, lambda s: s["loops"]["epoch_progress"]["total"].update(completed=-1)),
     "negative value -1 at loops.epoch_progress.total.completed"),
    (_edit_json(STATE, lambda s: s["loops"].pop("epoch_progress")), "missing key"),
    (_edit_json(STATE, lambda s: s.update(history=[{"epoch": "zero"}])), "history row 0"),
    (_edit_json(STATE, lambda s: s["task"].update(epoch_sums={"loss": "x"})), "epoch_sums"),
    (_edit_json(STATE, lambda s: s["task"]["plateau"].update(best="low")),
     "expected a number at task.plateau.best"),
    (_edit_json(STATE, lambda s: s["early_stopping"].update(wait_count=None)),
     "at early_stopping.wait_count"),
    (_edit_json(STATE, lambda s: s["rng"]["python"][1].pop()), "at rng.python"),
    (_edit_json(STATE, lambda s: s["rng"]["python"][1].__setitem__(0, 2**40)),
     "bad random-number state"),
    (_edit_json(STATE, lambda s: s["rng"]["numpy"][1].__setitem__(0, -1)),
     r"negative value -1 at rng\.numpy\[1\]\[0\]"),
    (_edit_json(STATE, lambda s: s["rng"]["numpy"].__setitem__(2, 10**6)),
     "bad random-number state"),
    (_edit_tensors("rng.safetensors", lambda t: t.update(torch=t["torch"][:100])),
     r"rng\.safetensors: tensor torch has shape \(100,\)"),
    (_edit_tensors("rng.safetensors", lambda t: t.update(junk=torch.zeros(2))),
     "unexpected tensor"),
    (_edit_json("optimizer.json", lambda o: o["optimizers"][0].update(**{"class": "SGD"})),
     "was SGD, now Adam"),
    (_edit_json("optimizer.json", lambda o: o["optimizers"][0]["param_groups"][0].update(
        lr="fast")), "expected a number at optimizers"),
    (_edit_json("optimizer.json", lambda o: o["optimizers"][0].pop("tensors")),
     "missing field 'tensors'"),
    (_edit_json("optimizer.json", lambda o: o.update(optimizers={})),
     "'optimizers' must be list"),
    (_edit_tensors("optimizer.safetensors", lambda t: _first_exp_avg(t, lambda x: x.to(
        torch.int8))), r"optimizer\.safetensors: tensor 0\.\d+\.exp_avg is int8, expected float32"),
    (_edit_tensors("optimizer.safetensors", lambda t: _first_exp_avg(t, lambda x: x * torch.nan)),
     "holds NaN"),
    (_edit_tensors("optimizer.safetensors", lambda t: _first_exp_avg(t, lambda x: x[:1])),
     "has shape"),
    (_edit_tensors("optimizer.safetensors", lambda t: t.update(junk=torch.zeros(1))),
     "unexpected tensor"),
    (_edit_json("scheduler.json", lambda s: s["schedulers"].append({})), "expected a list of 0"),
    (_edit_tensors("model.safetensors", lambda t: t.update(start=t["start"].double())),
     r"model\.safetensors: weight start is float64, expected float32"),
])
def test_a_tampered_state_is_one_line_checkpoint_error(tmp_path, finished_run, tamper, match):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    tamper(run / "last")
    with pytest.raises(CheckpointError, match=match) as error:
        _run(tmp_path, "run", resume=True, epochs=3, lr=0.05, early_stopping_patience=3)
    assert "\n" not in str(error.value) and str(run / "last") in str(error.value)


@pytest.mark.parametrize("schedule,patience", [("plateau", 0), ("constant", 3)])
def test_a_step_limit_inside_the_first_epoch_ends_cleanly(tmp_path, schedule, patience):
    """max_steps that stops before the first validation: the plateau schedule and early
    stopping have no val_loss yet, which is no error; the run still leaves a checkpoint."""
    settings = {**FAST, "early_stopping_patience": patience}
    run = train("tiny-frames", tiny_prepared(), {}, tmp_path / "run", epochs=None, max_steps=1,
                window=8, lr_schedule=schedule, **settings)
    assert (run / "model.safetensors").is_file()
    assert read_json(run / "config.json")["training"]["global_step"] == 1


def test_fit_restores_torch_thread_count_and_denormal_flushing(tmp_path):
    """A run's --threads and denormal flushing hold for the run only (issue 15: no lasting
    side effects on the process)."""
    torch.set_num_threads(2)
    torch.set_flush_denormal(False)
    seen = {}

    class Probe(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["threads"] = torch.get_num_threads()
            seen["flushes"] = torch.tensor([1e-40], dtype=torch.float32).item() == 0.0

    train_loader, val_loader = _loaders()
    try:
        model = TinyFrameModel(TinyFrameModel.config_for_data(TinyFrameModel.config_class(),
                                                              TINY_INFO))
        fit(model, train_loader, val_loader, tmp_path / "run", model_name="tiny-frames",
            settings=TrainSettings(**{**FAST, "threads": 1}, epochs=1), callbacks=[Probe()])
        assert seen == {"threads": 1, "flushes": True}
        assert torch.get_num_threads() == 2
        assert torch.tensor([1e-40], dtype=torch.float32).item() != 0.0  # flushing off again
    finally:
        torch.set_num_threads(1)


@pytest.mark.parametrize("summary", [True, False])
def test_model_summary_can_be_left_out_beside_the_progress_bar(tmp_path, summary):
    seen = []

    class Summaries(pl.Callback):
        def on_fit_start(self, trainer, pl_module):
            seen.append(any(type(c).__name__.endswith("ModelSummary") for c in trainer.callbacks))

    _run(tmp_path, callbacks=[Summaries()], progress_bar=True, model_summary=summary,
         max_steps=1, epochs=None)
    assert seen == [summary]
