"""The sharded prepared-data cache: shards as chunks finish, memory-mapped pieces read one
at a time, a prepare killed half-way that resumes, damaged shards named, old caches read."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tunesmith
from tunesmith.data.prepare import (
    PieceList,
    _worker_context,
    load_prepared,
    pack_rows,
    prepare,
    process_chunk,
)
from tunesmith.errors import TunesmithError


def _song(path: Path, pitches: list[int]) -> None:
    from symusic import Note, Score, Tempo, Track

    score = Score(480)
    score.tempos.append(Tempo(0, 120.0))
    track = Track("piano", 0, False)
    for i, pitch in enumerate(pitches):
        track.notes.append(Note(i * 240, 240, pitch, 80))
    score.tracks.append(track)
    score.dump_midi(str(path))


@pytest.fixture
def songs(tmp_path) -> Path:
    """30 short MIDI files of 3 to 12 notes, and one that is not MIDI."""
    folder = tmp_path / "songs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):
        _song(folder / f"song{i:02d}.mid", rng.integers(40, 90, 3 + i % 10).tolist())
    (folder / "broken.mid").write_bytes(b"not a midi file")
    return folder


def _reference(corpus: str, representation: str, path=None, limit=None, options=None):
    """{id: arrays} encoded here, chunk by chunk, with no cache: what the pieces must be."""
    job = {"corpus": corpus, "path": None if path is None else str(path),
           "representation": representation, "options": options or {},
           "transpose_to_c": False, "max_seconds": 7200.0, "time_limit": 60.0}
    source_corpus, encoder = _worker_context(job)
    sources = source_corpus.sources()[0][:limit]
    result = process_chunk(job, sources)
    rows = np.concatenate([[0], np.cumsum(result["lengths"])])
    out = {}
    for k, piece_id in enumerate(result["ids"]):
        arrays = {name: a[rows[k]:rows[k + 1]] for name, a in result["arrays"].items()}
        if encoder.packs_bits():
            from tunesmith.data.prepare import unpack_rows

            arrays = {n: unpack_rows(a, result["columns"]) for n, a in arrays.items()}
        out[piece_id] = arrays
    return out


def _same_pieces(data, reference: dict) -> None:
    assert data.ids() == sorted(reference)
    onsets = data.onsets()
    for k, piece_id in enumerate(data.ids()):
        piece = data.pieces()[k]
        expected = reference[piece_id]["data"]
        assert piece.dtype == expected.dtype and piece.tobytes() == expected.tobytes()
        if onsets is not None:
            assert onsets[k].tobytes() == reference[piece_id]["onsets"].tobytes()


def test_several_shards_hold_the_same_bytes_as_encoding_each_piece(songs):
    data = prepare(f"folder:{songs}", workers=2, progress=False, report=False, shard_pieces=4)
    shards = sorted((data.cache_dir / "shards").glob("*.json"))
    # a shard is written once it holds 4 pieces; a worker's chunk is added whole, so a
    # shard may hold a few more (how many depends on how the chunks fell): every shard but
    # the last holds at least 4, and the 30 usable pieces need several
    sizes = [len(json.loads(path.read_text())["ids"]) for path in shards]
    assert len(shards) >= 2 and all(size >= 4 for size in sizes[:-1]), sizes
    assert sum(sizes) == len(data.ids())  # each usable piece in exactly one shard
    _same_pieces(data, _reference(f"folder:{songs}", "pianoroll"))
    assert dict(data.skipped)["broken.mid"]
    # memory-mapped: a piece is unpacked from the shard's bytes when it is asked for
    assert isinstance(data.store.shards["data"][0], np.memmap)
    pieces = data.pieces("train")
    assert isinstance(pieces, PieceList) and pieces.lengths() == [len(p) for p in pieces]
    # a DataLoader worker started with spawn gets the files' paths, not a copy of the data
    store = pickle.loads(pickle.dumps(data.store))
    assert isinstance(store.shards["data"][0], np.memmap)
    assert len(pickle.dumps(data.store)) < 4096


@pytest.mark.parametrize("corpus,representation,limit,options", [
    ("bach-chorales", "pianoroll", 4, {"onset": True}),
    ("bach-chorales", "melody", 4, None),
    ("oneills", "events", 4, None),
    ("jsb", "pianoroll", None, None),
])
def test_built_in_corpora_give_the_same_bytes_as_encoding_each_piece(
        corpus, representation, limit, options, polyphonic_dir):
    path = polyphonic_dir if corpus == "jsb" else None
    data = prepare(corpus, representation, options, path=path, limit=limit, workers=1,
                   progress=False, report=False, shard_pieces=100)
    _same_pieces(data, _reference(corpus, representation, path, limit, options))
    again = load_prepared(data.cache_dir)
    assert [p.tobytes() for p in again.pieces()] == [p.tobytes() for p in data.pieces()]


KILL_AT_THIRD_SHARD = """
import os, signal, sys
from pathlib import Path
import importlib
prepare_module = importlib.import_module("tunesmith.data.prepare")
writes = []
replace_with = prepare_module._replace_with
def dying(path, write):
    if path.suffix == ".json":
        writes.append(path)
        if len(writes) == 3:  # the third shard's arrays are written, its JSON is not
            os.kill(os.getpid(), signal.SIGKILL)
    replace_with(path, write)
