"""Bad command lines (issue 14): each gets one line ``error: ...`` and exit code 2, never a
traceback; a batch command skips a bad file, reports it and keeps the rest; name and path
errors are reported before torch and Lightning are imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from symusic import Note, Score, Tempo, Track

from cli_helpers import run_cli
from tiny_model import register_tiny_families, save_tiny_checkpoint
from tunesmith.music import save_midi
from tunesmith.training.settings import cpu_cores

SRC = Path(__file__).resolve().parents[1] / "src"


def scale(offset: int = 0) -> Score:
    score = Score(480)
    score.tempos.append(Tempo(0, 120.0))
    track = Track("Piano", 0, False)
    for i, step in enumerate((0, 2, 4, 5, 7, 9, 11, 12)):
        track.notes.append(Note(i * 240, 240, 60 + offset + step, 80))
    score.tracks.append(track)
    return score


def mat_cells(pieces: list[np.ndarray]) -> np.ndarray:
    """A MATLAB 1 x N cell array, as the benchmark .mat files hold their pieces."""
    cells = np.empty((1, len(pieces)), dtype=object)
    for i, piece in enumerate(pieces):
        cells[0, i] = piece
    return cells


def write_mat(path: Path, train: list[np.ndarray]) -> Path:
    good = [np.eye(88, dtype=np.float64)[i:i + 5] for i in range(3)]  # (5, 88) rolls
    scipy.io.savemat(path, {"traindata": mat_cells(train), "validdata": mat_cells(good),
                            "testdata": mat_cells(good)})
    return path


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A tiny checkpoint, a small MIDI corpus, an existing plain file and crafted .mat files."""
    register_tiny_families(monkeypatch)
    corpus = tmp_path / "corpus"
    for i in range(3):
        save_midi(scale(i), corpus / f"scale{i}.mid")
    (tmp_path / "existing.txt").write_text("a file, not a folder")
    write_mat(tmp_path / "empty_cells.mat", [])  # traindata is a 1 x 0 cell array
    write_mat(tmp_path / "zero_frames.mat", [np.ones((4, 88)), np.zeros((0, 88))])
    return {"ckpt": save_tiny_checkpoint(tmp_path / "ckpt"), "corpus": corpus, "tmp": tmp_path}


TRAIN = ["train", "--model", "wavenet", "--data", "folder:{corpus}", "--set", "data.workers=1",
         "--epochs", "1"]
GENERATE = ["generate", "--checkpoint", "{ckpt}", "--n", "1", "--no-wav", "--no-png"]
BENCH = ["bench", "nll", "--data", "{tmp}/missing.mat", "--epochs", "1"]

