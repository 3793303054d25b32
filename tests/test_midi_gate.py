"""The MIDI gate and the length limit (issue 14): crafted files from tests/data/ get a
clean MusicFileError naming the offset or the reason; valid files pass unchanged."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from make_test_data import DATA, END, FILES, midi, vlq
from tunesmith.errors import ConfigError, MusicFileError
from tunesmith.music import load
from tunesmith.music.io import check_length, max_piece_seconds
from tunesmith.music.midi_gate import (
    FASTEST_QPM,
    MAX_TICK,
    _fast_track,
    _tick_bound,
    check_midi,
    length_seconds,
    walk_track,
)

#: crafted file -> what its MusicFileError must say
REFUSED = {
    "crash_pitch80_ch16.mid": "corrupt MIDI at byte 24 (track 1): data byte 0x80 in a note-on "
                              "event (status 0x9F)",
    "bomb_delta_0fffffff.mid": "the piece lasts 37,282.7 h, longer than the limit of 2.0 h",
    "velocity80.mid": "byte 25 (track 1): data byte 0x80 in a note-on",
    "pitch_ff.mid": "byte 24 (track 1): data byte 0xFF in a note-on",
    "tpq_zero.mid": "0 ticks per quarter note",
    "smpte_division.mid": "SMPTE time division (frames per second) is not supported",
    "ticks_past_2_31.mid": "an event at tick 2415919095, past 2^31",
    "tempo_length2.mid": "byte 23 (track 1): a tempo event of length 2 (3 expected)",
    "tempo_zero.mid": "a tempo of 0 microseconds per quarter note",
    "running_status_first.mid": "byte 23 (track 1): data byte 0x3C without a status byte",
    "undefined_status_f4.mid": "byte 23 (track 1): undefined status byte 0xF4",
    "fast_tempo_bomb.mid": "the piece lasts 9,320.7 h",
    "three_hours.mid": "the piece lasts 3.0 h, longer than the limit of 2.0 h",
    "long_note.abc": "the piece lasts 11.1 h",
}

#: crafted files that take music21 minutes to parse (tested with a short time limit)
SLOW = {"slow_note_65535.abc"}

_LOAD_EACH = """
import json, sys
from tunesmith.errors import MusicFileError
from tunesmith.music import load
for path in sys.argv[1:]:
    print(json.dumps([path, "start"]), flush=True)  # names the file if the process dies
    try:
        score = load(path)
        outcome = ["loaded", [(n.time, n.duration, n.pitch, n.velocity)
                              for t in score.tracks for n in t.notes]]
    except MusicFileError as exc:
        outcome = ["refused", str(exc)]
    print(json.dumps([path, *outcome]), flush=True)
