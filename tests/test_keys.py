from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from symusic import Note, Score, Track

from tunesmith.errors import ConfigError, RepresentationError
from tunesmith.music import load
from tunesmith.music.keys import (
    MAJOR_PROFILE,
    MINOR_PROFILE,
    Key,
    estimate_key,
    key_correlations,
    key_from_signature,
    normalize_key,
    pitch_class_histogram,
)
from tunesmith.music.transforms import transpose


def _melody(pitches, durations=None, drum=False):
    score = Score(480)
    track = Track("melody", 0, drum)
    time = 0
    for i, pitch in enumerate(pitches):
        duration = 480 if durations is None else durations[i]
        track.notes.append(Note(time, duration, pitch, 80))
        time += duration
    score.tracks.append(track)
    return score


C_MAJOR_SCALE = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60]
A_HARMONIC_MINOR = [57, 59, 60, 62, 64, 65, 68, 69, 68, 65, 64, 62, 60, 59, 57]


def test_pitch_class_histogram_weights_by_duration():
    score = _melody([60, 72, 67], durations=[480, 480, 960])
    histogram = pitch_class_histogram(score)
    assert histogram[0] == pytest.approx(0.5) and histogram[7] == pytest.approx(0.5)
    counts = pitch_class_histogram(score, weighted=False)
    assert counts[0] == pytest.approx(2 / 3) and counts[7] == pytest.approx(1 / 3)
    assert pitch_class_histogram(_melody([36, 38], drum=True)).sum() == 0  # drums ignored


def test_correlation_with_a_profile_is_one_on_its_own_key():
    correlations = key_correlations(np.roll(MAJOR_PROFILE, 7))
    assert correlations[0, 7] == pytest.approx(1.0)
    assert np.argmax(correlations.ravel()) == 7


def test_c_major_scale_and_its_transpositions():
    score = _melody(C_MAJOR_SCALE)
    key = estimate_key(score)
    assert (key.tonic, key.mode, key.name) == (0, "major", "C major")
    assert 0.5 < key.correlation <= 1
    up_a_fifth, _ = transpose(score, 7)
    assert estimate_key(up_a_fifth).name == "G major"
    for shift in range(-6, 6):
        assert estimate_key(transpose(score, shift)[0]).tonic == shift % 12


def test_a_harmonic_minor():
    key = estimate_key(_melody(A_HARMONIC_MINOR))
    assert (key.tonic, key.mode, key.name) == (9, "minor", "A minor")
    assert estimate_key(transpose(_melody(A_HARMONIC_MINOR), -2)[0]).name == "G minor"


def test_key_signatures_and_names():
    assert key_from_signature(1, 0) == Key(7, "major")
    assert key_from_signature(-2, 1) == Key(7, "minor")
    assert key_from_signature(-3, 0).name == "Eb major"
    assert Key(6, "major").sharps == 6 and Key(1, "major").sharps == -5
    assert Key(9, "minor").sharps == 0 and Key(4, "minor").sharps == 1
    assert str(Key(8, "minor")) == "G# minor"


def test_normalize_key_moves_by_the_smallest_shift():
    g_major, _ = transpose(_melody(C_MAJOR_SCALE), 7)
    normalised, shift = normalize_key(g_major)
    assert shift == 5  # G up a fourth to C (not down a fifth)
    assert [n.pitch for n in normalised.tracks[0].notes] == [p + 12 for p in C_MAJOR_SCALE]
    e_minor, _ = transpose(_melody(A_HARMONIC_MINOR), 7)
    normalised, shift = normalize_key(e_minor)
    assert shift == 5 and estimate_key(normalised).name == "A minor"
    f_sharp, _ = transpose(_melody(C_MAJOR_SCALE), 6)
    assert normalize_key(f_sharp)[1] == -6
    assert normalize_key(_melody(C_MAJOR_SCALE))[1] == 0


def test_no_pitched_notes_is_an_error():
    with pytest.raises(RepresentationError, match="no pitched notes"):
        estimate_key(_melody([36, 38], drum=True))


@pytest.fixture(scope="session")
def six_chorales(chorale_paths):
    from music21 import corpus

    paths = sorted(corpus.getComposer("bach"), key=str)[:6]
    return [(Path(p).name, load(p)) for p in paths]


def test_chorale_keys_agree_with_their_key_signatures(six_chorales):
    same_key, same_signature = 0, 0
    for _name, score in six_chorales:
        signature = score.key_signatures[0]
        written = key_from_signature(signature.key, signature.tonality)
        estimated = estimate_key(score)
        same_key += estimated == Key(written.tonic, written.mode, estimated.correlation)
        same_signature += estimated.sharps == written.sharps
    # measured: 5 of 6 exact; bwv102.7 is G dorian (written with two flats), estimated C minor
    assert same_key >= 5
    assert same_signature >= 5


def test_correlations_equal_numpy_pearson():
    rng = np.random.default_rng(0)
    histogram = rng.random(12)
    correlations = key_correlations(histogram)
    for mode, profile in enumerate((MAJOR_PROFILE, MINOR_PROFILE)):
        for tonic in range(12):
            expected = np.corrcoef(histogram, np.roll(profile, tonic))[0, 1]
            assert correlations[mode, tonic] == pytest.approx(expected, abs=1e-12)
    assert np.isnan(key_correlations(np.ones(12))).all()


def test_note_key_and_chord_names_share_one_reading():
    from tunesmith.music.chords import TRIADS, Chord, parse_chord, parse_progression
    from tunesmith.music.keys import parse_key, pitch_class_of

    assert [pitch_class_of(n, a) for n, a in [("C", None), ("c", "#"), ("B", "♯"), ("C", "b"),
                                              ("e", "-"), ("G", "flat")]] == [0, 1, 0, 11, 3, 6]
    assert parse_key("Cb major") == Key(11, "major") and parse_key("d#m") == Key(3, "minor")
    assert parse_chord("F#m") == Chord(6, True) and parse_chord("Bb7") == Chord(10, False)
    assert parse_chord("G/B") == Chord(7, False) and parse_chord("N") is None
    assert parse_progression("C | Dm,E") == [Chord(0, False), Chord(2, True), Chord(4, False)]
    with pytest.raises(ConfigError, match="H7"):
        parse_chord("H7")
    with pytest.raises(ConfigError, match="empty"):
        parse_progression(" | ")
    assert TRIADS.shape == (24, 12) and (TRIADS.sum(1) == 3).all()
    assert np.flatnonzero(TRIADS[2 * 9 + 1]).tolist() == [0, 4, 9]  # A minor: A C E
