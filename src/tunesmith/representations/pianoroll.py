"""Multi-track piano-roll: a Score as a binary (or velocity) grid.

``encode(score, cfg)`` gives a ``(tracks, steps, pitches)`` uint8 array at
``cfg.resolution`` steps per quarter note, keeping pitches ``cfg.pitch_low`` to
``cfg.pitch_high`` inclusive (88 keys, MIDI 21-108, by default). A cell holds 1 where a
note sounds, or its velocity when ``cfg.velocity`` is set. ``onsets(score, cfg)`` gives
the same grid marking only the steps where notes start, which tells a held note from a
repeated one; ``decode(frames, cfg, onsets=...)`` turns grids back into a Score.

This is the representation of the polyphonic benchmarks (Boulanger-Lewandowski et al.,
ICML 2012), of MuseGAN (Dong et al., AAAI 2018) and of the piano-roll WaveNet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from symusic import Note, Score, Tempo, Track

from tunesmith.config import DictConfig
from tunesmith.errors import ConfigError
from tunesmith.music.note_arrays import NoteArrays
from tunesmith.representations.info import DataInfo


@dataclass
class PianorollConfig(DictConfig):
    """How a Score maps onto a grid."""

    config_name: ClassVar[str] = "pianoroll"

    resolution: int = 4  # steps per quarter note (4 = sixteenth notes)
    pitch_low: int = 21  # lowest MIDI pitch kept (A0)
    pitch_high: int = 108  # highest MIDI pitch kept (C8), inclusive
    velocity: bool = False  # store velocities instead of 1s
    onset: bool = False  # models also see an onset grid (held vs repeated notes)
    track_names: list[str] = field(default_factory=list)  # names for decode(), by track
    programs: list[int] = field(default_factory=list)  # GM programs for decode(), by track
    is_drum: list[bool] = field(default_factory=list)  # drum flags for decode(), by track
    tempo: float = 120.0  # quarter notes per minute written by decode()

    def __post_init__(self):
        if self.resolution < 1:
            raise ConfigError(f"resolution must be >= 1 step per quarter, got {self.resolution}")
        if not 0 <= self.pitch_low <= self.pitch_high <= 127:
            raise ConfigError(
                f"pitch range must satisfy 0 <= low <= high <= 127, "
                f"got {self.pitch_low}..{self.pitch_high}"
            )

    @property
    def n_pitches(self) -> int:
        return self.pitch_high - self.pitch_low + 1


def info(cfg: PianorollConfig) -> DataInfo:
    """What models need to know about grids encoded with ``cfg``: its tracks (one unnamed
    track when ``cfg`` names none), pitch range and resolution; bars are taken as 4/4."""
    names = list(cfg.track_names) or ["Track 1"]
    n_tracks = len(names)
    return DataInfo(
        representation="pianoroll",
        repr_config=cfg.to_dict(),
        pitch_low=cfg.pitch_low,
        pitch_high=cfg.pitch_high,
        steps_per_quarter=cfg.resolution,
        steps_per_bar=4 * cfg.resolution,
        track_names=tuple(str(n) for n in names),
        programs=tuple(int(p) for p in (list(cfg.programs) + [0] * n_tracks)[:n_tracks]),
        is_drum=tuple(bool(d) for d in (list(cfg.is_drum) + [False] * n_tracks)[:n_tracks]),
        onsets=cfg.onset,
    )



def _grid_span(time, duration, tpq, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) steps of notes: onset and offset rounded to the nearest step, and
    every note at least one step long. ``tpq`` is an int or a per-note array."""
    time = np.asarray(time, dtype=np.int64)
    start = np.round(time * resolution / tpq).astype(np.int64)
    end = np.round((time + duration) * resolution / tpq).astype(np.int64)
    np.maximum(end, start + 1, out=end)
    return start, end


