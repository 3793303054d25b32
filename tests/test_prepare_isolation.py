"""Data preparation survives hostile files (issue 14): a parser crash or a file past the
time limit costs that file, reported with its reason, and the rest of the folder is kept,
even with one worker; an oversized piece is skipped before any encoder allocates."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import sys
import time

import pytest
from symusic import Note, Score, Tempo, Track

from cli_helpers import run_cli
from make_test_data import DATA
from tunesmith.data import corpora
from tunesmith.data.prepare import prepare
from tunesmith.errors import TunesmithError
from tunesmith.representations.pianoroll import PianorollAdapter

prepare_module = importlib.import_module("tunesmith.data.prepare")
io_module = importlib.import_module("tunesmith.music.io")

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="patches reach the workers through fork")


def _song(path, pitches):
    score = Score(480)
    score.tempos.append(Tempo(0, 120.0))
    track = Track("piano", 0, False)
    for i, pitch in enumerate(pitches):
        track.notes.append(Note(i * 480, 480, pitch, 80))
    score.tracks.append(track)
    score.dump_midi(str(path))


@pytest.fixture
def folder(tmp_path):
    """Four good songs and the crafted crasher, bomb and three-hour piece."""
    songs = tmp_path / "songs"
    songs.mkdir()
    for i in range(4):
        _song(songs / f"good{i}.mid", [60 + i, 64 + i, 67 + i])
    for name in ("crash_pitch80_ch16.mid", "bomb_delta_0fffffff.mid", "three_hours.mid"):
        shutil.copy(DATA / name, songs / name)
    return songs


GOOD = [f"good{i}.mid" for i in range(4)]


@pytest.mark.parametrize("workers", [1, 2])
def test_the_bomb_and_the_crasher_are_skipped_and_the_rest_kept(folder, workers):
    data = prepare(f"folder:{folder}", workers=workers, progress=False, report=False)
    assert data.ids() == GOOD
    reasons = dict(data.skipped)
    assert "data byte 0x80 in a note-on event" in reasons["crash_pitch80_ch16.mid"]
    assert "lasts 37,282.7 h, longer than the limit of 2.0 h" in reasons[
        "bomb_delta_0fffffff.mid"]
    assert "lasts 3.0 h" in reasons["three_hours.mid"]


def test_a_higher_length_limit_keeps_the_long_piece(folder):
    data = prepare(f"folder:{folder}", "pianoroll", {"resolution": 1},
                   workers=1, progress=False, report=False, max_seconds=4 * 3600)
    assert data.ids() == sorted([*GOOD, "three_hours.mid"])
    steps = len(data.pieces()[data.ids().index("three_hours.mid")])
    assert steps == 1 + 3 * 3600 * 2 + 1  # a note, 3 h later another: a step a quarter


@linux_only
@pytest.mark.parametrize("workers", [1, 2])
def test_a_parser_crash_costs_one_file(folder, monkeypatch, workers):
    # without the gate, the crasher reaches symusic and kills the worker process
    monkeypatch.setattr(io_module, "check_midi", lambda data, path: None)
    data = prepare(f"folder:{folder}", workers=workers, progress=False, report=False)
    assert data.ids() == GOOD
    reason = dict(data.skipped)["crash_pitch80_ch16.mid"]
    assert reason.startswith("the MIDI parser crashed (signal ")


@linux_only
def test_a_one_file_folder_is_parsed_in_a_worker_too(tmp_path, monkeypatch):
    monkeypatch.setattr(io_module, "check_midi", lambda data, path: None)
    shutil.copy(DATA / "crash_pitch80_ch16.mid", tmp_path / "only.mid")
    with pytest.raises(TunesmithError, match=r"only\.mid: the MIDI parser crashed"):
        prepare(f"folder:{tmp_path}", progress=False, report=False)


def test_a_slow_music21_parse_is_skipped(folder):
    # minutes in music21's ABC reader, where a voice (V:) sends it
    (folder / "slow_note_65535.abc").write_text(
        (DATA / "slow_note_65535.abc").read_text().replace("K:G\n", "K:G\nV:1\n"))
    started = time.monotonic()
    data = prepare(f"folder:{folder}", workers=1, progress=False, report=False, time_limit=2)
    assert time.monotonic() - started < 30
    assert data.ids() == GOOD
    assert dict(data.skipped)["slow_note_65535.abc"] == \
        "reading it took more than 2 s (the per-file time limit)"


@linux_only
def test_a_worker_stuck_past_the_time_limit_is_killed(folder, monkeypatch):
    load = corpora.FolderCorpus.load

    def slow_on_good2(self, source, max_seconds=None, time_limit=60.0):
        if source.id == "good2.mid":  # stuck where no alarm reaches (like C code)
            time.sleep(60)
        return load(self, source, max_seconds, time_limit)

    monkeypatch.setattr(corpora.FolderCorpus, "load", slow_on_good2)
    started = time.monotonic()
    data = prepare(f"folder:{folder}", workers=1, progress=False, report=False, time_limit=1.0)
    assert time.monotonic() - started < 20
    assert data.ids() == ["good0.mid", "good1.mid", "good3.mid"]
    assert dict(data.skipped)["good2.mid"] == \
        "reading it took more than 1 s (the per-file time limit)"


@linux_only
def test_a_crash_while_encoding_a_chunk_retries_each_piece_alone(folder, monkeypatch):
    encode_many = PianorollAdapter.encode_many

    def crash_on_pitch_62(self, scores, notes):  # good2 starts on 62
        if any(n.pitch == 62 for s in scores for t in s.tracks for n in t.notes):
            os.kill(os.getpid(), signal.SIGSEGV)
        return encode_many(self, scores, notes)

    monkeypatch.setattr(PianorollAdapter, "encode_many", crash_on_pitch_62)
    data = prepare(f"folder:{folder}", workers=1, progress=False, report=False)
    assert data.ids() == ["good0.mid", "good1.mid", "good3.mid"]
    assert dict(data.skipped)["good2.mid"] == \
        "the worker crashed while encoding it (signal 11, SIGSEGV)"


def test_the_limits_are_checked(folder):
    from tunesmith.errors import ConfigError

    with pytest.raises(ConfigError, match="time_limit"):
        prepare(f"folder:{folder}", progress=False, time_limit=0)
    with pytest.raises(ConfigError, match="max_seconds"):
        prepare(f"folder:{folder}", progress=False, max_seconds=-1)


def test_data_prepare_skips_the_bomb_and_keeps_the_folder(folder, capsys):
    assert run_cli(["data", "prepare", f"folder:{folder}", "--workers", "1",
                    "--max-seconds", 4 * 3600, "--time-limit", 30]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "skipped 2 piece(s)" in out
    assert "bomb_delta_0fffffff.mid" in out and "crash_pitch80_ch16.mid" in out
    assert "│ all │ 5 │" in out  # the four songs and the three-hour piece
