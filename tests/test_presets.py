"""``bench nll --preset auto`` (issue 17, item 1): readable rules on the data, not names."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io

from cli_helpers import run_cli
from tunesmith.errors import ConfigError
from tunesmith.training.benchmark import bench_nll
from tunesmith.training.presets import auto_preset


def rolls(lengths, low=30, high=60, seed=0, shift_keys=False):
    """Pieces of chords in keys [low, high); with ``shift_keys`` piece i is a C-major
    scale pattern moved up i semitones (tonics spread evenly), else all in C."""
    rng = np.random.default_rng(seed)
    c_major = np.array([0, 2, 4, 5, 7, 9, 11])
    pieces = []
    for i, n in enumerate(lengths):
        roll = np.zeros((n, 88), dtype=np.uint8)
        shift = i % 12 if shift_keys else 0
        for t in range(n):
            pitches = 60 + shift + rng.choice(c_major, 3, replace=False) + 12 * rng.integers(-1, 1)
            keys = np.clip(pitches - 21, low, high - 1)
            roll[t, keys] = 1
            roll[t, 60 + shift - 21] = 1  # the tonic sounds throughout
        pieces.append(roll)
    return pieces


def test_short_small_corpus_gets_the_small_tcn_with_nade_over_its_keys():
    preset = auto_preset(rolls([40] * 10, low=30, high=60), cores=2)
    assert preset.model == "tcn"
    assert preset.options["head"] == "nade" and preset.options["levels"] == 2
    assert preset.options["dropout"] == 0.5
    assert "nade_low" not in preset.options  # the TCN's NADE head has no key range
    assert "transpose" not in preset.settings and "window" not in preset.settings
    assert preset.settings["max_time"] == 30  # the floor
    assert preset.options["input_dropout"] == 0.2 and preset.settings["swa_start"] == 40
    assert "ema_decay" not in preset.settings
    assert len(preset.reasons) == 10 and preset.reasons[0].startswith("R1")


def test_long_large_corpus_gets_the_large_transformer_and_windows_for_long_pieces():
    lengths = [200] * 300 + [3000]  # 63,000 frames, median 200, one piece over 2,048
    preset = auto_preset(rolls(lengths), cores=2)
    assert preset.model == "frame-transformer"
    assert (preset.options["d_model"], preset.options["n_layers"]) == (128, 3)
    assert preset.options["dropout"] == 0.2
    assert "input_dropout" not in preset.options and "swa_start" not in preset.settings
    assert preset.settings["ema_decay"] == 0.999
    assert preset.settings["window"] == 512
    assert (preset.options["nade_low"], preset.options["nade_high"]) == (27, 54)  # keys 30–50
    assert preset.settings["max_time"] == pytest.approx(30 * 63_000 / 15_000)
    # more cores, less time (within the bounds)
    assert auto_preset(rolls(lengths), cores=4).settings["max_time"] == \
        pytest.approx(preset.settings["max_time"] / 2)


def test_tonics_spread_evenly_turn_on_transposition():
    assert auto_preset(rolls([30] * 24, shift_keys=True), 2).settings["transpose"] == [-5, 6]
    assert "transpose" not in auto_preset(rolls([30] * 24), 2).settings


@pytest.fixture
def small_mat(tmp_path):
    def cell(pieces):
        array = np.empty((1, len(pieces)), dtype=object)
        for i, p in enumerate(pieces):
            array[0, i] = p.astype(np.float64)
        return array

    path = tmp_path / "Small.mat"
    scipy.io.savemat(path, {"traindata": cell(rolls([12, 10, 14], seed=1)),
                            "validdata": cell(rolls([9], seed=2)),
                            "testdata": cell(rolls([11], seed=3))})
    return path


def test_cli_without_model_or_options_runs_the_preset_and_records_it(small_mat, tmp_path):
    out = tmp_path / "run"
    assert run_cli(["bench", "nll", "--data", small_mat, "--epochs", "1", "--set",
                    "channels=8", "--preset", "auto", "--out", out]) == 0
    result = json.loads((out / "bench.json").read_text())
    assert result["model"] == "tcn" and result["config"]["head"] == "nade"
    assert result["config"]["channels"] == 8  # --set overrides the preset's options
    assert result["training"]["max_epochs"] == 1  # --epochs overrides the preset's 1,000
    assert result["training"]["swa_start"] == 40 and result["config"]["input_dropout"] == 0.2
    assert result["training"]["batch_size"] == 8 and result["training"]["clip"] == 0.4
    assert result["preset"]["model"] == "tcn" and len(result["preset"]["reasons"]) == 10


def test_preset_refuses_another_model(small_mat, tmp_path):
    with pytest.raises(ConfigError, match="--preset auto chooses tcn"):
        bench_nll("lstm", str(small_mat), {}, tmp_path / "r", preset="auto")
    with pytest.raises(ConfigError, match="auto or none"):
        bench_nll("lstm", str(small_mat), {}, tmp_path / "r", preset="fast")
