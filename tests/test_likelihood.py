"""The frame-level NLL protocol of the polyphonic benchmarks (tests/test_benchmark.py runs
it through the trainer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tunesmith.data.batching import length_batches
from tunesmith.models.likelihood import frame_nll, frame_nll_loss, score_split
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


def test_frame_nll_objective_is_the_mean_over_scored_frames_with_their_count():
    torch.manual_seed(0)
    model = FrameRNN(RNNConfig(keys=88, hidden=5))
    pieces = random_pieces([5, 3])
    batch = {"frames": torch.zeros(2, 5, 88), "mask": torch.zeros(2, 5, dtype=torch.bool)}
    for i, piece in enumerate(pieces):
        batch["frames"][i, : len(piece)] = torch.as_tensor(piece, dtype=torch.float32)
        batch["mask"][i, : len(piece)] = True
    out = frame_nll_loss(model.eval(), batch)
    assert out["count"] == 4 + 2
    assert out["loss"].item() == pytest.approx(score_split(model, pieces), rel=1e-6)


def test_first_frame_objective_adds_each_pieces_first_frame_to_the_protocol_frames():
    torch.manual_seed(0)
    model = FrameRNN(RNNConfig(keys=88, hidden=5)).eval()
    pieces = random_pieces([5, 3], seed=4)
    batch = {"frames": torch.zeros(2, 5, 88), "mask": torch.zeros(2, 5, dtype=torch.bool)}
    for i, piece in enumerate(pieces):
        batch["frames"][i, : len(piece)] = torch.as_tensor(piece, dtype=torch.float32)
        batch["mask"][i, : len(piece)] = True
    protocol = frame_nll_loss(model, batch)
    every = frame_nll_loss(model, batch, first_frame=True)
    assert every["count"] == 5 + 3 == protocol["count"] + 2
    first = model.frame_log_prob(batch["frames"], batch["mask"])[:, 0]  # log p(x_1), (2,)
    assert first.lt(0).all()  # a real term: what the protocol leaves out
    assert (every["loss"] * every["count"]).item() == pytest.approx(
        (protocol["loss"] * protocol["count"] - first.sum()).item(), rel=1e-6)


def test_length_batches_group_similar_lengths_and_shuffle_with_a_generator():
    lengths = [5, 50, 6, 49, 7, 48, 8, 47]
    assert length_batches(lengths, 2) == [[0, 2], [4, 6], [7, 5], [3, 1]]
    shuffled = length_batches(lengths, 2, np.random.default_rng(0))
    assert sorted(i for b in shuffled for i in b) == list(range(8))
    assert all(abs(lengths[a] - lengths[b]) <= 1 for a, b in shuffled)
    assert length_batches([], 4, np.random.default_rng(0)) == []
