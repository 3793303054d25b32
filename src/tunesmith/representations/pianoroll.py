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

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from symusic import Note, Score, Tempo, Track

from tunesmith.config import POSITIVE, DictConfig, Range, at_least
from tunesmith.errors import ConfigError, MusicFileError
from tunesmith.music.note_arrays import NoteArrays
from tunesmith.music.transforms import merge_tracks, pitched_tracks, select_tracks
from tunesmith.representations.adapter import (
    CorpusLayout,
    RepresentationAdapter,
    SummaryTable,
    one_by_one,
    pitch_label,
    register,
)
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

    ranges: ClassVar[dict[str, Range]] = {"resolution": at_least(1), "tempo": POSITIVE}

    def check(self) -> None:
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


# ----------------------------------------------------------------------------- adapter


def flatten_tracks(grid: np.ndarray) -> np.ndarray:
    """``(tracks, steps, pitches)`` -> ``(steps, tracks * pitches)``, track-major."""
    tracks, steps, pitches = grid.shape
    return np.ascontiguousarray(grid.transpose(1, 0, 2)).reshape(steps, tracks * pitches)


def unflatten_tracks(frames: np.ndarray, pitches: int) -> np.ndarray:
    """``(steps, tracks * pitches)`` -> ``(tracks, steps, pitches)``: :func:`flatten_tracks`
    undone."""
    return frames.reshape(frames.shape[0], -1, pitches).transpose(1, 0, 2)


