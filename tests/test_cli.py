"""The train / generate / demo commands: a tiny end-to-end run, and one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest
import torch
from symusic import Note, Score, Tempo, Track

from cli_helpers import run_cli
from tiny_model import TINY_INFO, TinyFrameConfig, TinyFrameModel, register_tiny_families
from tunesmith.music import load, save_midi
from tunesmith.training.checkpoint import save_checkpoint


def squeezed(text: str) -> str:
    """Text without whitespace: rich wraps long error lines, even inside paths."""
    return "".join(text.split())


def scale_piece(offset: int) -> Score:
    score = Score(480)
    score.tempos.append(Tempo(0, 120.0))
    track = Track("Piano", 0, False)
    for i, step in enumerate((0, 2, 4, 5, 7, 9, 11, 12) * 2):
        track.notes.append(Note(i * 240, 240, 60 + offset + step, 80))
    score.tracks.append(track)
    return score


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    register_tiny_families(monkeypatch)
    torch.manual_seed(0)
    model = TinyFrameModel(TinyFrameModel.config_for_data(TinyFrameConfig(), TINY_INFO))
    return save_checkpoint(tmp_path / "ckpt", model, model_name="tiny-frames",
                           data_info=TINY_INFO)


TINY_WAVENET = ["--set", "model.levels=2", "--set", "model.channels=4",
                "--set", "model.skip_channels=4", "--set", "data.workers=1",
                "--set", "train.batch_size=4", "--set", "train.window=16",
                "--set", "train.progress_bar=false", "--set", "train.loggers=false",
                "--accelerator", "cpu", "--devices", "1"]


def test_train_generate_and_resume_from_the_command_line(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(8):
        save_midi(scale_piece(i - 4), corpus / f"scale{i}.mid")
    run = tmp_path / "run"
    args = ["train", "--model", "wavenet", "--data", f"folder:{corpus}",
            "--repr-set", "pitch_low=48", "--repr-set", "pitch_high=84", *TINY_WAVENET,
            "--out", run]
    assert run_cli([*args, "--epochs", "1"]) == 0
    meta = json.loads((run / "config.json").read_text())
    assert meta["model_name"] == "wavenet" and meta["model_config"]["levels"] == 2
    assert meta["model_config"]["keys"] == 37 and meta["repr_config"]["pitch_low"] == 48

    assert run_cli([*args, "--epochs", "1"]) == 2  # the folder holds a run: --resume or not
    assert run_cli([*args, "--epochs", "1", "--overwrite"]) == 0  # or start it again
    assert run_cli(["train", "--out", run, "--resume", "--epochs", "2"]) == 0
    history = json.loads((run / "history.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [0, 1]

    out = tmp_path / "samples"
    assert run_cli(["generate", "--checkpoint", run, "--n", "2", "--bars", "2", "--seed", "0",
                    "--threshold", "0.3", "--no-wav", "--no-png", "--out", out]) == 0
    for i in (1, 2):
        score = load(out / f"sample_{i}.mid")
        assert score.end() <= 2 * 4 * score.ticks_per_quarter


def test_generate_writes_midi_wav_png(checkpoint, tmp_path):
    out = tmp_path / "out"
    assert run_cli(["generate", "--checkpoint", checkpoint, "--n", "1", "--seconds", "2",
                    "--max-notes-per-step", "1", "--seed", "1", "--out", out]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["sample_1.mid", "sample_1.png",
                                                      "sample_1.wav"]


@pytest.mark.parametrize("args, message", [
    (["train", "--model", "no-such-model", "--data", "bach-chorales", "--out", "{tmp}/r"],
     "unknown model 'no-such-model'"),
    (["train", "--model", "melody-rnn-basic", "--data", "bach-chorales",
      "--set", "data.representation=pianoroll", "--out", "{tmp}/r"],
     "reads the 'melody' representation"),
    (["train", "--model", "wavenet", "--data", "bach-chorales", "--epochs", "0",
      "--out", "{tmp}/r"], "epochs must be >= 1"),
    (["train", "--model", "wavenet", "--data", "bach-chorales", "--set", "lr",
      "--out", "{tmp}/r"], "--set expects key=value"),
    (["train", "--model", "wavenet", "--data", "bach-chorales", "--set", "model.levls=3",
      "--out", "{tmp}/r"], "levls"),
    (["train", "--out", "{tmp}/r", "--resume"], "nothing to resume"),
    (["train", "--model", "wavenet", "--data", "bach-chorales", "--config", "{tmp}/no.toml",
      "--out", "{tmp}/r"], "no such config file"),
    (["generate", "--checkpoint", "{tmp}/missing"], "no such checkpoint folder"),
    (["generate", "--checkpoint", "{ckpt}", "--temperature", "0"], "temperature must be > 0"),
    (["generate", "--checkpoint", "{ckpt}", "--bars", "0"], "bars must be > 0"),
    (["generate", "--checkpoint", "{ckpt}", "--bars", "2", "--seconds", "3"], "not both"),
    (["generate", "--checkpoint", "{ckpt}", "--top-p", "1.5"], "top_p must be in"),
    (["generate", "--checkpoint", "{ckpt}", "--n", "0"], "n must be >= 1"),
    (["generate", "--checkpoint", "{ckpt}", "--prime", "{tmp}/none.mid"], "none.mid"),
    (["demo", "--minutes", "0", "--out", "{tmp}/d"], "--minutes must be > 0"),
    (["demo", "--bars", "40", "--out", "{tmp}/d"], "--bars must be between 8 and 16"),
])
def test_bad_options_are_one_line_errors(args, message, checkpoint, tmp_path, capsys):
    args = [a.format(tmp=tmp_path, ckpt=checkpoint) for a in args]
    assert run_cli([*args]) == 2
    err = squeezed(capsys.readouterr().err)
    assert "error:" in err and squeezed(message) in err and "Traceback" not in err


def test_corrupt_weights_are_a_one_line_error(checkpoint, tmp_path, capsys):
    (checkpoint / "model.safetensors").write_bytes(b"\x01\x02garbage")
    assert run_cli(["generate", "--checkpoint", checkpoint, "--out", tmp_path / "o"]) == 2
    err = squeezed(capsys.readouterr().err)
    assert squeezed("model.safetensors: corrupt or unreadable safetensors file") in err
