"""The batched paths of data preparation equal the per-piece functions they replace."""

import importlib

import numpy as np
import pytest
from symusic import Note, Score, Tempo, Track

from tunesmith.data.prepare import load_prepared, make_encoder, pack_rows, prepare, unpack_rows
from tunesmith.music import load
from tunesmith.music.keys import (
    key_correlations,
    key_from_histogram,
    keys_from_histograms,
    pitch_class_histogram,
    pitch_class_histograms,
)
from tunesmith.music.note_arrays import note_arrays
from tunesmith.music.transforms import merge_tracks, select_tracks, transpose
from tunesmith.representations import pianoroll

prepare_module = importlib.import_module("tunesmith.data.prepare")


def _score(tpq, tracks, tempo=120.0):
    """tracks: [(is_drum, [(time, duration, pitch, velocity), ...]), ...]"""
    score = Score(tpq)
    score.tempos.append(Tempo(0, tempo))
    for index, (drum, notes) in enumerate(tracks):
        track = Track(f"t{index}", 0, drum)
        for time, duration, pitch, velocity in notes:
            track.notes.append(Note(time, duration, pitch, velocity))
        score.tracks.append(track)
    return score


@pytest.fixture(scope="module")
def pieces(chorale_paths):
    """Real 4-track chorales at a few transpositions, and odd hand-made pieces."""
    chorales = [load(path) for path in chorale_paths]
    scores = chorales + [transpose(s, shift)[0] for s in chorales for shift in (-5, 3)]
    scores += [
        _score(96, [(False, [(0, 50, 60, 80), (25, 200, 64, 100), (300, 7, 120, 30)]),
                    (True, [(0, 10, 36, 127)]),  # drums: no key, no grid
                    (False, [])]),  # an empty track
        _score(480, [(False, [(0, 480, 5, 80), (480, 480, 127, 80)])]),  # out of range
        _score(480, [(True, [(0, 480, 38, 80)])]),  # drums only
        _score(480, [(False, [(k * 480, 480, 48 + k, 80) for k in range(12)])]),  # flat
        _score(1, [(False, [(0, 3, 62, 64), (1, 1, 62, 90)])]),  # coarse ticks, overlap
    ]
    return scores


def test_note_arrays_equal_each_tracks_notes(pieces):
    notes = note_arrays(pieces)
    assert notes.n_pieces == len(pieces)
    np.testing.assert_array_equal(notes.tpq, [s.ticks_per_quarter for s in pieces])
    rows = 0
    for p, score in enumerate(pieces):
        for t, track in enumerate(score.tracks):
            expected = track.notes.numpy()
            n = len(track.notes)
            block = slice(rows, rows + n)
            for name in ("time", "duration", "pitch", "velocity"):
                np.testing.assert_array_equal(getattr(notes, name)[block], expected[name])
            assert (notes.piece[block] == p).all() and (notes.track[block] == t).all()
            assert (notes.drum[block] == track.is_drum).all()
            rows += n
    assert rows == len(notes)
    assert len(note_arrays([])) == 0


def test_batched_histograms_and_keys_equal_the_per_piece_ones(pieces):
    notes = note_arrays(pieces)
    for weighted in (True, False):
        histograms = pitch_class_histograms(notes, weighted)  # (pieces, 12)
        for score, row in zip(pieces, histograms, strict=True):
            np.testing.assert_array_equal(row, pitch_class_histogram(score, weighted))
    histograms = pitch_class_histograms(notes)
    rng = np.random.default_rng(0)
    histograms = np.concatenate([histograms, rng.random((50, 12)), np.full((1, 12), 0.25)])
    batched = keys_from_histograms(histograms)
    assert [key_from_histogram(h) for h in histograms] == batched  # to the last bit
    for h, key in zip(histograms, batched, strict=True):
        if key is None:  # empty (drums only) or flat histograms
            assert np.ptp(h) == 0
            continue
        correlations = key_correlations(h)  # the documented matrix form
        mode, tonic = divmod(int(correlations.argmax()), 12)
        assert (key.mode, key.tonic) == (("major", "minor")[mode], tonic)
        assert key.correlation == pytest.approx(correlations.max(), abs=1e-12)
    assert sum(key is None for key in batched) == 3  # drums only, flat, the constant row


