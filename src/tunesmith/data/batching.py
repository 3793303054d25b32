"""Padding variable-length pieces into batches with masks.

Every batch is a dict (see :mod:`tunesmith.models.base`); ``mask[b, t]`` is True where
step t of sequence b is real data, False where it is padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def pad_sequences(
    sequences: Sequence[np.ndarray | torch.Tensor], pad_value: float = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack sequences of shape (T_i, ...) into (B, max T, ...) and a (B, max T) bool mask."""
    tensors = [torch.as_tensor(np.asarray(s)) for s in sequences]
    longest = max(t.shape[0] for t in tensors)
    padded = torch.full(
        (len(tensors), longest, *tensors[0].shape[1:]), pad_value, dtype=tensors[0].dtype
    )
    mask = torch.zeros(len(tensors), longest, dtype=torch.bool)
    for i, t in enumerate(tensors):
        padded[i, : t.shape[0]] = t
        mask[i, : t.shape[0]] = True
    return padded, mask


def collate_frames(pieces: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
    """Piano-roll pieces (T_i, K) -> ``{"frames": (B, T, K) float, "mask": (B, T) bool}``."""
    frames, mask = pad_sequences(pieces)
    return {"frames": frames.float(), "mask": mask}


def collate_tokens(pieces: Sequence[np.ndarray], key: str = "tokens") -> dict[str, torch.Tensor]:
    """Integer sequences (T_i,) -> ``{key: (B, T) long, "mask": (B, T) bool}`` (pad 0)."""
    tokens, mask = pad_sequences([np.asarray(p, dtype=np.int64) for p in pieces])
    return {key: tokens.long(), "mask": mask}


def length_batches(lengths: Sequence[int], batch_size: int, rng=None,
                   max_frames: int | None = None) -> list[list[int]]:
    """Indices of pieces of the given lengths grouped into batches of similar length
    (little padding).

    Without ``rng`` the batches follow the length order. With a numpy ``rng`` the order is
    shuffled: pieces are sorted by length with random tie-breaking inside windows of 8
    batches, and the batch order is shuffled. With ``max_frames`` a batch also closes
    before its padded size (pieces × longest piece) would pass ``max_frames``, so long
    pieces go in small batches (one alone if it is longer than ``max_frames``).
    """
    length_of = np.asarray(lengths)  # (pieces,)
    order = np.argsort(length_of, kind="stable")
    if rng is not None and len(order):
        window = batch_size * 8
        order = np.concatenate(
            [rng.permutation(order[i : i + window]) for i in range(0, len(order), window)]
        ).astype(np.int64)
        order = order[np.argsort(length_of[order], kind="stable")]
    batches: list[list[int]]
    if max_frames is None:
        batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    else:
        batches = []
        current: list[int] = []
        for index in order.tolist():  # ascending length: this piece is the batch's longest
            if current and (len(current) == batch_size or
                            (len(current) + 1) * int(length_of[index]) > max_frames):
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
    if rng is not None:
        rng.shuffle(batches)
    return batches
