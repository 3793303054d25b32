"""``bench nll`` through the generic trainer: a normal checkpoint, the protocol's figures,
scoring by ``evaluate``, Ctrl-C and --resume, and the one benchmark-file locator."""

from __future__ import annotations

import json
import math
import shutil
import signal
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import scipy.io
import torch

from cli_helpers import run_cli
from tunesmith.cli.bench import parse_transpose, split_set_options
from tunesmith.errors import ConfigError
from tunesmith.evaluation.likelihood import checkpoint_nll
from tunesmith.evaluation.report import held_out_nll
from tunesmith.generation.generate import UnlearnedOpeningWarning, generate_from_checkpoint
from tunesmith.music import load
from tunesmith.representations.info import DataInfo
from tunesmith.training.benchmark import bench_nll, bench_nll_seeds, benchmark_data
from tunesmith.training.checkpoint import load_checkpoint, read_json

QUIET = dict(progress_bar=False, loggers=False, threads=1, print_table=False)


def random_pieces(lengths, keys=88, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((n, keys)) < 0.05).astype(np.uint8) for n in lengths]


@pytest.fixture
def tiny_mat(tmp_path):
    def cell(pieces):
        array = np.empty((1, len(pieces)), dtype=object)
        for i, p in enumerate(pieces):
            array[0, i] = p.astype(np.float64)
        return array

    path = tmp_path / "tiny.mat"
    scipy.io.savemat(path, {
        "traindata": cell(random_pieces([6, 8, 5, 7], seed=1)),
        "validdata": cell(random_pieces([6, 4], seed=2)),
        "testdata": cell(random_pieces([5, 9], seed=3)),
    })
    return path


