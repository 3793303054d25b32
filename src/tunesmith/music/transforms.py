"""Transforms of symbolic music: pure functions Score -> Score (no torch).

Every function returns a new :class:`symusic.Score` and leaves its input unchanged.
Times stay in the input's ticks (``score.ticks_per_quarter``).

* :func:`transpose` shifts pitches, dropping (and counting) notes pushed out of range;
* :func:`quantize` snaps note onsets and offsets to a grid of steps per quarter note;
* :func:`segment` cuts a piece into windows of N bars following its time signatures;
* :func:`select_tracks` / :func:`merge_tracks` choose or combine tracks;
* :func:`steps_per_bar`, :func:`bar_starts`, :func:`is_monophonic` answer questions the
  data layer and the representations ask.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

import numpy as np
from symusic import KeySignature, Note, Score, Tempo, TimeSignature, Track

from tunesmith.errors import ConfigError

__all__ = [
    "bar_starts",
    "is_monophonic",
    "merge_tracks",
    "quantize",
    "segment",
    "select_tracks",
    "steps_per_bar",
    "transpose",
]


# ----------------------------------------------------------------------------- helpers


def _arrays(track: Track) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A track's notes as int64 arrays (time, duration, pitch, velocity)."""
    notes = track.notes.numpy()
    return tuple(notes[key].astype(np.int64) for key in ("time", "duration", "pitch", "velocity"))


def _set_notes(track: Track, time, duration, pitch, velocity) -> None:
    """Replace a track's notes, sorted by (time, pitch)."""
    order = np.lexsort((pitch, time))
    track.notes = Note.from_numpy(
        np.ascontiguousarray(np.asarray(time)[order], dtype=np.int32),
        np.ascontiguousarray(np.asarray(duration)[order], dtype=np.int32),
        np.ascontiguousarray(np.asarray(pitch)[order], dtype=np.int8),
        np.ascontiguousarray(np.asarray(velocity)[order], dtype=np.int8),
    )


def _empty_like(score: Score) -> Score:
    """A Score with the same resolution and global marks (tempo, meter, key), no tracks."""
    out = score.copy()
    out.tracks = []
    return out


def _ticks_per_bar(numerator: int, denominator: int, tpq: int) -> Fraction:
    return Fraction(tpq * 4 * numerator, denominator)


# ----------------------------------------------------------------------------- transpose


def transpose(score: Score, semitones: int, low: int = 0, high: int = 127) -> tuple[Score, int]:
    """Shift every pitched note by ``semitones``; returns ``(score, n_dropped)``.

    Notes whose new pitch falls outside ``[low, high]`` are dropped and counted. Drum
    tracks are never transposed (their pitches name instruments) and never lose notes.
    Key signatures move around the circle of fifths with the music (an enharmonic
    choice between -5 and +6 accidentals), unless the shift is a whole number of octaves.
    """
    if not 0 <= low <= high <= 127:
        raise ConfigError(f"pitch range must satisfy 0 <= low <= high <= 127, got {low}..{high}")
    semitones = int(semitones)
    out = score.copy()
    dropped = 0
    for track in out.tracks:
        if track.is_drum or not len(track.notes):
            continue
        time, duration, pitch, velocity = _arrays(track)
        pitch = pitch + semitones
        keep = (pitch >= low) & (pitch <= high)
        dropped += int((~keep).sum())
        _set_notes(track, time[keep], duration[keep], pitch[keep], velocity[keep])
    if semitones % 12:
        out.key_signatures = [
            KeySignature(k.time, (k.key + 7 * semitones + 5) % 12 - 5, k.tonality)
            for k in score.key_signatures
        ]
    return out, dropped


# ----------------------------------------------------------------------------- quantize


def _to_grid(ticks: np.ndarray, tpq: int, steps_per_quarter: int) -> np.ndarray:
    """Nearest grid step of each tick (halves round to even, as numpy does)."""
    return np.round(ticks * steps_per_quarter / tpq).astype(np.int64)


def _step_ticks(steps: np.ndarray, tpq: int, steps_per_quarter: int) -> np.ndarray:
    """Tick of each grid step (exact when ``tpq`` is a multiple of ``steps_per_quarter``)."""
    return np.round(steps * tpq / steps_per_quarter).astype(np.int64)


def quantize(score: Score, steps_per_quarter: int) -> Score:
    """Snap note onsets and offsets to a grid of ``steps_per_quarter`` steps per quarter.

    Each note then lasts at least one step. Notes are never merged or dropped (two notes
    of one pitch may end up on the same onset). Tempo, meter and key marks are unchanged.
    """
    if steps_per_quarter < 1:
        raise ConfigError(f"steps_per_quarter must be >= 1, got {steps_per_quarter}")
    tpq = score.ticks_per_quarter
    out = score.copy()
    for track in out.tracks:
        if not len(track.notes):
            continue
        time, duration, pitch, velocity = _arrays(track)
        start = _to_grid(time, tpq, steps_per_quarter)
        end = np.maximum(_to_grid(time + duration, tpq, steps_per_quarter), start + 1)
        start_ticks = _step_ticks(start, tpq, steps_per_quarter)
        end_ticks = _step_ticks(end, tpq, steps_per_quarter)
        _set_notes(track, start_ticks, end_ticks - start_ticks, pitch, velocity)
    return out


