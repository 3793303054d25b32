"""The studio's server over HTTP (no browser): operations, safety, errors, concurrency.

One ``tunesmith studio`` process serves the whole module (tests/studio_fixtures.py)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import wave

import numpy as np
import pytest

from studio_fixtures import (
    SECONDS_PER_BAR,
    SRC,
    StudioProcess,
    grid_cells,
    notes_clear_of,
    studio_checkpoint,
)
from tunesmith.music import load
from tunesmith.studio.server import is_loopback


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio")
    server = StudioProcess(studio_checkpoint(root), root / "out", root / "cache",
                           "--max-upload-mb", "0.05")
    server.root = root
    yield server
    server.stop()


def generate(studio, **params):
    status, piece = studio.request("/api/generate", {"model": "run", "bars": 4, **params})
    assert status == 200, piece
    return piece


def test_models_say_what_they_are(studio):
    status, models = studio.request("/api/models")
    assert status == 200
    (info,) = models
    assert info["key"] == "run" and info["family"] == "wavenet"
    assert info["tracks"] == ["Upper", "Lower"] and info["corpus"].startswith("folder:")
    assert info["regenerate"] == "conditional" and info["can_continue"]


def test_generate_writes_midi_and_wav_of_the_piece(studio):
    piece = generate(studio, bars=3, seed=4)
    assert piece["bars"] == 3 and piece["notes"]
    status, midi = studio.request(piece["midi"])
    assert status == 200
    path = studio.root / "downloaded.mid"
    path.write_bytes(midi)
    score = load(path)
    assert score.note_num() == len(piece["notes"])
    status, wav = studio.request(piece["wav"])
    with wave.open(io.BytesIO(wav)) as audio:
        seconds = audio.getnframes() / audio.getframerate()
    assert 3 * SECONDS_PER_BAR <= seconds <= 3 * SECONDS_PER_BAR + 1.01
    # every file the studio wrote is under its own folder
    files = {p.name for p in (studio.out / "pieces").iterdir()}
    assert f"{piece['id']}.mid" in files and f"{piece['id']}.wav" in files


def test_a_seed_gives_the_same_piece(studio):
    assert generate(studio, seed=9)["notes"] == generate(studio, seed=9)["notes"]
    assert generate(studio, seed=9)["notes"] != generate(studio, seed=10)["notes"]


def test_continue_keeps_the_piece_and_adds_bars(studio):
    piece = generate(studio, seed=1)
    status, longer = studio.request("/api/continue", {"piece": piece["id"], "bars": 2,
                                                      "seed": 2})
    assert status == 200, longer
    assert longer["bars"] == 6 and longer["id"] != piece["id"]
    assert notes_clear_of(longer, 16, 24)[:5] and \
        notes_clear_of(longer, 16, 1e9) == notes_clear_of(piece, 16, 1e9)


def test_regenerate_keeps_the_music_on_both_sides(studio):
    piece = generate(studio, bars=5, seed=3)
    status, again = studio.request("/api/regenerate", {"piece": piece["id"], "from_bar": 2,
                                                       "to_bar": 3, "seed": 5})
    assert status == 200, again
    assert "both sides" in again["note"] and again["bars"] == 5
    start, end = 4 * 4, 12 * 4  # steps of bars 2-3 (16 a bar)
    before, after = grid_cells(piece), grid_cells(again)
    outside = lambda cells: {c for c in cells if not start <= c[2] < end}  # noqa: E731
    assert outside(before) == outside(after)
    inside = lambda cells: {c for c in cells if start <= c[2] < end}  # noqa: E731
    assert inside(before) != inside(after)
    assert notes_clear_of(again, 4, 12) == notes_clear_of(piece, 4, 12)


def test_evaluation_sits_beside_the_corpus_band(studio):
    piece = generate(studio, seed=6)
    status, result = studio.request("/api/evaluate", {"piece": piece["id"]})
    assert status == 200, result
    histogram = np.array(result["pitch_classes"]["piece"])
    assert histogram.shape == (12,) and abs(histogram.sum() - 1) < 1e-9
    train = np.array(result["pitch_classes"]["train"])
    assert train[[1, 3, 6, 8, 10]].sum() == 0  # the corpus is in C major
    assert result["train_pieces"] > result["test_pieces"] >= 2
    assert [row["track"] for row in result["voice_activity"]] == ["Upper", "Lower"]
    assert all(row["low"] is not None for row in result["voice_activity"])
    assert result["pitch_class_js"]["samples"] > 0
    assert result["plagiarism"]["n_events"] == len(piece["notes"])
    assert 0 < result["plagiarism"]["lcs_ratio"] <= 1


def test_an_uploaded_primer_becomes_the_piece(studio):
    piece = generate(studio, bars=2, seed=7)
    _, midi = studio.request(piece["midi"])
    status, primer = studio.request("/api/upload?model=run&name=mine.mid", data=midi)
    assert status == 200, primer
    assert primer["note"] == "primer mine.mid" and primer["notes"] == piece["notes"]
    assert not any((studio.out / "uploads").iterdir())  # the upload is not kept


@pytest.mark.parametrize("name", ["../../escaped.mid", "..%2F..%2Fescaped.mid",
                                  "/tmp/escaped.mid", "sub/../../escaped.mid",
                                  "..\\..\\escaped.mid"])
def test_upload_names_cannot_leave_the_studio_folder(studio, name):
    _, midi = studio.request(generate(studio, bars=1, seed=1)["midi"])
    status, primer = studio.request(f"/api/upload?model=run&name={name}", data=midi)
    assert status == 200, primer
    assert primer["note"] == "primer escaped.mid"
    assert not list(studio.root.rglob("escaped.mid")) and not list(
        studio.root.parent.glob("escaped.mid"))


@pytest.mark.parametrize("path", ["/api/file/..%2F..%2Fcorpus%2Fpiece00.mid",
                                  "/api/file/../run/config.json",
                                  "/api/file/%2e%2e%2frun%2fconfig.json",
                                  "/api/file/0123.mid", "/api/file/" + "a" * 32 + ".json",
                                  "/static/..%2F__init__.py", "/static/../session.py"])
def test_files_outside_the_studio_folder_are_not_served(studio, path):
    status, body = studio.request(path)
    assert status == 404, body


@pytest.mark.parametrize("piece", ["../../run/config", "0" * 32, "../" + "0" * 30, 7])
def test_piece_ids_are_checked(studio, piece):
    status, body = studio.request("/api/continue", {"piece": piece})
    assert status == 400 and ("not a piece id" in body["error"] or "no piece" in body["error"])


def test_bad_requests_are_one_line_errors_and_the_server_keeps_serving(studio):
    cases = [
        ({"model": "run", "temperature": 0}, "temperature must be between"),
        ({"model": "run", "bars": "many"}, "bars must be a number"),
        ({"model": "nope"}, "unknown model 'nope'"),
        ({"model": "run", "bars": 1000}, "bars must be between"),
        ({"model": "run", "key": "D minor"}, "not trained with a key"),
    ]
    for params, message in cases:
        status, body = studio.request("/api/generate", params)
        assert status == 400 and message in body["error"], body
    status, body = studio.request("/api/generate", data=b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]
    status, body = studio.request("/api/upload?model=run&name=x.mid", data=b"MThd garbage")
    assert status == 400 and body["error"].startswith("x.mid: ")
    status, body = studio.request("/api/upload?model=run&name=notes.txt", data=b"hello")
    assert status == 400 and "not a MIDI, ABC, MusicXML" in body["error"]
    status, body = studio.request("/api/upload?model=run&name=big.mid", data=b"0" * 60_000)
    assert status == 400 and "limit" in body["error"]
    generate(studio, bars=1)  # still serving


def test_two_requests_at_once_each_get_their_own_piece(studio):
    alone = {seed: generate(studio, bars=4, seed=seed)["notes"] for seed in (11, 12)}
    results = {}

    def work(seed):
        results[seed] = generate(studio, bars=4, seed=seed)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in (11, 12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results[11]["id"] != results[12]["id"]
    assert results[11]["notes"] == alone[11] and results[12]["notes"] == alone[12]


def test_listening_beyond_this_machine_is_warned_about(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    # a TEST-NET address: warned about, then refused by the OS with a one-line error
    run = subprocess.run(
        [sys.executable, "-m", "tunesmith", "studio", "--checkpoint", "pretrained:essen-folk",
         "--host", "192.0.2.1", "--port", "0", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=120)
    assert "warning:" in run.stdout and "other machines can reach" in run.stdout
    assert run.returncode == 2 and "cannot listen on 192.0.2.1" in run.stderr
    # a checkpoint that is not there: one line naming it, before anything is served
    run = subprocess.run(
        [sys.executable, "-m", "tunesmith", "studio", "--checkpoint", str(tmp_path / "nope"),
         "--port", "0", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=120)
    assert run.returncode == 2 and str(tmp_path / "nope") in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "http://" not in run.stdout
