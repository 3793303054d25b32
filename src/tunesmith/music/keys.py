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

import re
from dataclasses import dataclass

import numpy as np
from symusic import Score

from tunesmith.errors import ConfigError, RepresentationError
from tunesmith.music.note_arrays import NoteArrays, note_arrays
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


#: 12-bin key profiles, tonic first. Aarden (2003) / Essen folk-song pitch-class
#: frequencies (what duration histograms of real music look like); Krumhansl & Kessler
#: (1982) probe-tone ratings. Values as in music21.analysis.discrete.
KEY_PROFILES = {
    "aarden": {
        "major": [17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587, 0.291248, 22.062,
                  0.145624, 8.15494, 0.232998, 4.95122],
        "minor": [18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494, 18.6161,
                  4.56621, 1.93186, 7.37619, 1.75623],
    },
    "krumhansl": {"major": MAJOR_PROFILE.tolist(), "minor": MINOR_PROFILE.tolist()},
    "scale": {  # the scale's pitch classes, equally weighted (natural minor)
        "major": [1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1],
        "minor": [1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0],
    },
}
_TONICS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_KEY_PATTERN = re.compile(
    r"^\s*([a-gA-G])\s*(#|♯|b|♭|-|sharp|flat)?\s*(major|minor|maj|min|m)?\s*$"
)


def pitch_class_of(letter: str, accidental: str | None = None) -> int:
    """The pitch class (0 = C ... 11 = B) of a note name: a letter A-G (either case) and
    an optional accidental: ``#``, ``♯``, ``sharp`` raise it; ``b``, ``♭``, ``-``,
    ``flat`` lower it."""
    shift = {"#": 1, "♯": 1, "sharp": 1, "b": -1, "♭": -1, "-": -1, "flat": -1}
    return (_TONICS[letter.lower()] + shift.get(accidental or "", 0)) % 12


def parse_key(name: str) -> Key:
    """A key name -> :class:`Key`: "C major", "F# minor", "Bb major", "E♭ minor",
    "a minor", "G" (major), "Dm".

    Raises:
        ConfigError: the name is not a key.
    """
    match = _KEY_PATTERN.match(name)
    if match is None:
        raise ConfigError(f"cannot read key {name!r}; expected e.g. 'C major', 'F# minor'")
    letter, accidental, mode = match.groups()
    tonic = pitch_class_of(letter, accidental)
    return Key(tonic, "minor" if mode in ("minor", "min", "m") else "major")


def key_profile(name: str, profile: str = "aarden") -> np.ndarray:
    """(12,) the key's pitch-class profile (C = bin 0), normalised to sum 1.

    ``name`` as :func:`parse_key` reads it. ``profile``: "aarden" (default; Aarden-Essen
    pitch-class frequencies, closest to the duration histograms models are trained on),
    "krumhansl" (Krumhansl-Kessler 1982 ratings) or "scale" (uniform over the scale's
    seven notes).
    """
    key = parse_key(name)
    if profile not in KEY_PROFILES:
        raise ConfigError(f"unknown key profile {profile!r}; available: {', '.join(KEY_PROFILES)}")
    histogram = np.roll(np.asarray(KEY_PROFILES[profile][key.mode], dtype=np.float64),
                        key.tonic)  # the tonic's weight moves to bin `tonic`
    return histogram / histogram.sum()


def key_from_signature(sharps: int, tonality: int) -> Key:
    """The Key of a MIDI key signature (``sharps`` -7..7, ``tonality`` 0 major, 1 minor)."""
    major_tonic = (7 * sharps) % 12
    if tonality:
        return Key((major_tonic + 9) % 12, "minor")
    return Key(major_tonic, "major")


def pitch_class_counts(notes: NoteArrays, weighted: bool = True,
                       min_duration: int = 0) -> np.ndarray:
    """(pieces, 12) float64 pitch-class weights of the pitched notes (drums left out) of
    every piece of a batch: each note's duration in ticks (at least ``min_duration``)
    when ``weighted``, else 1."""
    pitched = ~notes.drum
    bins = notes.piece[pitched] * 12 + notes.pitch[pitched] % 12
    weights = None
    if weighted:
        duration = notes.duration[pitched]
        if min_duration > 0:
            duration = np.maximum(duration, min_duration)
        weights = duration.astype(np.float64)
    counts = np.bincount(bins, weights=weights, minlength=12 * notes.n_pieces)
    return counts.astype(np.float64).reshape(notes.n_pieces, 12)  # (pieces, 12)


def pitch_class_histograms(notes: NoteArrays, weighted: bool = True,
                           min_duration: int = 0) -> np.ndarray:
    """(pieces, 12) :func:`pitch_class_counts` normalised: each row sums to 1, or is all
    zeros for a piece without pitched notes.

    Row ``i`` equals ``pitch_class_histogram(scores[i])`` exactly: the bins sum whole
    ticks (or counts), so adding them track by track or all at once gives the same floats.
    """
    histograms = pitch_class_counts(notes, weighted, min_duration)
    totals = histograms.sum(axis=1, keepdims=True)  # (pieces, 1)
    return np.divide(histograms, totals, out=histograms, where=totals > 0)


def pitch_class_histogram(score: Score, weighted: bool = True,
                          min_duration: int = 0) -> np.ndarray:
    """(12,) share of each pitch class in the piece's pitched notes (drums left out).

    ``weighted`` counts each note by its duration (ticks, at least ``min_duration``),
    otherwise once. Sums to 1; all zeros for a piece without pitched notes.
    """
    return pitch_class_histograms(note_arrays([score]), weighted, min_duration)[0]


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
    return keys_from_histograms(np.asarray(histogram, dtype=np.float64)[None])[0]


def keys_from_histograms(histograms: np.ndarray) -> list[Key | None]:
    """:func:`key_from_histogram` of each row of a (pieces, 12) array, in one pass.

    Every sum runs along a row of 12 (elementwise products, then ``sum``), never through
    a matrix product whose rounding could depend on the number of rows: a piece gets
    the same key, to the last bit of its correlation, alone or in a batch.
    """
    h = np.asarray(histograms, dtype=np.float64)  # (pieces, 12)
    h = h - h.mean(axis=1, keepdims=True)
    spread = (h * h).sum(axis=1)  # (pieces,) 0 for an empty or flat histogram
    profiles = _CENTRED_PROFILES.reshape(24, 12)  # [mode * 12 + tonic, pitch class]
    with np.errstate(invalid="ignore", divide="ignore"):  # flat rows give NaN, then None
        correlations = (h[:, None, :] * profiles).sum(axis=2) / (
            _PROFILE_NORMS.reshape(24) * np.sqrt(spread)[:, None]
        )  # (pieces, 24)
    best = correlations.argmax(axis=1)  # first maximum: major before minor, low tonic
    keys: list[Key | None] = []
    for row, index in enumerate(best.tolist()):
        if spread[row] == 0.0:  # empty or flat: no correlation is defined
            keys.append(None)
        else:
            mode, tonic = divmod(index, 12)
            keys.append(Key(tonic, MODES[mode], float(correlations[row, index])))
    return keys


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