# ----------------------------------------------------------------------------- bars


def _time_signatures(score: Score) -> list[tuple[int, int, int]]:
    """(time, numerator, denominator) in order, 4/4 at 0 when none is given at 0."""
    marks = sorted((int(t.time), int(t.numerator), int(t.denominator))
                   for t in score.time_signatures)
    if not marks or marks[0][0] > 0:
        marks.insert(0, (0, 4, 4))
    # of several marks at one tick, the last one wins
    return [m for i, m in enumerate(marks) if i + 1 == len(marks) or marks[i + 1][0] != m[0]]


def bar_starts(score: Score, end: int | None = None) -> list[int]:
    """Ticks where bars start, from 0 up to and including the first bar line >= ``end``.

    Follows the time signatures (4/4 when none); a time signature that falls inside a
    bar starts a new bar there. ``end`` defaults to the end of the last note.
    """
    tpq = score.ticks_per_quarter
    end = int(score.end()) if end is None else int(end)
    marks = _time_signatures(score)
    starts: list[int] = []
    for i, (time, numerator, denominator) in enumerate(marks):
        if numerator < 1 or denominator < 1:
            raise ConfigError(f"invalid time signature {numerator}/{denominator} at tick {time}")
        bar = _ticks_per_bar(numerator, denominator, tpq)
        next_mark = marks[i + 1][0] if i + 1 < len(marks) else None
        k = 0
        while True:
            tick = time + round(k * bar)
            if next_mark is not None and tick >= next_mark:
                break
            starts.append(tick)
            if next_mark is None and tick >= end:
                break
            k += 1
    if len(starts) == 1 or starts[-1] < end:  # always give at least one whole bar
        last_numerator, last_denominator = marks[-1][1:]
        starts.append(starts[-1] + round(_ticks_per_bar(last_numerator, last_denominator, tpq)))
    return starts


def steps_per_bar(score: Score, steps_per_quarter: int) -> int:
    """Grid steps in one bar of the score's first time signature (4/4 when none).

    Raises ConfigError when a bar is not a whole number of steps (e.g. 5/32 at 4 steps
    per quarter).
    """
    _, numerator, denominator = _time_signatures(score)[0]
    steps = Fraction(4 * numerator * steps_per_quarter, denominator)
    if steps.denominator != 1:
        raise ConfigError(
            f"a {numerator}/{denominator} bar is {float(steps)} steps at {steps_per_quarter} "
            "steps per quarter; choose a finer grid"
        )
    return int(steps)


# ----------------------------------------------------------------------------- segment


def _window(score: Score, start: int, end: int) -> Score:
    """Notes with onsets in [start, end), ends clipped to ``end``, moved so start is 0."""
    out = _empty_like(score)
    for track in score.tracks:
        # controls, pedals and pitch bends inside the window come along, moved to start at 0
        copy = track.clip(start, end, clip_end=False).shift_time(-start)
        copy.notes = []
        if len(track.notes):
            time, duration, pitch, velocity = _arrays(track)
            keep = (time >= start) & (time < end)
            new_end = np.minimum(time[keep] + duration[keep], end)
            _set_notes(copy, time[keep] - start, new_end - time[keep], pitch[keep], velocity[keep])
        out.tracks.append(copy)
    out.tempos = _marks_in(score.tempos, start, end, lambda m, t: Tempo(t, m.qpm))
    out.time_signatures = _marks_in(
        score.time_signatures, start, end,
        lambda m, t: TimeSignature(t, m.numerator, m.denominator))
    out.key_signatures = _marks_in(
        score.key_signatures, start, end, lambda m, t: KeySignature(t, m.key, m.tonality))
    return out


def _marks_in(marks: Iterable, start: int, end: int, make) -> list:
    """The mark in force at ``start`` (moved to 0) plus the ones inside the window."""
    marks = sorted(marks, key=lambda m: m.time)
    before = [m for m in marks if m.time <= start]
    inside = [m for m in marks if start < m.time < end]
    kept = ([make(before[-1], 0)] if before else []) + [make(m, m.time - start) for m in inside]
    return kept


