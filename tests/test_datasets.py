import numpy as np
import pytest
import torch
from symusic import Note, Score, Tempo, Track

from tunesmith.data import make_dataloader, prepare
from tunesmith.data.datasets import SequenceDataset
from tunesmith.errors import ConfigError
from tunesmith.representations.pianoroll import flatten_tracks


def _midi(path, notes):
    """notes: (start quarter, quarters, pitch)."""
    score = Score(480)
    score.tempos.append(Tempo(0, 120.0))
    track = Track("piano", 0, False)
    for start, length, pitch in notes:
        track.notes.append(Note(int(start * 480), int(length * 480), pitch, 80))
    score.tracks.append(track)
    score.dump_midi(str(path))


@pytest.fixture
def prepared(tmp_path):
    """Three pieces on a 1-step-per-quarter grid over MIDI 60-71 (K = 12)."""
    _midi(tmp_path / "a.mid", [(0, 2, 60), (2, 2, 67)])  # 4 steps: C C G G
    _midi(tmp_path / "b.mid", [(i, 1, 62) for i in range(10)])  # 10 steps of D
    _midi(tmp_path / "c.mid", [(0, 1, 71), (1, 5, 64)])  # 6 steps: B E E E E E
    return prepare(f"folder:{tmp_path}", "pianoroll",
                   {"resolution": 1, "pitch_low": 60, "pitch_high": 71},
                   workers=1, progress=False, report=False)


def _by_id(dataset, piece_id):
    return dataset[dataset.ids.index(piece_id)]["data"]


def test_batches_are_padded_with_masks(prepared):
    loader = make_dataloader(prepared, None, batch_size=3, shuffle=False)
    (batch,) = list(loader)
    assert set(batch) == {"frames", "mask"}
    assert batch["frames"].shape == (3, 10, 12) and batch["frames"].dtype == torch.float32
    assert batch["mask"].sum(dim=1).tolist() == [4, 10, 6]  # a, b, c in id order
    assert batch["frames"][~batch["mask"]].sum() == 0  # padding is silent
    a = batch["frames"][0, :4]
    assert a[:, 0].tolist() == [1, 1, 0, 0] and a[:, 7].tolist() == [0, 0, 1, 1]


def test_windows_crop_contiguous_steps_reproducibly(prepared):
    piece = prepared.pieces()[prepared.ids().index("c.mid")]
    crops = []
    for seed in (0, 0, 1):
        dataset = SequenceDataset(prepared, None, window=3, seed=seed)
        crop = _by_id(dataset, "c.mid")
        assert crop.shape == (3, 12)
        starts = [s for s in range(4) if np.array_equal(piece[s : s + 3], crop)]
        assert starts  # a real window of the piece
        crops.append([_by_id(dataset, "c.mid").tolist() for _ in range(8)])
    assert crops[0] == crops[1]  # same seed, same crops
    first = SequenceDataset(prepared, None, window=3, random_crop=False)
    np.testing.assert_array_equal(_by_id(first, "c.mid"), piece[:3])
    assert _by_id(first, "a.mid").shape == (3, 12)


def test_transposition_shifts_pitches_and_keeps_notes_in_range(prepared):
    up = SequenceDataset(prepared, None, transpose=(2, 2))
    a = _by_id(up, "a.mid")
    assert a[:, 2].tolist() == [1, 1, 0, 0] and a[:, 9].tolist() == [0, 0, 1, 1]
    assert a.sum() == 4
    # c.mid reaches B (the top of the range): no upward shift is possible
    for _ in range(10):
        c = _by_id(SequenceDataset(prepared, None, transpose=(0, 5)), "c.mid")
        np.testing.assert_array_equal(c, prepared.pieces()[2])
    shifts = set()
    dataset = SequenceDataset(prepared, None, transpose=(-3, 3))
    original = prepared.pieces()[1]  # b.mid: D only
    for _ in range(60):
        b = _by_id(dataset, "b.mid")
        assert b.sum() == original.sum()
        shifts.add(int(np.nonzero(b[0])[0][0]) - 2)
    assert shifts == {-2, -1, 0, 1, 2, 3}  # D can go down 2 (to C) and up 3


def test_pitch_histogram_is_the_pieces_pitch_class_share(prepared):
    loader = make_dataloader(prepared, None, batch_size=3, shuffle=False, pitch_histogram=True)
    hist = next(iter(loader))["pitch_histogram"]  # (3, 12)
    assert hist.shape == (3, 12)
    expected_a = torch.zeros(12)
    expected_a[0] = expected_a[7] = 0.5
    assert torch.allclose(hist[0], expected_a)
    assert hist[2, 11].item() == pytest.approx(1 / 6) and hist[2, 4].item() == pytest.approx(5 / 6)
    up = SequenceDataset(prepared, None, transpose=(2, 2), pitch_histogram=True)
    assert np.allclose(up[0]["pitch_histogram"], np.roll(expected_a.numpy(), 2))


def test_shuffled_loader_is_seeded(prepared):
    def order(seed):
        loader = make_dataloader(prepared, None, batch_size=1, shuffle=True, seed=seed)
        return [int(b["mask"].sum()) for b in loader]

    assert order(5) == order(5)
    assert sorted(order(5)) == [4, 6, 10]


def test_tracks_are_flattened_track_major():
    grid = np.arange(2 * 3 * 4).reshape(2, 3, 4)  # (tracks, steps, pitches)
    flat = flatten_tracks(grid)  # (steps, tracks * pitches)
    assert flat.shape == (3, 8)
    np.testing.assert_array_equal(flat[:, :4], grid[0])
    np.testing.assert_array_equal(flat[:, 4:], grid[1])