@pytest.mark.parametrize("options", [
    {},
    {"resolution": 8, "velocity": True},
    {"resolution": 2, "pitch_low": 40, "pitch_high": 80},
])
def test_merged_grids_of_a_batch_equal_each_piece_alone(pieces, options):
    cfg = pianoroll.PianorollConfig(**options)
    pitched = [select_tracks(s, drums=False) for s in pieces]
    notes = note_arrays(pieces)
    frames, onsets, steps = pianoroll.encode_merged_many(notes.select(~notes.drum), cfg)
    assert frames.shape == onsets.shape == (steps.sum(), cfg.n_pitches)
    rows = np.concatenate([[0], np.cumsum(steps)])
    for i, score in enumerate(pitched):
        expected_frames, expected_onsets = pianoroll.encode_with_onsets(score, cfg, merge=True)
        np.testing.assert_array_equal(frames[rows[i]:rows[i + 1]], expected_frames[0])
        np.testing.assert_array_equal(onsets[rows[i]:rows[i + 1]], expected_onsets[0])
        # and merging the tracks first gives the same grid, as the encoder's docstring says
        merged = merge_tracks(score)
        if len(merged.tracks[0].notes) and not cfg.velocity:
            np.testing.assert_array_equal(frames[rows[i]:rows[i + 1]],
                                          pianoroll.encode(merged, cfg)[0])
    assert steps[-3] == 0  # the drums-only piece has no rows
    no_onsets = pianoroll.encode_merged_many(notes.select(~notes.drum), cfg, with_onsets=False)
    assert no_onsets[1] is None
    np.testing.assert_array_equal(no_onsets[0], frames)


@pytest.mark.parametrize("columns", [1, 8, 41, 88, 89, 176])
def test_pack_rows_is_packbits_along_the_rows(columns):
    rng = np.random.default_rng(columns)
    for rows in (0, 1, 37):
        grid = (rng.random((rows, columns)) < 0.3).astype(np.uint8)
        packed = pack_rows(grid)
        np.testing.assert_array_equal(packed, np.packbits(grid, axis=1))
        unpacked = unpack_rows(packed, columns)
        np.testing.assert_array_equal(unpacked, grid)
        assert unpacked.flags.c_contiguous and unpacked.dtype == np.uint8


def test_encode_many_equals_encode_one_by_one(pieces):
    class Scores:  # the little a PianorollEncoder asks of a corpus
        kind, track_layout, name = "scores", None, "scores"

    corpus = Scores()
    for options in ({}, {"onset": True, "pitch_low": 48, "pitch_high": 84}):
        encoder = make_encoder("pianoroll", options, corpus)
        batched = encoder.encode_many(pieces, note_arrays(pieces))
        for score, arrays in zip(pieces, batched, strict=True):
            expected = encoder.encode(score)
            assert arrays.keys() == expected.keys()
            for name in expected:
                np.testing.assert_array_equal(arrays[name], expected[name])


def test_prepare_returns_what_it_wrote(tmp_path, pieces):
    """The PreparedData built in memory equals the cache read back, and each piece
    equals the per-file encoding; bad files keep their reasons."""
    folder = tmp_path / "mix"
    folder.mkdir()
    for i, score in enumerate(pieces):
        score.dump_midi(str(folder / f"p{i:02d}.mid"))
    good = (folder / "p00.mid").read_bytes()
    (folder / "truncated.mid").write_bytes(good[: len(good) // 2])
    (folder / "empty.mid").write_bytes(b"")
    type2 = bytearray(good)
    type2[8:10] = (2).to_bytes(2, "big")
    (folder / "type2.mid").write_bytes(bytes(type2))
    _score(480, [(False, [])]).dump_midi(str(folder / "silent.mid"))
    for options in ({"onset": True}, {"pitch_low": 40, "pitch_high": 80, "onset": True},
                    {"velocity": True}):
        for workers in (1, 2):
            data = prepare(f"folder:{folder}", "pianoroll", options, workers=workers,
                           refresh=True, progress=False, report=False)
            again = load_prepared(data.cache_dir)
            assert data.ids() == again.ids() and data.skipped == again.skipped
            assert data.meta() == again.meta() and data.info == again.info
            for name in ("data", "offsets", "onset_data"):
                a, b = getattr(data, name), getattr(again, name)
                assert (a is None) == (b is None)
                if a is not None:
                    assert a.dtype == b.dtype and a.flags.c_contiguous
                    np.testing.assert_array_equal(a, b)
            reasons = dict(data.skipped)
            assert "truncated MIDI" in reasons["truncated.mid"]
            assert reasons["empty.mid"] == "empty file"
            assert reasons["type2.mid"].startswith("type-2 MIDI")
            assert reasons["silent.mid"] == "the file contains no notes"
            assert reasons["p11.mid"].startswith("no notes left after encoding")  # drums only
            encoder = make_encoder("pianoroll", options, prepare_module.get_corpus(
                f"folder:{folder}"))
            for piece_id, piece, facts in zip(data.ids(), data.pieces(), data.meta(),
                                              strict=True):
                score = load(folder / piece_id)
                np.testing.assert_array_equal(piece, encoder.encode(score)["data"])
                key = key_from_histogram(pitch_class_histogram(score))
                assert facts == {**prepare_module._piece_facts(score),
                                 "key": None if key is None else key.name}
