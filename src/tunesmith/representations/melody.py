"""Monophonic melody as one event per grid step (the Melody RNN encoding).

The encoding of Magenta's Melody RNN (Waite et al., "Generating long-term structure in
songs and stories", 2016; ``magenta.music.melodies_lib``), one integer per step of
``steps_per_quarter`` steps per quarter note:

* ``0`` = NO_EVENT: nothing changes (the current note, or the silence, goes on);
* ``1`` = NOTE_OFF: the sounding note stops, silence follows;
* ``2 + i`` = NOTE_ON of pitch ``pitch_low + i``, which also ends the previous note.

``pitch_low`` and ``pitch_high`` are inclusive (Magenta's ``max_pitch`` is exclusive; old
configs spelled so are still read): the defaults keep MIDI 48-83 (three octaves),
a vocabulary of 38 events. A sequence ends where its last note ends (no final NOTE_OFF);
its steps count from tick 0 of the score, so bar lines stay where the score puts them.

Encoding a piece:

1. one track: ``track`` (an index) or the first pitched track with notes;
2. notes snapped to the grid (as :func:`tunesmith.music.transforms.quantize`);
3. polyphony, by ``polyphony``:

   * ``"highest"``: the skyline. At each step the melody is the highest sounding pitch;
     a note starts where that pitch changes or where a note of that pitch starts. A
     lower note entering under a held higher note thus enters when the higher one ends.
   * ``"skip"``: two notes starting on one step (a chord) raise
     :class:`~tunesmith.errors.RepresentationError`, so a data pipeline skips the piece;
     overlapping notes with different onsets are legato: the later onset ends the
     earlier note (Magenta's rule).

4. range: with ``transpose_to_range`` the whole melody moves by the octave shift that
   leaves most notes inside ``pitch_low..pitch_high`` (the smallest such shift), and
   the notes still outside are folded in by octaves one by one; without it, a pitch
   outside the range raises RepresentationError.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from symusic import Note, Score, Tempo, Track

from tunesmith.config import DictConfig, Range, at_least
from tunesmith.errors import ConfigError, MusicFileError, RepresentationError
from tunesmith.music.transforms import pitched_tracks, select_tracks
from tunesmith.representations.adapter import (
    CorpusLayout,
    RepresentationAdapter,
    SummaryTable,
    pitch_label,
    register,
)
from tunesmith.representations.info import DataInfo

NO_EVENT = 0
NOTE_OFF = 1
FIRST_PITCH_EVENT = 2
POLYPHONY_POLICIES = ("highest", "skip")


@dataclass
class MelodyConfig(DictConfig):
    """How a Score maps onto melody events."""

    config_name: ClassVar[str] = "melody"

    steps_per_quarter: int = 4  # grid steps per quarter note (4 = sixteenth notes)
    pitch_low: int = 48  # lowest MIDI pitch kept (C3)
    pitch_high: int = 83  # highest MIDI pitch kept (B5), inclusive
    polyphony: str = "highest"  # "highest": skyline | "skip": refuse chords
    transpose_to_range: bool = True  # octave-shift pitches into the range instead of failing

    #: the spelling of checkpoints and caches written before one spelling per idea:
    #: min_pitch, and max_pitch exclusive (Magenta's), read as pitch_low/pitch_high
    renamed: ClassVar[dict] = {"min_pitch": "pitch_low",
                               "max_pitch": ("pitch_high", lambda high: high - 1)}
    choices: ClassVar[dict[str, tuple]] = {"polyphony": POLYPHONY_POLICIES}
    ranges: ClassVar[dict[str, Range]] = {"steps_per_quarter": at_least(1)}

    def check(self) -> None:
        if not 0 <= self.pitch_low <= self.pitch_high <= 127:
            raise ConfigError(
                "melody range must satisfy 0 <= pitch_low <= pitch_high <= 127, "
                f"got {self.pitch_low}..{self.pitch_high}"
            )
        if self.transpose_to_range and self.n_pitches < 12:
            raise ConfigError(
                "transpose_to_range needs a range of at least one octave, got "
                f"{self.n_pitches} pitches"
            )

    @property
    def n_pitches(self) -> int:
        return self.pitch_high - self.pitch_low + 1

    @property
    def vocab_size(self) -> int:
        """NO_EVENT, NOTE_OFF and one NOTE_ON per pitch."""
        return FIRST_PITCH_EVENT + self.n_pitches


def info(cfg: MelodyConfig, steps_per_bar: int | None = None, track: str | None = None,
         program: int = 0) -> DataInfo:
    """What models need to know about melodies encoded with ``cfg``: the vocabulary, the
    grid (``steps_per_bar``: the data's bar, 4/4 when not given) and the melody's track."""
    return DataInfo(
        representation="melody",
        repr_config=cfg.to_dict(),
        pitch_low=cfg.pitch_low,
        pitch_high=cfg.pitch_high,
        steps_per_quarter=cfg.steps_per_quarter,
        steps_per_bar=steps_per_bar or 4 * cfg.steps_per_quarter,
        track_names=(track or "Melody",),
        programs=(program,),
        is_drum=(False,),
        vocab_size=cfg.vocab_size,
    )


def pitch_event(pitch: int, cfg: MelodyConfig) -> int:
    """The NOTE_ON event of a MIDI pitch inside the range."""
    return FIRST_PITCH_EVENT + int(pitch) - cfg.pitch_low


# ----------------------------------------------------------------------------- encode


def _pick_track(score: Score, track: int | None) -> Track:
    if track is not None:
        if not -len(score.tracks) <= track < len(score.tracks):
            raise RepresentationError(f"no track {track}: the piece has {len(score.tracks)}")
        chosen = score.tracks[track]
        if chosen.is_drum:
            raise RepresentationError(f"track {track} ({chosen.name!r}) is a drum track")
        if not len(chosen.notes):
            raise RepresentationError(f"track {track} ({chosen.name!r}) has no notes")
        return chosen
    for candidate in score.tracks:
        if not candidate.is_drum and len(candidate.notes):
            return candidate
    raise RepresentationError("no pitched track with notes to take a melody from")


def _grid_notes(track: Track, tpq: int, steps_per_quarter: int):
    """(start, end, pitch) int64 arrays on the grid, each note at least one step long."""
    notes = track.notes.numpy()
    time = notes["time"].astype(np.int64)
    end_tick = time + notes["duration"].astype(np.int64)
    start = np.round(time * steps_per_quarter / tpq).astype(np.int64)
    end = np.maximum(np.round(end_tick * steps_per_quarter / tpq).astype(np.int64), start + 1)
    return start, end, notes["pitch"].astype(np.int64)


def _skyline(start, end, pitch) -> list[tuple[int, int, int]]:
    """Monophonic (start, end, pitch) notes following the highest sounding pitch."""
    steps = int(end.max())
    top = np.full(steps, -1, dtype=np.int64)
    for s, e, p in zip(start, end, pitch, strict=True):
        np.maximum(top[s:e], p, out=top[s:e])
    struck = np.zeros((steps, 128), dtype=bool)
    struck[start, pitch] = True
    sounding = top >= 0
    previous = np.concatenate([[-1], top[:-1]])
    begins = sounding & ((top != previous) | struck[np.arange(steps), np.maximum(top, 0)])
    begin_steps = np.nonzero(begins)[0]
    notes = []
    for i, s in enumerate(begin_steps):
        limit = begin_steps[i + 1] if i + 1 < len(begin_steps) else steps
        silent = np.nonzero(~sounding[s:limit])[0]
        e = s + silent[0] if len(silent) else limit
        notes.append((int(s), int(e), int(top[s])))
    return notes


def _legato(start, end, pitch) -> list[tuple[int, int, int]]:
    """Monophonic notes when no two start together; a later onset ends an earlier note."""
    order = np.lexsort((-pitch, start))
    start, end, pitch = start[order], end[order], pitch[order]
    together = np.nonzero(start[1:] == start[:-1])[0]
    if len(together):
        step = int(start[together[0]])
        chord = sorted(int(p) for p in pitch[start == step])
        raise RepresentationError(
            f"polyphonic melody: pitches {chord} start together at step {step} "
            "(use polyphony='highest' to keep the top line)"
        )
    next_start = np.concatenate([start[1:], [np.iinfo(np.int64).max]])
    end = np.minimum(end, next_start)
    return [(int(s), int(e), int(p)) for s, e, p in zip(start, end, pitch, strict=True)]


def _fit_range(notes: list[tuple[int, int, int]], cfg: MelodyConfig):
    """Move the melody by octaves into the range (or refuse, see the module docstring)."""
    pitches = np.array([p for _, _, p in notes])
    inside = (pitches >= cfg.pitch_low) & (pitches <= cfg.pitch_high)
    if inside.all():
        return notes
    if not cfg.transpose_to_range:
        outside = sorted({int(p) for p in pitches[~inside]})
        raise RepresentationError(
            f"pitches {outside} outside the melody range {cfg.pitch_low}..{cfg.pitch_high} "
            "(set transpose_to_range to move them by octaves)"
        )
    shifts = sorted(range(-132, 133, 12), key=abs)  # smallest first, so ties go to it
    counts = [int(((pitches + k >= cfg.pitch_low) & (pitches + k <= cfg.pitch_high)).sum())
              for k in shifts]
    shift = shifts[int(np.argmax(counts))]
    fitted = []
    for s, e, p in notes:
        p += shift
        while p < cfg.pitch_low:
            p += 12
        while p > cfg.pitch_high:
            p -= 12
        fitted.append((s, e, p))
    return fitted


def melody_notes(score: Score, cfg: MelodyConfig, track: int | None = None):
    """The melody as monophonic ``(start_step, end_step, pitch)`` notes, in range."""
    chosen = _pick_track(score, track)
    start, end, pitch = _grid_notes(chosen, score.ticks_per_quarter, cfg.steps_per_quarter)
    notes = _skyline(start, end, pitch) if cfg.polyphony == "highest" else _legato(
        start, end, pitch)
    return _fit_range(notes, cfg)


def encode(score: Score, cfg: MelodyConfig, track: int | None = None) -> np.ndarray:
    """Score -> ``(steps,)`` int16 events (see the module docstring for the rules)."""
    notes = melody_notes(score, cfg, track)
    steps = notes[-1][1]
    events = np.full(steps, NO_EVENT, dtype=np.int16)
    for i, (s, e, p) in enumerate(notes):
        events[s] = pitch_event(p, cfg)
        next_start = notes[i + 1][0] if i + 1 < len(notes) else steps
        if e < next_start:
            events[e] = NOTE_OFF
    return events


# ----------------------------------------------------------------------------- decode


def decode(
    events: np.ndarray,
    cfg: MelodyConfig,
    program: int = 0,
    tpq: int = 480,
    velocity: int = 80,
    tempo: float = 120.0,
    name: str = "Melody",
) -> Score:
    """``(steps,)`` events -> a one-track Score; a note sounding at the end stops there."""
    events = np.asarray(events).astype(np.int64).reshape(-1)
    bad = events[(events < 0) | (events >= cfg.vocab_size)]
    if len(bad):
        raise RepresentationError(
            f"melody events must lie in 0..{cfg.vocab_size - 1}, got {sorted(set(bad.tolist()))}"
        )
    if tpq % cfg.steps_per_quarter:
        raise ConfigError(f"tpq {tpq} is not a multiple of {cfg.steps_per_quarter} steps")
    ticks_per_step = tpq // cfg.steps_per_quarter
    score = Score(tpq)
    score.tempos.append(Tempo(0, float(tempo)))
    track = Track(name, int(program), False)
    changes = [*np.nonzero(events != NO_EVENT)[0].tolist(), len(events)]
    for here, there in itertools.pairwise(changes):
        event = int(events[here])
        if event >= FIRST_PITCH_EVENT:
            pitch = cfg.pitch_low + event - FIRST_PITCH_EVENT
            track.notes.append(Note(here * ticks_per_step, (there - here) * ticks_per_step,
                                    pitch, int(velocity)))
    score.tracks.append(track)
    return score


# ----------------------------------------------------------------------------- adapter


@register
class MelodyAdapter(RepresentationAdapter):
    """Score <-> ``(steps,)`` int16 melody events (a cache's ``data``).

    Option ``track``: the name of the track holding the melody (chorales: Soprano, the
    default for a corpus with that track); without one the melody is picked from the
    whole score. The other options are :class:`MelodyConfig`'s.
    """

    name = "melody"
    one_track = True
    vocabulary = True
    integer_data = True
    batch_key = "events"
    bar_facts = True
    transposable = True

    def __init__(self, options: dict | None = None, corpus: CorpusLayout | None = None):
        options = dict(options or {})
        layout = None if corpus is None else corpus.track_layout
        default_track = "Soprano" if layout and "Soprano" in layout else None
        self.track = options.pop("track", default_track)
        self.cfg = MelodyConfig.from_dict(options)

    def options(self) -> dict[str, Any]:
        return {**self.cfg.to_dict(), "track": self.track}

    def _melody_track(self, score: Score, strict: bool) -> Score:
        score = pitched_tracks(score)
        if self.track is not None:
            named = select_tracks(score, names=[self.track])
            if len(named.tracks):
                return named
            if strict:
                raise MusicFileError("", f"has no track named {self.track!r}")
        return score

    def encode(self, score: Score) -> dict[str, np.ndarray]:
        return {"data": np.asarray(encode(self._melody_track(score, True), self.cfg),
                                   dtype=np.int16)}  # (steps,)

    def info(self, facts: list[dict] | None = None) -> DataInfo:
        """Vocabulary and grid; ``steps_per_bar`` is the most common bar of the pieces."""
        bars = Counter(f.get("steps_per_bar") for f in facts or [] if f.get("steps_per_bar"))
        per_bar = bars.most_common(1)[0][0] if bars else None  # None: 4/4
        made = info(self.cfg, steps_per_bar=per_bar, track=self.track)
        return dataclasses.replace(made, repr_config=self.options())

    def decode(self, array: np.ndarray, with_onsets: bool = False) -> Score:
        self.refuse_onsets(with_onsets)
        return decode(np.asarray(array).astype(np.int64), self.cfg)

    def primer(self, score: Score, where: str | Any = "", with_onsets: bool = False) -> np.ndarray:
        self.refuse_onsets(with_onsets)
        """The melody of the named track (of the whole score when it has none)."""
        return np.asarray(encode(self._melody_track(score, False), self.cfg), dtype=np.int64)

    @classmethod
    # ---- what needs only a DataInfo ------------------------------------------------------
    @classmethod
    def draw_shift(cls, info: DataInfo, data: np.ndarray, shifts: tuple[int, int],
                   rng: np.random.Generator) -> int:
        """NOTE_ON events (>= 2) move by the shift; it keeps them below the vocabulary."""
        notes = np.asarray(data) >= FIRST_PITCH_EVENT
        if not notes.any():
            return 0
        low = max(shifts[0], FIRST_PITCH_EVENT - int(data[notes].min()))
        high = min(shifts[1], info.vocab_size - 1 - int(data[notes].max()))
        return int(rng.integers(low, high + 1)) if low <= high else 0

    @classmethod
    def shift(cls, info: DataInfo, data: np.ndarray, semitones: int) -> np.ndarray:
        """NO_EVENT and NOTE_OFF stay, NOTE_ON events move."""
        notes = np.asarray(data) >= FIRST_PITCH_EVENT
        if semitones == 0 or not notes.any():
            return np.asarray(data)
        out = np.array(data, copy=True)
        out[notes] += semitones
        return out

    @classmethod
    def legacy_info(cls, old: dict, options: dict, fact: Callable[..., Any]) -> DataInfo:
        """Old melody infos: ``min_pitch``/``max_pitch`` (exclusive) and ``vocab_size``."""
        per_quarter = int(fact("steps_per_quarter", ("steps_per_quarter",),
                               ("resolution", "steps_per_quarter")))
        per_bar = int(fact("steps_per_bar", ("steps_per_bar",), required=False)
                      or 4 * per_quarter)  # 4/4: what every family assumed
        return DataInfo(
            representation=cls.name, repr_config=options,
            pitch_low=int(fact("lowest pitch", ("min_pitch",), ("min_pitch",))),
            pitch_high=int(fact("highest pitch", ("max_pitch",), ("max_pitch",))) - 1,
            steps_per_quarter=per_quarter, steps_per_bar=per_bar,
            track_names=(str(options.get("track") or "Melody"),), programs=(0,),
            is_drum=(False,), vocab_size=int(fact("vocab_size", ("vocab_size",))))

    @classmethod
    def describe(cls, info: DataInfo, pieces: Sequence) -> list[str | SummaryTable]:
        """The pitch range the events reach, the vocabulary and the bar."""
        highest = max((int(p.max()) for p in pieces if len(p)), default=0)
        lowest = min((int(p[p >= FIRST_PITCH_EVENT].min()) for p in pieces
                      if (p >= FIRST_PITCH_EVENT).any()), default=0)
        if highest < FIRST_PITCH_EVENT:
            return []
        low = lowest - FIRST_PITCH_EVENT + info.pitch_low
        high = highest - FIRST_PITCH_EVENT + info.pitch_low
        return [f"pitch range: {pitch_label(low)}..{pitch_label(high)}"
                f"; vocabulary {info.vocab_size}, {info.steps_per_bar} steps per bar"]
