from __future__ import annotations

from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from tunesmith.errors import ConfigError, RepresentationError
from tunesmith.music import load
from tunesmith.music.transforms import quantize
from tunesmith.representations import events as ev
from tunesmith.representations.events import BOS_ID, EOS_ID, PAD_ID, EventsConfig


def _note_set(score: Score, max_quarters: int = 12) -> Counter:
    """(pitch, onset, duration, program) in quarter notes; durations capped like miditok's."""
    out = Counter()
    tpq = score.ticks_per_quarter
    for track in score.tracks:
        program = -1 if track.is_drum else track.program
        for n in track.notes:
            duration = min(Fraction(n.duration, tpq), max_quarters)
            out[(n.pitch, Fraction(n.time, tpq), duration, program)] += 1
    return out


@pytest.fixture(scope="session")
def chorales(chorale_paths):
    """Three chorales, each voice given its own program so that tracks stay apart."""
    scores = []
    for path in chorale_paths:
        score = load(path)
        for i, track in enumerate(score.tracks):
            track.program = 52 + i
        scores.append(quantize(score, 8))  # miditok's finest grid here: 1/8 beat
    return scores


def _coarse_durations_fit(score: Score) -> bool:
    """Beyond 4 beats miditok's default durations are quarter-beat steps."""
    tpq = score.ticks_per_quarter
    return all(n.duration < 4 * tpq or n.duration % (tpq // 4) == 0
               for t in score.tracks for n in t.notes)


@pytest.mark.parametrize("tokenizer", ["REMI", "MIDILike", "TSD"])
def test_round_trip_on_real_chorales(chorales, tokenizer):
    from tunesmith.representations.grammar import TokenGrammar

    cfg = EventsConfig(tokenizer=tokenizer)
    grammar = TokenGrammar(ev.build_tokenizer(cfg))
    for score in chorales:
        assert _coarse_durations_fit(score)
        ids = ev.encode(score, cfg)
        assert ids.dtype == np.int32 and ids[0] == BOS_ID and ids[-1] == EOS_ID
        assert ids.max() < ev.vocab_size(cfg)
        decoded = ev.decode(ids, cfg)
        assert decoded.ticks_per_quarter == 480
        assert _note_set(decoded) == _note_set(score)
        # the constrained decoder allows every token of real data
        state = grammar.start()
        for token in ids[1:-1].tolist():
            assert grammar.mask(state, remaining=10**6)[token], grammar.vocab.types[token]
            grammar.advance(state, token)


def test_vocabularies_and_config_round_trip():
    sizes = {name: ev.vocab_size(EventsConfig(tokenizer=name)) for name in ev.TOKENIZERS}
    assert sizes == {"REMI": 485, "MIDILike": 539, "TSD": 452}  # miditok 3.1.0
    cfg = EventsConfig(tokenizer="TSD", beat_res=[[0, 8, 4]], num_velocities=8,
                       use_programs=False)
    assert EventsConfig.from_dict(cfg.to_dict()) == cfg
    assert ev.build_tokenizer(cfg) is ev.build_tokenizer(EventsConfig.from_dict(cfg.to_dict()))
    with pytest.raises(ConfigError, match="unknown tokenizer"):
        EventsConfig(tokenizer="Octuple")
    with pytest.raises(ConfigError, match="unknown events option"):
        EventsConfig.from_dict({"resolution": 8})
    with pytest.raises(ConfigError, match="beat_res"):
        EventsConfig(beat_res=[[4, 0, 8]])


def _two_track_score() -> Score:
    score = Score(480)
    score.tempos.append(Tempo(0, 120.0))
    score.time_signatures.append(TimeSignature(0, 3, 4))
    melody, bass = Track("Flute", 73, False), Track("Bass", 32, False)
    for i, pitch in enumerate([72, 74, 76, 77, 79, 81]):
        melody.notes.append(Note(i * 240, 240, pitch, 100))
    bass.notes.append(Note(0, 1440, 48, 80))
    bass.notes.append(Note(1440, 720, 43, 80))
    score.tracks.extend([melody, bass])
    return score


def test_remi_tokens_of_a_tiny_piece():
    cfg = EventsConfig(tokenizer="REMI")
    tokenizer = ev.build_tokenizer(cfg)
    tokens = [tokenizer[int(i)] for i in ev.encode(_two_track_score(), cfg)]
    assert tokens[:9] == ["BOS_None", "Bar_None", "TimeSig_3/4", "Position_0", "Program_73",
                          "Pitch_72", "Velocity_99", "Duration_0.4.8", "Program_32"]
    assert tokens.count("Bar_None") == 2  # two 3/4 bars
    assert tokens[-1] == "EOS_None"


def test_single_stream_without_programs_merges_pitched_tracks():
    cfg = EventsConfig(tokenizer="REMI", use_programs=False)
    score = _two_track_score()
    decoded = ev.decode(ev.encode(score, cfg), cfg)
    assert len(decoded.tracks) == 1
    expected = Counter({(p, o, d, 0): c for (p, o, d, _), c in _note_set(score).items()})
    assert _note_set(decoded) == expected


def test_encode_and_decode_errors():
    cfg = EventsConfig(pitch_range=[60, 72])
    score = Score(480)
    track = Track("low", 0, False)
    track.notes.append(Note(0, 480, 30, 80))
    score.tracks.append(track)
    with pytest.raises(RepresentationError, match="no note left"):
        ev.encode(score, cfg)
    with pytest.raises(RepresentationError, match="token ids"):
        ev.decode(np.array([1, 10_000]), cfg)


def test_decode_ignores_specials_and_stops_at_eos():
    cfg = EventsConfig()
    ids = ev.encode(_two_track_score(), cfg)
    padded = np.concatenate([[BOS_ID, PAD_ID], ids[1:], ids[1:], [PAD_ID] * 3])
    assert _note_set(ev.decode(padded, cfg)) == _note_set(_two_track_score())
