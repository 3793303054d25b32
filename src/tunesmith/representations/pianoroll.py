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

from dataclasses import asdict, dataclass, field

import numpy as np
from symusic import Note, Score, Tempo, Track

from tunesmith.errors import ConfigError


@dataclass
class PianorollConfig:
    """How a Score maps onto a grid."""

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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PianorollConfig:
        return cls(**data)


def _note_steps(score: Score, resolution: int) -> list[tuple[np.ndarray, ...]]:
    """Per track: (start_step, end_step, pitch, velocity) arrays, quantised to the grid."""
    tpq = score.ticks_per_quarter
    out = []
    for track in score.tracks:
        arr = track.notes.numpy()  # dict of arrays: time, duration, pitch, velocity
        start = np.round(arr["time"].astype(np.int64) * resolution / tpq).astype(np.int64)
        end = np.round(
            (arr["time"].astype(np.int64) + arr["duration"]) * resolution / tpq
        ).astype(np.int64)
        end = np.maximum(end, start + 1)  # every note lasts at least one step
        out.append((start, end, arr["pitch"].astype(np.int64), arr["velocity"].astype(np.int64)))
    return out


def n_steps(score: Score, resolution: int) -> int:
    """Number of grid steps needed to hold every note of the score."""
    ends = [e.max() for _, e, _, _ in _note_steps(score, resolution) if len(e)]
    return int(max(ends)) if ends else 0


def encode(score: Score, cfg: PianorollConfig, steps: int | None = None) -> np.ndarray:
    """Score -> ``(tracks, steps, pitches)`` uint8 grid of sounding notes.

    Notes outside the pitch range are dropped (transpose first to keep them). ``steps``
    pads or crops the time axis; by default it fits the last note.
    """
    per_track = _note_steps(score, cfg.resolution)
    if steps is None:
        steps = max((int(e.max()) for _, e, _, _ in per_track if len(e)), default=0)
    grid = np.zeros((len(per_track), steps, cfg.n_pitches), dtype=np.uint8)
    for t, (start, end, pitch, velocity) in enumerate(per_track):
        keep = (pitch >= cfg.pitch_low) & (pitch <= cfg.pitch_high) & (start < steps)
        for s, e, p, v in zip(start[keep], np.minimum(end[keep], steps), pitch[keep],
                              velocity[keep], strict=True):
            value = max(1, min(127, int(v))) if cfg.velocity else 1
            row = grid[t, s:e, p - cfg.pitch_low]
            np.maximum(row, value, out=row)
    return grid


def onsets(score: Score, cfg: PianorollConfig, steps: int | None = None) -> np.ndarray:
    """Score -> ``(tracks, steps, pitches)`` uint8 grid with 1 where a note starts."""
    per_track = _note_steps(score, cfg.resolution)
    if steps is None:
        steps = max((int(e.max()) for _, e, _, _ in per_track if len(e)), default=0)
    grid = np.zeros((len(per_track), steps, cfg.n_pitches), dtype=np.uint8)
    for t, (start, _end, pitch, _velocity) in enumerate(per_track):
        keep = (pitch >= cfg.pitch_low) & (pitch <= cfg.pitch_high) & (start < steps)
        grid[t, start[keep], pitch[keep] - cfg.pitch_low] = 1
    return grid


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