def _note_cells(tracks, tpq: int, cfg: PianorollConfig, merge: bool = False):
    """Every note of ``tracks`` on the grid: (track, start, end, pitch index, velocity) arrays.

    Onsets and offsets are rounded to the nearest step and every note lasts at least one
    step; ``steps`` is the end of the last note (before dropping out-of-range pitches).
    """
    columns: list[tuple[np.ndarray, ...]] = []
    for index, track in enumerate(tracks):
        if not len(track.notes):
            continue
        notes = track.notes.numpy()  # dict of arrays: time, duration, pitch, velocity
        start, end = _grid_span(notes["time"], notes["duration"], tpq, cfg.resolution)
        columns.append((np.full(len(start), 0 if merge else index, np.int64), start, end,
                        notes["pitch"].astype(np.int64), notes["velocity"]))
    if not columns:
        empty = np.zeros(0, np.int64)
        return (empty,) * 5, 0
    if len(columns) == 1:  # most files: no concatenation
        track, start, end, pitch, velocity = columns[0]
    else:
        track, start, end, pitch, velocity = (np.concatenate(c) for c in zip(*columns,
                                                                             strict=True))
    steps = int(end.max())
    keep = (pitch >= cfg.pitch_low) & (pitch <= cfg.pitch_high)
    if keep.all():
        return (track, start, end, pitch - cfg.pitch_low, velocity), steps
    cells = (track[keep], start[keep], end[keep], pitch[keep] - cfg.pitch_low, velocity[keep])
    return cells, steps