@pytest.fixture
def jsb_copy(polyphonic_dir, tmp_path):
    """A folder holding a copy of JSB_Chorales.mat (to see which file a run reads)."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    shutil.copy(polyphonic_dir / "JSB_Chorales.mat", folder)
    return folder


def test_tiny_jsb_run_leaves_a_checkpoint_that_generate_and_evaluate_read(
        jsb_copy, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUNESMITH_BENCHMARKS", str(jsb_copy))
    run = tmp_path / "run"
    assert run_cli(["bench", "nll", "--data", "jsb", "--model", "lstm", "--set", "hidden=8",
                    "--epochs", "1", "--batch-size", "64", "--threads", "1",
                    "--out", run]) == 0
    result = json.loads((run / "bench.json").read_text())
    meta = read_json(run / "config.json")
    # a normal checkpoint recording its data: the file $TUNESMITH_BENCHMARKS pointed at
    assert meta["corpus"]["corpus"] == "jsb"
    assert meta["corpus"]["path"] == str((jsb_copy / "JSB_Chorales.mat").resolve())
    info = DataInfo.read(meta["data_info"])
    assert (info.n_tracks, info.n_pitches, info.pitch_low) == (1, 88, 21)
    assert meta["split"]["method"] == "published"
    assert meta["split"]["counts"] == {"train": 229, "valid": 76, "test": 77}
    assert meta["benchmark"]["test_nll"] == result["test_nll"]
    assert result["benchmark"] == "JSB_Chorales" and result["epochs"] == 1
    assert result["stop_reason"] == "max_epochs" and result["best_epoch"] == 1
    # the trainer's validation loss (float32 sums) is the protocol's valid figure
    assert result["history"][0]["valid_nll"] == pytest.approx(result["valid_nll"], rel=1e-5)

    # evaluate's scoring of the checkpoint gives the benchmark run's test NLL
    assert checkpoint_nll(run)["value"] == pytest.approx(result["test_nll"], rel=1e-6)
    held_out = held_out_nll(run, "jsb")  # what `tunesmith evaluate --reference jsb` reports
    assert held_out["value"] == pytest.approx(result["test_nll"], rel=1e-6)
    assert "frames 2..T of 77 test pieces" in held_out["note"]

    # generate samples from it and writes MIDI on the benchmark's grid, warning that the
    # first frame was never trained (frames 2..T only)
    capsys.readouterr()
    assert run_cli(["generate", "--checkpoint", run, "--n", "2", "--bars", "2", "--seed", "0",
                    "--out", tmp_path / "samples", "--no-wav", "--no-png"]) == 0
    assert "never learned how a piece opens" in " ".join(capsys.readouterr().err.split())
    midis = sorted((tmp_path / "samples").glob("*.mid"))
    assert len(midis) == 2
    score = load(midis[0])
    assert len(score.tracks) <= 1  # one piano track (none if nothing sounded)
    assert all(21 <= note.pitch <= 108 for track in score.tracks for note in track.notes)


def test_result_json_keeps_its_fields_and_the_valid_figure_weights_frames(tiny_mat, tmp_path):
    out = tmp_path / "results" / "tiny.json"
    result = bench_nll("lstm", str(tiny_mat), {"hidden": 4}, tmp_path / "run", epochs=3,
                       early_stopping_patience=5, batch_size=1, lr=1e-2, transpose=[-2, 2],
                       json_out=out, **QUIET)
    written = json.loads(out.read_text())
    assert written == json.loads((tmp_path / "run" / "bench.json").read_text())
    for key in ("model", "data", "benchmark", "test_nll", "valid_nll", "best_epoch", "epochs",
                "stop_reason", "parameters", "train_minutes", "wall_minutes", "config",
                "options", "training", "machine", "command", "history"):
        assert key in written, key  # what benchmarks/nll.py and docs read
    assert written["test_nll"] == pytest.approx(result["test_nll"])
    assert written["epochs"] == 3 and len(written["history"]) == 3
    assert written["training"]["transpose_augment"] == [-2, 2]
    assert written["parameters"] == 4 * 4 * (88 + 4 + 2) + 4 * 88 + 88
    assert math.isfinite(written["test_nll"]) and 0 < written["test_nll"] < 88 * math.log(2) * 2
    # valid pieces of 6 and 4 frames, one a batch: the epoch's figure is Σ NLL / (5 + 3)
    # frames, not the mean of the two batches' figures
    best = written["history"][written["best_epoch"] - 1]
    assert best["valid_nll"] == pytest.approx(written["valid_nll"], rel=1e-5)
    assert written["valid_nll"] == pytest.approx(
        min(h["valid_nll"] for h in written["history"]), rel=1e-5)


def test_train_first_frame_learns_the_opening_and_keeps_the_protocol_figures(tmp_path):
    # every training piece opens on the same chord; without the first frame in the loss
    # the model never learns it, with it the chord's log-probability rises; the figures
    # (valid in training, test at the end) stay frames 2..T
    chord = [40, 44, 47]
    pieces = random_pieces([6, 8, 5, 7, 6, 8], seed=5)
    for piece in pieces:
        piece[0] = 0
        piece[0, chord] = 1
    array = np.empty((1, len(pieces)), dtype=object)
    for i, piece in enumerate(pieces):
        array[0, i] = piece.astype(np.float64)
    mat = tmp_path / "openings.mat"
    scipy.io.savemat(mat, {"traindata": array, "validdata": array, "testdata": array})
    opening_nll = {}
    for first in (False, True):
        run = tmp_path / f"first-{first}"
        result = bench_nll("lstm", str(mat), {"hidden": 8}, run, epochs=30, batch_size=2,
                           lr=2e-2, early_stopping_patience=0, train_first_frame=first,
                           **QUIET)
        model, _ = load_checkpoint(run)
        frames = torch.as_tensor(pieces[0][None], dtype=torch.float32)
        with torch.no_grad():
            log_p = model.frame_log_prob(frames, torch.ones(1, len(pieces[0]), dtype=bool))
        opening_nll[first] = -log_p[0, 0].item()
        # an unprimed sample of the protocol-only checkpoint comes with a warning
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            generate_from_checkpoint(run, n=1, bars=1, out_dir=tmp_path / f"s-{first}",
                                     wav=False, png=False, seed=0)
        warned = [w for w in caught if w.category is UnlearnedOpeningWarning]
        assert len(warned) == (0 if first else 1)
        if not first:
            assert "--prime" in str(warned[0].message)
        assert result["valid_nll"] == pytest.approx(
            checkpoint_nll(run, split="valid")["value"], rel=1e-5)
    assert opening_nll[True] < 0.5 * opening_nll[False]
    with pytest.raises(ConfigError, match="whole pieces"):
        bench_nll("lstm", str(mat), {"hidden": 8}, tmp_path / "windows", epochs=1, window=4,
                  train_first_frame=True, **QUIET)


class InterruptAt(pl.Callback):
    """Ctrl-C as the given epoch begins."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt


