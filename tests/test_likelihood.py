"""The frame-level NLL protocol of the polyphonic benchmarks, and its training loop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F

from tunesmith.cli import main
from tunesmith.cli.bench import parse_assignments, parse_transpose
from tunesmith.errors import ConfigError, MusicFileError
from tunesmith.evaluation.likelihood import (
    benchmark_nll,
    frame_nll,
    resolve_benchmark,
    score_split,
    transpose_pieces,
)
from tunesmith.models.rnn import FrameRNN, RNNConfig


def test_frame_nll_skips_first_frame_and_padding():
    log_probs = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -5.0, -100.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    total, count = frame_nll(log_probs, mask)
    assert count == 3  # frames 2, 3 of piece 0 and frame 2 of piece 1
    assert total.item() == pytest.approx(2 + 3 + 5)


def constant_model(keys: int, bias: float) -> FrameRNN:
    """An LSTM whose head ignores the features: p(key on) = σ(bias) for every key."""
    model = FrameRNN(RNNConfig(keys=keys, hidden=3))
    with torch.no_grad():
        model.head.proj.weight.zero_()
        model.head.proj.bias.fill_(bias)
    return model


def test_score_split_equals_hand_computed_value():
    bias = -1.5
    piece = np.zeros((3, 88), dtype=np.uint8)
    piece[0, :10] = 1  # frame 1: not scored, so its 10 notes must not count
    piece[1, [40, 44, 47]] = 1  # 3 notes
    piece[2, [40]] = 1  # 1 note
    on, off = F.softplus(torch.tensor(-bias)).item(), F.softplus(torch.tensor(bias)).item()
    expected = ((3 * on + 85 * off) + (1 * on + 87 * off)) / 2  # nats per scored frame
    assert score_split(constant_model(88, bias), [piece]) == pytest.approx(expected, rel=1e-6)


def random_pieces(lengths, keys=88, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((n, keys)) < 0.05).astype(np.uint8) for n in lengths]


def test_padded_batches_score_like_one_piece_at_a_time():
    torch.manual_seed(0)
    model = FrameRNN(RNNConfig(keys=88, hidden=7, head="nade", nade_hidden=5))
    pieces = random_pieces([5, 12, 2, 9, 7])
    batched = score_split(model, pieces, batch_size=4)
    one_by_one = score_split(model, pieces, batch_size=1)
    assert batched == pytest.approx(one_by_one, rel=1e-6)
    # and the per-frame mean weights pieces by their scored frames
    per_piece = [score_split(model, [p], batch_size=1) for p in pieces]
    weights = [len(p) - 1 for p in pieces]
    assert batched == pytest.approx(np.average(per_piece, weights=weights), rel=1e-6)


def test_transpose_pieces_moves_notes_and_drops_those_off_the_keyboard():
    piece = np.zeros((2, 88), dtype=np.uint8)
    piece[0, [0, 40]] = 1
    piece[1, 87] = 1
    up, down = transpose_pieces([piece, piece], [2, -1])
    assert np.flatnonzero(up[0]).tolist() == [2, 42] and up[1].sum() == 0
    assert np.flatnonzero(down[0]).tolist() == [39] and np.flatnonzero(down[1]).tolist() == [86]


@pytest.fixture
def tiny_mat(tmp_path):
    def cell(pieces):
        array = np.empty((1, len(pieces)), dtype=object)
        for i, p in enumerate(pieces):
            array[0, i] = p.astype(np.float64)
        return array

    path = tmp_path / "tiny.mat"
    scipy.io.savemat(
        path,
        {
            "traindata": cell(random_pieces([6, 8, 5, 7], seed=1)),
            "validdata": cell(random_pieces([6, 4], seed=2)),
            "testdata": cell(random_pieces([5, 9], seed=3)),
        },
    )
    return path


def test_benchmark_restores_best_valid_weights_and_writes_json(tiny_mat, tmp_path):
    out = tmp_path / "result.json"
    result = benchmark_nll(
        "lstm", str(tiny_mat), {"hidden": 4}, max_epochs=3, patience=5, batch_size=2,
        lr=1e-2, transpose_augment=(-2, 2), out_json=out, threads=1, progress=False,
    )
    written = json.loads(out.read_text())
    assert written["test_nll"] == pytest.approx(result["test_nll"])
    assert written["epochs"] == 3 and len(written["history"]) == 3
    assert written["valid_nll"] == min(h["valid_nll"] for h in written["history"])
    assert written["training"]["transpose_augment"] == [-2, 2]
    assert written["parameters"] == 4 * 4 * (88 + 4 + 2) + 4 * 88 + 88
    assert math.isfinite(written["test_nll"]) and 0 < written["test_nll"] < 88 * math.log(2) * 2


def test_cli_bench_nll(tiny_mat, tmp_path, capsys):
    out = tmp_path / "cli.json"
    try:  # success may return or end in SystemExit(0), depending on the CLI's mode
        main(["bench", "nll", "--data", str(tiny_mat), "--model", "lstm", "--set", "hidden=3",
              "--set", "head=nade", "--epochs", "1", "--transpose", "-1..1", "--threads", "1",
              "--out", str(out)])
    except SystemExit as exit_info:
        assert exit_info.code in (0, None)
    written = json.loads(out.read_text())
    assert written["config"]["head"] == "nade" and written["config"]["hidden"] == 3
    assert written["command"].startswith("tunesmith ")


def test_bad_inputs_name_the_problem(tmp_path, capsys):
    assert resolve_benchmark("jsb").name == "JSB_Chorales.mat"
    with pytest.raises(MusicFileError, match="no such file"):
        benchmark_nll("lstm", str(tmp_path / "missing.mat"), max_epochs=1, progress=False)
    with pytest.raises(ConfigError, match="transpose"):
        parse_transpose("up")
    with pytest.raises(SystemExit) as exit_info:  # the CLI prints one line, exits 2
        main(["bench", "nll", "--data", "jsb", "--transpose", "up"])
    assert exit_info.value.code == 2
    assert "--transpose expects LOW..HIGH" in capsys.readouterr().err
    assert parse_assignments(["hidden=8", "head=nade", "dropout=0.5"]) == {
        "hidden": 8, "head": "nade", "dropout": 0.5,
    }


def test_ctrl_c_after_a_validated_epoch_tests_the_best_weights(tiny_mat, monkeypatch):
    import tunesmith.evaluation.likelihood as likelihood

    real_score_split, calls = likelihood.score_split, []

    def score_split_interrupted_in_epoch_2(model, pieces, batch_size=32):
        calls.append(len(pieces))
        if len(calls) == 2:  # the second validation: Ctrl-C during epoch 2
            raise KeyboardInterrupt
        return real_score_split(model, pieces, batch_size)

    monkeypatch.setattr(likelihood, "score_split", score_split_interrupted_in_epoch_2)
    result = benchmark_nll("lstm", str(tiny_mat), {"hidden": 4}, max_epochs=5, batch_size=2,
                           threads=1, progress=False)
    assert result["stop_reason"] == "interrupted"
    assert result["epochs"] == 1 and result["best_epoch"] == 1 and len(calls) == 3
    assert math.isfinite(result["test_nll"])

    def interrupted_at_once(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(likelihood, "score_split", interrupted_at_once)
    with pytest.raises(KeyboardInterrupt):  # nothing validated yet: nothing to test
        benchmark_nll("lstm", str(tiny_mat), {"hidden": 4}, max_epochs=5, batch_size=2,
                      threads=1, progress=False)
