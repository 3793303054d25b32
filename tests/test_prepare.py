import importlib
import json

import numpy as np
import pytest
from symusic import Note, Score, Tempo, Track

from tunesmith.data.corpora import get_corpus, select_satb, split_of
from tunesmith.data.polyphonic import load_polyphonic_mat
from tunesmith.data.prepare import load_prepared, prepare
from tunesmith.errors import ConfigError, TunesmithError
from tunesmith.music import load
from tunesmith.representations import pianoroll

# the module (the package exports a function of the same name)
prepare_module = importlib.import_module("tunesmith.data.prepare")


@pytest.fixture(scope="module")
def chorales(chorale_paths):
    """The first music21 chorales, parsed once for this file: {file name: Score}."""
    return {path.name: load(path) for path in chorale_paths}


def _midi(path, pitches, start_pitch_offset=0):
    """A one-track MIDI file: a quarter note per pitch, at 120 qpm."""
    score = Score(480)
    score.tempos.append(Tempo(0, 120.0))
    track = Track("piano", 0, False)
    for i, pitch in enumerate(pitches):
        track.notes.append(Note(i * 480, 480, pitch + start_pitch_offset, 80))
    score.tracks.append(track)
    score.dump_midi(str(path))
    return score


@pytest.fixture
def midi_folder(tmp_path):
    folder = tmp_path / "songs"
    folder.mkdir()
    _midi(folder / "a.mid", [60, 62, 64])
    _midi(folder / "b.mid", [67, 65])
    _midi(folder / "c.midi", [48, 52, 55, 60])
    (folder / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\xff")
    (folder / "noise.mid").write_bytes(b"this is not a midi file at all")
    (folder / "readme.txt").write_text("not music")
    return folder


def test_a_corrupt_file_is_skipped_and_the_good_ones_kept(midi_folder):
    data = prepare(f"folder:{midi_folder}", "pianoroll", {"resolution": 2}, workers=2,
                   progress=False, report=False)
    assert sorted(data.ids()) == ["a.mid", "b.mid", "c.midi"]
    reasons = dict(data.skipped)
    assert set(reasons) == {"corrupt.mid", "noise.mid", "readme.txt"}
    assert "truncated" in reasons["corrupt.mid"]
    assert "no MThd header" in reasons["noise.mid"]
    # each kept piece is exactly the piano-roll of its file, flattened (steps, 1 * 88)
    cfg = pianoroll.PianorollConfig(resolution=2)
    for piece_id, piece in zip(data.ids(), data.pieces(), strict=True):
        expected = pianoroll.encode(load(midi_folder / piece_id), cfg)[0]
        np.testing.assert_array_equal(piece, expected)
        assert piece.dtype == np.uint8
    assert data.info.keys == 88 and data.info.n_tracks == 1
    assert data.piece_meta[0]["seconds"] == 1.5  # three quarters at 120 qpm
    assert data.piece_meta[0]["key"] == "C major"
    assert json.loads((data.cache_dir / "skipped.json").read_text())[0][0] == "corrupt.mid"
    for split in ("train", "valid", "test"):
        assert data.ids(split) == [i for i in data.ids() if split_of(i) == split]


def test_the_second_prepare_reads_the_cache_without_parsing(midi_folder, monkeypatch):
    first = prepare(f"folder:{midi_folder}", workers=1, progress=False, report=False)
    shard = first.cache_dir / "shards" / "shard-00000.data.npy"
    npz_mtime = shard.stat().st_mtime_ns

    def no_parsing(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(prepare_module, "process_chunk", no_parsing)
    second = prepare(f"folder:{midi_folder}", workers=1, progress=False, report=False)
    assert second.cache_dir == first.cache_dir
    assert shard.stat().st_mtime_ns == npz_mtime
    assert second.ids() == first.ids() and second.skipped == first.skipped
    for a, b in zip(first.pieces(), second.pieces(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(AssertionError, match="cache should have been used"):
        prepare(f"folder:{midi_folder}", workers=1, progress=False, refresh=True)
    # other options, or a changed file, make another cache
    other = dict(first.repr_config, resolution=8)
    other.pop("merge_tracks")
    monkeypatch.undo()
    assert prepare(f"folder:{midi_folder}", "pianoroll", other, workers=1,
                   progress=False).cache_dir != first.cache_dir
    _midi(midi_folder / "d.mid", [70])
    assert "d.mid" in prepare(f"folder:{midi_folder}", workers=1, progress=False).ids()


def test_the_cache_holds_no_pickle(midi_folder):
    data = prepare(f"folder:{midi_folder}", workers=1, progress=False, report=False)
    files = sorted(p.name for p in (data.cache_dir / "shards").iterdir())
    assert files == ["shard-00000.data.npy", "shard-00000.json"]
    shard = np.load(data.cache_dir / "shards" / files[0], allow_pickle=False)
    assert shard.shape == (36, 11)  # 88 keys bit-packed into 11 bytes
    meta = json.loads((data.cache_dir / "meta.json").read_text())
    # 3, 2 and 4 quarters at 4/q, in the shard in the order the worker finished them
    assert sorted(end - start for _, start, end in meta["where"]) == [8, 12, 16]
    assert meta["n_columns"] == 88 and meta["arrays"] == {"data": "uint8"}
    assert load_prepared(data.cache_dir).ids() == data.ids()


def test_jsb_keeps_the_published_split(polyphonic_dir):
    data = prepare("jsb", path=polyphonic_dir, progress=False)
    assert {s: len(data.pieces(s)) for s in ("train", "valid", "test")} == {
        "train": 229, "valid": 76, "test": 77
    }
    published = load_polyphonic_mat(polyphonic_dir / "JSB_Chorales.mat")
    for split in ("train", "valid", "test"):
        for mine, theirs in zip(data.pieces(split), published[split], strict=True):
            np.testing.assert_array_equal(mine, theirs)
    assert data.info.steps_per_quarter == 1 and data.info.keys == 88
    # a finer grid repeats frames
    fine = prepare("jsb", "pianoroll", {"resolution": 2}, path=polyphonic_dir, progress=False)
    np.testing.assert_array_equal(fine.pieces("test")[3], np.repeat(published["test"][3], 2, 0))


def test_chorales_prepare_as_four_tracks(chorales):
    corpus = get_corpus("bach-chorales")
    sources, _ = corpus.sources()
    assert [s.id for s in sources[:3]] == list(chorales)
    data = prepare("bach-chorales", "pianoroll", {"pitch_low": 36, "pitch_high": 84},
                   limit=3, workers=2, progress=False, report=False)
    assert data.ids() == [s.id for s in sources[:3]]
    info = data.info
    assert info.track_names == ("Soprano", "Alto", "Tenor", "Bass")
    assert (info.n_tracks, info.n_pitches, info.keys) == (4, 49, 196)
    assert info.steps_per_quarter == 4
    cfg = pianoroll.PianorollConfig(resolution=4, pitch_low=36, pitch_high=84)
    for source, piece in zip(sources[:3], data.pieces(), strict=True):
        grid = pianoroll.encode(select_satb(chorales[source.id]), cfg)  # (4, steps, 49)
        assert piece.shape == (grid.shape[1], 196)
        # track-major: columns [49 t, 49 (t + 1)) hold track t
        for t in range(4):
            np.testing.assert_array_equal(piece[:, 49 * t : 49 * (t + 1)], grid[t])


def test_bad_options_fail_before_any_parsing(midi_folder):
    with pytest.raises(ConfigError, match="unknown pianoroll option"):
        prepare(f"folder:{midi_folder}", "pianoroll", {"resolutoin": 4})
    with pytest.raises(ConfigError, match="unknown representation"):
        prepare(f"folder:{midi_folder}", "abc")
    with pytest.raises(ConfigError, match="fixed set of tracks"):
        prepare(f"folder:{midi_folder}", "pianoroll", {"merge_tracks": False})


def test_a_folder_without_usable_pieces_names_every_skipped_file(tmp_path):
    (tmp_path / "x.mid").write_bytes(b"garbage")
    (tmp_path / "y.abc").write_bytes(b"X:1\nT:no length\nCDEF|GABc|\n")
    (tmp_path / "z.krn").write_bytes(b"!!!COM: nobody\n")
    (tmp_path / "notes.txt").write_text("not music")
    with pytest.raises(TunesmithError, match="no usable piece") as error:
        prepare(f"folder:{tmp_path}", workers=1, progress=False, report=False)
    lines = str(error.value).splitlines()
    assert "4 skipped" in lines[0]
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "notes.txt", "x.mid", "y.abc", "z.krn"]
    assert "no MThd header" in lines[2] and "malformed ABC header" in lines[3]
    assert "contains no notes" in lines[4]


def test_a_symbolic_link_loop_is_reported_and_the_rest_prepared(tmp_path):
    folder = tmp_path / "songs"
    (folder / "sub").mkdir(parents=True)
    _midi(folder / "sub" / "a.mid", [60, 62, 64])
    (folder / "sub" / "up").symlink_to(folder, target_is_directory=True)  # a loop
    (folder / "self.mid").symlink_to(folder / "self.mid")  # a link to itself
    data = prepare(f"folder:{folder}", workers=1, progress=False, report=False)
    assert data.ids() == ["sub/a.mid"]
    reasons = dict(data.skipped)
    assert set(reasons) == {"sub/up", "self.mid"}
    assert "loop" in reasons["sub/up"] and "loop" in reasons["self.mid"]


def test_melody_prepares_int16_events(midi_folder):
    pytest.importorskip("tunesmith.representations.melody")
    data = prepare(f"folder:{midi_folder}", "melody", workers=1, progress=False, report=False)
    a = data.pieces()[data.ids().index("a.mid")]
    assert a.dtype == np.int16
    # C4 D4 E4 quarter notes at 4 steps per quarter, range from MIDI 48: events 2 + p - 48
    assert a.tolist() == [14, 0, 0, 0, 16, 0, 0, 0, 18, 0, 0, 0]
    assert data.info.vocab_size == 38 and data.info.steps_per_bar == 16


def _encode_note_by_note(score, cfg):
    """The grid written cell by cell, the obvious way, to check the vectorised encoder."""
    tpq = score.ticks_per_quarter
    steps = pianoroll.n_steps(score, cfg.resolution)
    grid = np.zeros((len(score.tracks), steps, cfg.n_pitches), np.uint8)
    for t, track in enumerate(score.tracks):
        for note in track.notes:
            start = round(note.time * cfg.resolution / tpq)
            end = max(start + 1, round(note.end * cfg.resolution / tpq))
            if cfg.pitch_low <= note.pitch <= cfg.pitch_high:
                grid[t, start:end, note.pitch - cfg.pitch_low] = 1
    return grid


def test_vectorised_grid_equals_cell_by_cell_encoding(chorales):
    from symusic import Note

    from tunesmith.music.transforms import merge_tracks

    cfg = pianoroll.PianorollConfig(resolution=4, pitch_low=40, pitch_high=80)
    for score in chorales.values():
        chorale = select_satb(score)
        frames, onsets = pianoroll.encode_with_onsets(chorale, cfg)
        np.testing.assert_array_equal(frames, _encode_note_by_note(chorale, cfg))
        # merged: unisons, a note out of range, a tiny note, a drum track left out
        chorale.tracks[0].notes.append(Note(0, 3, 100, 80))
        chorale.tracks[1].notes.append(Note(0, 960, chorale.tracks[0].notes[0].pitch, 80))
        merged = merge_tracks(chorale)
        frames, onsets = pianoroll.encode_with_onsets(chorale, cfg, merge=True)
        np.testing.assert_array_equal(frames, _encode_note_by_note(merged, cfg)[:1])
        np.testing.assert_array_equal(onsets, pianoroll.onsets(merged, cfg)[:1])


def test_transpose_to_c_moves_each_piece_to_c(tmp_path):
    _midi(tmp_path / "d_major.mid", [62, 64, 66, 67, 69, 71, 73, 74, 69, 66, 62])
    data = prepare(f"folder:{tmp_path}", "pianoroll", transpose_to_c=True, workers=1,
                   progress=False, report=False)
    meta = data.piece_meta[0]
    assert meta["key"] == "D major" and meta["transposed_by"] in (-2, 10)
    sounding = np.nonzero(data.pieces()[0].any(axis=0))[0] + 21  # MIDI pitches
    assert sounding[0] == 62 + meta["transposed_by"]