def test_ctrl_c_then_resume_goes_through_the_trainer_and_ends_as_an_uninterrupted_run(
        tiny_mat, tmp_path, capsys):
    # --preset auto (a small TCN here), its epochs and batch given by hand
    settings = dict(epochs=4, batch_size=2, lr=1e-2, transpose=[-1, 1], preset="auto", **QUIET)
    full = bench_nll(None, str(tiny_mat), None, tmp_path / "full", **settings)
    try:
        with pytest.raises(SystemExit):  # Lightning saves last/, then exits 1
            bench_nll(None, str(tiny_mat), None, tmp_path / "cut", callbacks=[InterruptAt(2)],
                      command="tunesmith bench nll --data tiny.mat", **settings)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores it after
    assert "bench nll --resume --out" in capsys.readouterr().err
    assert not (tmp_path / "cut" / "bench.json").exists()
    assert read_json(tmp_path / "cut" / "last" / "trainer_state.json")["epochs_done"] == 2
    resumed = bench_nll(None, None, None, tmp_path / "cut", resume=True,
                        command="tunesmith bench nll --resume", **QUIET)
    assert resumed["test_nll"] == full["test_nll"]
    assert resumed["valid_nll"] == full["valid_nll"]
    assert resumed["history"] == full["history"]
    # the result still says how the run began: its command and the preset's choice
    assert resumed["command"] == ("tunesmith bench nll --data tiny.mat "
                                  "(resumed: tunesmith bench nll --resume)")
    assert full["preset"]["model"] == "tcn"
    assert resumed["preset"] == full["preset"]


def test_one_locator_for_benchmark_files(jsb_copy, polyphonic_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_BENCHMARKS", str(jsb_copy))
    assert benchmark_data("jsb")["path"] == str((jsb_copy / "JSB_Chorales.mat").resolve())
    assert benchmark_data("jsb", polyphonic_dir)["path"] == \
        str((polyphonic_dir / "JSB_Chorales.mat").resolve())  # --path wins
    assert benchmark_data("JSB", jsb_copy / "JSB_Chorales.mat")["corpus"] == "jsb"
    monkeypatch.delenv("TUNESMITH_BENCHMARKS")
    with pytest.raises(ConfigError, match=r"cannot find JSB_Chorales\.mat"):
        benchmark_data("jsb", tmp_path)
    with pytest.raises(ConfigError, match=r"cannot find missing\.mat"):
        benchmark_data(str(tmp_path / "missing.mat"))
    with pytest.raises(ConfigError, match=r"jsb, nottingham or a \.mat file"):
        benchmark_data("bach-chorales")


def test_bad_inputs_are_one_line_errors(tiny_mat, tmp_path, capsys):
    with pytest.raises(ConfigError, match="transpose"):
        parse_transpose("up")
    assert run_cli(["bench", "nll", "--data", "jsb", "--transpose", "up"]) == 2
    assert "--transpose expects LOW..HIGH" in capsys.readouterr().err
    assert run_cli(["bench", "nll", "--data", tiny_mat, "--out", tmp_path / "r.json"]) == 2
    assert "--json" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="piano-roll"):
        bench_nll("gpt-events", str(tiny_mat), None, tmp_path / "gpt", **QUIET)
    with pytest.raises(ConfigError, match="fixes objective"):
        bench_nll("lstm", str(tiny_mat), None, tmp_path / "x", objective="loss", **QUIET)


def test_cli_bench_nll_writes_run_folder_and_json(tiny_mat, tmp_path):
    out = tmp_path / "cli.json"
    assert run_cli(["bench", "nll", "--data", tiny_mat, "--model", "lstm", "--set", "hidden=3",
                    "--set", "head=nade", "--epochs", "1", "--transpose", "-1..1",
                    "--threads", "1", "--out", tmp_path / "run", "--json", out]) == 0
    written = json.loads(out.read_text())
    assert written["config"]["head"] == "nade" and written["config"]["hidden"] == 3
    assert written["command"].startswith("tunesmith ")
    model, meta = load_checkpoint(tmp_path / "run")
    assert meta["training"]["settings"]["objective"] == "frame_nll"
    assert model.config.keys == 88


