import numpy as np
import pytest
from symusic import Note, Score, Track

from tunesmith.errors import ConfigError
from tunesmith.music import load
from tunesmith.representations import pianoroll as pr


def _score(notes, tpq=480):
    score = Score(tpq)
    track = Track("piano", 0, False)
    for time, duration, pitch in notes:
        track.notes.append(Note(time, duration, pitch, 80))
    score.tracks.append(track)
    return score


def test_encode_places_notes_on_the_grid():
    cfg = pr.PianorollConfig(resolution=4, pitch_low=60, pitch_high=71)
    grid = pr.encode(_score([(0, 480, 60), (480, 240, 64)]), cfg)
    assert grid.shape == (1, 6, 12)
    assert grid[0, 0:4, 0].tolist() == [1, 1, 1, 1]
    assert grid[0, 4:6, 4].tolist() == [1, 1]
    assert grid.sum() == 6


def test_repeated_notes_need_onsets_to_round_trip():
    cfg = pr.PianorollConfig(resolution=4, pitch_low=60, pitch_high=71)
    score = _score([(0, 240, 62), (240, 240, 62)])
    frames, starts = pr.encode(score, cfg), pr.onsets(score, cfg)
    assert pr.decode(frames, cfg).note_num() == 1  # merged without onsets
    assert pr.decode(frames, cfg, onsets=starts).note_num() == 2


def test_out_of_range_pitches_are_dropped():
    cfg = pr.PianorollConfig(resolution=4, pitch_low=60, pitch_high=61)
    assert pr.encode(_score([(0, 480, 40), (0, 480, 60)]), cfg).sum() == 4


def test_round_trip_on_real_chorales(chorale_paths):
    cfg = pr.PianorollConfig(resolution=4)
    for path in chorale_paths:
        score = load(path)
        frames, starts = pr.encode(score, cfg), pr.onsets(score, cfg)
        decoded = pr.decode(frames, cfg, onsets=starts)
        assert decoded.note_num() == score.note_num()
        np.testing.assert_array_equal(pr.encode(decoded, cfg), frames)
        np.testing.assert_array_equal(pr.onsets(decoded, cfg), starts)


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError):
        pr.PianorollConfig(resolution=0)
    with pytest.raises(ConfigError):
        pr.PianorollConfig(pitch_low=80, pitch_high=60)
    with pytest.raises(ConfigError, match="piano-roll"):
        pr.decode(np.zeros((1, 4, 5)), pr.PianorollConfig())
