"""An audio training run resumes from its last saved state through the trainer's one
resume path (``open_run`` + ``last/``), and ends where an uninterrupted run ends."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch
from safetensors.torch import load_file

from test_audio_data import midi_folder
from tunesmith.cli import main
from tunesmith.errors import CheckpointError
from tunesmith.training.audio import train_audio
from tunesmith.training.checkpoint import read_json

OPTIONS = {"channels": 4, "skip_channels": 4, "levels": 3, "blocks": 1,
           "roll_conditioned": True}
SETTINGS = dict(window=1000, batch_size=2, epochs=None, max_steps=7, lr=1e-2, threads=1,
                checkpoint_every=2, progress_bar=False, loggers=False,
                early_stopping_patience=0)


class CrashAt(pl.Callback):
    """A crash after a given training step."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return f"rendered:folder:{midi_folder(tmp_path_factory.mktemp('resume') / 'midi')}"


def _train(spec, out, **extra):
    return train_audio("audio-wavenet", spec, OPTIONS, out, sample_rate=4000, max_seconds=2,
                       **{**SETTINGS, **extra})


def test_interrupted_audio_run_resumes_to_the_same_end(tmp_path, spec):
    full = _train(spec, tmp_path / "full")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(spec, tmp_path / "cut", callbacks=[CrashAt(5)])
    cut_state = read_json(tmp_path / "cut" / "last" / "trainer_state.json")
    assert 0 < cut_state["global_step"] < 7  # interrupted part-way, with a saved state
    # resume from the command line: model, data and settings come from the run's run.json
    main(["audio", "train", "--resume", "--out", str(tmp_path / "cut")])
    full_state = read_json(full / "last" / "trainer_state.json")
    resumed_state = read_json(tmp_path / "cut" / "last" / "trainer_state.json")
    assert full_state["global_step"] == resumed_state["global_step"] == 7
    assert full_state["history"] == resumed_state["history"]
    a = load_file(str(full / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "last" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    meta = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert meta["training"].get("run", meta["training"])["global_step"] == 7


def test_resume_refuses_other_data_and_missing_runs(tmp_path, spec):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train_audio(None, None, out_dir=tmp_path / "none", resume=True)
    _train(spec, tmp_path / "run", max_steps=1)
    run_file = tmp_path / "run" / "run.json"
    run = json.loads(run_file.read_text())
    run["data"]["max_seconds"] = 1  # a run over other cuts of the data
    run_file.write_text(json.dumps(run))
    with pytest.raises(CheckpointError, match="resume it on the same data"):
        train_audio(None, None, out_dir=tmp_path / "run", resume=True)


def test_run_json_records_the_cuts_of_prepared_data(tmp_path, spec):
    from tunesmith.data.audio import prepare_audio

    data = prepare_audio(spec, 4000, max_seconds=2, progress=False, report=False)
    run = train_audio("audio-wavenet", data, OPTIONS, tmp_path / "run",
                      **{**SETTINGS, "max_steps": 1})
    saved = json.loads((run / "run.json").read_text())["data"]
    assert saved["max_seconds"] == 2 and saved["limit"] is None
    assert json.loads((run / "config.json").read_text())["corpus"]["max_seconds"] == 2