def test_melody_batches_and_transposition(tmp_path):
    pytest.importorskip("tunesmith.representations.melody")
    _midi(tmp_path / "m.mid", [(0, 1, 60), (1, 1, 64)])
    data = prepare(f"folder:{tmp_path}", "melody", workers=1, progress=False, report=False)
    batch = next(iter(make_dataloader(data, None, batch_size=1, shuffle=False)))
    assert set(batch) == {"events", "mask"} and batch["events"].dtype == torch.long
    assert batch["events"][0].tolist() == [14, 0, 0, 0, 18, 0, 0, 0]
    up = SequenceDataset(data, None, transpose=(3, 3))
    assert up[0]["data"].tolist() == [17, 0, 0, 0, 21, 0, 0, 0]


def test_bad_dataset_options_are_refused(prepared):
    with pytest.raises(ConfigError):
        SequenceDataset(prepared, None, window=0)
    with pytest.raises(ConfigError):
        SequenceDataset(prepared, None, transpose=(3, -3))
    with pytest.raises(ConfigError, match="unknown split"):
        SequenceDataset(prepared, "training")


def test_epoch_sampler_rebuilds_any_epoch_and_starts_part_way(prepared):
    from tunesmith.data.datasets import EpochSampler

    sampler = EpochSampler(10, shuffle=True, seed=3)
    epochs = [list(sampler) for _ in range(4)]  # each pass is the next epoch
    assert all(sorted(i for i, _ in e) == list(range(10)) for e in epochs)
    assert [{e for _, e in keys} for keys in epochs] == [{0}, {1}, {2}, {3}]
    assert len({tuple(e) for e in epochs}) == 4  # a new order each epoch
    fresh = EpochSampler(10, shuffle=True, seed=3)
    fresh.start_at(2, 7)
    assert list(fresh) == epochs[2][7:]  # epoch 2 from its 8th item, history unneeded
    fresh.set_epoch(3)  # what Lightning calls
    assert list(fresh) == epochs[3]
    assert list(EpochSampler(4, shuffle=False)) == [(0, 0), (1, 0), (2, 0), (3, 0)]
    with pytest.raises(ValueError):
        fresh.start_at(0, 11)


def test_length_buckets_batch_similar_lengths_in_a_seeded_order():
    from tunesmith.data.datasets import EpochSampler

    lengths = [30, 3, 31, 4, 32, 5, 33, 6, 34, 50, 7]  # 11 items: one short batch of 3
    sampler = EpochSampler(len(lengths), seed=1, lengths=lengths, batch_size=4)
    epochs = [[i for i, _ in sampler] for _ in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(11))
        batches = [order[k:k + 4] for k in range(0, 11, 4)]
        assert [len(b) for b in batches] == [4, 4, 3]  # the short batch last
        for batch in batches:  # neighbours in the length order
            ranks = sorted(sorted(range(11), key=lengths.__getitem__).index(i) for i in batch)
            assert ranks[-1] - ranks[0] == len(batch) - 1
    assert len({tuple(e) for e in epochs}) > 1  # shuffled by epoch
    again = EpochSampler(len(lengths), seed=1, lengths=lengths, batch_size=4)
    again.start_at(1, 4)
    assert [i for i, _ in again] == epochs[1][4:]  # a resumed epoch rebuilds its order
    plain = EpochSampler(len(lengths), shuffle=False, lengths=lengths, batch_size=4)
    assert [i for i, _ in plain] == sorted(range(11), key=lengths.__getitem__)


def test_loader_with_length_buckets_pads_little(prepared):
    # pieces of 4, 10 and 6 steps: the 4 and the 6 share a batch, whatever the epoch
    loader = make_dataloader(prepared, None, batch_size=2, shuffle=True, length_buckets=True)
    for _ in range(3):
        assert sorted(tuple(b["mask"].sum(1).tolist()) for b in loader) == [(4, 6), (10,)]


def test_an_items_random_window_and_shift_are_fixed_by_its_epoch(prepared):
    dataset = SequenceDataset(prepared, None, window=3, transpose=(-2, 2), seed=1)
    b = prepared.ids().index("b.mid")  # 10 steps of D: windows and shifts to draw

    def draws(epoch):
        return [dataset[(b, epoch)]["data"].tobytes() for _ in range(3)]

    assert all(len(set(draws(e))) == 1 for e in range(5))  # the same draw every time
    assert len({draws(e)[0] for e in range(20)}) > 1  # but a new one each epoch
    loader = make_dataloader(prepared, None, batch_size=2, window=3, transpose=(-2, 2), seed=1)
    twice = [[batch["frames"] for batch in loader] for _ in range(2)]
    loader.batch_sampler.sampler.start_at(0, 0)
    again = [batch["frames"] for batch in loader]
    assert all(torch.equal(a, b) for a, b in zip(twice[0], again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(twice[0], twice[1], strict=True))


def test_trainer_transposes_training_items_only(prepared):
    from tunesmith.training.trainer import TrainSettings, make_loaders

    settings = TrainSettings(transpose=[2, 2], window=None, batch_size=3)
    train_loader, val_loader = make_loaders(prepared, settings)
    assert train_loader.dataset.transpose == (2, 2)
    assert val_loader is None or val_loader.dataset.transpose == (0, 0)
    with pytest.raises(ConfigError, match="transpose"):
        TrainSettings(transpose=[3, -3])


def test_whole_piece_training_batches_similar_lengths_by_default(prepared):
    from tunesmith.training.trainer import TrainSettings, epoch_sampler, make_loaders

    def buckets(**settings):
        loader = make_loaders(prepared, TrainSettings(batch_size=2, **settings))[0]
        return epoch_sampler(loader).lengths is not None

    assert buckets(window=None) and not buckets(window=4)
    assert not buckets(window=None, length_buckets=False) and buckets(window=4,
                                                                      length_buckets=True)
