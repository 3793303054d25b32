"""Classifier two-sample test: chance on real vs real, near certainty on real vs random."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tunesmith.evaluation import two_sample as T


@pytest.fixture(scope="module")
def chorale_rolls(polyphonic_dir) -> list[np.ndarray]:
    """The grid notes of the 229 Bach chorales of JSB Chorales' train split (the
    benchmark's piano-rolls, one frame per quarter note): a second a load, where parsing
    as many of music21's chorales takes a minute."""
    from tunesmith.data import get_corpus

    corpus = get_corpus("jsb", polyphonic_dir)
    return [T.roll_notes(corpus.load(s)) for s in corpus.sources()[0]
            if corpus.split(s) == "train"]


def random_rolls(rng: np.random.Generator, n: int, density: float) -> list[np.ndarray]:
    """Random piano-rolls: every (step, pitch) cell of 48-84 sounds with ``density``,
    one step at a time; 96-256 steps per piece."""
    pieces = []
    for _ in range(n):
        steps = int(rng.integers(96, 257))
        on = rng.random((steps, 37)) < density
        step, pitch = np.nonzero(on)
        pieces.append(np.stack([step, step + 1, pitch + 48], axis=1).astype(np.int32))
    return pieces


def test_two_halves_of_the_real_chorales_are_indistinguishable(chorale_rolls):
    assert len(chorale_rolls) == 229
    result = T.c2st(chorale_rolls[0::2], chorale_rolls[1::2], seed=0)
    assert result["windows"] == [300, 300] and min(result["pieces"]) >= 90
    assert 0.35 <= result["accuracy"] <= 0.65, result


def test_random_piano_rolls_are_told_from_chorales(chorale_rolls):
    # as many sounding cells per step as the chorales hold (about four voices)
    cells = np.mean([np.sum(r[:, 1] - r[:, 0]) / r[:, 1].max() for r in chorale_rolls])
    fake = random_rolls(np.random.default_rng(0), 30, cells / 37)
    result = T.c2st(chorale_rolls[:30], fake, seed=0)
    assert result["accuracy"] >= 0.95, result


def test_seeded_and_leaves_the_global_random_state_alone():
    rng = np.random.default_rng(1)
    a, b = random_rolls(rng, 8, 0.1), random_rolls(rng, 8, 0.12)
    state = torch.get_rng_state()
    first = T.c2st(a, b, max_windows=60, epochs=3, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    second = T.c2st(a, b, max_windows=60, epochs=3, seed=4)
    assert first["accuracy"] == second["accuracy"]
    assert first["fold_accuracies"] == second["fold_accuracies"]


def test_windows_of_a_built_piece():
    # one note C4 over steps 0-69 and E4 on steps 60-79 -> 80 steps: windows at 0 and 16
    notes = np.array([[0, 70, 60], [60, 80, 64]], np.int32)
    short = np.array([[0, 63, 60]], np.int32)  # 63 steps: no full window
    starts = T.window_starts([notes, short])
    np.testing.assert_array_equal(starts, [[0, 0], [0, 16]])
    rolls = T.window_rolls([notes, short], starts)
    assert rolls.shape == (2, 64, 128)
    assert rolls[0, :, 60].all() and rolls[0, 60:, 64].all() and rolls[0].sum() == 64 + 4
    assert rolls[1, :54, 60].all() and not rolls[1, 54:, 60].any()  # C4 ends at step 70
    assert rolls[1, 44:64, 64].all() and rolls[1].sum() == 54 + 20


def test_too_few_pieces_give_nan_with_the_reason():
    notes = np.array([[0, 128, 60]], np.int32)
    result = T.c2st([notes], [notes, notes, np.zeros((0, 3), np.int32)])
    assert math.isnan(result["accuracy"])
    assert result["pieces_too_short"] == [0, 1]
    assert "two pieces" in result["note"]


def test_null_upper_bound():
    # 0.5 + 1.645 * sqrt(1 / (4 * 100))
    assert T.null_upper(100) == pytest.approx(0.5 + 1.6448536 * 0.05, abs=1e-6)
    assert math.isnan(T.null_upper(0))