def _fill(frames: np.ndarray, starts: np.ndarray | None, first_cell: np.ndarray,
          lengths: np.ndarray, stride: int, velocity: np.ndarray, cfg: PianorollConfig) -> None:
    """Mark notes on flat views of the grids: note i covers ``lengths[i]`` cells from
    ``first_cell[i]``, ``stride`` flat positions (one step) apart; its first cell in
    ``starts`` too, unless that is None."""
    # cell k of a note lies k steps (k * stride flat positions) after its first cell
    note_of_cell = np.repeat(np.arange(len(lengths)), lengths)
    step_in_note = np.arange(len(note_of_cell)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    cells = first_cell[note_of_cell] + step_in_note * stride
    if cfg.velocity:
        velocity = np.clip(velocity.astype(np.int64), 1, 127)
        np.maximum.at(frames.reshape(-1), cells, velocity[note_of_cell])
    else:
        frames.reshape(-1)[cells] = 1
    if starts is not None:
        starts.reshape(-1)[first_cell] = 1


def encode_with_onsets(
    score: Score, cfg: PianorollConfig, steps: int | None = None, merge: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Frames and onsets, each ``(tracks, steps, pitches)`` uint8, in one vectorised pass.

    Each note's cells are indexed at once (``np.repeat`` over note lengths), so the cost
    follows the notes, not the grid. ``merge`` puts every track on one (the union of
    their cells). Frames hold 1, or the loudest overlapping velocity with ``cfg.velocity``.
    """
    n_tracks = 1 if merge else len(score.tracks)
    (track, start, end, pitch, velocity), last = _note_cells(
        score.tracks, score.ticks_per_quarter, cfg, merge
    )
    steps = last if steps is None else steps
    frames = np.zeros((n_tracks, steps, cfg.n_pitches), np.uint8)  # (tracks, steps, pitches)
    starts = np.zeros_like(frames)
    if steps < last:  # cropping: drop notes that start after the end, cut the others
        inside = start < steps
        track, start, pitch = track[inside], start[inside], pitch[inside]
        end, velocity = np.minimum(end[inside], steps), velocity[inside]
    first_cell = (track * steps + start) * cfg.n_pitches + pitch  # flat index of each onset
    _fill(frames, starts, first_cell, end - start, cfg.n_pitches, velocity, cfg)
    return frames, starts


def encode_merged_many(
    notes: NoteArrays, cfg: PianorollConfig, with_onsets: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Every piece of a batch with all its tracks merged, the pieces stacked in time.

    Returns ``(frames, onsets, steps)``: frames and onsets ``(sum(steps), pitches)`` uint8
    (onsets None unless ``with_onsets``), and ``steps`` ``(pieces,)``, so that piece ``i``
    is rows ``o[i]:o[i+1]`` with ``o`` the cumulative sum of ``steps`` from 0. Piece ``i``
    equals ``encode_with_onsets(score_i, cfg, merge=True)`` (its single track), where
    ``score_i`` holds exactly the notes given (drop drum notes first if they are not
    wanted); a piece without notes has 0 steps. One vectorised pass for all pieces.
    """
    start, end = _grid_span(notes.time, notes.duration, notes.tpq[notes.piece], cfg.resolution)
    steps = np.zeros(notes.n_pieces, np.int64)  # (pieces,) end of each piece's last note
    np.maximum.at(steps, notes.piece, end)
    row0 = np.cumsum(steps) - steps  # (pieces,) first row of each piece
    frames = np.zeros((int(steps.sum()), cfg.n_pitches), np.uint8)  # (rows, pitches)
    starts = np.zeros(frames.shape, np.uint8) if with_onsets else None
    keep = (notes.pitch >= cfg.pitch_low) & (notes.pitch <= cfg.pitch_high)
    pitch, velocity = notes.pitch[keep] - cfg.pitch_low, notes.velocity[keep]
    start, end, row = start[keep], end[keep], row0[notes.piece[keep]]
    first_cell = (row + start) * cfg.n_pitches + pitch  # flat index of each onset
    _fill(frames, starts, first_cell, end - start, cfg.n_pitches, velocity, cfg)
    return frames, starts, steps


def pitch_class_counts(frames: np.ndarray, n_pitches: int, pitch_low: int) -> np.ndarray:
    """(12,) float64 sounding cells per pitch class of roll frames (T, tracks × pitches),
    track-major, pitch ``pitch_low + p`` at column ``track * n_pitches + p``: each cell
    weighs one step, so a note counts its duration (the roll's side of
    :func:`tunesmith.music.keys.pitch_class_histogram`)."""
    per_pitch = frames.reshape(len(frames), -1, n_pitches).sum(axis=(0, 1))  # (P,)
    classes = (np.arange(n_pitches) + pitch_low) % 12
    return np.bincount(classes, weights=per_pitch.astype(np.float64), minlength=12)


def n_steps(score: Score, resolution: int) -> int:
    """Number of grid steps needed to hold every note of the score."""
    cfg = PianorollConfig(resolution=resolution, pitch_low=0, pitch_high=127)
    return _note_cells(score.tracks, score.ticks_per_quarter, cfg)[1]


def encode(score: Score, cfg: PianorollConfig, steps: int | None = None) -> np.ndarray:
    """Score -> ``(tracks, steps, pitches)`` uint8 grid of sounding notes.

    Notes outside the pitch range are dropped (transpose first to keep them). ``steps``
    pads or crops the time axis; by default it fits the last note.
    """
    return encode_with_onsets(score, cfg, steps)[0]


def onsets(score: Score, cfg: PianorollConfig, steps: int | None = None) -> np.ndarray:
    """Score -> ``(tracks, steps, pitches)`` uint8 grid with 1 where a note starts."""
    return encode_with_onsets(score, cfg, steps)[1]


def decode(
    frames: np.ndarray,
    cfg: PianorollConfig,
    onsets: np.ndarray | None = None,
    tpq: int = 480,
    default_velocity: int = 80,
) -> Score:
    """``(tracks, steps, pitches)`` grid -> Score.

    A note is a run of nonzero cells in one pitch row; with an onset grid, a run is also
    split where an onset falls inside it (a repeated note). Without one, repeated notes
    merge into one held note, as in the benchmark piano-rolls. Accepts a 2-D
    ``(steps, pitches)`` grid as one track.
    """
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
        onsets = None if onsets is None else np.asarray(onsets)[None]
    if frames.ndim != 3 or frames.shape[2] != cfg.n_pitches:
        raise ConfigError(
            f"expected a (tracks, steps, {cfg.n_pitches}) piano-roll, got shape {frames.shape}"
        )
    ticks_per_step = tpq // cfg.resolution
    score = Score(tpq)
    score.tempos.append(Tempo(0, float(cfg.tempo)))
    n_tracks, steps, _ = frames.shape
    for t in range(n_tracks):
        name = cfg.track_names[t] if t < len(cfg.track_names) else f"Track {t + 1}"
        program = cfg.programs[t] if t < len(cfg.programs) else 0
        drum = cfg.is_drum[t] if t < len(cfg.is_drum) else False
        track = Track(name, int(program), bool(drum))
        active = frames[t] > 0  # (steps, pitches)
        # a note starts where a cell turns on, or where an onset falls on a sounding cell
        padded = np.concatenate([np.zeros((1, active.shape[1]), bool), active], axis=0)
        starts = active & ~padded[:-1]
        if onsets is not None:
            starts |= active & (np.asarray(onsets[t]) > 0)
        for p in np.nonzero(active.any(axis=0))[0]:
            column = active[:, p]
            start_steps = np.nonzero(starts[:, p])[0]
            for s in start_steps:
                e = s + 1
                while e < steps and column[e] and not starts[e, p]:
                    e += 1
                velocity = int(frames[t, s, p]) if cfg.velocity else default_velocity
                track.notes.append(
                    Note(int(s * ticks_per_step), int((e - s) * ticks_per_step),
                         int(p + cfg.pitch_low), velocity)
                )
        track.notes.sort(key=lambda n: (n.time, n.pitch))
        score.tracks.append(track)
    return score
