"""Chord symbols and triads, as pitch classes.

:func:`parse_chord` reads a lead-sheet symbol ("C", "F#m", "Bb7", "Cmaj7", "G/B", "N")
into its root pitch class and whether its triad is minor; :func:`parse_progression`
reads "C G Am F" (spaces, ``|`` or commas between); :data:`TRIADS` holds the 24 major
and minor triads as pitch-class masks, for matching a pitch-class histogram to a chord
(the chord condition of MidiNet, Yang, Chou & Yang, ISMIR 2017).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tunesmith.errors import ConfigError
from tunesmith.music.keys import pitch_class_of

#: symbols that mean "no chord"
NO_CHORD = ("N", "-", "N.C.", "NC")
_CHORD_RE = re.compile(
    r"^(?P<root>[A-G])(?P<accidental>[#b♯♭]?)(?P<quality>maj|min|m|-|dim|aug|sus[24]?|\+)?"
    r"(?P<extension>[0-9]*)(?:/[A-G][#b♯♭]?)?$"
)


@dataclass(frozen=True)
class Chord:
    """A triad: root pitch class (0 = C ... 11 = B) and whether it is minor."""

    root: int
    minor: bool


def parse_chord(symbol: str) -> Chord | None:
    """A chord symbol -> :class:`Chord`, None for no chord (:data:`NO_CHORD`).

    Roots C..B with ♯/♭ (``#``/``b``); ``m``, ``min``, ``-`` and ``dim`` count as minor
    (only major and minor triads are told apart); extensions (7, maj7, sus4, a /bass)
    keep the triad's quality.

    Raises:
        ConfigError: the symbol is not a chord.
    """
    text = symbol.strip()
    if text in NO_CHORD:
        return None
    match = _CHORD_RE.match(text)
    if match is None:
        raise ConfigError(
            f"cannot read chord {symbol!r}; write a root A-G with optional #/b and quality, "
            "e.g. C, F#m, Bb7, Am"
        )
    return Chord(pitch_class_of(match["root"], match["accidental"]),
                 match["quality"] in ("m", "min", "-", "dim"))


def parse_progression(text: str) -> list[Chord | None]:
    """"C G Am F" (spaces, ``|`` or commas between) -> one :func:`parse_chord` each.

    Raises:
        ConfigError: the progression is empty, or a symbol is not a chord.
    """
    symbols = [s for s in re.split(r"[\s|,]+", text.strip()) if s]
    if not symbols:
        raise ConfigError("the chord progression is empty")
    return [parse_chord(s) for s in symbols]


def _triads() -> np.ndarray:
    """(24, 12) pitch-class masks; row ``2 * root + minor`` holds root, third and fifth."""
    triads = np.zeros((24, 12))
    for root in range(12):
        for minor, third in ((0, 4), (1, 3)):
            triads[2 * root + minor, [root, (root + third) % 12, (root + 7) % 12]] = 1.0
    return triads


#: (24, 12) the major and minor triads, row ``2 * root + minor`` (root, third, fifth = 1)
TRIADS = _triads()
