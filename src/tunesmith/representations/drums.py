"""Drum performances as hits, velocities and micro-timing offsets on a 16th-note grid.

The representation of GrooVAE (Gillick, Roberts, Engel, Eck & Bamman, "Learning to Groove
with Inverse Sequence Transformations", ICML 2019), used by :mod:`tunesmith.models.groove_vae`.
A performance of ``T`` grid steps (``steps_per_quarter`` = 4: sixteenth notes) is one
float32 array ``(T, 27)``, three blocks of the 9 canonical drum classes (:data:`CLASSES`):

* ``[:, 0:9]`` hits: 1 where the class is struck nearest to that step, else 0;
* ``[:, 9:18]`` velocities in [0, 1] (MIDI velocity / 127), 0 without a hit;
* ``[:, 18:27]`` offsets in [−0.5, 0.5): where the hit lies relative to its step, in
  steps (``(tick − step·ticks_per_step) / ticks_per_step``), 0 without a hit.

The MIDI pitches of a kit map onto the classes by :data:`PITCH_CLASSES` (the Roland
TD-11 mapping of the Groove MIDI Dataset, as in Magenta's ``groove`` converter, plus the
General MIDI keys 35 bass drum 2, 39 hand clap and 41 low floor tom); other pitches are
dropped. Two hits of one class nearest to one step keep the louder (the first on a tie).

``decode`` writes one drum track (channel 10) with each class on its canonical pitch
(the first of its list), a note ``ticks_per_step // 2`` long at
``round((step + offset) · ticks_per_step)``. Round trips (tested on GMD files):

* an on-grid (quantised) Score with canonical pitches, one hit per class and step,
  decodes from its encoding to the same notes (ticks and velocities exact);
* a performance decodes to its canonicalised notes within 1 tick.

:func:`quantise` makes the "score" of a performance (the hits, no micro-timing, one
velocity); :func:`flatten_to_tap` the single-voice groove that drives Drumify;
:func:`windows` the 2-bar windows (1-bar hop) models train on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from symusic import Note, Score, Tempo, TimeSignature, Track

from tunesmith.config import POSITIVE, DictConfig, Range, at_least
from tunesmith.errors import ConfigError, MusicFileError, RepresentationError
from tunesmith.representations.adapter import (
    CorpusLayout,
    RepresentationAdapter,
    SummaryTable,
    register,
)
from tunesmith.representations.info import DataInfo

#: the 9 canonical classes of GrooVAE, in array order
CLASSES = ("kick", "snare", "closed-hihat", "open-hihat", "low-tom", "mid-tom", "high-tom",
           "crash", "ride")
N_CLASSES = len(CLASSES)
#: MIDI pitches of each class; the first is the canonical pitch ``decode`` writes
PITCH_CLASSES: tuple[tuple[int, ...], ...] = (
    (36, 35),  # kick (35: GM bass drum 2)
    (38, 37, 40, 39),  # snare: head, cross-stick, rim, (GM hand clap)
    (42, 22, 44),  # closed hi-hat: bow, edge, pedal
    (46, 26),  # open hi-hat: bow, edge
    (43, 58, 41),  # low (floor) tom; 58 is the TD-11's floor-tom rim
    (47, 45),  # mid tom
    (50, 48),  # high tom
    (49, 52, 55, 57),  # crash 1/2, (china, splash)
    (51, 53, 59),  # ride: bow, bell, edge
)
#: pitch -> class index, -1 for pitches outside the kit
PITCH_TO_CLASS = np.full(128, -1, dtype=np.int64)
for _index, _pitches in enumerate(PITCH_CLASSES):
    PITCH_TO_CLASS[list(_pitches)] = _index
CANONICAL_PITCHES = tuple(p[0] for p in PITCH_CLASSES)
#: voice names accepted by ``--voices`` -> class indices
VOICE_GROUPS = {
    **{name: (i,) for i, name in enumerate(CLASSES)},
    "hihat": (2, 3), "hihats": (2, 3), "toms": (4, 5, 6), "cymbals": (7, 8),
}
SCORE_VELOCITY = 100 / 127  # the one velocity of a quantised score
HITS, VELOCITIES, OFFSETS = slice(0, 9), slice(9, 18), slice(18, 27)
WIDTH = 3 * N_CLASSES


@dataclass
class DrumsConfig(DictConfig):
    """The grid and the windows of the drums representation."""

    config_name: ClassVar[str] = "drums"

    steps_per_quarter: int = 4  # 4 = sixteenth notes, GrooVAE's grid
    window_bars: int = 2  # bars per training window (GrooVAE: 2)
    hop_bars: int = 1  # bars between window starts
    qpm: float = 120.0  # tempo written by decode when none is given

    ranges: ClassVar[dict[str, Range]] = {"steps_per_quarter": at_least(1),
                                          "window_bars": at_least(1), "hop_bars": at_least(1),
                                          "qpm": POSITIVE}

    @property
    def steps_per_bar(self) -> int:
        return 4 * self.steps_per_quarter  # 4/4 only

    @property
    def window_steps(self) -> int:
        return self.window_bars * self.steps_per_bar


def info(cfg: DrumsConfig) -> DataInfo:
    return DataInfo(representation="drums", repr_config=cfg.to_dict(),
                    pitch_low=min(min(p) for p in PITCH_CLASSES),
                    pitch_high=max(max(p) for p in PITCH_CLASSES),
                    steps_per_quarter=cfg.steps_per_quarter, steps_per_bar=cfg.steps_per_bar,
                    track_names=("Drums",), programs=(0,), is_drum=(True,))


def voices(names: str | list[str]) -> list[int]:
    """Class indices of voice names (``"hihat,ride"``, or a list); unknown names: ConfigError."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[int] = []
    for name in names:
        if name.lower() not in VOICE_GROUPS:
            raise ConfigError(f"unknown drum voice {name!r}; known: {', '.join(VOICE_GROUPS)}")
        out += [i for i in VOICE_GROUPS[name.lower()] if i not in out]
    if not out:
        raise ConfigError("name at least one drum voice")
    return sorted(out)