CASES = [
    # --out naming an existing file
    ([*GENERATE, "--out", "{tmp}/existing.txt"], "--out must be a folder, but it is a file"),
    (["render", "{corpus}/scale0.mid", "--out", "{tmp}/existing.txt"],
     "--out must be a folder, but it is a file"),
    ([*TRAIN, "--out", "{tmp}/existing.txt"], "--out must be a folder, but it is a file"),
    (["evaluate", "{corpus}", "-r", "folder:{corpus}:all", "--out", "{tmp}/existing.txt"],
     "--out must be a folder, but it is a file"),
    (["evaluate", "{corpus}", "-r", "folder:{corpus}:all", "--out", "{tmp}/existing.txt/sub"],
     "lies under"),
    (["vae", "sample", "--checkpoint", "{ckpt}", "--out", "{tmp}/existing.txt"],
     "--out must be a folder"),
    (["bench", "nll", "--data", "jsb", "--out", "{tmp}/existing.txt"],
     "--out must be a folder, but it is a file"),
    # generate: lengths, counts and sampling controls
    ([*GENERATE, "--bars", "1e9", "--out", "{tmp}/g"], "bars must be > 0 and at most 3600"),
    ([*GENERATE, "--bars", "nan", "--out", "{tmp}/g"], "bars must be > 0 and at most"),
    ([*GENERATE, "--seconds", "inf", "--out", "{tmp}/g"], "seconds must be > 0 and at most 7200"),
    ([*GENERATE, "--n", "100000000", "--out", "{tmp}/g"], "n must be >= 1 and at most 1000"),
    ([*GENERATE, "--temperature", "nan", "--out", "{tmp}/g"], "temperature must be > 0 and finite"),
    ([*GENERATE, "--temperature", "inf", "--out", "{tmp}/g"], "temperature must be > 0 and finite"),
    ([*GENERATE, "--top-p", "nan", "--out", "{tmp}/g"], "top_p must be in (0, 1]"),
    ([*GENERATE, "--prime", "{tmp}/none.mid", "--out", "{tmp}/g"], "none.mid: no such file"),
    (["generate", "--checkpoint", "{tmp}/existing.txt"], "a checkpoint is a folder"),
    (["generate", "--checkpoint", "{corpus}"], "config.json: no such file"),
    (["generate", "--checkpoint", "{ckpt}", "--soundfont", "{tmp}/none.sf2"],
     "no such SoundFont file"),
    (["gan", "generate", "--checkpoint", "{ckpt}", "--bars", "1000000"],
     "bars must be > 0 and at most 3600"),
    # train: values of the wrong type, and Lightning flags this machine cannot honour
    ([*TRAIN, "--set", "model.channels=abc", "--out", "{tmp}/r"],
     "model option channels expects an integer, got 'abc'"),
    ([*TRAIN, "--set", "model.dropout=nan", "--out", "{tmp}/r"],
     "model option dropout expects a finite number"),
    ([*TRAIN, "--set", "train.lr=abc", "--out", "{tmp}/r"], "train option lr expects"),
    ([*TRAIN, "--set", "train.batch_size=1.5", "--out", "{tmp}/r"],
     "train option batch_size expects an integer, got 1.5"),
    ([*TRAIN, "--max-time", "nan", "--out", "{tmp}/r"], "train option max_time expects"),
    ([*TRAIN, "--repr-set", "resolution=abc", "--out", "{tmp}/r"],
     "pianoroll option resolution expects an integer"),
    ([*TRAIN, "--strategy", "bogus", "--out", "{tmp}/r"], "unknown strategy 'bogus'"),
    ([*TRAIN, "--accelerator", "bogus", "--out", "{tmp}/r"], "unknown accelerator 'bogus'"),
    ([*TRAIN, "--devices", str(cpu_cores() + 1), "--accelerator", "cpu", "--out", "{tmp}/r"],
     f"this machine has {cpu_cores()} CPU core(s)"),
    ([*TRAIN, "--devices", "0", "--accelerator", "cpu", "--out", "{tmp}/r"],
     "devices must be >= 1"),
    ([*TRAIN, "--devices", "abc", "--out", "{tmp}/r"], "devices 'abc': expected auto"),
    ([*TRAIN, "--set", "train.precision=bogus", "--out", "{tmp}/r"],
     "Precision 'bogus' is invalid"),
    ([*TRAIN, "--set", "data.limit=-1", "--out", "{tmp}/r"], "limit must be a whole number >= 1"),
    ([*TRAIN, "--threads", "100000", "--out", "{tmp}/r"], "threads 100000: this machine has"),
    (["train", "--resume", "--out", "{tmp}/no-run"], "nothing to resume: no such run folder"),
    (["train", "--model", "wavnet", "--data", "folder:{corpus}", "--out", "{tmp}/r"],
     "unknown model 'wavnet'"),
    (["train", "--model", "wavenet", "--data", "no-such-corpus", "--out", "{tmp}/r"],
     "unknown corpus 'no-such-corpus'"),
    # bench nll
    ([*BENCH, "--batch-size", "0"], "batch size must be >= 1, got 0"),
    ([*BENCH, "--epochs", "0"], "epochs must be >= 1, got 0"),
    ([*BENCH, "--device", "bogus"], "unknown device 'bogus'"),
    ([*BENCH, "--lr", "nan"], "lr must be > 0 and finite"),
    ([*BENCH, "--clip", "-1"], "clip must be >= 0"),
    ([*BENCH, "--patience", "0"], "patience must be >= 1"),
    ([*BENCH, "--threads", "100000"], "threads must be >= 0"),
    (["bench", "nll", "--data", "{tmp}/empty_cells.mat", "--epochs", "1"],
     "empty_cells.mat: 'traindata' holds no piece"),
    (["bench", "nll", "--data", "{tmp}/zero_frames.mat", "--epochs", "1"],
     "zero_frames.mat: traindata[1] has shape (0, 88)"),
    (["bench", "nll", "--data", "jsb", "--model", "wavnet"], "unknown model 'wavnet'"),
    # data, evaluate, demo, models
    (["data", "prepare", "folder:{corpus}", "--limit", "-1"], "limit must be a whole number >= 1"),
    (["data", "prepare", "folder:{corpus}", "--workers", "0"], "workers must be a whole number"),
    (["data", "prepare", "folder:{corpus}", "--set", "merge_tracks=False"],
     "merge_tracks expects true or false, got 'False'"),
    (["evaluate", "{corpus}", "-r", "folder:{corpus}:all", "--out", "{tmp}/e",
      "--lcs-threshold", "nan"], "--lcs-threshold must be in (0, 1]"),
    (["evaluate", "{corpus}", "-r", "no-such-corpus", "--out", "{tmp}/e"],
     "unknown corpus 'no-such-corpus'"),
    (["evaluate", "{corpus}", "-r", "folder:{corpus}:all", "--out", "{tmp}/e", "--bars", "0"],
     "--bars must be > 0"),
    (["demo", "--minutes", "nan", "--out", "{tmp}/d"], "--minutes must be > 0 and finite"),
    (["models", "wavnet"], "unknown model 'wavnet'"),
]
if not torch.cuda.is_available():
    CASES += [
        ([*TRAIN, "--accelerator", "gpu", "--out", "{tmp}/r"], "no GPU is available here"),
        ([*BENCH, "--device", "cuda"], "this machine has 0 CUDA GPU(s)"),
    ]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(a[:2]) + f" [{i}]"
                                                      for i, (a, _) in enumerate(CASES)])