prepare_module._replace_with = dying
prepare_module.prepare("folder:" + sys.argv[1], workers=1, progress=False, shard_pieces=4)
"""


def test_a_prepare_killed_half_way_resumes_without_duplicate_or_loss(songs, tmp_path,
                                                                     monkeypatch, capfd):
    cache = tmp_path / "cache"  # this test's alone: other tests leave .partial folders
    monkeypatch.setenv("TUNESMITH_CACHE", str(cache))
    env = {**os.environ, "PYTHONPATH": str(Path(tunesmith.__file__).parents[1])}
    killed = subprocess.run([sys.executable, "-c", KILL_AT_THIRD_SHARD, str(songs)], env=env,
                            capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    partial = next((cache / "prepared").glob("*.partial"))
    names = sorted(p.name for p in (partial / "shards").iterdir())
    assert "shard-00002.data.npy" in names and "shard-00002.json" not in names
    kept_before = {p: p.stat().st_mtime_ns for p in (partial / "shards").glob("shard-0000[01]*")}
    assert len(kept_before) == 4
    done = sum(len(shard["ids"]) + len(shard["skipped"]) for shard in (
        json.loads(p.read_text()) for p in kept_before if p.suffix == ".json"))
    assert 8 <= done < 31

    data = prepare(f"folder:{songs}", workers=1, progress=False, report=False, shard_pieces=4)
    assert f"resuming an interrupted prepare; {done} piece(s) are in 2 shard(s)" in \
        " ".join(capfd.readouterr().err.split())
    assert not partial.exists()
    for path, mtime in kept_before.items():  # the shards written before were kept
        assert (data.cache_dir / "shards" / path.name).stat().st_mtime_ns == mtime
    meta = json.loads((data.cache_dir / "meta.json").read_text())
    places = [tuple(w) for w in meta["where"]]
    assert len(set(places)) == len(places) == 30  # no piece twice
    written = [i for shard in sorted((data.cache_dir / "shards").glob("*.json"))
               for i in json.loads(shard.read_text())["ids"]]
    assert sorted(written) == data.ids()  # no piece written twice either

    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "fresh"))  # never interrupted
    fresh = prepare(f"folder:{songs}", workers=1, progress=False, report=False, shard_pieces=4)
    assert fresh.ids() == data.ids() and fresh.piece_splits == data.piece_splits
    assert fresh.cache_dir.name == data.cache_dir.name  # the same key
    assert [p.tobytes() for p in fresh.pieces()] == [p.tobytes() for p in data.pieces()]
    assert fresh.skipped == data.skipped and fresh.piece_meta == data.piece_meta


@pytest.mark.parametrize("damage,reason", [
    (lambda p: p.write_bytes(p.read_bytes()[:-40]), "corrupt or missing"),  # cut short
    (lambda p: np.save(p, np.zeros((3, 11), np.uint8)), "3 rows, meta.json says"),
    (lambda p: np.save(p, np.zeros((len(np.load(p)), 11), np.int16)),
     "dtype int16, meta.json says uint8"),
    (lambda p: p.write_bytes(b"\x93NUMPY garbage"), "corrupt or missing"),
    (lambda p: p.unlink(), "corrupt or missing"),
])
def test_a_damaged_shard_is_named(songs, damage, reason, capfd):
    data = prepare(f"folder:{songs}", workers=1, progress=False, report=False, shard_pieces=8)
    shard = data.cache_dir / "shards" / "shard-00001.data.npy"
    damage(shard)
    with pytest.raises(TunesmithError) as error:
        load_prepared(data.cache_dir)
    message = str(error.value)
    assert str(shard) in message and reason in message and "\n" not in message
    # prepare says so and builds the cache again
    again = prepare(f"folder:{songs}", workers=1, progress=False, report=False, shard_pieces=8)
    assert f"{shard}:corrupt" in "".join(capfd.readouterr().err.split())  # noted
    assert [p.tobytes() for p in again.pieces()] == [p.tobytes() for p in
                                                     load_prepared(again.cache_dir).pieces()]
    assert len(again.ids()) == 30


def test_a_single_file_cache_of_the_older_layout_still_loads(songs, tmp_path):
    data = prepare(f"folder:{songs}", workers=1, progress=False, report=False)
    old = tmp_path / "old-cache"
    old.mkdir()
    meta = json.loads((data.cache_dir / "meta.json").read_text())
    for key in ("storage", "shards", "arrays", "n_columns", "where"):
        meta.pop(key)
    (old / "meta.json").write_text(json.dumps(meta))
    (old / "skipped.json").write_text(json.dumps([list(s) for s in data.skipped]))
    pieces = list(data.pieces())
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])])
    np.savez(old / "data.npz", data=pack_rows(np.concatenate(pieces)), offsets=offsets,
             n_columns=np.array(pieces[0].shape[1]))
    loaded = load_prepared(old)
    assert loaded.ids() == data.ids() and loaded.piece_splits == data.piece_splits
    assert [p.tobytes() for p in loaded.pieces()] == [p.tobytes() for p in pieces]


def test_loader_workers_read_the_memory_maps(songs):
    import torch

    from tunesmith.data.datasets import make_dataloader

    data = prepare(f"folder:{songs}", workers=1, progress=False, report=False, shard_pieces=8)
    here, workers = (list(make_dataloader(data, "train", batch_size=4, window=16, seed=3,
                                          num_workers=n)) for n in (0, 2))
    assert len(here) == len(workers) > 1
    for a, b in zip(here, workers, strict=True):
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["mask"], b["mask"])


def test_a_cache_hit_takes_no_lock(songs, monkeypatch):
    """A cache other processes only read (a read-only shared folder) needs no lock file."""
    import importlib

    data = prepare(f"folder:{songs}", workers=1, progress=False, report=False)
    prepare_module = importlib.import_module("tunesmith.data.prepare")

    def no_lock(cache_dir):
        raise AssertionError(f"locked {cache_dir} to read it")

    monkeypatch.setattr(prepare_module, "_cache_lock", no_lock)
    assert prepare(f"folder:{songs}", workers=1, progress=False).ids() == data.ids()
