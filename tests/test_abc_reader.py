"""ABC through abc2midi (tunesmith.music.abc): tunesmith's conventions on small tunes, the
same pieces as music21 on real tunes without the features the two read differently, and
music21 for what abc2midi cannot read."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from tunesmith.data.corpora import get_corpus, load_abc_tune
from tunesmith.music import abc
from tunesmith.music.abc import read_tunes, split_abc_tunes
from tunesmith.music.io import load_abc_text, parse_abc, read_text
from tunesmith.representations import melody

HEAD = "X:1\nM:4/4\nL:1/4\nK:C\n"


def notes(score) -> list[tuple[int, int, int]]:
    return [(n.time, n.duration, n.pitch) for t in score.tracks for n in t.notes]


def read(body: str, head: str = HEAD):
    score = read_tunes([head + body + "\n"], 30)[0]
    assert not isinstance(score, str), score
    return score


def test_notes_start_on_the_beat_with_velocity_80_chords_together_grace_notes_dropped():
    score = read("[CEG] {d}D E F|G4|]")
    assert notes(score) == [(0, 480, 60), (0, 480, 64), (0, 480, 67), (480, 480, 62),
                            (960, 480, 64), (1440, 480, 65), (1920, 1920, 67)]
    assert {n.velocity for n in score.tracks[0].notes} == {abc.VELOCITY}
    assert [(t.name, t.program, t.is_drum) for t in score.tracks] == [("Part 1", 0, False)]
    assert score.ticks_per_quarter == 480


def test_decorations_do_not_change_notes():
    plain, decorated = read("C D E F|G4|]"), read(".C ~D TE !trill!F|HG4|]")
    assert notes(decorated) == notes(plain)


def test_a_pickup_is_shifted_to_the_bar_grid_even_when_bars_end_in_rests_or_ties():
    # the pickup is 1 quarter: the tune moves right by the 3 missing quarters
    score = read("C|C D E z|F2 G2-|G4|C4|]")
    assert notes(score)[:2] == [(1440, 480, 60), (1920, 480, 60)]
    assert notes(score)[-2] == (1440 + 480 + 4 * 480 + 960, 480 * 6, 67)  # the tie, merged
    assert [(t.time, t.numerator, t.denominator) for t in score.time_signatures] == [(0, 4, 4)]
    # a short first bar followed by a short bar is not a pickup (music21's rule)
    assert notes(read("C|C D|E F G A|C4|]"))[0] == (0, 480, 60)


def test_repeats_accidentals_ties_and_key_changes_follow_the_abc_standard():
    assert len(read("|:C D E F:|G4|]").tracks[0].notes) == 9  # played twice
    assert [n[2] for n in notes(read("^F F G A|F4|]"))] == [66, 66, 67, 69, 65]  # held to |
    assert [n[2] for n in notes(read("C D- E F|G4|]"))] == [60, 62, 64, 65, 67]  # both play
    changed = read("C D E F|[K:G]F4|]")
    assert notes(changed)[-1][2] == 66
    assert [(k.time, k.key) for k in changed.key_signatures] == [(0, 0), (1920, 1)]


def test_a_tune_without_a_meter_has_no_time_signature_and_no_pickup():
    score = read("C|C D E F|G A B c|C4|]", head="X:1\nM:none\nL:1/4\nK:C\n")
    assert len(score.time_signatures) == 0
    assert notes(score)[0] == (0, 480, 60)


def test_what_abc2midi_cannot_read_goes_to_music21(monkeypatch):
    voices = HEAD + "V:1\nC D E F|G4|]\n"
    assert read_tunes([voices], 30)[0] == "several voices (V:)"
    # music21 reads the voiced tune in load_abc_text
    assert notes(load_abc_text(voices, "x.abc")[0]) == notes(parse_abc(voices, "x.abc")[0])

    def crash(texts, time_limit):
        raise subprocess.TimeoutExpired("abc2midi", time_limit)

    monkeypatch.setattr(abc, "run_abc2midi", crash)
    assert read_tunes([HEAD + "C4|]\n"], 0.5)[0] == "abc2midi took more than 0.5 s"
    both = load_abc_text(HEAD + "C D E F|G4|]\n", "x.abc")
    assert notes(both[0]) == notes(parse_abc(HEAD + "C D E F|G4|]\n", "x.abc")[0])


def _plain(text: str) -> bool:
    """No feature music21 and abc2midi read differently (see benchmarks/abc_readers.py):
    no accidentals, repeats, ties, grace notes, decorations, mid-tune fields, or broken
    rhythms in slurs in the tune body."""
    body = text.split("\nK:", 1)[1].split("\n", 1)[1]
    return not (re.search(r"[_^=:\-{}!.~HLMPTuv]|\[[A-Za-z]:|^[A-Za-z]:", body, re.M)
                or ("(" in body and re.search("[<>]", body)))


@pytest.mark.parametrize("name", ["essen-folk", "oneills"])
def test_real_tunes_read_as_music21_reads_them(name):
    """Every 160th tune (essen-folk) / 8th (oneills) without those features: the same
    notes, the same key and, where music21 kept the written meter, the same meter; and
    the same prepared melody arrays."""
    corpus = get_corpus(name)
    sources = [s for s in corpus.sources()[0] if s.tune is not None]
    step = 160 if name == "essen-folk" else 8
    checked = 0
    cfg = melody.MelodyConfig()
    texts: dict[str, list] = {}
    for source in sources[::step]:
        if source.path not in texts:
            texts = {source.path: split_abc_tunes(read_text(source.path))}
        text = texts[source.path][source.tune][1]
        if not _plain(text):
            continue
        ours = load_abc_tune(source.path, source.tune)  # abc2midi, as prepare reads it
        theirs = parse_abc(text, source.id)[0]  # music21, as prepare read it before
        assert notes(ours) == notes(theirs), source.id
        assert [(k.time, k.key, k.tonality) for k in ours.key_signatures] == \
            [(k.time, k.key, k.tonality) for k in theirs.key_signatures], source.id
        meters = [(t.time, t.numerator, t.denominator) for t in theirs.time_signatures]
        if len(meters) == 1:  # music21 gave no bar a meter of its own
            assert [(t.time, t.numerator, t.denominator)
                    for t in ours.time_signatures] == meters, source.id
        assert np.array_equal(melody.encode(ours, cfg), melody.encode(theirs, cfg)), source.id
        checked += 1
    assert checked >= (30 if name == "essen-folk" else 10)  # 37 and 14 here


def test_a_crash_or_malformed_output_of_abc2midi_sends_the_tune_to_music21(monkeypatch,
                                                                           tmp_path):
    tune = HEAD + "C D E F|G4|]\n"
    crashing = tmp_path / "abc2midi"
    crashing.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crashing.chmod(0o755)
    monkeypatch.setattr(abc, "abc2midi_path", lambda: crashing)
    assert read_tunes([tune], 10)[0] == "abc2midi cannot run (abc2midi crashed (signal 11))"
    assert notes(load_abc_text(tune, "x.abc")[0]) == notes(parse_abc(tune, "x.abc")[0])
    monkeypatch.undo()

    def garbage(texts, time_limit):  # MThd, then a track running past the end
        return [b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\xff\xff\xff\xff"
                for _ in texts], ""

    monkeypatch.setattr(abc, "run_abc2midi", garbage)
    reason = read_tunes([tune], 10)[0]
    assert isinstance(reason, str) and reason.startswith("abc2midi wrote malformed MIDI")
    assert notes(load_abc_text(tune, "x.abc")[0]) == notes(parse_abc(tune, "x.abc")[0])