@register
class PianorollAdapter(RepresentationAdapter):
    """Score <-> ``(steps, tracks * pitches)`` frames, track-major (a cache's ``data``),
    with ``(steps, tracks * pitches)`` onsets beside them when ``onset`` is set.

    Options: :class:`PianorollConfig`'s fields, plus ``merge_tracks`` (every pitched
    track on one; default True unless the corpus has a fixed track layout). With a
    corpus, unset track names and programs come from its layout (merged: one "Piano").
    """

    name = "pianoroll"
    onset_grid = True
    frames = True
    batch_key = "frames"
    resolution_option = "resolution"
    transposable = True

    def __init__(self, options: dict | None = None, corpus: CorpusLayout | None = None):
        options = dict(options or {})
        fixed = None if corpus is None else corpus.track_layout
        self.merge = options.pop("merge_tracks", fixed is None)
        if not isinstance(self.merge, bool):  # "False" or "maybe" would be truthy
            raise ConfigError(f"merge_tracks expects true or false, got {self.merge!r}")
        if corpus is not None:
            if not self.merge and fixed is None:
                raise ConfigError(
                    f"merge_tracks=false needs a corpus with a fixed set of tracks; "
                    f"{corpus.name} has pieces with different tracks"
                )
            if corpus.kind == "rolls":
                per_quarter = int(getattr(corpus, "steps_per_quarter", 1))  # rolls have one
                options.setdefault("resolution", per_quarter)
                if options["resolution"] % per_quarter:
                    raise ConfigError(
                        f"{corpus.name} has {per_quarter} frame(s) per quarter; "
                        f"resolution must be a multiple of it, got {options['resolution']}"
                    )
            if self.merge:
                options.setdefault("track_names", ["Piano"])
                options.setdefault("programs", [0])
            else:
                options.setdefault("track_names", list(fixed or ()))
                options.setdefault("programs", list(getattr(corpus, "track_programs", None) or ()))
            options.setdefault("is_drum", [False] * len(options["track_names"]))
        self.cfg = PianorollConfig.from_dict(options)
        self.n_tracks = len(self.cfg.track_names)

    def options(self) -> dict[str, Any]:
        return {**self.cfg.to_dict(), "merge_tracks": self.merge}

    def encode(self, score: Score) -> dict[str, np.ndarray]:
        """``{"data": (steps, tracks * pitches)}`` (+ ``"onsets"``) of the pitched tracks."""
        score = pitched_tracks(score)  # most files have no drums: no copy
        if not self.merge and len(score.tracks) != self.n_tracks:
            raise MusicFileError("", f"has {len(score.tracks)} tracks, expected {self.n_tracks}")
        frames, starts = encode_with_onsets(score, self.cfg, merge=self.merge)
        out = {"data": flatten_tracks(frames)}
        if self.cfg.onset:
            out["onsets"] = flatten_tracks(starts)
        return out

    def encode_many(self, scores: list, notes: NoteArrays) -> list[dict | Exception]:
        """:meth:`encode` of each score (``notes``: theirs); merged tracks in one pass."""
        if not self.merge:
            return one_by_one(self.encode, scores)
        frames, starts, steps = encode_merged_many(
            notes.select(~notes.drum), self.cfg, with_onsets=self.cfg.onset)
        bounds = np.concatenate([[0], np.cumsum(steps)]).tolist()
        out: list[dict | Exception] = []
        for start, end in itertools.pairwise(bounds):
            piece = {"data": frames[start:end]}  # (steps, 1 * pitches)
            if starts is not None:
                piece["onsets"] = starts[start:end]
            out.append(piece)
        return out

    def packs_bits(self) -> bool:
        """0/1 grids are stored 8 cells a byte."""
        return not self.cfg.velocity

    def encode_roll(self, roll: np.ndarray, steps_per_quarter: int,
                    lowest_pitch: int) -> dict[str, np.ndarray]:
        """A benchmark ``(frames, pitches)`` roll (column 0 = ``lowest_pitch``) on this grid."""
        repeat = self.cfg.resolution // steps_per_quarter
        roll = np.repeat(roll, repeat, axis=0) if repeat > 1 else roll
        grid = np.zeros((roll.shape[0], self.cfg.n_pitches), np.uint8)  # (steps, pitches)
        low = max(self.cfg.pitch_low, lowest_pitch)
        high = min(self.cfg.pitch_high, lowest_pitch + roll.shape[1] - 1)
        if low <= high:
            grid[:, low - self.cfg.pitch_low : high - self.cfg.pitch_low + 1] = roll[
                :, low - lowest_pitch : high - lowest_pitch + 1
            ]
        out = {"data": grid}
        if self.cfg.onset:  # the benchmark merges repeated notes: onsets where a cell turns on
            previous = np.concatenate([np.zeros((1, grid.shape[1]), np.uint8), grid[:-1]])
            out["onsets"] = ((grid > 0) & (previous == 0)).astype(np.uint8)
        return out

    def info(self, facts: list[dict] | None = None) -> DataInfo:
        return dataclasses.replace(info(self.cfg), repr_config=self.options())

    def decode(self, array: np.ndarray, with_onsets: bool = False) -> Score:
        """``(steps, tracks × pitches)`` frames (probabilities or 0/1) -> Score: a cell
        above 0.5 sounds. ``with_onsets``: ``(steps, 2K)`` frames ‖ onsets, and a note
        starts at each onset, so repeated notes stay repeated."""
        array = np.asarray(array)
        width = 2 * self.cfg.n_pitches if with_onsets else self.cfg.n_pitches
        if array.ndim != 2 or array.shape[1] % width:
            raise ConfigError(f"expected (steps, {'2 × ' if with_onsets else ''}tracks × "
                              f"{self.cfg.n_pitches}) frames, got {array.shape}")
        onsets = None
        if with_onsets:
            keys = array.shape[1] // 2
            array, starts = array[:, :keys], array[:, keys:]
            onsets = (unflatten_tracks(starts, self.cfg.n_pitches) > 0.5).astype(np.uint8)
        grid = unflatten_tracks(array, self.cfg.n_pitches)  # (tracks, T, P)
        return decode((grid > 0.5).astype(np.uint8), self.cfg, onsets=onsets)

    def primer(self, score: Score, where: str | Any = "", with_onsets: bool = False) -> np.ndarray:
        """The pitched tracks (merged unless the data kept its tracks, which must then
        be as many) as ``(steps, tracks · pitches)`` frames (``(steps, 2K)`` frames ‖
        onsets ``with_onsets``)."""
        score = select_tracks(score, drums=False)
        n_tracks = len(self.cfg.track_names) or 1
        if self.merge:
            score = merge_tracks(score, name=self.cfg.track_names[0] if self.cfg.track_names
                                 else "Piano")
        if len(score.tracks) != n_tracks:
            raise MusicFileError(where, f"has {len(score.tracks)} pitched tracks, the model "
                                        f"was trained on {n_tracks}")
        frames, starts = encode_with_onsets(score, self.cfg)  # (tracks, steps, pitches)
        if with_onsets:  # (steps, 2K): keys ‖ onsets
            return np.concatenate([flatten_tracks(frames), flatten_tracks(starts)], axis=1)
        return flatten_tracks(frames)

    # ---- what needs only a DataInfo ------------------------------------------------------
    @classmethod
    def draw_shift(cls, info: DataInfo, data: np.ndarray, shifts: tuple[int, int],
                   rng: np.random.Generator) -> int:
        low, high = shifts
        if (low, high) == (0, 0):
            return 0
        grid = data.reshape(len(data), info.n_tracks, info.n_pitches)  # (T, tracks, P)
        active = np.nonzero(grid.any(axis=(0, 1)))[0]
        if len(active):  # keep every note on the grid
            low = max(low, -int(active[0]))
            high = min(high, info.n_pitches - 1 - int(active[-1]))
        return int(rng.integers(low, high + 1)) if low <= high else 0

    @classmethod
    def shift(cls, info: DataInfo, data: np.ndarray, semitones: int) -> np.ndarray:
        if semitones == 0:
            return np.asarray(data)
        grid = data.reshape(len(data), info.n_tracks, info.n_pitches)  # (T, tracks, P)
        out = np.zeros_like(grid)
        if semitones > 0:
            out[:, :, semitones:] = grid[:, :, :-semitones]
        else:
            out[:, :, :semitones] = grid[:, :, -semitones:]
        return out.reshape(data.shape)

    @classmethod
    def pitch_class_counts(cls, info: DataInfo, piece: np.ndarray) -> np.ndarray | None:
        return pitch_class_counts(piece, info.n_pitches, info.pitch_low)

    @classmethod
    def outputs(cls, info: DataInfo) -> int:
        return info.keys

    @classmethod
    def seen_outputs(cls, info: DataInfo, pieces: Sequence, split: str) -> np.ndarray:
        sounding = np.zeros(info.keys, dtype=bool)
        for piece in pieces:
            if len(piece):
                sounding |= np.asarray(piece).reshape(len(piece), info.keys).any(axis=0)
        return sounding

    @classmethod
    def legacy_info(cls, old: dict, options: dict, fact: Callable[..., Any]) -> DataInfo:
        """Old piano-roll infos: ``n_tracks``/``tracks``, ``n_pitches``/``pitches``,
        ``pitch_low``/``lowest_pitch``, or only ``keys``."""
        low = int(fact("lowest pitch", ("pitch_low", "lowest_pitch"), ("pitch_low",)))
        n_pitches = fact("pitch count", ("n_pitches", "pitches"), required=False)
        high = int(low + int(n_pitches) - 1 if n_pitches is not None else
                   fact("highest pitch", ("pitch_high",), ("pitch_high",)))
        per_quarter = int(fact("steps_per_quarter", ("steps_per_quarter",),
                               ("resolution", "steps_per_quarter")))
        per_bar = int(fact("steps_per_bar", ("steps_per_bar",), required=False)
                      or 4 * per_quarter)  # 4/4: what every family assumed
        names = list(fact("track names", ("track_names",), ("track_names",), False) or [])
        n_tracks = fact("track count", ("n_tracks", "tracks"), required=False)
        if n_tracks is None and names:
            n_tracks = len(names)
        if n_tracks is None and old.get("keys") is not None:
            n_tracks = int(old["keys"]) // (high - low + 1)
        if n_tracks is None:
            raise ConfigError("old data info: no track count recorded")
        n_tracks = int(n_tracks)
        names = [str(n) for n in names[:n_tracks]]
        names += [f"Track {t + 1}" for t in range(len(names), n_tracks)]  # as decode() names
        programs = [int(p) for p in fact("programs", ("programs",), ("programs",), False) or []]
        drums = [bool(d) for d in fact("drum flags", (), ("is_drum",), False) or []]
        result = DataInfo(representation=cls.name, repr_config=options, pitch_low=low,
                          pitch_high=high, steps_per_quarter=per_quarter,
                          steps_per_bar=per_bar, track_names=tuple(names),
                          programs=tuple((programs + [0] * n_tracks)[:n_tracks]),
                          is_drum=tuple((drums + [False] * n_tracks)[:n_tracks]),
                          onsets=bool(fact("onset flag", ("onset",), ("onset",), False)))
        if old.get("keys") is not None and int(old["keys"]) != result.keys:
            raise ConfigError(f"old data info: keys {old['keys']} is not {result.n_tracks} "
                              f"tracks x {result.n_pitches} pitches")
        return result

    @classmethod
    def describe(cls, info: DataInfo, pieces: Sequence) -> list[str | SummaryTable]:
        """Each track's program, lowest and highest sounding pitch and sounding cells,
        and the grid."""
        n_tracks, n_pitches, low = info.n_tracks, info.n_pitches, info.pitch_low
        per_key = np.zeros(n_tracks * n_pitches, np.int64)  # sounding cells of each key
        for piece in pieces:  # one piece in memory at a time
            per_key += (piece > 0).sum(axis=0)
        sounding = per_key.reshape(n_tracks, n_pitches) > 0  # (tracks, P)
        cells = per_key.reshape(n_tracks, n_pitches).sum(1)
        rows: list[tuple[str, ...]] = []
        for t in range(n_tracks):
            pitches = np.nonzero(sounding[t])[0]
            rows.append((info.track_names[t], str(info.programs[t]),
                         pitch_label(low + pitches[0]) if len(pitches) else "-",
                         pitch_label(low + pitches[-1]) if len(pitches) else "-",
                         str(int(cells[t]))))
        table = SummaryTable("tracks", ("track", "program", "lowest pitch", "highest pitch",
                                        "sounding cells"), rows)
        return [table, f"grid: {info.steps_per_quarter} steps per quarter, "
                       f"{n_tracks} track(s) x {n_pitches} pitches = {info.keys} keys"]
