"""Plagiarism search: exact LCS (bit-parallel) and longest copied span on known overlaps."""

from __future__ import annotations

import numpy as np
import pytest
from symusic import Note, Score, Tempo, Track

from tunesmith.evaluation.plagiarism import (
    MAX_DELTA_STEPS,
    TrainingIndex,
    lcs_length,
    lcs_length_dp,
    note_events,
    search,
)


def encode(text: str) -> np.ndarray:
    return np.array([ord(c) for c in text], np.int64)


def brute_force_substring(a, b) -> int:
    best = 0
    for i in range(len(a)):
        for j in range(len(b)):
            k = 0
            while i + k < len(a) and j + k < len(b) and a[i + k] == b[j + k]:
                k += 1
            best = max(best, k)
    return best


def test_known_lcs():
    assert lcs_length(encode("ABCBDAB"), encode("BDCABA")) == 4  # Cormen et al.'s example
    assert lcs_length(encode("AGGTAB"), encode("GXTXAYB")) == 4  # GTAB
    assert lcs_length(encode("ABC"), encode("")) == 0
    assert lcs_length(encode(""), encode("ABC")) == 0
    assert lcs_length(encode("ABCDEF"), encode("ABCDEF")) == 6


def test_bit_parallel_equals_dynamic_programme():
    rng = np.random.default_rng(0)
    for _ in range(200):
        alphabet = int(rng.integers(1, 6))
        a = rng.integers(0, alphabet, rng.integers(0, 70))
        b = rng.integers(0, alphabet, rng.integers(0, 70))
        assert lcs_length(a, b) == lcs_length_dp(a.tolist(), b.tolist())


def test_packed_index_equals_pairwise_lcs():
    # many short fields side by side: a carry leaking across a guard bit would show here
    rng = np.random.default_rng(1)
    sequences = [rng.integers(0, 3, rng.integers(0, 40)) for _ in range(40)]
    index = TrainingIndex(sequences)
    for _ in range(10):
        query = rng.integers(0, 3, rng.integers(1, 60))
        expected = [lcs_length_dp(s.tolist(), query.tolist()) for s in sequences]
        assert index.lcs(query).tolist() == expected


def test_longest_copied_span_equals_brute_force():
    rng = np.random.default_rng(2)
    for _ in range(30):
        sequences = [rng.integers(0, 3, rng.integers(1, 30)) for _ in range(6)]
        query = rng.integers(0, 3, rng.integers(1, 30))
        length, piece = TrainingIndex(sequences).longest_copied_span(query)
        expected = max(brute_force_substring(s.tolist(), query.tolist()) for s in sequences)
        assert length == expected
        if length:
            assert brute_force_substring(sequences[piece].tolist(), query.tolist()) == length


def test_copied_span_inside_noise():
    training = [encode("the quick brown fox"), encode("jumps over the lazy dog")]
    length, piece = TrainingIndex(training).longest_copied_span(encode("xx lazy dozz"))
    assert (length, piece) == (len(" lazy do"), 1)


def test_note_events_code_pitch_and_onset_delta():
    score = Score(480)
    score.tempos.append(Tempo(0, 120))
    track = Track("p", 0, False)
    for time, pitch in [(0, 64), (0, 60), (480, 62), (480 + 120, 65), (480 * 10, 67)]:
        track.notes.append(Note(time, 240, pitch, 80))
    score.tracks.append(track)
    drums = Track("d", 0, True)
    drums.notes.append(Note(0, 10, 36, 80))
    score.tracks.append(drums)
    width = MAX_DELTA_STEPS + 1
    # chord sorted by pitch (delta 0), then +1 quarter = 12 steps, +1/4 = 3, capped at 48
    expected = [60 * width + 0, 64 * width + 0, 62 * width + 12, 65 * width + 3,
                67 * width + MAX_DELTA_STEPS]
    assert note_events(score).tolist() == expected


def test_search_flags_copies_only():
    rng = np.random.default_rng(3)
    training = [rng.integers(0, 200, 150) for _ in range(30)]
    index = TrainingIndex(training)
    names = [f"train{i}" for i in range(30)]
    copy = training[7].copy()
    partial = np.concatenate(
        [rng.integers(0, 200, 50), training[3][20:60], rng.integers(0, 200, 50)]
    )
    results = search({"copy": copy, "partial": partial, "fresh": rng.integers(0, 200, 150)},
                     index, names, lcs_threshold=0.8, span_threshold=32)
    by_name = {r.piece: r for r in results}
    assert by_name["copy"].lcs == 150 and by_name["copy"].lcs_ratio == 1.0
    assert by_name["copy"].lcs_match == "train7" and by_name["copy"].flagged
    assert by_name["partial"].copied_span >= 40 and by_name["partial"].copied_span_match == "train3"
    assert by_name["partial"].flagged and by_name["partial"].lcs_ratio < 0.8
    assert not by_name["fresh"].flagged
    assert by_name["fresh"].copied_span < 5


@pytest.mark.parametrize("empty", [np.zeros(0, np.int64)])
def test_search_handles_empty_piece(empty):
    index = TrainingIndex([encode("abc")])
    (result,) = search({"empty": empty}, index, ["t"])
    assert result.n_events == 0 and not result.flagged