# --------------------------------------------------------------------------- encode


def check_four_four(score: Score, where: str = "") -> None:
    """MusicFileError unless every time signature of ``score`` is 4/4 (none counts as 4/4)."""
    for ts in score.time_signatures:
        if (ts.numerator, ts.denominator) != (4, 4):
            raise MusicFileError(where, f"time signature {ts.numerator}/{ts.denominator} at "
                                 f"tick {ts.time} is not 4/4")


def drum_notes(score: Score, drums_only: bool = True) -> tuple[np.ndarray, ...]:
    """(ticks, classes, velocities) int64 of every note of the kit's pitches, by time.

    ``drums_only`` reads only the drum tracks (all tracks when the score has none).
    """
    tracks = [t for t in score.tracks if t.is_drum] if drums_only else []
    tracks = tracks or list(score.tracks)
    arrays = [t.notes.numpy() for t in tracks if len(t.notes)]
    if not arrays:
        return tuple(np.zeros(0, np.int64) for _ in range(3))
    time = np.concatenate([a["time"] for a in arrays]).astype(np.int64)
    pitch = np.concatenate([a["pitch"] for a in arrays]).astype(np.int64)
    velocity = np.concatenate([a["velocity"] for a in arrays]).astype(np.int64)
    classes = PITCH_TO_CLASS[pitch]
    keep = classes >= 0
    order = np.argsort(time[keep], kind="stable")
    return time[keep][order], classes[keep][order], velocity[keep][order]


