"""Torch datasets over prepared data, and the data loaders the trainer uses.

:class:`SequenceDataset` serves one piece per item, optionally cropped to a window (at a
random start while training) and transposed by a random number of semitones (piano-roll
and melody; a shift that would push a note out of range is never drawn). Its batches,
built by :func:`make_dataloader` with :mod:`tunesmith.data.batching`, are the dicts of
:mod:`tunesmith.models.base`:

* pianoroll: ``frames`` (B, T, K) float, ``mask`` (B, T) bool, optionally ``onsets``
  (B, T, K) and ``pitch_histogram`` (B, 12), the piece's pitch-class distribution that
  conditions the WaveNet globally (van den Oord et al., 2016, §2.5);
* melody: ``events`` (B, T) long, ``mask``;
* events: ``tokens`` (B, T) long, ``mask``;
* drums: ``drums`` (B, T, 27) float hits | velocities | offsets, ``mask``; a drums item
  is one bar-aligned window of a performance (:func:`tunesmith.representations.drums.windows`,
  2 bars every bar by default), not the whole performance.

Everything random in a loader made here is a function of ``(seed, epoch, position)``:
:class:`EpochSampler` orders the pieces by ``(seed, epoch)`` and hands the dataset
``(index, epoch)`` keys, from which it seeds the item's window and transposition. So a
resumed run rebuilds the epoch it stopped in and enters it at any batch
(:meth:`EpochSampler.start_at`), whichever worker loads which item; there is no draw
counter or generator state to save.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from tunesmith.data.batching import length_batches, pad_sequences
from tunesmith.data.prepare import PreparedData
from tunesmith.errors import ConfigError
from tunesmith.representations.adapter import get_representation


class SequenceDataset(Dataset):
    """One item per piece of a split: ``{"data": array, ...}`` (see module docstring).

    Args:
        prepared: the output of :func:`tunesmith.data.prepare`.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        window: crop pieces longer than this many steps (tokens); None keeps them whole.
        random_crop: crop at a random start (else at the beginning).
        transpose: ``(low, high)`` semitones; each item is shifted by a shift drawn
            uniformly from the ones in this range that keep every note in range.
        seed: seeds the crops and shifts.
        pitch_histogram: add the piece's (transposed) pitch-class histogram (pianoroll).

    An item is ``dataset[index]`` (a fresh draw each call) or ``dataset[(index, epoch)]``
    (the same draw every time: what :class:`EpochSampler` asks for).
    """

    def __init__(
        self,
        prepared: PreparedData,
        split: str,
        window: int | None = None,
        random_crop: bool = True,
        transpose: tuple[int, int] = (0, 0),
        seed: int = 0,
        pitch_histogram: bool = False,
    ):
        self.representation = prepared.representation
        self.adapter = get_representation(prepared.representation)
        self.info = prepared.info
        # the items: the pieces, or parts of them (drums: each performance's windows)
        self.pieces, self.ids = self.adapter.items(prepared.info, prepared.pieces(split),
                                                   prepared.ids(split))
        self.onsets = prepared.onsets(split)
        self.window = window
        self.random_crop = random_crop
        self.transpose = (int(transpose[0]), int(transpose[1]))
        self.seed = seed
        self.pitch_histogram = pitch_histogram
        self._draws = 0
        if window is not None and window < 1:
            raise ConfigError(f"window must be >= 1 step, got {window}")
        if self.transpose[0] > self.transpose[1]:
            raise ConfigError(f"transpose range must be (low, high), got {transpose}")
        if self.transpose != (0, 0) and not self.adapter.transposable:
            raise ConfigError(f"transposition augmentation is not defined for "
                              f"{self.representation} data")
        if pitch_histogram and not self.adapter.frames:
            raise ConfigError("pitch_histogram is computed from piano-roll data only")

    def __len__(self) -> int:
        return len(self.pieces)

    def item_lengths(self) -> list[int]:
        """Steps of each item before cropping (a cache's pieces: from its index, no
        piece read)."""
        lengths = getattr(self.pieces, "lengths", None)
        return list(lengths()) if lengths is not None else [len(p) for p in self.pieces]

    def _rng(self, key: int | tuple[int, int]) -> tuple[int, np.random.Generator]:
        """(index, generator) for an item key: ``(index, epoch)`` or a bare index."""
        if isinstance(key, tuple):
            index, epoch = (int(k) for k in key)
            return index, np.random.default_rng([self.seed, index, epoch])
        self._draws += 1  # direct indexing: a new draw each time
        worker = torch.utils.data.get_worker_info()
        return int(key), np.random.default_rng(
            [self.seed, int(key), self._draws, worker.id if worker else 0]
        )

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, rng = self._rng(key)
        data = self.pieces[index]
        onsets = self.onsets[index] if self.onsets is not None else None
        start = 0
        if self.window is not None and len(data) > self.window:
            if self.random_crop:
                start = int(rng.integers(0, len(data) - self.window + 1))
            data = data[start : start + self.window]
            onsets = None if onsets is None else onsets[start : start + self.window]
        item: dict[str, Any] = {}
        shift = 0  # semitones, drawn so that every note stays in range
        if self.transpose != (0, 0):
            shift = self.adapter.draw_shift(self.info, data, self.transpose, rng)
        item["data"] = self.adapter.shift(self.info, data, shift)
        if onsets is not None:
            item["onsets"] = self.adapter.shift(self.info, onsets, shift)
        if self.pitch_histogram:
            item["pitch_histogram"] = np.roll(self._histogram(index), shift)
        return item

    def _histogram(self, index: int) -> np.ndarray:
        """(12,) float32 pitch-class distribution of the whole piece (before cropping)."""
        hist = self.adapter.pitch_class_counts(self.info, self.pieces[index])
        assert hist is not None  # checked in __init__: frames count their pitch classes
        total = hist.sum()
        return (hist / total if total > 0 else hist).astype(np.float32)


def collate(items: list[dict[str, Any]], representation: str) -> dict[str, torch.Tensor]:
    """Items of :class:`SequenceDataset` -> a padded batch dict of the model contract:
    the pieces under the representation's batch key (long ids, else float), ``mask``,
    and ``onsets`` (padded) and ``pitch_histogram`` (stacked) where the items hold them."""
    adapter = get_representation(representation)
    data, mask = pad_sequences([np.asarray(item["data"], dtype=np.int64) if adapter.integer_data
                                else item["data"] for item in items])
    batch = {adapter.batch_key: data.long() if adapter.integer_data else data.float(),
             "mask": mask}  # (B, T[, K]), (B, T)
    if "onsets" in items[0]:
        batch["onsets"] = pad_sequences([item["onsets"] for item in items])[0].float()
    if "pitch_histogram" in items[0]:
        batch["pitch_histogram"] = torch.as_tensor(
            np.stack([item["pitch_histogram"] for item in items])
        )  # (B, 12)
    return batch


class EpochSampler(Sampler):
    """Yields ``(index, epoch)`` for every item, shuffled by ``(seed, epoch)`` alone (and
    :meth:`batches` of them, which :class:`EpochBatchSampler` serves to a loader).

    Like DistributedSampler, the order of epoch ``e`` depends on nothing but the seed
    and ``e`` (Lightning calls :meth:`set_epoch` before each epoch; without it each pass
    is the next epoch), so a resumed run can rebuild it and start part-way through.

    With ``lengths`` (and the loader's ``batch_size``) consecutive runs of ``batch_size``
    items are pieces of similar length (:func:`~tunesmith.data.batching.length_batches`),
    in shuffled batch order, the one short batch last: whole pieces batch with little
    padding. The order then also depends on the batch size.

    Under DDP (:meth:`set_replicas`, which the trainer calls on each process) the epoch's
    batches are dealt out to the processes: process ``r`` of ``W`` takes batches ``r``,
    ``r + W``, ... Its part is disjoint from the others' and together they cover the
    epoch, with no piece repeated or left out (DistributedSampler pads with repeats).
    Every process must take the same number of optimiser steps, so when the batch count
    is not a multiple of ``W`` the largest batches are split in two until it is; only
    when there are too few items for that (fewer than ``W`` a step, as with a batch size
    of 1) are the last ``batches % W`` batches of the epoch's order left out of it.
    """

    def __init__(self, n_items: int, shuffle: bool = True, seed: int = 0,
                 lengths: list[int] | None = None, batch_size: int | None = None,
                 drop_last: bool = False):
        if lengths is not None and (len(lengths) != n_items or not batch_size):
            raise ValueError("length buckets need one length per item and a batch size")
        self.n_items = n_items
        self.shuffle = shuffle
        self.seed = seed
        self.lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.replicas, self.rank, self.even = 1, 0, True
        self.epoch = 0
        self._start = 0  # items (one process) or batches (several) to skip
        self._start_batches = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_replicas(self, replicas: int, rank: int, even: bool = True) -> None:
        """Serve process ``rank``'s part of each epoch, of ``replicas`` processes; with
        ``even`` False (validation: no optimiser step to keep in step) the processes'
        batch counts may differ by one and no batch is split or left out."""
        if not 0 <= rank < replicas:
            raise ValueError(f"rank {rank} is not one of {replicas} processes")
        if replicas > 1 and not self.batch_size:
            raise ValueError("dealing batches out to processes needs a batch size")
        self.replicas, self.rank, self.even = int(replicas), int(rank), bool(even)

    def start_at(self, epoch: int, position: int, batches: bool = False) -> None:
        """Make the next pass epoch ``epoch``, skipping its first ``position`` items (or,
        with ``batches``, this process's first ``position`` batches)."""
        limit = len(self.batches(epoch)) if batches else self.n_items
        if not 0 <= position <= limit:
            what = "batches" if batches else "items"
            raise ValueError(f"position {position} is outside an epoch of {limit} {what}")
        self.epoch, self._start, self._start_batches = int(epoch), int(position), batches

    def order(self, epoch: int) -> np.ndarray:
        """The item indices of epoch ``epoch``, in the order they are served (all
        processes together)."""
        rng = np.random.default_rng([self.seed, epoch, 0x5EED]) if self.shuffle else None
        if self.lengths is not None:
            assert self.batch_size is not None  # __init__ refuses lengths without one
            batches = length_batches(self.lengths.tolist(), self.batch_size, rng)
            full = [b for b in batches if len(b) == self.batch_size]
            short = [b for b in batches if len(b) != self.batch_size]
            return np.array([i for b in full + short for i in b], dtype=np.int64)
        if rng is None:
            return np.arange(self.n_items)
        return rng.permutation(self.n_items)

    def _chunks(self, order: np.ndarray) -> list[np.ndarray]:
        """``order`` cut into batches (the short last one dropped with ``drop_last``)."""
        size = self.batch_size or 1
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        if self.drop_last and batches and len(batches[-1]) < size:
            batches.pop()
        return batches

    def batches(self, epoch: int) -> list[np.ndarray]:
        """This process's batches of epoch ``epoch`` (item indices), in order."""
        batches = self._chunks(self.order(epoch))
        if self.replicas == 1:
            return batches
        if not self.even:
            return batches[self.rank :: self.replicas]
        return deal_batches(batches, self.replicas)[self.rank]

    def _served(self, epoch: int) -> list[np.ndarray]:
        """:meth:`batches` less what :meth:`start_at` skips: one process's items after
        the skipped ones are batched afresh (the batch size may have changed)."""
        if self._start_batches:
            return self.batches(epoch)[self._start:]
        if self.replicas > 1:  # whole batches stay whole; the first one is cut
            skip, kept = self._start, []
            for batch in self.batches(epoch):
                kept.append(batch[skip:])
                skip = max(0, skip - len(batch))
            return [b for b in kept if len(b)]
        return self._chunks(self.order(epoch)[self._start:])

    def _next_pass(self) -> tuple[int, list[np.ndarray]]:
        """(epoch, its batches) of the pass that begins; the one after is the next epoch."""
        epoch = self.epoch
        served = self._served(epoch)
        self.epoch, self._start, self._start_batches = epoch + 1, 0, False
        return epoch, served

    def __iter__(self):
        epoch, served = self._next_pass()
        for batch in served:
            for index in batch:
                yield int(index), epoch

    def __len__(self) -> int:
        if self.replicas == 1 and not self.drop_last:
            return self.n_items
        return sum(len(b) for b in self.batches(self.epoch))


def deal_batches(batches: list[np.ndarray], replicas: int) -> list[list[np.ndarray]]:
    """Deal ``batches`` out to ``replicas`` processes, the same number to each: while the
    count is not a multiple of ``replicas`` the largest batch (the latest of equals) is
    split in two halves in place; if no batch has two items left, the last
    ``count % replicas`` batches are left out."""
    batches = list(batches)
    while len(batches) % replicas:
        sizes = [len(b) for b in batches]
        largest = max(range(len(batches)), key=lambda i: (sizes[i], i))
        if sizes[largest] < 2:
            batches = batches[: len(batches) - len(batches) % replicas]
            break
        half = (sizes[largest] + 1) // 2
        batch = batches[largest]
        batches[largest : largest + 1] = [batch[:half], batch[half:]]
    return [batches[rank::replicas] for rank in range(replicas)]


class EpochBatchSampler(Sampler):
    """The batches of an :class:`EpochSampler`, as lists of ``(index, epoch)`` keys: the
    ``batch_sampler`` of the loaders made here (under DDP a batch split to keep the
    processes in step is smaller than ``batch_size``, which a DataLoader's fixed
    ``batch_size`` cannot express)."""

    def __init__(self, sampler: EpochSampler):
        if not sampler.batch_size:
            raise ValueError("an EpochBatchSampler needs a sampler with a batch size")
        self.sampler = sampler
        self.batch_size = sampler.batch_size

    def __iter__(self):
        epoch, served = self.sampler._next_pass()
        for batch in served:
            yield [(int(index), epoch) for index in batch]

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler.batches(self.sampler.epoch))


class _Collate:
    """Picklable collate function (DataLoader workers may be spawned)."""

    def __init__(self, representation: str):
        self.representation = representation

    def __call__(self, items):
        return collate(items, self.representation)


def make_dataloader(
    prepared: PreparedData,
    split: str,
    batch_size: int,
    window: int | None = None,
    shuffle: bool = True,
    random_crop: bool | None = None,
    transpose: tuple[int, int] = (0, 0),
    pitch_histogram: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    length_buckets: bool = False,
) -> DataLoader:
    """A DataLoader of padded batch dicts (see module docstring).

    ``random_crop`` defaults to ``shuffle`` (random windows when training, the first
    window when evaluating). Its batches come from an :class:`EpochSampler` (the loader's
    ``batch_sampler.sampler``), which the trainer makes serve one process's part of each
    epoch under DDP; ``length_buckets`` makes its batches pieces of similar length (less
    padding for whole pieces).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    dataset = SequenceDataset(
        prepared, split, window=window,
        random_crop=shuffle if random_crop is None else random_crop,
        transpose=transpose, seed=seed, pitch_histogram=pitch_histogram,
    )
    # the loader's own generator only seeds workers; having one keeps the global RNG
    # (dropout...) untouched when an epoch's iterator is made
    generator = torch.Generator()
    generator.manual_seed(seed)
    lengths = None
    if length_buckets:
        lengths = dataset.item_lengths()
        if window is not None:
            lengths = [min(n, window) for n in lengths]
    sampler = EpochSampler(len(dataset), shuffle=shuffle, seed=seed, lengths=lengths,
                           batch_size=batch_size, drop_last=drop_last)
    return DataLoader(
        dataset,
        batch_sampler=EpochBatchSampler(sampler),
        collate_fn=_Collate(prepared.representation),
        num_workers=num_workers,
        generator=generator,
    )
