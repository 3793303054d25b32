from __future__ import annotations

from pathlib import Path

import music21
import numpy as np
import pytest
from symusic import Note, Score, Track

from tunesmith.errors import ConfigError, RepresentationError
from tunesmith.music import load_all
from tunesmith.music.transforms import quantize
from tunesmith.representations import melody as mel
from tunesmith.representations.melody import NO_EVENT, NOTE_OFF, MelodyConfig

ESSEN = Path(music21.__file__).parent / "corpus" / "essenFolksong"


def _track(notes, name="melody", drum=False):
    track = Track(name, 0, drum)
    for time, duration, pitch in notes:
        track.notes.append(Note(time, duration, pitch, 80))
    return track


def _score(*tracks):
    score = Score(480)
    score.tracks.extend(tracks)
    return score


def _notes(score, track=0):
    return [(n.time, n.duration, n.pitch) for n in score.tracks[track].notes]


def on(pitch, cfg=MelodyConfig()):
    return mel.pitch_event(pitch, cfg)


def test_vocabulary_and_config_round_trip():
    cfg = MelodyConfig()
    assert (cfg.n_pitches, cfg.vocab_size) == (36, 38)  # Magenta's 38 melody classes
    assert on(48) == 2 and on(83) == 37
    assert MelodyConfig.from_dict(cfg.to_dict()) == cfg
    custom = MelodyConfig(steps_per_quarter=3, pitch_low=60, pitch_high=71, polyphony="skip",
                          transpose_to_range=False)
    assert MelodyConfig.from_dict(custom.to_dict()) == custom
    with pytest.raises(ConfigError, match="unknown melody option"):
        MelodyConfig.from_dict({"resolution": 4})
    with pytest.raises(ConfigError, match="polyphony"):
        MelodyConfig(polyphony="lowest")
    with pytest.raises(ConfigError):
        MelodyConfig(pitch_low=60, pitch_high=59)
    with pytest.raises(ConfigError, match="octave"):
        MelodyConfig(pitch_low=60, pitch_high=69)
    with pytest.raises(ConfigError):
        MelodyConfig(steps_per_quarter=0)


def test_encode_a_hand_made_melody():
    # C4 a quarter, D4 an eighth, rest, E4 a quarter at beat 4
    score = _score(_track([(0, 480, 60), (480, 240, 62), (1440, 480, 64)]))
    events = mel.encode(score, MelodyConfig())
    assert events.dtype == np.int16
    assert events.tolist() == [on(60), 0, 0, 0, on(62), 0, NOTE_OFF, 0, 0, 0, 0, 0,
                               on(64), 0, 0, 0]
    assert _notes(mel.decode(events, MelodyConfig())) == _notes(score)


def test_repeated_notes_and_leading_silence():
    score = _score(_track([(480, 240, 60), (720, 240, 60), (960, 120, 60)]))
    events = mel.encode(score, MelodyConfig())
    assert events.tolist() == [0, 0, 0, 0, on(60), 0, on(60), 0, on(60)]
    assert _notes(mel.decode(events, MelodyConfig())) == _notes(score)


def test_skyline_keeps_the_highest_sounding_note():
    soprano = _track([(0, 480, 72), (480, 480, 71)])
    alto = _track([(0, 240, 64), (240, 720, 65)])
    bass = _track([(0, 1920, 48)])
    alone = mel.encode(_score(soprano), MelodyConfig())
    assert alone.tolist() == [on(72), 0, 0, 0, on(71), 0, 0, 0]
    merged = _score(_track([(n.time, n.duration, n.pitch) for t in (soprano, alto, bass)
                            for n in t.notes]))
    events = mel.encode(merged, MelodyConfig())
    # the soprano for two beats, then the held bass re-enters as a new note
    assert events.tolist() == [on(72), 0, 0, 0, on(71), 0, 0, 0, on(48)] + [0] * 7


def test_highest_policy_on_legato_overlaps():
    up = _score(_track([(0, 600, 60), (480, 480, 62)]))  # D enters while C still sounds
    assert mel.encode(up, MelodyConfig()).tolist() == [on(60), 0, 0, 0, on(62), 0, 0, 0]
    down = _score(_track([(0, 600, 62), (480, 480, 60)]))
    # the lower C waits for the higher D to end (600 ticks = step 5)
    assert mel.encode(down, MelodyConfig()).tolist() == [on(62), 0, 0, 0, 0, on(60), 0, 0]