def encode(score: Score, cfg: DrumsConfig | None = None, where: str = "") -> np.ndarray:
    """A 4/4 drum Score -> ``(T, 27)`` float32 hits | velocities | offsets.

    ``T`` covers the score's end in whole bars. Raises MusicFileError for other meters and
    RepresentationError when no note of the kit is left.
    """
    cfg = cfg or DrumsConfig()
    check_four_four(score, where)
    ticks, classes, velocity = drum_notes(score)
    if not len(ticks):
        raise RepresentationError(f"{where or 'score'}: no drum notes of the 9-class kit")
    per_step = score.ticks_per_quarter / cfg.steps_per_quarter  # ticks per grid step
    position = ticks / per_step  # in steps
    step = np.floor(position + 0.5).astype(np.int64)  # nearest step, offsets in [-0.5, 0.5)
    offset = position - step
    end_step = max(int(step.max()) + 1, int(np.ceil(score.end() / per_step)))
    bars = -(-end_step // cfg.steps_per_bar)
    out = np.zeros((bars * cfg.steps_per_bar, WIDTH), np.float32)  # (T, 27)
    # the loudest hit of a class nearest a step wins: write quietest first, loudest last
    order = np.lexsort((-np.arange(len(ticks)), velocity))
    step, classes, velocity, offset = step[order], classes[order], velocity[order], offset[order]
    out[step, classes] = 1.0
    out[step, N_CLASSES + classes] = velocity / 127.0
    out[step, 2 * N_CLASSES + classes] = offset
    return out


def decode(x: np.ndarray, cfg: DrumsConfig | None = None, qpm: float | None = None,
           ticks_per_quarter: int = 480, hit_threshold: float = 0.5) -> Score:
    """``(T, 27)`` hits | velocities | offsets -> a Score with one drum track (channel 10).

    A hit is a hits value above ``hit_threshold``; its velocity is round(v·127), at least
    1; its tick round((step + offset) · ticks_per_step), at least 0.
    """
    cfg = cfg or DrumsConfig()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != WIDTH:
        raise RepresentationError(f"drums arrays are (steps, {WIDTH}), got {x.shape}")
    per_step = ticks_per_quarter // cfg.steps_per_quarter
    score = Score(ticks_per_quarter)
    score.tempos.append(Tempo(0, qpm=float(qpm or cfg.qpm)))
    score.time_signatures.append(TimeSignature(0, 4, 4))
    track = Track("Drums", 0, True)
    steps, classes = np.nonzero(x[:, HITS] > hit_threshold)
    velocity = np.clip(np.round(x[steps, N_CLASSES + classes] * 127), 1, 127).astype(int)
    offset = np.clip(x[steps, 2 * N_CLASSES + classes], -0.5, 0.5)
    tick = np.maximum(np.round((steps + offset) * per_step), 0).astype(int)
    order = np.lexsort((classes, tick))
    for i in order:
        track.notes.append(Note(int(tick[i]), max(per_step // 2, 1),
                                CANONICAL_PITCHES[int(classes[i])], int(velocity[i])))
    score.tracks.append(track)
    return score


# --------------------------------------------------------------------------- transforms


def quantise(x: np.ndarray) -> np.ndarray:
    """The "score" of a performance: its hits, offsets 0, every velocity SCORE_VELOCITY.

    (..., 27) -> (..., 27) float32 (GrooVAE's Humanize input: hits without micro-timing
    or dynamics).
    """
    x = np.asarray(x, dtype=np.float32)
    out = np.zeros_like(x)
    hits = (x[..., HITS] > 0.5).astype(np.float32)
    out[..., HITS] = hits
    out[..., VELOCITIES] = hits * SCORE_VELOCITY
    return out


def flatten_to_tap(x: np.ndarray) -> np.ndarray:
    """The single-voice groove of a performance (GrooVAE's "tap" for Drumify).

    (..., 27) -> (..., 3): per step, hit = 1 where any class is struck, velocity and
    offset of the loudest hit of that step (Gillick et al. 2019, §3.2).
    """
    x = np.asarray(x, dtype=np.float32)
    hits = x[..., HITS] > 0.5
    velocity = np.where(hits, x[..., VELOCITIES], -1.0)
    loudest = velocity.argmax(-1)[..., None]  # (..., 1)
    any_hit = hits.any(-1)
    out = np.zeros((*x.shape[:-1], 3), np.float32)
    out[..., 0] = any_hit
    out[..., 1] = np.where(any_hit, np.take_along_axis(x[..., VELOCITIES], loudest, -1)[..., 0], 0)
    out[..., 2] = np.where(any_hit, np.take_along_axis(x[..., OFFSETS], loudest, -1)[..., 0], 0)
    return out


def tap_from_onsets(score: Score, cfg: DrumsConfig | None = None, where: str = "") -> np.ndarray:
    """Any rhythm (a melody's onsets, a tapped part) as a ``(T, 3)`` tap: every note of
    every track counts, velocities and micro-timing kept (loudest note per step)."""
    cfg = cfg or DrumsConfig()
    check_four_four(score, where)
    arrays = [t.notes.numpy() for t in score.tracks if len(t.notes)]
    if not arrays:
        raise RepresentationError(f"{where or 'score'}: no notes to tap")
    ticks = np.concatenate([a["time"] for a in arrays]).astype(np.int64)
    velocity = np.concatenate([a["velocity"] for a in arrays]).astype(np.int64)
    per_step = score.ticks_per_quarter / cfg.steps_per_quarter
    position = ticks / per_step
    step = np.floor(position + 0.5).astype(np.int64)
    end_step = max(int(step.max()) + 1, int(np.ceil(score.end() / per_step)))
    bars = -(-end_step // cfg.steps_per_bar)
    out = np.zeros((bars * cfg.steps_per_bar, 3), np.float32)
    order = np.argsort(velocity, kind="stable")
    out[step[order], 0] = 1.0
    out[step[order], 1] = velocity[order] / 127.0
    out[step[order], 2] = (position - step)[order]
    return out


def windows(x: np.ndarray, cfg: DrumsConfig | None = None, keep_empty: bool = False
            ) -> list[np.ndarray]:
    """The ``window_bars``-bar windows of a performance, one every ``hop_bars`` bars
    (views; a performance shorter than a window gives one zero-padded window). Windows
    without a hit are dropped unless ``keep_empty``."""
    cfg = cfg or DrumsConfig()
    size, hop = cfg.window_steps, cfg.hop_bars * cfg.steps_per_bar
    if len(x) < size:
        padded = np.zeros((size, *x.shape[1:]), x.dtype)
        padded[: len(x)] = x
        x = padded
    out = [x[s : s + size] for s in range(0, len(x) - size + 1, hop)]
    return out if keep_empty else [w for w in out if w[:, HITS].any()]


# --------------------------------------------------------------------------- adapter


@register
class DrumsAdapter(RepresentationAdapter):
    """Score <-> ``(steps, 27)`` float32 hits | velocities | offsets of the 9 drum classes
    (a cache's ``data``); 4/4 only, the drum tracks of the score. Options:
    :class:`DrumsConfig`. Models train on its bar-aligned windows (:meth:`items`)."""

    name = "drums"
    batch_key = "drums"

    def __init__(self, options: dict | None = None, corpus: CorpusLayout | None = None):
        self.cfg = DrumsConfig.from_dict(dict(options or {}))

    def options(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    def encode(self, score: Score) -> dict[str, np.ndarray]:
        return {"data": encode(score, self.cfg)}

    def info(self, facts: list[dict] | None = None) -> DataInfo:
        return info(self.cfg)

    def decode(self, array: np.ndarray, with_onsets: bool = False) -> Score:
        self.refuse_onsets(with_onsets)
        return decode(array, self.cfg)

    def primer(self, score: Score, where: str | Any = "", with_onsets: bool = False) -> np.ndarray:
        self.refuse_onsets(with_onsets)
        return encode(score, self.cfg, where=str(where))

    # ---- what needs only a DataInfo ------------------------------------------------------
    @classmethod
    def items(cls, info: DataInfo, pieces: Sequence, ids: list[str]) -> tuple[Sequence, list[str]]:
        """The windows of each performance (:func:`windows`), ids ``piece#k``."""
        cfg = DrumsConfig.from_dict(info.repr_config)
        cut = [(piece_id, windows(piece, cfg)) for piece_id, piece in zip(ids, pieces,
                                                                          strict=True)]
        return ([w for _, ws in cut for w in ws],
                [f"{piece_id}#{i}" for piece_id, ws in cut for i in range(len(ws))])

    @classmethod
    def describe(cls, info: DataInfo, pieces: Sequence) -> list[str | SummaryTable]:
        """Hits per bar of each class."""
        hits, steps = np.zeros(N_CLASSES), 0  # one piece at a time (a memory map)
        for piece in pieces:
            hits += (np.asarray(piece)[:, HITS] > 0.5).sum(0)  # (9,)
            steps += len(piece)
        bars = max(steps, 1) / (info.steps_per_bar or 1)
        return ["hits per bar: " + ", ".join(
            f"{name} {count / bars:.2f}" for name, count in zip(CLASSES, hits, strict=True))]