def test_cli_set_routes_train_settings_and_model_options(tiny_mat, tmp_path, capsys):
    assert split_set_options({"hidden": 3, "model.head": "nade", "train.ema_decay": 0.9}) == \
        ({"hidden": 3, "head": "nade"}, {"ema_decay": 0.9})
    with pytest.raises(ConfigError, match="unknown training setting 'emma'"):
        split_set_options({"train.emma": 0.9})
    with pytest.raises(ConfigError, match="model option"):
        split_set_options({"data.x": 1})
    out = tmp_path / "cli.json"
    assert run_cli(["bench", "nll", "--data", tiny_mat, "--model", "tcn", "--set", "levels=1",
                    "--set", "model.head=nade", "--set", "model.nade_dropout=0.2",
                    "--set", "model.nade_order_agnostic=true", "--set", "model.nade_orderings=2",
                    "--set", "train.ema_decay=0.9", "--epochs", "2", "--batch-size", "2",
                    "--threads", "1", "--out", tmp_path / "run", "--json", out]) == 0
    written = json.loads(out.read_text())
    assert written["training"]["ema_decay"] == 0.9 and written["training"]["swa_start"] == 0
    assert written["config"]["nade_orderings"] == 2 and written["config"]["nade_dropout"] == 0.2
    model, _ = load_checkpoint(tmp_path / "run")
    assert model.head.orderings.shape[0] == 2
    # the checkpoint is the averaged model: rescoring it gives the reported figure
    assert checkpoint_nll(tmp_path / "run", "test")["value"] == pytest.approx(
        written["test_nll"], rel=1e-6)
    assert run_cli(["bench", "nll", "--data", tiny_mat, "--model", "tcn", "--epochs", "1",
                    "--set", "train.epochs=2", "--out", tmp_path / "r2"]) == 2
    assert "repeats an option given by its flag" in capsys.readouterr().err


def test_seeds_runs_each_seed_and_reports_mean_spread_and_each_run(tiny_mat, tmp_path):
    settings = dict(epochs=2, batch_size=2, lr=1e-2, seed=3, **QUIET)
    out = tmp_path / "seeds"
    result = bench_nll_seeds("lstm", str(tiny_mat), {"hidden": 4}, out, seeds=2,
                             json_out=tmp_path / "seeds.json", **settings)
    runs = [json.loads((out / f"seed-{k}" / "bench.json").read_text()) for k in (3, 4)]
    assert [r["training"]["seed"] for r in runs] == [3, 4]
    tests = [r["test_nll"] for r in runs]
    assert tests[0] != tests[1]  # different seeds, different runs
    assert result["test_nll"] == pytest.approx(sum(tests) / 2)
    assert result["test_nll_std"] == pytest.approx(abs(tests[0] - tests[1]) / math.sqrt(2))
    assert result["test_nll_range"] == [min(tests), max(tests)]
    assert result["valid_nll"] == pytest.approx((runs[0]["valid_nll"] + runs[1]["valid_nll"]) / 2)
    assert [row["test_nll"] for row in result["seeds"]] == tests
    assert json.loads((tmp_path / "seeds.json").read_text()) == \
        json.loads((out / "seeds.json").read_text())
    # the same command again reads the finished runs instead of training them again
    stamp = (out / "seed-3" / "model.safetensors").stat().st_mtime_ns
    again = bench_nll_seeds("lstm", str(tiny_mat), {"hidden": 4}, out, seeds=2, **settings)
    assert again["test_nll"] == result["test_nll"]
    assert (out / "seed-3" / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="seeds must be >= 1"):
        bench_nll_seeds("lstm", str(tiny_mat), {"hidden": 4}, out, seeds=0, **settings)


def test_cli_seeds_prints_each_run_and_the_mean(tiny_mat, tmp_path, capsys):
    assert run_cli(["bench", "nll", "--data", str(tiny_mat), "--model", "lstm", "--set",
                    "hidden=4", "--epochs", "1", "--batch-size", "4", "--threads", "1",
                    "--seeds", "2", "--out", tmp_path / "run"]) == 0
    shown = capsys.readouterr().out
    result = json.loads((tmp_path / "run" / "seeds.json").read_text())
    assert "mean ± sd" in shown and f"{result['test_nll']:.4f}" in shown
    assert [row["seed"] for row in result["seeds"]] == [0, 1]