def segment(
    score: Score, bars: int, hop_bars: int | None = None, drop_partial: bool = False
) -> list[Score]:
    """Cut a piece into windows of ``bars`` bars, starting every ``hop_bars`` bars.

    Bars follow the time signatures (4/4 when none, see :func:`bar_starts`). A window
    keeps the notes that start inside it, their ends clipped at its end, shifted so the
    window starts at tick 0, with the tempo, meter and key in force. Windows without
    notes are dropped. With ``drop_partial``, so are windows that run past the end of the
    piece by a whole bar or more (their last bar begins after the last note has ended).
    ``hop_bars`` defaults to ``bars`` (no overlap).
    """
    hop_bars = bars if hop_bars is None else hop_bars
    if bars < 1 or hop_bars < 1:
        raise ConfigError(f"bars and hop_bars must be >= 1, got {bars} and {hop_bars}")
    last_onset = max((int(t.notes[-1].time) for t in score.tracks if len(t.notes)), default=-1)
    if last_onset < 0:
        return []
    end_of_music = int(score.end())
    starts = bar_starts(score, end=end_of_music)
    # extend with bars of the last meter, so that every window has an end
    last_bar = starts[-1] - starts[-2]
    while len(starts) < bars + 1 or starts[-bars - 1] <= last_onset:
        starts.append(starts[-1] + last_bar)
    windows = []
    for first in range(0, len(starts) - bars, hop_bars):
        start, end = starts[first], starts[first + bars]
        if start > last_onset:
            break
        if drop_partial and end > end_of_music and starts[first + bars - 1] >= end_of_music:
            break  # the piece is over before the window's last bar even begins
        window = _window(score, start, end)
        if window.note_num():
            windows.append(window)
    return windows


# ----------------------------------------------------------------------------- tracks


def select_tracks(
    score: Score,
    names: Iterable[str] | None = None,
    programs: Iterable[int] | None = None,
    drums: bool | None = None,
) -> Score:
    """Keep the tracks that match every given criterion (None = any).

    ``names`` are compared case-insensitively; ``programs`` are General MIDI numbers
    (0-127; drum tracks keep their own program); ``drums`` True keeps only drum tracks,
    False only pitched ones.
    """
    wanted_names = None if names is None else {n.casefold() for n in names}
    wanted_programs = None if programs is None else {int(p) for p in programs}
    out = _empty_like(score)
    for track in score.tracks:
        if wanted_names is not None and track.name.casefold() not in wanted_names:
            continue
        if wanted_programs is not None and int(track.program) not in wanted_programs:
            continue
        if drums is not None and bool(track.is_drum) != drums:
            continue
        out.tracks.append(track.copy())
    return out


def pitched_tracks(score: Score) -> Score:
    """``score`` without its drum tracks: the score itself when it has none (no copy),
    else :func:`select_tracks` ``(drums=False)``."""
    if not any(track.is_drum for track in score.tracks):
        return score
    return select_tracks(score, drums=False)


def merge_tracks(score: Score, name: str = "Merged", program: int = 0) -> Score:
    """Merge every pitched track into one track ``name`` with ``program``.

    Drum tracks are kept apart, unchanged, after the merged one. Notes of the same
    pitch starting on the same tick (unisons between voices) become one note with the
    longest duration and the loudest velocity.
    """
    if not 0 <= program <= 127:
        raise ConfigError(f"program must be a General MIDI number 0-127, got {program}")
    merged = Track(name, int(program), False)
    pitched = [t for t in score.tracks if not t.is_drum and len(t.notes)]
    if pitched:
        columns = [np.concatenate(c) for c in zip(*(_arrays(t) for t in pitched), strict=True)]
        time, duration, pitch, velocity = columns
        key = time * 128 + pitch
        unique_keys, inverse = np.unique(key, return_inverse=True)
        longest = np.zeros(len(unique_keys), np.int64)
        loudest = np.zeros(len(unique_keys), np.int64)
        np.maximum.at(longest, inverse, duration)
        np.maximum.at(loudest, inverse, velocity)
        _set_notes(merged, unique_keys // 128, longest, unique_keys % 128, loudest)
    out = _empty_like(score)
    out.tracks.append(merged)
    for track in score.tracks:
        if track.is_drum:
            out.tracks.append(track.copy())
    return out


def is_monophonic(track: Track, tolerance: int = 0) -> bool:
    """True when no two notes of the track sound together.

    Overlaps of at most ``tolerance`` ticks (a legato note released just after the next
    one starts) are allowed.
    """
    if len(track.notes) < 2:
        return True
    time, duration, _, _ = _arrays(track)
    order = np.argsort(time, kind="stable")
    time, end = time[order], (time + duration)[order]
    latest_end = np.maximum.accumulate(end)[:-1]  # the latest end of the notes so far
    return bool(np.all(time[1:] >= latest_end - tolerance))


def append_new_event(events, event) -> None:
    """Append a tempo, time- or key-signature event to a Score's list unless it repeats
    the one before (written-out repeats and re-read tunes restate the opening ones)."""
    if len(events):
        last = events[-1]
        fields = [f for f in ("qpm", "numerator", "denominator", "key", "tonality")
                  if hasattr(event, f)]
        if all(getattr(last, f) == getattr(event, f) for f in fields):
            return
    events.append(event)
