"""Reading and writing music files: malformed input gets a MusicFileError, odd input a
documented behaviour (see the docstring of tunesmith.music.io)."""

from __future__ import annotations

import os
from pathlib import Path

import music21
import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from make_test_data import vlq
from tunesmith.errors import MusicFileError
from tunesmith.music import load, load_all, save_midi

CORPUS = Path(music21.__file__).parent / "corpus"


# ---------------------------------------------------------------------------- raw MIDI


def _track_chunk(events: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(vlq(delta) + data for delta, data in events) + b"\x00\xff\x2f\x00"
    return b"MTrk" + len(body).to_bytes(4, "big") + body


def _midi_bytes(tracks: list[list[tuple[int, bytes]]], fmt: int = 1, tpq: int = 480) -> bytes:
    header = b"MThd" + (6).to_bytes(4, "big") + fmt.to_bytes(2, "big")
    header += len(tracks).to_bytes(2, "big") + tpq.to_bytes(2, "big")
    return header + b"".join(_track_chunk(t) for t in tracks)


def _on(channel: int, pitch: int, velocity: int = 90) -> bytes:
    return bytes([0x90 | channel, pitch, velocity])


def _off(channel: int, pitch: int) -> bytes:
    return bytes([0x80 | channel, pitch, 0])


TEMPO_120 = b"\xff\x51\x03\x07\xa1\x20"  # 500000 µs per quarter


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _simple_midi() -> bytes:
    melody = [(0, _on(0, 60)), (480, _off(0, 60)), (0, _on(0, 64)), (480, _off(0, 64))]
    return _midi_bytes([[(0, TEMPO_120)], melody])


# ---------------------------------------------------------------------------- bad input


def test_a_valid_hand_made_midi_file_loads(tmp_path):
    score = load(_write(tmp_path, "ok.mid", _simple_midi()))
    notes = [(n.time, n.duration, n.pitch, n.velocity) for n in score.tracks[0].notes]
    assert notes == [(0, 480, 60, 90), (480, 480, 64, 90)]


def test_unknown_extension(tmp_path):
    with pytest.raises(MusicFileError, match=r"unknown extension '\.txt'"):
        load(_write(tmp_path, "song.txt", b"hello"))
    with pytest.raises(MusicFileError, match="unknown extension"):
        load(_write(tmp_path, "song", b"hello"))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(MusicFileError, match="no such file") as info:
        load(tmp_path / "absent.mid")
    assert info.value.path.endswith("absent.mid")
    with pytest.raises(MusicFileError, match="empty file"):
        load(_write(tmp_path, "empty.mid", b""))
    with pytest.raises(MusicFileError, match="empty file"):
        load(_write(tmp_path, "empty.abc", b""))


def test_random_bytes(tmp_path):
    data = os.urandom(512)
    with pytest.raises(MusicFileError, match="not a MIDI file"):
        load(_write(tmp_path, "noise.mid", b"XXXX" + data))
    with pytest.raises(MusicFileError):  # a forged header does not help
        load(_write(tmp_path, "noise2.mid", b"MThd" + data))
    for suffix in (".abc", ".mxl", ".krn"):
        with pytest.raises(MusicFileError, match="noise"):
            load(_write(tmp_path, "noise" + suffix, data))


def test_every_truncation_of_a_midi_file_is_refused(tmp_path):
    data = _simple_midi()
    for cut in range(1, len(data)):
        with pytest.raises(MusicFileError, match=r"truncated|not a MIDI|corrupt"):
            load(_write(tmp_path, f"cut{cut}.mid", data[:cut]))


def test_trailing_bytes_after_the_last_track_are_ignored(tmp_path):
    score = load(_write(tmp_path, "tail.mid", _simple_midi() + b"\x00\x00junk"))
    assert score.note_num() == 2


def test_type2_midi_is_refused(tmp_path):
    melody = [(0, _on(0, 60)), (480, _off(0, 60))]
    path = _write(tmp_path, "type2.mid", _midi_bytes([melody, melody], fmt=2))
    with pytest.raises(MusicFileError, match="type-2"):
        load(path)


def test_file_without_notes(tmp_path):
    text_only = [(960, b"\xff\x01\x01a")]  # a text event, no note
    path = _write(tmp_path, "silent.mid", _midi_bytes([[(0, TEMPO_120)], text_only]))
    with pytest.raises(MusicFileError, match="no notes"):
        load(path)


# ---------------------------------------------------------------------------- odd but valid


def test_zero_length_notes_are_dropped(tmp_path):
    track = [(0, _on(0, 60)), (0, _off(0, 60)), (0, _on(0, 62)), (240, _off(0, 62))]
    score = load(_write(tmp_path, "zero.mid", _midi_bytes([track])))
    assert [(n.time, n.duration, n.pitch) for n in score.tracks[0].notes] == [(0, 240, 62)]
    only_zero = [(0, _on(0, 60)), (0, _off(0, 60))]
    with pytest.raises(MusicFileError, match="no notes"):
        load(_write(tmp_path, "zero_only.mid", _midi_bytes([only_zero])))


def test_overlapping_same_pitch_notes_pair_first_on_first_off(tmp_path):
    # on@0, on@240, off@480, off@720, all pitch 60
    track = [(0, _on(0, 60)), (240, _on(0, 60)), (240, _off(0, 60)), (240, _off(0, 60))]
    score = load(_write(tmp_path, "overlap.mid", _midi_bytes([track])))
    assert [(n.time, n.duration) for n in score.tracks[0].notes] == [(0, 480), (240, 480)]


def test_channel_10_is_a_drum_track(tmp_path):
    piano = [(0, b"\xc0\x05"), (0, _on(0, 60)), (480, _off(0, 60))]
    drums = [(0, _on(9, 36, 100)), (120, _off(9, 36)), (0, _on(9, 42)), (120, _off(9, 42))]
    score = load(_write(tmp_path, "drums.mid", _midi_bytes([piano, drums])))
    by_drum = {t.is_drum: t for t in score.tracks}
    assert set(by_drum) == {False, True}
    assert by_drum[False].program == 5
    assert [n.pitch for n in by_drum[True].notes] == [36, 42]


def test_tempo_and_time_signature_changes_are_kept(tmp_path):
    meta = [
        (0, TEMPO_120),
        (0, b"\xff\x58\x04\x04\x02\x18\x08"),  # 4/4
        (1920, b"\xff\x51\x03\x0a\x2c\x2a"),  # 666666 µs per quarter = 90 qpm
        (0, b"\xff\x58\x04\x03\x02\x18\x08"),  # 3/4
    ]
    notes = [(0, _on(0, 60)), (3840, _off(0, 60))]
    score = load(_write(tmp_path, "changes.mid", _midi_bytes([meta, notes])))
    assert [(t.time, round(t.qpm, 3)) for t in score.tempos] == [(0, 120.0), (1920, 90.0)]
    assert [(t.time, t.numerator, t.denominator) for t in score.time_signatures] == [
        (0, 4, 4), (1920, 3, 4)]


def test_midi_write_round_trip(tmp_path):
    score = Score(480)
    score.tempos.append(Tempo(0, 100.0))
    score.time_signatures.append(TimeSignature(0, 3, 4))
    score.time_signatures.append(TimeSignature(1440 * 2, 6, 8))
    piano, drums = Track("Piano", 0, False), Track("Drums", 0, True)
    bass = Track("Bass", 33, False)
    for i, pitch in enumerate([60, 62, 64, 65, 67]):
        piano.notes.append(Note(i * 240, 240 + 10 * i, pitch, 60 + i))
        bass.notes.append(Note(i * 480, 480, pitch - 24, 70))
    drums.notes.append(Note(0, 60, 36, 110))
    score.tracks.extend([piano, drums, bass])
    path = save_midi(score, tmp_path / "deep" / "folder" / "out.mid")
    loaded = load(path)

    def summary(s):
        return sorted(
            (t.name, t.program, t.is_drum, [(n.time, n.duration, n.pitch, n.velocity)
                                            for n in t.notes])
            for t in s.tracks
        )

    assert summary(loaded) == summary(score)
    assert [(t.time, round(t.qpm, 2)) for t in loaded.tempos] == [(0, 100.0)]
    assert [(t.time, t.numerator, t.denominator) for t in loaded.time_signatures] == [
        (0, 3, 4), (2880, 6, 8)]


# ---------------------------------------------------------------------------- music21 formats

TWO_TUNES = """X:1
T:First
M:3/4
L:1/4
K:G
D | G A B | d2 z |]

X:2
T:Second
M:4/4
L:1/8
K:C
C2 E2 G2 c2 | c8 |]

X:3
T:Silent
M:4/4
L:1/4
K:C
z4 |]
"""


def test_multi_tune_abc_gives_one_score_per_tune_with_notes(tmp_path):
    path = _write(tmp_path, "tunes.abc", TWO_TUNES.encode())
    first, second = load_all(path)  # the third tune has no notes: dropped
    assert load(path).note_num() == first.note_num()
    # tune 1 opens with a one-beat pickup: shifted right so bar lines fall on the grid
    assert [(n.time, n.duration, n.pitch) for n in first.tracks[0].notes] == [
        (960, 480, 62), (1440, 480, 67), (1920, 480, 69), (2400, 480, 71), (2880, 960, 74)]
    assert [(t.time, t.numerator, t.denominator) for t in first.time_signatures] == [(0, 3, 4)]
    assert [(k.time, k.key) for k in first.key_signatures] == [(0, 1)]  # one sharp
    assert [(n.time, n.duration, n.pitch) for n in second.tracks[0].notes] == [
        (0, 480, 60), (480, 480, 64), (960, 480, 67), (1440, 480, 72), (1920, 1920, 72)]


def test_essen_folk_file_holds_several_tunes():
    scores = load_all(CORPUS / "essenFolksong" / "testd.abc")
    assert len(scores) == 8
    assert all(len(s.tracks) == 1 and s.note_num() > 20 for s in scores)
    # tune 1 ("Ich hab die Nacht getraumet", 6/8, pickup of one eighth note B3)
    first_note = scores[0].tracks[0].notes[0]
    assert (first_note.time, first_note.pitch) == (round(2.5 * 480), 59)
    assert (scores[0].time_signatures[0].numerator, scores[0].time_signatures[0].denominator) \
        == (6, 8)


@pytest.fixture(scope="session")
def chorale(chorale_paths):
    return load(chorale_paths[0])


def test_musicxml_chorale_has_the_four_voices(chorale, chorale_paths):
    names = [t.name for t in chorale.tracks]
    assert {"Soprano", "Alto", "Tenor", "Bass"} <= set(names)
    assert all(t.note_num() > 20 for t in chorale.tracks)
    parsed = music21.converter.parse(str(chorale_paths[0]))
    soprano = next(p for p in parsed.parts if p.partName == "Soprano")
    expected = [p.midi for n in soprano.stripTies().flatten().notes for p in n.pitches
                if n.quarterLength > 0]
    track = next(t for t in chorale.tracks if t.name == "Soprano")
    assert [n.pitch for n in track.notes] == expected
    bar = 480 * chorale.time_signatures[0].numerator * 4 // chorale.time_signatures[0].denominator
    # after the pickup shift, bar lines of music21's measures fall on multiples of a bar
    measures = soprano.getElementsByClass("Measure")
    shift = float(measures[0].paddingLeft)
    assert round((float(measures[1].offset) + shift) * 480) % bar == 0


def test_kern_file():
    score = load(CORPUS / "palestrina" / "Credo_81_c.krn")
    assert len(score.tracks) == 4
    assert score.note_num() == 24
    assert [(t.numerator, t.denominator) for t in score.time_signatures] == [(3, 2)]
    bass = min((t for t in score.tracks if t.note_num()), key=lambda t: t.notes[0].pitch)
    assert [n.pitch for n in bass.notes][:3] == [48, 52, 54]  # 2C 2E 2F#


# ---------------------------------------------------------------------------- MusicXML in code


def _xml_note(step: str, octave: int = 4, quarters: int = 1, extra: str = "") -> str:
    """A pitched MusicXML note (divisions = 1: one quarter = 1)."""
    return (f"<note><pitch><step>{step}</step><octave>{octave}</octave></pitch>"
            f"<duration>{quarters}</duration>{extra}</note>")


def _xml_drum(step: str, octave: int, instrument: str | None, chord: bool = False,
              notehead: str | None = None) -> str:
    """An unpitched (percussion) quarter note on a staff position, naming its instrument."""
    return ("<note>" + ("<chord/>" if chord else "")
            + f"<unpitched><display-step>{step}</display-step>"
            f"<display-octave>{octave}</display-octave></unpitched><duration>1</duration>"
            + (f'<instrument id="{instrument}"/>' if instrument else "")
            + (f"<notehead>{notehead}</notehead>" if notehead else "") + "</note>")


def _xml_time(*pairs: tuple[int, int]) -> str:
    beats = "".join(f"<beats>{b}</beats><beat-type>{t}</beat-type>" for b, t in pairs)
    return f"<time>{beats}</time>"


def _xml_measure(number: int, *content: str, time: str = "") -> str:
    attributes = f"<attributes><divisions>1</divisions>{time}</attributes>" if time else ""
    return f'<measure number="{number}">{attributes}{"".join(content)}</measure>'


def _musicxml(*parts: list[str], score_parts: list[str] | None = None) -> bytes:
    """A partwise MusicXML score; ``score_parts`` replaces the plain part-list entries."""
    score_parts = score_parts or [
        f'<score-part id="P{i + 1}"><part-name>Voice {i + 1}</part-name></score-part>'
        for i in range(len(parts))]
    body = "".join(f'<part id="P{i + 1}">{"".join(p)}</part>' for i, p in enumerate(parts))
    return ('<?xml version="1.0" encoding="UTF-8"?><score-partwise version="3.1">'
            f"<part-list>{''.join(score_parts)}</part-list>{body}</score-partwise>").encode()


def _drum_instrument(part: str, ident: str, name: str, midi_unpitched: int | None) -> tuple:
    score = f'<score-instrument id="{ident}"><instrument-name>{name}</instrument-name>' \
        "</score-instrument>"
    midi = "" if midi_unpitched is None else (
        f'<midi-instrument id="{ident}"><midi-channel>10</midi-channel>'
        f"<midi-unpitched>{midi_unpitched}</midi-unpitched></midi-instrument>")
    return score, midi


def test_unpitched_percussion_becomes_a_drum_track_with_general_midi_keys(tmp_path):
    # a drum kit on one staff: snare (MusicXML midi-unpitched 39 = GM 38) on C5, bass drum
    # (37 = GM 36) on F4, closed hi-hat (43 = GM 42) and crash (50 = GM 49) both on G5,
    # told apart by their noteheads; the file's only notes are these unpitched ones
    kit = [_drum_instrument("P1", f"P1-I{i}", name, number) for i, (name, number) in
           enumerate([("Snare", 39), ("Kick", 37), ("Hi-hat", 43), ("Crash", 50)])]
    score_part = ('<score-part id="P1"><part-name>Kit</part-name>'
                  + "".join(s for s, _ in kit) + "".join(m for _, m in kit) + "</score-part>")
    notes = [_xml_drum("F", 4, "P1-I1"), _xml_drum("C", 5, "P1-I0", chord=True),
             _xml_drum("G", 5, "P1-I2", notehead="x"), _xml_drum("G", 5, "P1-I3",
                                                               notehead="diamond")]
    path = _write(tmp_path, "kit.musicxml", _musicxml(
        [_xml_measure(1, *notes, time=_xml_time((3, 4)))], score_parts=[score_part]))
    score = load(path)
    assert [(t.name, t.is_drum) for t in score.tracks] == [("Kit", True)]
    assert [(n.time, n.pitch) for n in score.tracks[0].notes] == [
        (0, 36), (0, 38), (480, 42), (960, 49)]


def test_unpitched_notes_without_their_own_instrument_fall_back(tmp_path):
    # part 1 names its drum only by name (music21 knows "Tambourine": GM 54); part 2 says
    # nothing (GM 38, snare); part 3 mixes pitched and unpitched notes: two tracks
    named = ('<score-part id="P1"><part-name>Tamb.</part-name><score-instrument '
             'id="P1-I1"><instrument-name>Tambourine</instrument-name></score-instrument>'
             "</score-part>")
    plain = ['<score-part id="P2"><part-name>Perc</part-name></score-part>',
             '<score-part id="P3"><part-name>Mixed</part-name></score-part>']
    time = _xml_time((2, 4))
    path = _write(tmp_path, "perc.xml", _musicxml(
        [_xml_measure(1, _xml_drum("E", 4, None), _xml_drum("E", 4, None), time=time)],
        [_xml_measure(1, _xml_drum("C", 5, None), _xml_drum("A", 4, None), time=time)],
        [_xml_measure(1, _xml_note("C"), _xml_drum("C", 5, None), time=time)],
        score_parts=[named, *plain]))
    score = load(path)
    summary = [(t.name, t.is_drum, [n.pitch for n in t.notes]) for t in score.tracks]
    assert summary == [("Tamb.", True, [54, 54]), ("Perc", True, [38, 38]),
                       ("Mixed", False, [60]), ("Mixed (drums)", True, [38])]


def test_music21_drum_sample_keeps_every_unpitched_note_with_its_instrument():
    import xml.etree.ElementTree as ET
    from collections import Counter

    path = CORPUS / "demos" / "drum_sample.xml"
    root = ET.parse(path).getroot()
    # what the file says: each note's instrument id -> that instrument's midi-unpitched
    key_of = {m.get("id"): int(m.findtext("midi-unpitched")) - 1
              for m in root.iter("midi-instrument")}
    expected = Counter(key_of[n.find("instrument").get("id")] for n in root.iter("note")
                       if n.find("unpitched") is not None)
    score = load(path)
    assert all(t.is_drum for t in score.tracks) and len(score.tracks) == 2
    assert Counter(n.pitch for t in score.tracks for n in t.notes) == expected


# ---------------------------------------------------------------------------- repeats

REPEATS = """X:1
T:Repeats and endings
M:2/4
L:1/4
K:C
|: C D | E F :|
|: G A |1 B c :|2 c B |]
"""


def test_abc_repeats_and_endings_are_written_out(tmp_path):
    score = load(_write(tmp_path, "repeats.abc", REPEATS.encode()))
    played = list("CDEFCDEFGABcGAcB")
    names = {"C": 60, "D": 62, "E": 64, "F": 65, "G": 67, "A": 69, "B": 71, "c": 72}
    assert [(n.time, n.pitch) for n in score.tracks[0].notes] == [
        (480 * i, names[p]) for i, p in enumerate(played)]


def test_da_capo_al_fine_is_written_out_in_every_part(tmp_path):
    # the words are written over the top part only, as scores usually print them
    fine = "<direction><direction-type><words>Fine</words></direction-type></direction>"
    dc = "<direction><direction-type><words>D.C. al Fine</words></direction-type></direction>"
    time = _xml_time((2, 4))
    path = _write(tmp_path, "dc.musicxml", _musicxml([
        _xml_measure(1, _xml_note("C"), _xml_note("D"), time=time),
        _xml_measure(2, _xml_note("E"), _xml_note("F"), fine),
        _xml_measure(3, _xml_note("G"), _xml_note("A"), dc)], [
        _xml_measure(1, _xml_note("C", 3, 2), time=time),
        _xml_measure(2, _xml_note("E", 3, 2)),
        _xml_measure(3, _xml_note("G", 3, 2))]))
    top, bass = load(path).tracks
    assert [n.pitch for n in top.notes] == [60, 62, 64, 65, 67, 69, 60, 62, 64, 65]
    assert [(n.time // 480, n.pitch) for n in bass.notes] == [(0, 48), (2, 52), (4, 55),
                                                              (6, 48), (8, 52)]


def test_a_chorale_with_repeats_matches_music21s_expand_repeats():
    path = CORPUS / "bach" / "bwv67.7.mxl"
    parsed = music21.converter.parse(str(path))

    def notes(stream):
        return sum(len(n.pitches) for n in stream.stripTies().flatten().notes
                   if n.quarterLength > 0)

    assert len(parsed.recurse().getElementsByClass(music21.bar.Repeat)) > 0
    score = load(path)
    assert score.note_num() == notes(parsed.expandRepeats()) > notes(parsed)
    bass = next(t for t in score.tracks if t.name == "Bass")
    expanded_bass = next(p for p in parsed.expandRepeats().parts if p.partName == "Bass")
    assert [n.pitch for n in bass.notes] == [
        p.midi for n in expanded_bass.stripTies().flatten().notes for p in n.pitches]


@pytest.mark.parametrize("case", ["d.s. without segno", "repeat 1000 times",
                                  "repeat in one part only"])
def test_repeats_that_cannot_be_expanded_are_read_as_written(tmp_path, case):
    time = _xml_time((2, 4))
    end = '<barline location="right"><repeat direction="backward"{}/></barline>'
    first = _xml_measure(1, _xml_note("C"), _xml_note("D"), time=time)
    if case == "d.s. without segno":
        ds = "<direction><direction-type><words>D.S. al Fine</words></direction-type>" \
            "</direction>"
        parts = [[first, _xml_measure(2, _xml_note("E"), _xml_note("F"), ds)]]
    elif case == "repeat 1000 times":
        parts = [[first, _xml_measure(2, _xml_note("E"), _xml_note("F"),
                                      end.format(' times="1000"'))]]
    else:
        parts = [[first, _xml_measure(2, _xml_note("E"), _xml_note("F"), end.format(""))],
                 [_xml_measure(1, _xml_note("C", 3), _xml_note("D", 3), time=time),
                  _xml_measure(2, _xml_note("E", 3), _xml_note("F", 3))]]
    score = load(_write(tmp_path, "odd.musicxml", _musicxml(*parts)))
    assert [n.pitch for n in score.tracks[0].notes] == [60, 62, 64, 65]
    assert all(t.end() == 4 * 480 for t in score.tracks)


# ---------------------------------------------------------------------------- pickups


def test_alternating_meters_under_one_written_meter_are_not_shifted(tmp_path):
    # Essen-style: M:3/4 written, bars alternate 2 and 3 quarters; the short first bar
    # is a 2/4 bar, not a pickup (it used to move every note right by one quarter)
    abc = "X:1\nT:Alternating\nM:3/4\nL:1/4\nK:C\nC D | E F G | A B | c d e | f g |]\n"
    score = load(_write(tmp_path, "alternating.abc", abc.encode()))
    assert [n.time // 480 for n in score.tracks[0].notes] == list(range(12))


def test_composite_meter_first_bar_is_not_a_pickup(tmp_path):
    # time signature 3/4+2/4 (music21: one 5/4 bar), bars written as 3 then 2 quarters
    path = _write(tmp_path, "composite.musicxml", _musicxml([
        _xml_measure(1, *map(_xml_note, "CDE"), time=_xml_time((3, 4), (2, 4))),
        _xml_measure(2, *map(_xml_note, "FG")),
        _xml_measure(3, *map(_xml_note, "ABC"))]))
    assert [n.time // 480 for n in load(path).tracks[0].notes] == list(range(8))


def test_a_true_pickup_in_alternating_3_4_and_2_4_is_shifted(tmp_path):
    # bar 0: one quarter of 3/4 (a pickup), then 2/4, 3/4, 2/4 bars, each full
    path = _write(tmp_path, "pickup.musicxml", _musicxml([
        _xml_measure(0, _xml_note("G", 3), time=_xml_time((3, 4))),
        _xml_measure(1, *map(_xml_note, "CD"), time=_xml_time((2, 4))),
        _xml_measure(2, *map(_xml_note, "EFG"), time=_xml_time((3, 4))),
        _xml_measure(3, *map(_xml_note, "AB"), time=_xml_time((2, 4)))]))
    score = load(path)
    assert [n.time // 480 for n in score.tracks[0].notes] == [2, 3, 4, 5, 6, 7, 8, 9]
    # bar lines on the grid: 3/4 from 0, then 2/4 at 3, 3/4 at 5, 2/4 at 8 quarters
    assert [(t.time // 480, t.numerator) for t in score.time_signatures] == [
        (0, 3), (3, 2), (5, 3), (8, 2)]


# ---------------------------------------------------------------------------- text encodings

LATIN1_TUNE = "X:1\nT:Der Müller\nC:Bäcker\nM:2/4\nL:1/4\nK:C\nC D | E F | G2 |]\n"


@pytest.mark.parametrize("tunes", [1, 2])
def test_latin1_abc_reads_like_utf8(tmp_path, tunes):
    text = "\n".join(LATIN1_TUNE.replace("X:1", f"X:{i + 1}") for i in range(tunes))
    latin = load_all(_write(tmp_path, "latin.abc", text.encode("latin-1")))
    utf8 = load_all(_write(tmp_path, "utf8.abc", text.encode("utf-8")))
    assert len(latin) == len(utf8) == tunes
    for a, b in zip(latin, utf8, strict=True):
        assert [(n.time, n.pitch) for n in a.tracks[0].notes] == [
            (n.time, n.pitch) for n in b.tracks[0].notes]
        assert a.note_num() == 5


# ---------------------------------------------------------------------------- plain reasons


def _zip(name: str, text: str, damage: bool = False) -> bytes:
    """A one-file zip archive (deflated); ``damage`` garbles the compressed bytes."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text)
    data = bytearray(buffer.getvalue())
    if damage:  # the member's data starts after its 30-byte local header and name
        start = 30 + len(name)
        data[start:start + 8] = bytes(255 - b for b in data[start:start + 8])
    return bytes(data)


@pytest.mark.parametrize("name, data, reason", [
    # a kern file of reference records only: music21 gives a Score without parts (this
    # used to say "AttributeError: 'Score' object has no attribute 'partName'")
    ("records.krn", b"!!!COM: Palestrina\n!!!OPR: Mi", "the file contains no notes"),
    ("words.krn", b"hello world\n", "not a Humdrum kern file: no **kern"),
    ("page.xml", b'<?xml version="1.0"?><html><body>hi</body></html>',
     "not a MusicXML score (Cannot parse MusicXML files not in score-partwise"),
    ("broken.musicxml", b'<?xml version="1.0"?><score-partwise><part></score-partwise>',
     "not a valid MusicXML file: broken XML (mismatched tag: line 1"),
    ("notzip.mxl", b"PK but not a zip", "not a compressed MusicXML (.mxl) file"),
    ("empty.mxl", _zip("readme.txt", "no score"), "no MusicXML score inside the .mxl"),
    ("damaged.mxl", _zip("score.xml", "<score-partwise>" + "<part/>" * 50 + "</score-partwise>",
                         damage=True), "corrupt compressed MusicXML (.mxl) archive"),
    ("encoding.xml", b'<?xml version="1.0" encoding="u8f-8"?><score-partwise/>',
     "not a valid MusicXML file: unknown text encoding"),
    ("nolength.abc", b"X:1\nT:x\nCDEF|GABc|\n", "malformed ABC header: no L: (note length)"),
    ("noise.abc", b"\x90", "not an ABC tune: no header fields or notes found"),
])
def test_parser_failures_are_said_in_words(tmp_path, name, data, reason):
    path = _write(tmp_path, name, data)
    with pytest.raises(MusicFileError) as error:
        load(path)
    assert error.value.reason.startswith(reason)
    assert str(path) in str(error.value)