"""


@pytest.fixture(scope="module")
def outcomes() -> dict[str, list]:
    """Each crafted file loaded in a child process: a parser crash fails the tests that
    need that file instead of killing pytest."""
    paths = [str(DATA / name) for name in FILES if name not in SLOW]
    run = subprocess.run([sys.executable, "-c", _LOAD_EACH, *paths], capture_output=True,
                         text=True, timeout=120)
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    found = {Path(line[0]).name: line[1:] for line in lines if line[1] != "start"}
    if run.returncode:
        last = Path(lines[-1][0]).name if lines else "?"
        found[last] = ["crashed", f"exit {run.returncode}: {run.stderr[-300:]}"]
    return found


def test_the_crafted_files_are_what_make_test_data_writes():
    for name, (data, _) in FILES.items():
        assert (DATA / name).read_bytes() == data, f"run python tests/make_test_data.py ({name})"


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_crafted_file_is_refused_with_its_reason(outcomes, name):
    kind, detail = outcomes[name]
    assert kind == "refused", detail
    assert detail.startswith(str(DATA / name) + ": ")
    assert REFUSED[name] in detail


def test_running_status_across_meta_and_sysex_loads(outcomes):
    assert outcomes["running_status_across_meta.mid"] == [
        "loaded", [[0, 480, 60, 100], [480, 480, 64, 100]]]


def test_every_crafted_file_has_an_expectation():
    assert set(FILES) == set(REFUSED) | SLOW | {"running_status_across_meta.mid"}


def test_the_time_limit_fires_again_when_a_parser_swallows_it():
    from tunesmith.music.io import parse_within

    swallowed = []

    def stubborn_parse():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                while time.monotonic() < deadline:
                    pass
            except BaseException as exc:  # a parser that catches everything, once
                if swallowed:
                    raise
                swallowed.append(exc)
        return "finished"

    started = time.monotonic()
    with pytest.raises(MusicFileError, match=r"x\.abc: reading it took more than 0\.2 s"):
        parse_within("x.abc", 0.2, stubborn_parse)
    assert len(swallowed) == 1 and 1.0 < time.monotonic() - started < 5
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_music21_parse_past_the_time_limit_is_stopped(tmp_path):
    # a voice (V:) sends the tune to music21, which takes minutes over the long note
    slow = tmp_path / "slow_note_65535.abc"
    slow.write_text((DATA / slow.name).read_text().replace("K:G\n", "K:G\nV:1\n"))
    started = time.monotonic()
    with pytest.raises(MusicFileError, match=r"slow_note_65535\.abc: reading it took more "
                       r"than 1\.5 s \(the per-file time limit\)"):
        load(slow, time_limit=1.5)
    assert time.monotonic() - started < 10
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # the alarm was disarmed
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL  # and its handler restored


def test_abc2midi_reads_the_music21_slow_file_at_once_and_refuses_its_length():
    started = time.monotonic()
    with pytest.raises(MusicFileError, match=r"slow_note_65535\.abc: the piece lasts 4\.6 h"):
        load(DATA / "slow_note_65535.abc", time_limit=1.5)
    assert time.monotonic() - started < 1.5


# ---------------------------------------------------------------------------- length limit


def test_the_length_limit_is_an_argument_and_an_environment_variable(monkeypatch):
    three_hours = DATA / "three_hours.mid"
    assert load(three_hours, max_seconds=4 * 3600).note_num() == 2
    with pytest.raises(MusicFileError, match=r"lasts 3\.0 h, longer than the limit of 1\.0 h"):
        load(three_hours, max_seconds=3600)
    monkeypatch.setenv("TUNESMITH_MAX_PIECE_SECONDS", str(4 * 3600))
    assert max_piece_seconds() == 4 * 3600
    assert load(three_hours).note_num() == 2
    monkeypatch.setenv("TUNESMITH_MAX_PIECE_SECONDS", "two hours")
    with pytest.raises(ConfigError, match="TUNESMITH_MAX_PIECE_SECONDS"):
        load(three_hours)


def test_length_seconds_follows_the_tempo_map():
    # 2 quarters at 120 a minute (0.5 s each), then 2 at 60 (1 s each); 480 ticks a quarter
    assert length_seconds(480, 4 * 480, [(0, 500_000), (960, 1_000_000)]) == 3.0
    assert length_seconds(480, 960, []) == 1.0  # 120 a minute before any tempo
    # tempos past the end change nothing; a tempo faster than 480 a minute counts as 480
    assert length_seconds(1, 8, [(0, 500_000), (100, 1)]) == 4.0
    assert length_seconds(1, 8, [(0, 1)]) == 8 * 60 / FASTEST_QPM


def test_check_length_measures_a_score_to_its_last_event():
    from symusic import Note, Score, Tempo, TimeSignature, Track

    score = Score(480)
    score.tempos.append(Tempo(0, 60.0))
    track = Track("piano", 0, False)
    track.notes.append(Note(0, 480, 60, 80))
    score.tracks.append(track)
    check_length(score, "x.mid", max_seconds=1.0)  # one quarter at 60: 1 s
    score.time_signatures.append(TimeSignature(960, 4, 4))  # a late event counts too
    with pytest.raises(MusicFileError, match=r"x\.mid: the piece lasts 2\.0 s"):
        check_length(score, "x.mid", max_seconds=1.5)


# ---------------------------------------------------------------------------- the gate


def _tracks(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each complete MTrk body."""
    position, found = 8 + int.from_bytes(data[4:8], "big"), []
    while position + 8 <= len(data):
        end = position + 8 + int.from_bytes(data[position + 4:position + 8], "big")
        if end > len(data):
            break
        if data[position:position + 4] == b"MTrk":
            found.append((position + 8, end))
        position = end
    return found


