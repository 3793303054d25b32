from __future__ import annotations

import pytest
from symusic import KeySignature, Note, Score, Tempo, TimeSignature, Track

from tunesmith.errors import ConfigError
from tunesmith.music import load
from tunesmith.music import transforms as tf


def _track(notes, name="piano", program=0, drum=False):
    track = Track(name, program, drum)
    for time, duration, pitch in notes:
        track.notes.append(Note(time, duration, pitch, 80))
    return track


def _score(*tracks, tpq=480, time_signatures=()):
    score = Score(tpq)
    score.tempos.append(Tempo(0, 120.0))
    for time, numerator, denominator in time_signatures:
        score.time_signatures.append(TimeSignature(time, numerator, denominator))
    score.tracks.extend(tracks)
    return score


def _notes(track):
    return [(n.time, n.duration, n.pitch) for n in track.notes]


# ----------------------------------------------------------------------------- transpose


def test_transpose_shifts_pitched_tracks_and_leaves_drums():
    score = _score(_track([(0, 480, 60), (480, 480, 67)]), _track([(0, 60, 36)], drum=True))
    score.key_signatures.append(KeySignature(0, 0, 0))  # C major
    out, dropped = tf.transpose(score, 7)
    assert dropped == 0
    assert _notes(out.tracks[0]) == [(0, 480, 67), (480, 480, 74)]
    assert _notes(out.tracks[1]) == [(0, 60, 36)]
    assert out.key_signatures[0].key == 1  # G major: one sharp
    assert _notes(score.tracks[0]) == [(0, 480, 60), (480, 480, 67)]  # input unchanged
    down, _ = tf.transpose(score, -1)
    assert down.key_signatures[0].key == 5  # B major (5 sharps)
    octave, _ = tf.transpose(score, 12)
    assert octave.key_signatures[0].key == 0


def test_transpose_drops_and_counts_notes_out_of_range():
    score = _score(_track([(0, 480, 120), (0, 480, 60), (480, 480, 125), (960, 10, 2)]))
    out, dropped = tf.transpose(score, 5)
    assert dropped == 1  # only 125 + 5 leaves 0-127
    assert _notes(out.tracks[0]) == [(0, 480, 65), (0, 480, 125), (960, 10, 7)]
    out, dropped = tf.transpose(score, -3, low=21, high=108)
    assert dropped == 3  # 117 and 122 above 108, -1 below 21
    assert _notes(out.tracks[0]) == [(0, 480, 57)]
    with pytest.raises(ConfigError):
        tf.transpose(score, 0, low=50, high=40)


# ----------------------------------------------------------------------------- quantize


def test_quantize_snaps_onsets_and_offsets_with_a_one_step_minimum():
    # 4 steps per quarter at 480 tpq: a step is 120 ticks
    score = _score(_track([(10, 100, 60), (170, 10, 62), (359, 241, 64), (1000, 3, 65)]))
    out = tf.quantize(score, 4)
    assert _notes(out.tracks[0]) == [(0, 120, 60), (120, 120, 62), (360, 240, 64),
                                     (960, 120, 65)]
    assert tf.quantize(out, 4).tracks[0].notes == out.tracks[0].notes  # idempotent
    with pytest.raises(ConfigError):
        tf.quantize(score, 0)


def test_quantize_to_triplets_on_an_odd_resolution():
    score = _score(_track([(0, 33, 60), (34, 30, 62), (70, 26, 64)]), tpq=96)
    out = tf.quantize(score, 3)  # 32 ticks per step
    assert _notes(out.tracks[0]) == [(0, 32, 60), (32, 32, 62), (64, 32, 64)]


# ----------------------------------------------------------------------------- bars


def test_bar_starts_follow_time_signature_changes():
    score = _score(_track([(0, 480 * 12, 60)]), time_signatures=[(0, 4, 4), (3840, 3, 4),
                                                                 (3840 + 2880, 6, 8)])
    # two 4/4 bars, two 3/4 bars, then 6/8 bars (1440 ticks) up to the end at 5760
    assert tf.bar_starts(score) == [0, 1920, 3840, 5280, 6720]
    assert tf.bar_starts(score, end=7000) == [0, 1920, 3840, 5280, 6720, 8160]
    assert tf.bar_starts(_score(_track([(0, 100, 60)]))) == [0, 1920]  # 4/4 by default


def test_a_time_signature_inside_a_bar_starts_a_new_bar():
    score = _score(_track([(0, 4800, 60)]), time_signatures=[(0, 4, 4), (960, 2, 4)])
    assert tf.bar_starts(score) == [0, 960, 1920, 2880, 3840, 4800]


def test_steps_per_bar():
    assert tf.steps_per_bar(_score(), 4) == 16
    assert tf.steps_per_bar(_score(time_signatures=[(0, 6, 8)]), 4) == 12
    assert tf.steps_per_bar(_score(time_signatures=[(0, 3, 4)]), 3) == 9
    assert tf.steps_per_bar(_score(time_signatures=[(0, 7, 16)]), 4) == 7
    with pytest.raises(ConfigError, match="finer grid"):
        tf.steps_per_bar(_score(time_signatures=[(0, 5, 32)]), 4)


# ----------------------------------------------------------------------------- segment