def test_skip_policy_refuses_chords_and_reads_overlaps_as_legato():
    cfg = MelodyConfig(polyphony="skip")
    with pytest.raises(RepresentationError, match=r"pitches \[60, 64\] start together"):
        mel.encode(_score(_track([(0, 480, 60), (0, 480, 64)])), cfg)
    down = _score(_track([(0, 600, 62), (480, 480, 60)]))
    assert mel.encode(down, cfg).tolist() == [on(62), 0, 0, 0, on(60), 0, 0, 0]


def test_out_of_range_melodies_move_by_octaves():
    high = _score(_track([(0, 480, 90), (480, 480, 95), (960, 480, 86)]))
    events = mel.encode(high, MelodyConfig())
    assert events[[0, 4, 8]].tolist() == [on(78), on(83), on(74)]  # down one octave
    # a melody wider than the range: the bulk moves as a whole, the rest is folded in
    wide = _score(_track([(0, 240, 36), (240, 240, 60), (480, 240, 80), (720, 240, 95)]))
    events = mel.encode(wide, MelodyConfig())
    # down an octave fits three of four (24 48 68 83); 24 is then folded up to 48
    assert events[[0, 2, 4, 6]].tolist() == [on(48), on(48), on(68), on(83)]
    fits_up = _score(_track([(0, 240, 40), (240, 240, 50), (480, 240, 60), (720, 240, 70)]))
    assert mel.encode(fits_up, MelodyConfig())[[0, 2, 4, 6]].tolist() == [
        on(52), on(62), on(72), on(82)]
    with pytest.raises(RepresentationError, match=r"pitches \[86, 90, 95\] outside"):
        mel.encode(high, MelodyConfig(transpose_to_range=False))


def test_track_choice():
    drums = _track([(0, 120, 36)], name="drums", drum=True)
    empty = _track([], name="empty")
    tune = _track([(0, 480, 67)], name="tune")
    bass = _track([(0, 480, 55)], name="bass")
    score = _score(drums, empty, tune, bass)
    assert mel.encode(score, MelodyConfig()).tolist() == [on(67), 0, 0, 0]
    assert mel.encode(score, MelodyConfig(), track=3).tolist() == [on(55), 0, 0, 0]
    with pytest.raises(RepresentationError, match="drum"):
        mel.encode(score, MelodyConfig(), track=0)
    with pytest.raises(RepresentationError, match="no notes"):
        mel.encode(score, MelodyConfig(), track=1)
    with pytest.raises(RepresentationError, match="no track 7"):
        mel.encode(score, MelodyConfig(), track=7)
    with pytest.raises(RepresentationError, match="no pitched track"):
        mel.encode(_score(drums), MelodyConfig())


def test_decode_checks_events_and_ends_the_last_note_at_the_end():
    cfg = MelodyConfig()
    score = mel.decode(np.array([0, on(60), 0, NOTE_OFF, NO_EVENT, on(64), 0]), cfg,
                       program=40, tpq=96)
    assert score.tracks[0].program == 40
    assert _notes(score) == [(24, 48, 60), (120, 48, 64)]
    with pytest.raises(RepresentationError, match=r"0\.\.37"):
        mel.decode(np.array([0, 38]), cfg)
    with pytest.raises(RepresentationError):
        mel.decode(np.array([-1]), cfg)


@pytest.fixture(scope="session")
def essen_tunes():
    return load_all(ESSEN / "testd.abc") + load_all(ESSEN / "teste.abc")


@pytest.mark.parametrize("steps_per_quarter", [4, 12])
def test_round_trip_on_essen_folk_tunes(essen_tunes, steps_per_quarter):
    cfg = MelodyConfig(steps_per_quarter=steps_per_quarter, pitch_low=0, pitch_high=127,
                       polyphony="skip")
    assert len(essen_tunes) >= 10
    for tune in essen_tunes:
        decoded = mel.decode(mel.encode(tune, cfg), cfg, tpq=tune.ticks_per_quarter)
        assert _notes(decoded) == _notes(quantize(tune, steps_per_quarter))


def test_round_trip_in_the_default_range(essen_tunes):
    cfg = MelodyConfig()
    shifted = 0
    for tune in essen_tunes:
        events = mel.encode(tune, cfg)
        assert events.max() < cfg.vocab_size
        decoded = _notes(mel.decode(events, cfg))
        original = _notes(quantize(tune, 4))
        assert [(t, d) for t, d, _ in decoded] == [(t, d) for t, d, _ in original]
        octaves = {p - q for (_, _, p), (_, _, q) in zip(decoded, original, strict=True)}
        assert len(octaves) == 1 and octaves.pop() % 12 == 0  # whole tune moved by octaves
        shifted += decoded != original
    assert shifted < len(essen_tunes)  # most folk tunes already fit the range
