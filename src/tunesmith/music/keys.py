"""Key estimation and key normalisation.

The Krumhansl–Schmuckler algorithm (Krumhansl, *Cognitive Foundations of Musical
Pitch*, 1990, ch. 4): correlate the piece's duration-weighted pitch-class histogram
with the Krumhansl–Kessler probe-tone profiles (Krumhansl & Kessler, Psychological
Review 89(4), 1982) rotated to each of the 24 major and minor keys; the key with the
highest Pearson correlation wins.

``normalize_key`` transposes a piece to C major or A minor by the smallest shift, the
usual data augmentation's opposite (e.g. Boulanger-Lewandowski et al., ICML 2012, train
on key-normalised Nottingham and JSB).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from symusic import Score

from tunesmith.errors import RepresentationError
from tunesmith.music.transforms import transpose

#: Krumhansl–Kessler probe-tone ratings, index 0 = tonic (1982, Table 1).
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
MODES = ("major", "minor")


@dataclass(frozen=True)
class Key:
    """A key: tonic pitch class (0 = C ... 11 = B) and mode, with the fit's correlation."""

    tonic: int
    mode: str  # "major" | "minor"
    correlation: float = float("nan")  # Pearson r of the histogram with the key's profile

    @property
    def name(self) -> str:
        names = MAJOR_NAMES if self.mode == "major" else MINOR_NAMES
        return f"{names[self.tonic]} {self.mode}"

    @property
    def sharps(self) -> int:
        """Accidentals of the key signature, -5 (flats) to +6 (sharps)."""
        major_tonic = self.tonic if self.mode == "major" else (self.tonic + 3) % 12
        return (major_tonic * 7 + 5) % 12 - 5

    def __str__(self) -> str:
        return self.name


def key_from_signature(sharps: int, tonality: int) -> Key:
    """The Key of a MIDI key signature (``sharps`` -7..7, ``tonality`` 0 major, 1 minor)."""
    major_tonic = (7 * sharps) % 12
    if tonality:
        return Key((major_tonic + 9) % 12, "minor")
    return Key(major_tonic, "major")


def pitch_class_histogram(score: Score, weighted: bool = True) -> np.ndarray:
    """(12,) share of each pitch class in the piece's pitched notes (drums left out).

    ``weighted`` counts each note by its duration (ticks), otherwise once. Sums to 1;
    all zeros for a piece without pitched notes.
    """
    histogram = np.zeros(12, dtype=np.float64)
    for track in score.tracks:
        if track.is_drum or not len(track.notes):
            continue
        notes = track.notes.numpy()
        weights = notes["duration"].astype(np.float64) if weighted else None
        histogram += np.bincount(notes["pitch"].astype(np.int64) % 12, weights=weights,
                                 minlength=12)
    total = histogram.sum()
    return histogram / total if total > 0 else histogram


def key_correlations(histogram: np.ndarray) -> np.ndarray:
    """(2, 12) Pearson correlations of a histogram with each mode's profile on each tonic.

    Row 0 is major, row 1 minor; column t is the key whose tonic is pitch class t (one
    matrix product over the 24 rotated, centred profiles). NaN for a flat histogram.
    """
    histogram = np.asarray(histogram, dtype=np.float64)
    h = histogram - histogram.mean()
    with np.errstate(invalid="ignore", divide="ignore"):  # a flat histogram gives NaN
        return (_CENTRED_PROFILES @ h) / (_PROFILE_NORMS * np.sqrt(h @ h))


def _rotated_profiles() -> np.ndarray:
    """(2, 12, 12) profiles [mode, tonic, pitch class], each centred on its mean."""
    index = (np.arange(12)[None, :] - np.arange(12)[:, None]) % 12  # [tonic, pc] -> degree
    profiles = np.stack([MAJOR_PROFILE[index], MINOR_PROFILE[index]])
    return profiles - profiles.mean(axis=2, keepdims=True)


_CENTRED_PROFILES = _rotated_profiles()
_PROFILE_NORMS = np.sqrt((_CENTRED_PROFILES**2).sum(axis=2))  # (2, 12)


def key_from_histogram(histogram: np.ndarray) -> Key | None:
    """The Krumhansl–Schmuckler key of a (12,) pitch-class histogram, None if undefined.

    Ties go to major, then the lower tonic. Undefined: an empty or flat histogram.
    """
    h = np.asarray(histogram, dtype=np.float64)
    h = h - h.mean()
    spread = float(h @ h)
    if spread == 0.0:  # empty or flat: no correlation is defined
        return None
    correlations = (_CENTRED_PROFILES @ h) / (_PROFILE_NORMS * np.sqrt(spread))  # (2, 12)
    flat_index = int(correlations.argmax())  # first maximum: major before minor, low tonic
    mode, tonic = divmod(flat_index, 12)
    return Key(tonic, MODES[mode], float(correlations[mode, tonic]))


def estimate_key(score: Score, weighted: bool = True) -> Key:
    """The Krumhansl–Schmuckler key of a piece (ties go to major, then the lower tonic).

    Raises:
        RepresentationError: the piece has no pitched notes, or all its notes share one
            pitch class and duration pattern that gives no correlation.
    """
    histogram = pitch_class_histogram(score, weighted)
    if not histogram.any():
        raise RepresentationError("cannot estimate a key: the piece has no pitched notes")
    key = key_from_histogram(histogram)
    if key is None:
        raise RepresentationError("cannot estimate a key: flat pitch-class histogram")
    return key


def normalize_key(score: Score, key: Key | None = None) -> tuple[Score, int]:
    """Transpose a piece to C major (major keys) or A minor (minor keys).

    The shift is the smallest one, -6 to +5 semitones, so melodies move at most half an
    octave. ``key`` defaults to :func:`estimate_key`. Returns ``(score, semitones)``;
    notes pushed out of MIDI's 0-127 are dropped (see :func:`transpose`).
    """
    key = estimate_key(score) if key is None else key
    target = 0 if key.mode == "major" else 9
    shift = (target - key.tonic + 6) % 12 - 6
    transposed, _dropped = transpose(score, shift)
    return transposed, shift
