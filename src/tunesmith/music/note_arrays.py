"""Every note of many Scores as flat arrays, read from symusic in one call.

symusic's ``notes.numpy()`` costs a few microseconds per call whatever the number of
notes, so calling it per track of every file dominated data preparation on small MIDI
files. :func:`note_arrays` first appends every track's notes to one symusic list (a C++
copy), then converts that list once; each note keeps the index of its piece and track,
so per-piece statistics are one ``np.bincount`` over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from symusic import Score
from symusic.core import NoteTickList


@dataclass(frozen=True)
class NoteArrays:
    """The notes of ``n_pieces`` Scores (ticks), piece by piece, track by track.

    Within a track, notes keep symusic's order.
    """

    n_pieces: int
    tpq: np.ndarray  # (n_pieces,) int64 ticks per quarter note of each piece
    piece: np.ndarray  # (N,) int64 index of the note's piece
    track: np.ndarray  # (N,) int64 index of the note's track in its piece's ``tracks``
    drum: np.ndarray  # (N,) bool, the note's track is a drum track
    time: np.ndarray  # (N,) int64 onset tick
    duration: np.ndarray  # (N,) int64 ticks
    pitch: np.ndarray  # (N,) int64 MIDI pitch
    velocity: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.time)

    def select(self, keep: np.ndarray) -> NoteArrays:
        """The notes where ``keep`` (a (N,) bool mask) is True; pieces stay numbered."""
        return NoteArrays(
            self.n_pieces, self.tpq, self.piece[keep], self.track[keep], self.drum[keep],
            self.time[keep], self.duration[keep], self.pitch[keep], self.velocity[keep],
        )


def note_arrays(scores: Sequence[Score]) -> NoteArrays:
    """The notes of Scores in ticks, converted with one ``numpy()`` call for all of them."""
    notes = NoteTickList()
    per_track: list[tuple[int, int, bool, int]] = []  # (piece, track, drum, n notes)
    for p, score in enumerate(scores):
        for t, track in enumerate(score.tracks):
            track_notes = track.notes
            per_track.append((p, t, track.is_drum, len(track_notes)))
            notes.extend(track_notes)
    columns = notes.numpy()  # dict of (N,) arrays: time, duration (int32), pitch, velocity (int8)
    if per_track:
        piece, track, drum, counts = (np.array(c) for c in zip(*per_track, strict=True))
    else:
        piece = track = counts = np.zeros(0, np.int64)
        drum = np.zeros(0, bool)
    return NoteArrays(
        n_pieces=len(scores),
        tpq=np.array([score.ticks_per_quarter for score in scores], np.int64),
        piece=np.repeat(piece.astype(np.int64), counts),
        track=np.repeat(track.astype(np.int64), counts),
        drum=np.repeat(drum.astype(bool), counts),
        time=columns["time"].astype(np.int64),
        duration=columns["duration"].astype(np.int64),
        pitch=columns["pitch"].astype(np.int64),
        velocity=columns["velocity"].astype(np.int64),
    )
