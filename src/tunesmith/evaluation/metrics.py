"""Musical metrics: pure functions of a symusic Score, NaN where undefined.

Three families, each defined exactly as its source does:

* **MusPy** (Dong, Chen, McAuley & Berg-Kirkpatrick, ISMIR 2020, *MusPy: A Toolkit for
  Symbolic Music Generation*; definitions of ``muspy/metrics/metrics.py`` v0.5.0):
  ``pitch_range`` ... ``drum_pattern_consistency``. Times are in ticks and MusPy's
  ``resolution`` is our ``ticks_per_quarter`` (a "beat" is a quarter note). Our values
  equal MusPy's on the same notes (tests/test_metrics.py checks it). Read from the same
  MIDI file they can differ, by the reader only: MusPy's song length counts controller
  events, MusPy keeps zero-length notes, and it holds an unmatched note-on to the end of
  the track (docs/evaluation.md, "Against MusPy", says which is right). Like MusPy,
  pitch metrics skip drum tracks, drum metrics read only drum tracks, and the
  time-grid metrics (empty beats/measures, groove) count every track.
* **MuseGAN** (Dong, Hsiao, Yang & Yang, AAAI 2018, *MuseGAN: Multi-track sequential
  generative adversarial networks...*, §Objective metrics): EB, UPC, QN and TD. The
  paper computes them on 24-steps-per-beat piano-rolls; we compute them on the notes
  directly, with the definitions stated in each docstring.
* Simple descriptive statistics: note density, durations, inter-onset intervals,
  velocity spread.
* Voice activity: the share of sixteenth-note steps on which each track sounds, on the
  grid the piano-roll representation uses (:func:`voice_activity`).

:func:`feature_vector` gathers the scalar metrics into the dict used by the set-level
comparisons (:mod:`tunesmith.evaluation.compare`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from symusic import Score

from tunesmith.music.keys import pitch_class_counts, pitch_class_histograms
from tunesmith.music.note_arrays import NoteArrays, note_arrays

#: MusPy's C-major / C-natural-minor scale masks (``_get_scale``).
MAJOR_SCALE = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], bool)
MINOR_SCALE = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], bool)

#: MuseGAN's piano-roll resolution and qualified-note threshold: a note is "qualified"
#: when it lasts at least 3 steps at 24 steps per beat, i.e. a 32nd note or longer.
MUSEGAN_STEPS_PER_BEAT = 24
MUSEGAN_QUALIFIED_STEPS = 3

#: Radii of the three circles of Harte, Sandler & Gasser (2006): fifths, minor thirds,
#: major thirds.
TONAL_RADII = (1.0, 1.0, 0.5)


# ----------------------------------------------------------------------------- notes


@dataclass(frozen=True)
class NoteTable:
    """Every note of a Score as flat arrays (ticks), built once and shared by metrics.

    The notes are :class:`~tunesmith.music.note_arrays.NoteArrays` of the one piece
    (track order; ``track`` is the index of the note's track in ``score.tracks``), with
    the score's facts the metrics read beside them.
    """

    tpq: int  # ticks per quarter note (MusPy's ``resolution``)
    notes: NoteArrays  # the piece's notes: time, duration, pitch, velocity, track, drum
    end: np.ndarray  # (N,) int64 offset tick
    n_tracks: int
    track_is_drum: tuple[bool, ...]
    track_names: tuple[str, ...]
    length: int  # max note end over all tracks (MusPy also counts controllers: not us)
    bar_ticks: int  # ticks per measure from the first time signature (4/4 if none)
    tempos: tuple[tuple[int, float], ...]  # (tick, quarter notes per minute)

    @property
    def time(self) -> np.ndarray:
        """(N,) int64 onset tick."""
        return self.notes.time

    @property
    def pitch(self) -> np.ndarray:
        """(N,) int64 MIDI pitch."""
        return self.notes.pitch

    @property
    def velocity(self) -> np.ndarray:
        """(N,) int64 velocity."""
        return self.notes.velocity

    @property
    def track(self) -> np.ndarray:
        """(N,) int64 track index."""
        return self.notes.track

    @property
    def drum(self) -> np.ndarray:
        """(N,) bool, the note's track is a drum track."""
        return self.notes.drum

    @classmethod
    def of(cls, score: Score | NoteTable) -> NoteTable:
        if isinstance(score, NoteTable):
            return score
        if str(score.ttype).lower().endswith("second") or str(score.ttype).lower().endswith(
            "quarter"
        ):
            score = score.to("tick")
        notes = note_arrays([score])
        end = notes.time + notes.duration
        tpq = int(score.ticks_per_quarter)
        if len(score.time_signatures):
            ts = score.time_signatures[0]
            bar_ticks = round(tpq * 4 * ts.numerator / ts.denominator)
        else:
            bar_ticks = 4 * tpq
        tempos = tuple((int(t.time), float(t.qpm)) for t in score.tempos) or ((0, 120.0),)
        return cls(
            tpq=tpq,
            notes=notes,
            end=end,
            n_tracks=len(score.tracks),
            track_is_drum=tuple(bool(t.is_drum) for t in score.tracks),
            track_names=tuple(str(t.name) for t in score.tracks),
            length=int(end.max()) if len(end) else 0,
            bar_ticks=max(1, bar_ticks),
            tempos=tempos,
        )

    def pitched(self) -> np.ndarray:
        """Boolean mask of notes on non-drum tracks."""
        return ~self.drum

    def seconds(self, tick: int) -> float:
        """Wall-clock seconds at ``tick`` under the score's tempo map."""
        total, position, qpm = 0.0, 0, 120.0
        for time, new_qpm in sorted(self.tempos):
            if time >= tick:
                break
            total += (time - position) / self.tpq * 60.0 / qpm
            position, qpm = time, new_qpm
        return total + (tick - position) / self.tpq * 60.0 / qpm


def _measure_ticks(table: NoteTable, measure_resolution: int | None) -> int:
    if measure_resolution is None:
        return table.bar_ticks
    if measure_resolution < 1:
        raise ValueError("measure_resolution must be a positive number of ticks")
    return int(measure_resolution)


# ----------------------------------------------------------------------------- MusPy


def pitch_range(score: Score | NoteTable) -> int:
    """Highest minus lowest MIDI pitch of non-drum notes (MusPy ``pitch_range``).

    MusPy returns 0 when the piece has no note; so do we, and also when it has only
    drum notes (where MusPy's loop leaves its sentinels and returns 0 - 127).
    """
    t = NoteTable.of(score)
    pitches = t.pitch[t.pitched()]
    return int(pitches.max() - pitches.min()) if len(pitches) else 0


def n_pitches_used(score: Score | NoteTable) -> int:
    """Number of distinct MIDI pitches among non-drum notes (MusPy ``n_pitches_used``)."""
    t = NoteTable.of(score)
    return len(np.unique(t.pitch[t.pitched()]))


def n_pitch_classes_used(score: Score | NoteTable) -> int:
    """Number of distinct pitch classes (pitch mod 12) among non-drum notes (MusPy)."""
    t = NoteTable.of(score)
    return len(np.unique(t.pitch[t.pitched()] % 12))


def _entropy_bits(counts: np.ndarray) -> float:
    total = counts.sum()
    if total < 1:
        return math.nan
    prob = counts[counts > 0] / total
    return float(-(prob * np.log2(prob)).sum())


def pitch_entropy(score: Score | NoteTable) -> float:
    """Shannon entropy (bits) of the note-count pitch histogram, drums skipped (MusPy).

    ``H = -Σ_{i=0}^{127} P(pitch=i) log2 P(pitch=i)``; NaN without notes.
    """
    t = NoteTable.of(score)
    return _entropy_bits(np.bincount(t.pitch[t.pitched()], minlength=128).astype(float))


def pitch_class_histogram(score: Score | NoteTable, normalize: bool = True) -> np.ndarray:
    """``(12,)`` note counts per pitch class of non-drum notes (summing to 1 if normalised).

    All zeros when the piece has no pitched note.
    """
    notes = NoteTable.of(score).notes
    if normalize:
        return pitch_class_histograms(notes, weighted=False)[0]
    return pitch_class_counts(notes, weighted=False)[0]


def pitch_class_entropy(score: Score | NoteTable) -> float:
    """Shannon entropy (bits) of the pitch-class histogram, drums skipped (MusPy).

    ``H = -Σ_{i=0}^{11} P(pc=i) log2 P(pc=i)`` (Wu & Yang, ISMIR 2020); NaN without notes.
    """
    return _entropy_bits(pitch_class_histogram(score, normalize=False))


def _pitch_segments(t: NoteTable) -> tuple[np.ndarray, np.ndarray]:
    """The non-drum piano-roll, run-length compressed in time.

    Returns ``(segment_lengths (S,), distinct pitches sounding per segment (S,))`` where
    segments are the spans between consecutive note boundaries. Equivalent to MusPy's
    tick-level boolean piano-roll (two tracks on one pitch count once).
    """
    keep = t.pitched() & (t.end > t.time)
    start, end, pitch = t.time[keep], t.end[keep], t.pitch[keep]
    if not len(start):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    bounds = np.unique(np.concatenate([start, end]))  # (S + 1,)
    first = np.searchsorted(bounds, start)
    last = np.searchsorted(bounds, end)
    diff = np.zeros((len(bounds), 128), np.int64)
    np.add.at(diff, (first, pitch), 1)
    np.add.at(diff, (last, pitch), -1)
    sounding = np.cumsum(diff, axis=0)[:-1] > 0  # (S, 128)
    return np.diff(bounds), sounding.sum(axis=1)


def polyphony(score: Score | NoteTable) -> float:
    """Mean number of pitches sounding, over time steps where at least one sounds (MusPy).

    ``polyphony = #(pitches when at least one pitch is on) / #(time steps with ≥1 pitch)``
    on the tick-level piano-roll of non-drum tracks; NaN without notes.
    """
    lengths, counts = _pitch_segments(NoteTable.of(score))
    active = counts > 0
    denominator = lengths[active].sum()
    if denominator < 1:
        return math.nan
    return float((lengths * counts).sum() / denominator)


def polyphony_rate(score: Score | NoteTable, threshold: int = 2) -> float:
    """Ratio of time steps with more than ``threshold`` pitches on (MusPy ``polyphony_rate``).

    ``#(steps where #pitches > threshold) / #(steps)``, steps being the ticks up to the
    song's end (all tracks); drum tracks do not sound. MusPy's code compares with ``>``,
    so the default counts steps with three or more pitches; we keep that. NaN for an
    empty piece. Called *polyphonicity* in MuseGAN.
    """
    t = NoteTable.of(score)
    if t.length < 1:
        return math.nan
    lengths, counts = _pitch_segments(t)
    return float(lengths[counts > threshold].sum() / t.length)


def pitch_in_scale_rate(score: Score | NoteTable, root: int, mode: str) -> float:
    """Share of non-drum notes whose pitch class lies in the scale (MusPy).

    ``#(notes in scale) / #(notes)``; ``mode`` is "major" or "minor" (natural minor),
    ``root`` a pitch class 0-11. NaN without notes. Used in MuseGAN.
    """
    if mode.lower() == "major":
        base = MAJOR_SCALE
    elif mode.lower() == "minor":
        base = MINOR_SCALE
    else:
        raise ValueError("mode must be either 'major' or 'minor'")
    t = NoteTable.of(score)
    pcs = t.pitch[t.pitched()] % 12
    if not len(pcs):
        return math.nan
    return float(np.roll(base, root)[pcs].sum() / len(pcs))


def scale_consistency(score: Score | NoteTable) -> float:
    """Largest pitch-in-scale rate over the 24 major and minor scales (MusPy).

    ``max_{root, mode} pitch_in_scale_rate`` (Mogren 2016, C-RNN-GAN); NaN without notes.
    """
    t = NoteTable.of(score)
    pcs = t.pitch[t.pitched()] % 12
    if not len(pcs):
        return math.nan
    counts = np.bincount(pcs, minlength=12)
    best = 0.0
    for base in (MAJOR_SCALE, MINOR_SCALE):
        for root in range(12):
            best = max(best, counts[np.roll(base, root)].sum() / len(pcs))
    return float(best)


def _empty_span_rate(t: NoteTable, span: int) -> float:
    """MusPy's empty-beat/measure rule: spans ``time//span`` to ``end//span`` inclusive."""
    if t.length < 1:
        return math.nan
    n_spans = t.length // span + 1
    marks = np.zeros(n_spans + 1, np.int64)
    np.add.at(marks, t.time // span, 1)
    np.add.at(marks, t.end // span + 1, -1)
    used = np.count_nonzero(np.cumsum(marks)[:-1] > 0)
    return 1.0 - used / n_spans


def empty_beat_rate(score: Score | NoteTable) -> float:
    """Share of beats (quarter notes) where no note of any track plays (MusPy).

    ``#(empty beats) / #(beats)`` with ``#(beats) = length // tpq + 1`` and a note
    occupying beats ``time // tpq`` through ``end // tpq`` inclusive, as in MusPy (a note
    ending exactly on a beat line also marks the next beat). NaN for an empty piece.
    """
    t = NoteTable.of(score)
    return _empty_span_rate(t, t.tpq)


def empty_measure_rate(score: Score | NoteTable, measure_resolution: int | None = None) -> float:
    """Share of measures where no note of any track plays (MusPy ``empty_measure_rate``).

    Same rule as :func:`empty_beat_rate` with ``measure_resolution`` ticks per measure
    (default: from the first time signature; constant meter assumed). NaN when empty.
    """
    t = NoteTable.of(score)
    return _empty_span_rate(t, _measure_ticks(t, measure_resolution))


def groove_consistency(score: Score | NoteTable, measure_resolution: int | None = None) -> float:
    """One minus the mean Hamming distance of neighbouring measures' onset patterns (MusPy).

    ``1 - 1/(T-1) Σ_i d(G_i, G_{i+1}) / R`` where ``G_i`` is the binary onset vector
    (length R = ``measure_resolution`` ticks) of measure i over all tracks and
    ``T = length // R + 1`` (Wu & Yang, ISMIR 2020). NaN with fewer than two measures.
    """
    t = NoteTable.of(score)
    resolution = _measure_ticks(t, measure_resolution)
    n_measures = t.length // resolution + 1
    if n_measures < 2:
        return math.nan
    grooves = np.zeros((n_measures, resolution), bool)
    grooves[t.time // resolution, t.time % resolution] = True
    hamming = np.count_nonzero(grooves[:-1] != grooves[1:])
    return float(1 - hamming / (resolution * (n_measures - 1)))


def _drum_pattern(resolution: int, meter: str) -> np.ndarray:
    pattern = np.zeros(resolution, bool)
    pattern[0] = True
    if meter == "duple":
        if resolution % 4 == 0:
            pattern[:: resolution // 4] = True
        if resolution % 2 == 0:
            pattern[:: resolution // 2] = True
    elif meter == "triple":
        if resolution % 3 == 0:
            pattern[:: resolution // 3] = True
    else:
        raise ValueError("meter must be 'duple' or 'triple'")
    return pattern


def drum_in_pattern_rate(score: Score | NoteTable, meter: str) -> float:
    """Share of drum notes on the meter's grid within the beat (MusPy, MuseGAN's DP).

    ``#(drum notes in pattern) / #(drum notes)``; the duple pattern is the sixteenth
    positions of a beat (0, 1/4, 1/2, 3/4), the triple one the eighth-triplet positions
    (0, 1/3, 2/3), tested on ``time % tpq``. Only drum tracks; NaN without drum notes.
    """
    t = NoteTable.of(score)
    onsets = t.time[t.drum]
    if not len(onsets):
        return math.nan
    pattern = _drum_pattern(t.tpq, meter.lower())
    return float(pattern[onsets % t.tpq].sum() / len(onsets))


def drum_pattern_consistency(score: Score | NoteTable) -> float:
    """Largest drum-in-pattern rate over duple and triple meters (MusPy); NaN without drums."""
    duple = drum_in_pattern_rate(score, "duple")
    if math.isnan(duple):
        return math.nan
    return max(duple, drum_in_pattern_rate(score, "triple"))


# ----------------------------------------------------------------------------- MuseGAN


def _bars_spanned(start: np.ndarray, end: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray]:
    """(note index, span index) for every span a note sounds in: ``[start, end)`` overlaps.

    A zero-length note counts in the span of its onset.
    """
    first = start // span
    last = np.maximum(end - 1, start) // span
    counts = last - first + 1
    note_index = np.repeat(np.arange(len(start)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return note_index, first[note_index] + offsets


def _n_bars(t: NoteTable) -> int:
    return -(-t.length // t.bar_ticks)  # ceil: a piece of exactly 4 bars has 4 bars


def empty_bar_rate(score: Score | NoteTable) -> float:
    """MuseGAN's EB: share of (track, bar) pairs in which the track plays no note.

    Bars come from the first time signature (4/4 if none) and cover ``ceil(length /
    bar)`` bars; a track plays in a bar when one of its notes sounds there. Averaged over
    every track (drums included, as MuseGAN reports EB for each track). NaN when empty.
    """
    t = NoteTable.of(score)
    n_bars = _n_bars(t)
    if n_bars < 1 or t.n_tracks < 1:
        return math.nan
    note_index, bar = _bars_spanned(t.time, t.end, t.bar_ticks)
    used = np.unique(t.track[note_index] * n_bars + bar)
    return float(1 - len(used) / (t.n_tracks * n_bars))


def used_pitch_classes_per_bar(score: Score | NoteTable) -> float:
    """MuseGAN's UPC: mean number of distinct pitch classes a track sounds in a bar.

    Averaged over the (non-drum track, bar) pairs in which the track plays, so empty
    bars (already measured by EB) do not pull it down. Range 1-12; NaN without notes.
    """
    t = NoteTable.of(score)
    keep = t.pitched()
    if not keep.any():
        return math.nan
    n_bars = _n_bars(t)
    note_index, bar = _bars_spanned(t.time[keep], t.end[keep], t.bar_ticks)
    track_bar = t.track[keep][note_index] * n_bars + bar
    codes = np.unique(track_bar * 12 + t.pitch[keep][note_index] % 12)
    _, per_bar = np.unique(codes // 12, return_counts=True)
    return float(per_bar.mean())


def qualified_note_rate(score: Score | NoteTable) -> float:
    """MuseGAN's QN: share of non-drum notes lasting at least a 32nd note.

    A note is qualified when its duration, quantised to MuseGAN's 24 steps per beat
    (``round(duration * 24 / tpq)``), is at least 3 steps. NaN without notes.
    """
    t = NoteTable.of(score)
    keep = t.pitched()
    if not keep.any():
        return math.nan
    steps = np.round((t.end[keep] - t.time[keep]) * MUSEGAN_STEPS_PER_BEAT / t.tpq)
    return float(np.mean(steps >= MUSEGAN_QUALIFIED_STEPS))


def tonal_matrix(radii: tuple[float, float, float] = TONAL_RADII) -> np.ndarray:
    """``(6, 12)`` projection of a chroma vector onto the tonal centroid (Harte et al. 2006).

    Rows: r1·sin/cos(l·7π/6) (circle of fifths), r2·sin/cos(l·3π/2) (minor thirds),
    r3·sin/cos(l·2π/3) (major thirds), for pitch class l.
    """
    r1, r2, r3 = radii
    pcs = np.arange(12)
    return np.stack([
        r1 * np.sin(pcs * 7 * np.pi / 6), r1 * np.cos(pcs * 7 * np.pi / 6),
        r2 * np.sin(pcs * 3 * np.pi / 2), r2 * np.cos(pcs * 3 * np.pi / 2),
        r3 * np.sin(pcs * 2 * np.pi / 3), r3 * np.cos(pcs * 2 * np.pi / 3),
    ])


def _track_beat_chroma(t: NoteTable, track: int, span: int, n_spans: int) -> np.ndarray:
    """``(n_spans, 12)`` sounding time (ticks) per pitch class in each span, for one track."""
    keep = t.track == track
    start, end, pitch = t.time[keep], t.end[keep], t.pitch[keep]
    chroma = np.zeros((n_spans, 12))
    if not len(start):
        return chroma
    note_index, index = _bars_spanned(start, end, span)
    overlap = np.minimum(end[note_index], (index + 1) * span) - np.maximum(
        start[note_index], index * span
    )
    np.add.at(chroma, (index, pitch[note_index] % 12), overlap)
    return chroma


def tonal_distance(
    score: Score | NoteTable,
    tracks: tuple[int, int] | None = None,
    per: str = "beat",
    radii: tuple[float, float, float] = TONAL_RADII,
) -> float:
    """MuseGAN's TD: harmonic distance between tracks in Harte et al.'s 6-D tonal space.

    For each beat (``per="beat"``) or bar (``per="bar"``), each track's chroma (sounding
    time per pitch class, as summing a piano-roll over the span) is normalised to sum 1
    and projected by :func:`tonal_matrix`; the TD of two tracks is the mean Euclidean
    distance between their tonal centroids over the spans where both sound (Harte,
    Sandler & Gasser, ACM MM workshop 2006; Dong et al., AAAI 2018). With ``tracks``
    None, the mean over every pair of non-drum tracks that have notes. NaN when fewer
    than two such tracks or no shared span.
    """
    if per not in ("beat", "bar"):
        raise ValueError("per must be 'beat' or 'bar'")
    t = NoteTable.of(score)
    span = t.tpq if per == "beat" else t.bar_ticks
    if tracks is None:
        candidates = [
            i for i in range(t.n_tracks)
            if not t.track_is_drum[i] and np.any(t.track == i)
        ]
        pairs = [(a, b) for k, a in enumerate(candidates) for b in candidates[k + 1:]]
    else:
        first, second = tracks
        pairs = [(first, second)]
    if not pairs or t.length < 1:
        return math.nan
    n_spans = -(-t.length // span)
    projection = tonal_matrix(radii)
    centroids = {}
    for i in {i for pair in pairs for i in pair}:
        chroma = _track_beat_chroma(t, i, span, n_spans)  # (S, 12)
        total = chroma.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            centroids[i] = (chroma / total) @ projection.T  # (S, 6), NaN rows when silent
    distances = []
    for a, b in pairs:
        d = np.linalg.norm(centroids[a] - centroids[b], axis=1)  # (S,)
        distances.append(d[np.isfinite(d)])
    pooled = [d.mean() for d in distances if len(d)]
    return float(np.mean(pooled)) if pooled else math.nan


# ----------------------------------------------------------------------------- descriptive


def note_density_per_beat(score: Score | NoteTable) -> float:
    """Notes (all tracks) per quarter note: ``N / (length / tpq)``; NaN when empty."""
    t = NoteTable.of(score)
    return len(t.time) * t.tpq / t.length if t.length > 0 else math.nan


def note_density_per_second(score: Score | NoteTable) -> float:
    """Notes (all tracks) per second of the tempo map: ``N / seconds(length)``; NaN if empty."""
    t = NoteTable.of(score)
    seconds = t.seconds(t.length)
    return len(t.time) / seconds if seconds > 0 else math.nan


def mean_note_duration(score: Score | NoteTable) -> float:
    """Mean duration of non-drum notes in quarter notes; NaN without notes."""
    t = NoteTable.of(score)
    keep = t.pitched()
    return float(np.mean(t.end[keep] - t.time[keep]) / t.tpq) if keep.any() else math.nan


def inter_onset_intervals(score: Score | NoteTable) -> np.ndarray:
    """Gaps (quarter notes) between consecutive distinct onsets of non-drum notes."""
    t = NoteTable.of(score)
    return np.diff(np.unique(t.time[t.pitched()])) / t.tpq


def inter_onset_interval_mean(score: Score | NoteTable) -> float:
    """Mean inter-onset interval (quarter notes) of non-drum notes; NaN with < 2 onsets."""
    ioi = inter_onset_intervals(score)
    return float(ioi.mean()) if len(ioi) else math.nan


def inter_onset_interval_std(score: Score | NoteTable) -> float:
    """Population standard deviation of the inter-onset intervals; NaN with < 2 onsets."""
    ioi = inter_onset_intervals(score)
    return float(ioi.std()) if len(ioi) else math.nan


def velocity_std(score: Score | NoteTable) -> float:
    """Population standard deviation of all note velocities; NaN without notes."""
    t = NoteTable.of(score)
    return float(t.velocity.std()) if len(t.velocity) else math.nan


# ----------------------------------------------------------------------------- voices

#: Steps per quarter note of the voice-activity grid: sixteenth notes, the resolution of
#: the piano-roll representation's default and of the chorale models.
ACTIVITY_STEPS_PER_QUARTER = 4


def grid_spans(score: Score | NoteTable, steps_per_quarter: int = ACTIVITY_STEPS_PER_QUARTER
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` grid steps of every note (``end`` exclusive), in NoteTable order.

    The piano-roll rule (:mod:`tunesmith.representations.pianoroll`): onset and offset
    rounded to the nearest step (``round(tick * steps_per_quarter / tpq)``, halves to
    even), and every note at least one step long, so a grace note marks its step.
    """
    t = NoteTable.of(score)
    start = np.round(t.time * steps_per_quarter / t.tpq).astype(np.int64)
    end = np.round(t.end * steps_per_quarter / t.tpq).astype(np.int64)
    return start, np.maximum(end, start + 1)


def voice_activity(score: Score | NoteTable, steps_per_quarter: int = ACTIVITY_STEPS_PER_QUARTER
                   ) -> np.ndarray:
    """``(tracks,)`` share of grid steps on which each track sounds at least one note.

    Steps are sixteenth notes by default (:func:`grid_spans`), counted from step 0 to the
    end of the piece's last note on the grid (all tracks), so a rest before a voice's
    first note, between its notes or after its last one counts as silent; a track
    without notes gets 0. All NaN when the piece has no note. Drum tracks count like any
    other. This is the "voice falls silent" measure of issue 13: Bach's chorales have
    each of their four voices sounding on most steps.
    """
    t = NoteTable.of(score)
    if not len(t.time):
        return np.full(t.n_tracks, math.nan)
    start, end = grid_spans(t, steps_per_quarter)
    n_steps = int(end.max())
    marks = np.zeros((t.n_tracks, n_steps + 1), np.int64)  # +1 at onsets, -1 at offsets
    np.add.at(marks, (t.track, start), 1)
    np.add.at(marks, (t.track, end), -1)
    sounding = np.cumsum(marks, axis=1)[:, :-1] > 0  # (tracks, steps)
    return sounding.mean(axis=1)


def track_labels(score: Score | NoteTable) -> list[str]:
    """A label per track for reports: its name, or ``track N`` (1-based) when the name is
    empty or shared with another track."""
    names = [n.strip() for n in NoteTable.of(score).track_names]
    return [n if n and names.count(n) == 1 else f"track {i + 1}" for i, n in enumerate(names)]


def mean_voice_activity(score: Score | NoteTable) -> float:
    """Mean of :func:`voice_activity` over the tracks; NaN without notes."""
    activity = voice_activity(score)
    return float(activity.mean()) if len(activity) else math.nan


def min_voice_activity(score: Score | NoteTable) -> float:
    """Lowest :func:`voice_activity` of any track (the voice most often silent); NaN
    without notes."""
    activity = voice_activity(score)
    return float(activity.min()) if len(activity) else math.nan


# ----------------------------------------------------------------------------- features

#: name -> metric, in report order. Every entry is a scalar function of a NoteTable.
FEATURES = {
    "pitch_range": pitch_range,
    "n_pitches_used": n_pitches_used,
    "n_pitch_classes_used": n_pitch_classes_used,
    "pitch_entropy": pitch_entropy,
    "pitch_class_entropy": pitch_class_entropy,
    "polyphony": polyphony,
    "polyphony_rate": polyphony_rate,
    "scale_consistency": scale_consistency,
    "empty_beat_rate": empty_beat_rate,
    "empty_measure_rate": empty_measure_rate,
    "groove_consistency": groove_consistency,
    "drum_pattern_consistency": drum_pattern_consistency,
    "empty_bar_rate": empty_bar_rate,
    "used_pitch_classes_per_bar": used_pitch_classes_per_bar,
    "qualified_note_rate": qualified_note_rate,
    "tonal_distance": tonal_distance,
    "note_density_per_beat": note_density_per_beat,
    "note_density_per_second": note_density_per_second,
    "mean_note_duration": mean_note_duration,
    "ioi_mean": inter_onset_interval_mean,
    "ioi_std": inter_onset_interval_std,
    "velocity_std": velocity_std,
    "voice_activity": mean_voice_activity,
    "voice_activity_min": min_voice_activity,
}
FEATURE_NAMES = tuple(FEATURES)


def feature_vector(score: Score | NoteTable) -> dict[str, float]:
    """Every scalar metric of :data:`FEATURES` for one piece (NaN where undefined)."""
    table = NoteTable.of(score)
    return {name: float(fn(table)) for name, fn in FEATURES.items()}
