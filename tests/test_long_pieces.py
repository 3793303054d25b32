"""Long pieces within memory (issue 17, item 2): scoring batches bounded in padded frames,
training on windows, and the reported figures still exact over whole pieces, for every
family ``bench nll`` runs (benchmarks/long_pieces.py measures 5,000-frame pieces)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch

from tunesmith.data.batching import length_batches
from tunesmith.data.polyphonic import load_polyphonic_mat
from tunesmith.models.likelihood import score_split
from tunesmith.models.rnn import FrameRNN, RNNConfig
from tunesmith.training.benchmark import bench_nll
from tunesmith.training.checkpoint import load_checkpoint, read_json

QUIET = dict(progress_bar=False, loggers=False, threads=1, print_table=False)


def test_frame_budget_bounds_every_batch_and_keeps_every_piece_once():
    lengths = [5, 300, 40, 41, 1000, 7, 120, 119, 60]
    for rng in (None, np.random.default_rng(0)):
        batches = length_batches(lengths, 4, rng=rng, max_frames=250)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        for batch in batches:
            longest = max(lengths[i] for i in batch)
            assert len(batch) <= 4
            assert len(batch) * longest <= 250 or len(batch) == 1  # too long: alone
        assert [1000] in [[lengths[i] for i in b] for b in batches]
    assert length_batches(lengths, 4) == length_batches(lengths, 4, max_frames=None)


def test_scoring_with_a_frame_budget_is_the_same_figure():
    torch.manual_seed(0)
    model = FrameRNN(RNNConfig(keys=88, hidden=8))
    rng = np.random.default_rng(1)
    pieces = [(rng.random((n, 88)) < 0.05).astype(np.uint8) for n in (30, 200, 15, 90, 31)]
    whole = score_split(model, pieces, batch_size=8, max_frames=None)
    budget = score_split(model, pieces, batch_size=8, max_frames=64)  # most pieces alone
    assert budget == pytest.approx(whole, rel=1e-6)


@pytest.fixture(scope="module")
def long_mat(tmp_path_factory):
    rng = np.random.default_rng(0)

    def cell(lengths):
        array = np.empty((1, len(lengths)), dtype=object)
        for i, n in enumerate(lengths):
            array[0, i] = (rng.random((n, 88)) < 0.04).astype(np.float64)
        return array

    path = tmp_path_factory.mktemp("long") / "Long.mat"
    scipy.io.savemat(path, {"traindata": cell([300, 260]), "validdata": cell([280]),
                            "testdata": cell([310, 40])})
    return path


@pytest.mark.parametrize("model_name, options", [
    ("lstm-nade", {"hidden": 8, "nade_hidden": 6}),
    ("tcn", {"channels": 8, "head": "nade", "nade_hidden": 6}),
    ("frame-transformer", {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32,
                           "head": "nade", "nade_hidden": 6}),
    ("biaxial", {"time_hidden": 6, "time_layers": 1, "note_hidden": 4, "note_layers": 1,
                 "active_low": 20, "active_high": 60}),
])
def test_window_training_then_exact_whole_piece_scores(long_mat, tmp_path, model_name,
                                                       options):
    run = tmp_path / "run"
    result = bench_nll(model_name, str(long_mat), options, run, epochs=1, batch_size=2,
                       window=32, **QUIET)
    assert result["training"]["window"] == 32
    assert read_json(run / "run.json")["settings"]["window"] == 32
    # the reported test figure is the whole-piece protocol's: every piece scored whole, alone
    model, _ = load_checkpoint(run)
    test = load_polyphonic_mat(long_mat)["test"]
    total = sum(score_split(model, [p], batch_size=1, max_frames=None) * (len(p) - 1)
                for p in test)
    assert result["test_nll"] == pytest.approx(total / sum(len(p) - 1 for p in test), rel=1e-6)