def test_bad_command_line_is_one_line_and_exit_2(args, message, files, capsys):
    args = [a.format(**files) for a in args]
    assert run_cli(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in captured.err + captured.out


def test_a_refused_train_leaves_no_run_behind(files):
    """A run refused for its flags writes nothing, so the same --out can be used again."""
    out = files["tmp"] / "r"
    args = [a.format(**files) for a in TRAIN] + ["--strategy", "bogus", "--out", str(out)]
    assert run_cli(args) == 2
    assert not out.exists()


def negative_pitch_midi() -> bytes:
    """A format-0 MIDI file: C4, then a note whose pitch byte is 0x85 (a data byte >= 0x80,
    which symusic 0.5.8 reads as pitch -123 instead of refusing)."""
    events = bytes.fromhex("00903C64" "60803C00" "00908564" "60808500" "00FF2F00")
    return (b"MThd" + (6).to_bytes(4, "big") + bytes.fromhex("0000" "0001" "0060")
            + b"MTrk" + len(events).to_bytes(4, "big") + events)


def test_evaluate_skips_a_bad_file_and_reports_it_at_the_end(files, capsys):
    generated = files["tmp"] / "generated"
    for i in range(2):
        save_midi(scale(i + 1), generated / f"good{i}.mid")
    (generated / "negative_pitch.mid").write_bytes(negative_pitch_midi())
    out = files["tmp"] / "report"
    assert run_cli(["evaluate", generated, "-r", f"folder:{files['corpus']}:all", "--out", out,
                    "--workers", "1", "--no-plots"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_generated"] == 2
    assert [name for name, _ in report["skipped_generated"]] == ["negative_pitch.mid"]
    assert "negative_pitch.mid" in (out / "report.md").read_text()
    console = capsys.readouterr().out
    assert console.index("skipped negative_pitch.mid") > console.index("metrics (mean")


def test_evaluate_with_nothing_usable_names_every_skipped_file(files, capsys):
    generated = files["tmp"] / "bad"
    generated.mkdir()
    (generated / "a.mid").write_bytes(negative_pitch_midi())
    (generated / "b.mid").write_bytes(b"MThd")
    assert run_cli(["evaluate", generated, "-r", f"folder:{files['corpus']}:all",
                    "--out", files["tmp"] / "o", "--workers", "1", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "a.mid" in err and "b.mid" in err


def test_name_and_path_errors_come_before_torch_is_imported(tmp_path):
    """A typo must not wait for torch and Lightning (seconds under load): run each error
    case in a fresh interpreter and check that neither was imported."""
    script = (
        "import sys\n"
        "from tunesmith.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 2, exc.code\n"
        "heavy = sorted(m for m in ('torch', 'pytorch_lightning') if m in sys.modules)\n"
        "print('imported:', heavy)\n"
    )
    cases = [
        ["train", "--model", "wavnet", "--data", "bach-chorales", "--out", str(tmp_path / "r")],
        ["train", "--model", "wavenet", "--data", "no-such-corpus", "--out", str(tmp_path / "r")],
        ["generate", "--checkpoint", str(tmp_path / "missing")],
        ["bench", "nll", "--data", "jsb", "--model", "wavnet"],
        ["models", "wavnet"],
    ]
    for args in cases:
        result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                                text=True, env={**os.environ, "PYTHONPATH": str(SRC)},
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert "imported: []" in result.stdout, (args, result.stdout)
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