def test_segment_into_bars_clips_notes_and_drops_empty_windows():
    bar = 1920
    melody = _track([(0, 480, 60), (bar - 240, 480, 62), (2 * bar, 480, 64),
                     (4 * bar + 960, 960, 65), (6 * bar, 2 * bar, 67)])
    score = _score(melody)
    windows = tf.segment(score, bars=2)
    # windows [0,2), [2,4), [4,6), [6,8) bars: all have notes
    assert [_notes(w.tracks[0]) for w in windows] == [
        [(0, 480, 60), (bar - 240, 480, 62)],
        [(0, 480, 64)],
        [(960, 960, 65)],
        [(0, 2 * bar, 67)],
    ]
    windows = tf.segment(score, bars=1)
    # the note at 1680 is cut at the bar line; bars 2, 4 and 8 (the last note's second
    # bar) hold no onset, so their windows are dropped
    assert [_notes(w.tracks[0]) for w in windows] == [
        [(0, 480, 60), (bar - 240, 240, 62)],
        [(0, 480, 64)],
        [(960, 960, 65)],
        [(0, bar, 67)],
    ]


def test_segment_with_hop_and_partial_windows():
    bar = 1920
    score = _score(_track([(i * bar, 480, 60 + i) for i in range(5)]))
    windows = tf.segment(score, bars=2, hop_bars=1)
    assert [[n.pitch for n in w.tracks[0].notes] for w in windows] == [
        [60, 61], [61, 62], [62, 63], [63, 64], [64]]
    kept = tf.segment(score, bars=2, hop_bars=1, drop_partial=True)
    assert [[n.pitch for n in w.tracks[0].notes] for w in kept] == [
        [60, 61], [61, 62], [62, 63], [63, 64]]
    with pytest.raises(ConfigError):
        tf.segment(score, bars=0)


def test_segment_carries_the_marks_in_force():
    bar = 1920
    score = _score(_track([(i * 480, 480, 60) for i in range(24)]),
                   time_signatures=[(0, 4, 4), (2 * bar, 3, 4)])
    score.tempos.append(Tempo(bar + 960, 90.0))
    windows = tf.segment(score, bars=2)
    assert [(t.time, round(t.qpm)) for t in windows[0].tempos] == [(0, 120), (bar + 960, 90)]
    assert [(t.time, round(t.qpm)) for t in windows[1].tempos] == [(0, 90)]
    assert [(t.time, t.numerator) for t in windows[1].time_signatures] == [(0, 3)]
    # the second window holds two 3/4 bars: 12 quarter notes in 6
    assert windows[1].note_num() == 6


def test_segment_a_real_chorale(chorale_paths):
    score = load(chorale_paths[0])
    windows = tf.segment(score, bars=4)
    assert sum(w.note_num() for w in windows) == score.note_num()
    for window in windows:
        assert window.end() <= 4 * 1920


# ----------------------------------------------------------------------------- tracks


def test_select_and_merge_tracks():
    score = _score(_track([(0, 480, 72)], name="Soprano"),
                   _track([(0, 960, 72), (480, 480, 67)], name="Alto", program=52),
                   _track([(0, 60, 36)], name="Drums", drum=True))
    assert [t.name for t in tf.select_tracks(score, names=["soprano"]).tracks] == ["Soprano"]
    assert [t.name for t in tf.select_tracks(score, programs=[52]).tracks] == ["Alto"]
    assert [t.name for t in tf.select_tracks(score, drums=False).tracks] == ["Soprano", "Alto"]
    assert [t.name for t in tf.select_tracks(score, drums=True).tracks] == ["Drums"]
    assert len(tf.select_tracks(score, names=["Soprano"], drums=True).tracks) == 0
    merged = tf.merge_tracks(score, "Choir", 52)
    assert [(t.name, t.program, t.is_drum) for t in merged.tracks] == [
        ("Choir", 52, False), ("Drums", 0, True)]
    # the unison at tick 0 becomes one note with the longer duration
    assert _notes(merged.tracks[0]) == [(0, 960, 72), (480, 480, 67)]


def test_is_monophonic():
    assert tf.is_monophonic(_track([(0, 480, 60), (480, 480, 62)]))
    assert not tf.is_monophonic(_track([(0, 480, 60), (240, 480, 62)]))
    assert tf.is_monophonic(_track([(0, 500, 60), (480, 480, 62)]), tolerance=20)
    # a long note covering two later ones
    assert not tf.is_monophonic(_track([(0, 2000, 60), (480, 480, 62), (960, 480, 64)]))
    assert tf.is_monophonic(_track([]))


def test_pitched_tracks_drops_drum_tracks_and_copies_only_when_it_must():
    score = Score(480)
    piano, kit = Track("Piano", 0, False), Track("Drums", 0, True)
    piano.notes.append(Note(0, 480, 60, 80))
    kit.notes.append(Note(0, 120, 36, 100))
    score.tracks.append(piano)
    assert tf.pitched_tracks(score) is score  # nothing to drop: the same object
    score.tracks.append(kit)
    pitched = tf.pitched_tracks(score)
    assert [t.name for t in pitched.tracks] == ["Piano"] and len(score.tracks) == 2


def test_append_new_event_skips_a_restatement_and_keeps_a_change():
    score = Score(480)
    tf.append_new_event(score.time_signatures, TimeSignature(0, 3, 4))
    tf.append_new_event(score.time_signatures, TimeSignature(1440, 3, 4))  # restated
    tf.append_new_event(score.time_signatures, TimeSignature(2880, 4, 4))  # a change
    assert [(t.time, t.numerator) for t in score.time_signatures] == [(0, 3), (2880, 4)]
    tf.append_new_event(score.tempos, Tempo(0, 100.0))
    tf.append_new_event(score.tempos, Tempo(960, 100.0))
    tf.append_new_event(score.tempos, Tempo(1920, 90.0))
    assert [round(t.qpm) for t in score.tempos] == [100, 90]
    tf.append_new_event(score.key_signatures, KeySignature(0, 2, 0))
    tf.append_new_event(score.key_signatures, KeySignature(960, 2, 1))  # same key, minor
    assert len(score.key_signatures) == 2