def _valid_files() -> list[bytes]:
    """Varied valid MIDI: symusic's own output (running status, several tracks, tempo,
    time and key signatures) and hand-made events the fast path steps over."""
    from symusic import KeySignature, Note, Score, Tempo, TimeSignature, Track

    rng = random.Random(3)
    files = []
    for tpq in (1, 96, 480, 0x7FFF):
        score = Score(tpq)
        score.tempos.extend([Tempo(0, 100.0), Tempo(tpq * 7, 71.5)])
        score.time_signatures.append(TimeSignature(0, 6, 8))
        score.key_signatures.append(KeySignature(0, -3, 1))
        for program in (0, 40, 0):
            track = Track("t", program, program == 0 and len(score.tracks) == 2)
            for _ in range(40):
                track.notes.append(Note(rng.randrange(tpq * 64), rng.randrange(1, tpq * 4),
                                        rng.randrange(128), rng.randrange(1, 128)))
            score.tracks.append(track)
        files.append(score.dumps_midi())
    files.append(FILES["running_status_across_meta.mid"][0])
    body = (b"\x00\xff\x03\x04name" + b"\x00\xc5\x07" + b"\x81\x00\xd5\x40" + b"\x10\x22"
            + b"\x00\xe5\x00\x40" + b"\x00\xff\x7f\x03abc" + b"\x00\xf7\x01\x00"
            + b"\x00\x95\x30\x40" + b"\xff\xff\x7f\x30\x00" + END + b"trailing")
    files.append(midi([body, body], fmt=1))
    return files


def test_the_fast_path_takes_valid_files_whole():
    for data in _valid_files():
        check_midi(data)
        taken = all(_fast_track(data, *span) for span in _tracks(data))
        # running status right after a text event is left to the reference walk
        assert taken == (data != FILES["running_status_across_meta.mid"][0])


def _mutants(files: list[bytes], n: int, seed: int):
    rng = random.Random(seed)
    for _ in range(n):
        data = bytearray(rng.choice(files))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(14, len(data))
            roll = rng.random()
            if roll < 0.5:
                data[at] = rng.choice([0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)])
            elif roll < 0.75:
                data[at:at] = bytes([rng.randrange(256)])
            else:
                del data[at]
        yield bytes(data)


def test_the_fast_path_never_accepts_what_the_reference_walk_refuses():
    valid = accepted = declined = 0
    for data in _mutants(_valid_files(), 1500, seed=14):
        for start, end in _tracks(data):
            fast = _fast_track(data, start, end) and _tick_bound(data, start, end) < MAX_TICK
            try:
                walk_track(data, start, end)
            except MusicFileError as exc:
                assert not fast, f"fast path accepted {data.hex()}: {exc}"
                continue
            valid += 1
            accepted += fast
            declined += not fast
    assert valid > 100 and accepted > 0.9 * valid  # most valid tracks take the fast path


def test_a_huge_delta_time_leaves_the_fast_path_to_the_exact_walk():
    near_limit = b"\x00\x90\x3c\x64" + (vlq(0x0FFFFFFF) + b"\xff\x01\x00") * 7 \
        + vlq(0x0FFFFFFF) + b"\x80\x3c\x00" + END  # 8 x 0x0FFFFFFF < 2^31
    data = midi([near_limit], tpq=0x7FFF)
    assert _fast_track(data, *_tracks(data)[0])  # valid events
    assert _tick_bound(data, *_tracks(data)[0]) >= MAX_TICK  # but the bound says it may wrap
    check_midi(data)  # the exact walk: it does not
    assert walk_track(data, *_tracks(data)[0]) == 8 * 0x0FFFFFFF


def test_each_fault_names_its_offset():
    cases = {
        b"\x00\x90\x3c": "byte 24 (track 1): the track ends inside an event",
        b"\x00\xff\x01\x05ab": "byte 23 (track 1): meta event 0x01 declares 5 bytes, only 2",
        b"\x00\xf0\x7f": "byte 23 (track 1): sysex event declares 127 bytes, only 0",
        b"\x81\x82\x83\x84\x05": "byte 22 (track 1): a variable-length number longer than 4",
        b"\x00\xff\x90\x00": "byte 24 (track 1): meta event type 0x90",
        b"\x00\xff\x58\x04\x00\x02\x18\x08": "byte 23 (track 1): a time signature of 0/2^2",
        b"\x00\xff\x59\x02\x09\x00": "byte 23 (track 1): a key signature of 9 sharps, mode 0",
        b"\x00\x90\x3c\x64\x00\xf0\x00\x00\x3c\x00": "byte 30 (track 1): data byte 0x3C without",
    }
    for body, reason in cases.items():
        with pytest.raises(MusicFileError, match=re.escape("x.mid: corrupt MIDI at " + reason)):
            check_midi(midi([body]), "x.mid")
