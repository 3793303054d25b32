"""Classifier two-sample test (C2ST) on four-bar piano-roll windows.

Lopez-Paz & Oquab, *Revisiting Classifier Two-Sample Tests*, ICLR 2017: train a
classifier to tell samples of P from samples of Q; its accuracy on held-out data is the
test statistic, 50 % when P = Q (the classifier can only guess) and near 100 % when the
two are easy to tell apart.

Here P is real music (the corpus's held-out test split) and Q generated pieces:

* a piece becomes a binary piano-roll of its non-drum notes on the sixteenth-note grid
  of :func:`tunesmith.evaluation.metrics.grid_spans`, all 128 MIDI pitches, tracks merged;
* windows of :data:`WINDOW_STEPS` = 64 steps (16 quarter notes: four bars of 4/4,
  whatever the piece's meter, so every window has the same size) start every
  :data:`HOP_STEPS` = 16 steps; a piece shorter than one window gives none;
* at most ``max_windows`` windows of each set are drawn (seeded), the same number from
  both, so chance is exactly 50 %;
* the classifier is a small 1-D CNN over time with the pitches as input channels
  (:class:`WindowClassifier`, ~9 k weights), trained with Adam on the binary
  cross-entropy;
* accuracy is k-fold cross-validated with the folds drawn **by piece**: windows of one
  piece overlap and share its key and texture, so a piece in both the training and the
  held-out folds would let the classifier recognise the piece instead of the set;
* the reported accuracy is the balanced accuracy (mean of the two classes' recalls) over
  every window, each predicted once by the fold model that did not see its piece.

Everything is seeded (window draw, folds, weights, batches) and runs inside
``torch.random.fork_rng``, so the process's own random state is left as it was.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from tunesmith.evaluation.metrics import ACTIVITY_STEPS_PER_QUARTER, NoteTable, grid_spans

WINDOW_STEPS = 64  # 16 quarter notes at 4 steps per quarter: four bars of 4/4
HOP_STEPS = 16  # one bar of 4/4 between window starts
N_PITCHES = 128


def roll_notes(score) -> np.ndarray:
    """``(K, 3)`` int32 ``(start step, end step, pitch)`` of the non-drum notes on the
    sixteenth-note grid: all a window needs, small enough to cache per piece."""
    t = NoteTable.of(score)
    start, end = grid_spans(t, ACTIVITY_STEPS_PER_QUARTER)
    keep = t.pitched()
    return np.stack([start[keep], end[keep], t.pitch[keep]], axis=1).astype(np.int32)


def window_starts(pieces: Sequence[np.ndarray], length: int = WINDOW_STEPS,
                  hop: int = HOP_STEPS) -> np.ndarray:
    """``(W, 2)`` ``(piece index, first step)`` of every full window of every piece."""
    rows = []
    for index, notes in enumerate(pieces):
        n_steps = int(notes[:, 1].max()) if len(notes) else 0
        starts = np.arange(0, n_steps - length + 1, hop)
        rows.append(np.stack([np.full(len(starts), index), starts], axis=1))
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 2), np.int64)


def piece_roll(notes: np.ndarray) -> np.ndarray:
    """``(steps, 128)`` bool piano-roll of one piece's :func:`roll_notes`."""
    n_steps = int(notes[:, 1].max()) if len(notes) else 0
    marks = np.zeros((n_steps + 1, N_PITCHES), np.int32)  # +1 at onsets, -1 at offsets
    np.add.at(marks, (notes[:, 0], notes[:, 2]), 1)
    np.add.at(marks, (notes[:, 1], notes[:, 2]), -1)
    return np.cumsum(marks, axis=0)[:-1] > 0


def window_rolls(pieces: Sequence[np.ndarray], starts: np.ndarray,
                 length: int = WINDOW_STEPS) -> np.ndarray:
    """``(W, length, 128)`` bool piano-rolls of the windows ``starts`` (from
    :func:`window_starts`): True where a pitch sounds on a step."""
    rolls = np.zeros((len(starts), length, N_PITCHES), bool)
    for index in np.unique(starts[:, 0]):
        roll = piece_roll(pieces[index])
        for row in np.nonzero(starts[:, 0] == index)[0]:
            rolls[row] = roll[starts[row, 1]:starts[row, 1] + length]
    return rolls


def _classifier():
    import torch
    from torch import nn

    class WindowClassifier(nn.Module):
        """Real-vs-generated logit of a ``(B, steps, 128)`` window: two strided 1-D
        convolutions over time (pitches as channels), then mean and max over time."""

        def __init__(self, channels: int = 16):
            super().__init__()
            self.conv = nn.Sequential(
                nn.Conv1d(N_PITCHES, channels, 4, stride=2), nn.ReLU(),  # (B, C, 31)
                nn.Conv1d(channels, channels, 4, stride=2), nn.ReLU(),  # (B, C, 14)
            )
            self.out = nn.Linear(2 * channels, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv(x.transpose(1, 2))  # (B, C, T')
            h = torch.cat([h.mean(2), h.amax(2)], dim=1)  # (B, 2C)
            return self.out(h)[:, 0]  # (B,)

    return WindowClassifier


def _folds_by_piece(pieces: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of each window: the pieces of one class shuffled and dealt round-robin."""
    unique = np.unique(pieces)
    fold_of_piece = np.empty(unique.max() + 1, np.int64)
    fold_of_piece[rng.permutation(unique)] = np.arange(len(unique)) % n_folds
    return fold_of_piece[pieces]


def c2st(
    real: Sequence[np.ndarray],
    generated: Sequence[np.ndarray],
    folds: int = 5,
    max_windows: int = 300,
    epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
) -> dict:
    """Cross-validated accuracy of telling ``real`` windows from ``generated`` ones.

    ``real`` and ``generated`` are lists of per-piece :func:`roll_notes` arrays. Returns
    ``accuracy`` (balanced, 0.5 = indistinguishable; NaN when a side has fewer than two
    pieces with a full window), ``fold_accuracies``, ``windows`` per side,
    ``pieces`` per side (those with at least one window drawn), ``pieces_too_short`` per
    side, ``folds``, ``seconds`` and a ``note`` when it could not run.
    """
    import torch
    from torch.nn.functional import binary_cross_entropy_with_logits

    begin = time.perf_counter()
    rng = np.random.default_rng(seed)
    sides = []
    for pieces in (real, generated):
        starts = window_starts(pieces)
        short = len(pieces) - len(np.unique(starts[:, 0]))
        sides.append((list(pieces), starts, short))
    n = min(len(sides[0][1]), len(sides[1][1]), max_windows)
    drawn = [starts[np.sort(rng.choice(len(starts), n, replace=False))] if n else starts[:0]
             for _, starts, _ in sides]
    n_pieces = [len(np.unique(d[:, 0])) for d in drawn]
    n_folds = min(folds, *n_pieces)
    result = {
        "accuracy": math.nan, "fold_accuracies": [], "windows": [n, n],
        "pieces": n_pieces, "pieces_too_short": [s[2] for s in sides], "folds": n_folds,
        "window_steps": WINDOW_STEPS, "hop_steps": HOP_STEPS, "seconds": 0.0, "note": "",
    }
    if n_folds < 2:
        result["note"] = (f"needs two pieces per side with a full {WINDOW_STEPS}-step window "
                          f"(have {n_pieces[0]} real, {n_pieces[1]} generated)")
        return result
    x = np.concatenate([window_rolls(sides[0][0], drawn[0]),
                        window_rolls(sides[1][0], drawn[1])])  # (2n, steps, 128)
    y = np.concatenate([np.ones(n), np.zeros(n)]).astype(np.float32)  # 1 = real
    fold = np.concatenate([_folds_by_piece(d[:, 0], n_folds, rng) for d in drawn])
    x_t, y_t = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    predicted = np.zeros(2 * n, bool)
    fold_accuracies = []
    with torch.random.fork_rng(devices=[]):
        for k in range(n_folds):
            torch.manual_seed(seed * 1000 + k)
            shuffle = torch.Generator().manual_seed(seed * 1000 + k)
            train = torch.from_numpy(np.nonzero(fold != k)[0])
            test = np.nonzero(fold == k)[0]
            model = _classifier()()
            optimiser = torch.optim.Adam(model.parameters(), learning_rate, weight_decay=1e-4)
            for _ in range(epochs):
                for batch in train[torch.randperm(len(train), generator=shuffle)].split(
                        batch_size):
                    loss = binary_cross_entropy_with_logits(model(x_t[batch]), y_t[batch])
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
            with torch.no_grad():
                predicted[test] = (model(x_t[test]) > 0).numpy()
            fold_accuracies.append(_balanced_accuracy(predicted[test], y[test] > 0))
    result["accuracy"] = _balanced_accuracy(predicted, y > 0)
    result["fold_accuracies"] = fold_accuracies
    result["seconds"] = time.perf_counter() - begin
    return result


def _balanced_accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean of the recall of each class present."""
    recalls = [float(np.mean(predicted[truth == c] == c)) for c in (True, False)
               if np.any(truth == c)]
    return float(np.mean(recalls)) if recalls else math.nan


def null_upper(n_pieces: int, level: float = 0.95) -> float:
    """One-sided ``level`` upper bound of the accuracy of a classifier that can only
    guess: ``0.5 + z·√(1/(4n))``, the normal approximation of Lopez-Paz & Oquab (§3)
    with ``n`` the number of **pieces** classified (windows of a piece are correlated,
    so counting windows would overstate the evidence)."""
    from statistics import NormalDist

    if n_pieces < 1:
        return math.nan
    return 0.5 + NormalDist().inv_cdf(level) * math.sqrt(1 / (4 * n_pieces))
