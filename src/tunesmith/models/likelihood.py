"""Frame-level negative log-likelihood of piano-roll models: the polyphonic benchmark protocol.

Protocol of Boulanger-Lewandowski, Bengio & Vincent (ICML 2012), used by Bai, Kolter &
Koltun (2018) and the papers that quote them: for each piece x_1 … x_T, frame t is
predicted from frames < t; frames 2 … T are scored (frame 1 is not); a frame's NLL is
summed over its 88 keys, in nats; the split's figure is the sum over all scored frames
divided by their number, Σ(T_i − 1).

It lives with the models because both the trainer (:func:`frame_nll_loss` is the
``frame_nll`` training objective) and evaluation (:func:`score_split` of a checkpoint) use
it. Any piano-roll family is scored through :func:`sequence_log_probs`: its
``frame_log_prob(frames, mask)``, else its ``features`` + ``head``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tunesmith.data.batching import collate_frames, length_batches
from tunesmith.errors import ConfigError


def scored_mask(mask: torch.Tensor) -> torch.Tensor:
    """The frames the protocol scores: real frames (mask) except the first of each piece."""
    scored = mask.clone()
    scored[:, 0] = False
    return scored  # (B, T) bool


def frame_nll(log_probs: torch.Tensor, mask: torch.Tensor,
              first_frame: bool = False) -> tuple[torch.Tensor, int]:
    """Summed NLL of the scored frames and their number.

    ``log_probs`` (B, T): log p(frame t | frames < t) in nats, already summed over keys;
    ``mask`` (B, T) bool marks real frames (padding False). Frame 0 of each row is skipped
    unless ``first_frame`` (every real frame scored; rows must be whole pieces).
    Returns ``(total_nll, n_scored_frames)``; their ratio is the benchmark figure.
    """
    scored = mask.bool() if first_frame else scored_mask(mask.bool())
    total = -(log_probs * scored).sum()
    return total, int(scored.sum())


def sequence_log_probs(model, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p(frame t | frames < t) for every step (B, T); any piano-roll model.

    Uses the model's ``frame_log_prob(frames, mask)`` when it has one; otherwise its
    ``features(frames)`` (``h[:, t]`` has seen frames ≤ t, as in :mod:`models.heads`) and
    ``head.log_prob``, in which case frame 0 gets 0 (it is never scored).
    """
    if hasattr(model, "frame_log_prob"):
        return model.frame_log_prob(frames, mask)
    if hasattr(model, "features") and hasattr(model, "head"):
        h = model.features(frames)
        h = h[0] if isinstance(h, tuple) else h  # (B, T, H)
        log_probs = model.head.log_prob(h[:, :-1], frames[:, 1:])  # predicts frames 1..T-1
        return torch.cat([torch.zeros_like(log_probs[:, :1]), log_probs], dim=1)
    raise ConfigError(
        f"model {type(model).__name__} has neither frame_log_prob() nor features() + head; "
        "it cannot be scored frame by frame"
    )


def frame_nll_loss(model, batch: dict[str, torch.Tensor], *,
                   first_frame: bool = False) -> dict[str, torch.Tensor | int]:
    """The ``frame_nll`` training objective: the protocol's NLL per scored frame of a batch.

    Returns ``loss`` (nats per scored frame) and ``count``, the number of scored frames,
    by which the trainer weights the batch, so that an epoch's mean (train and valid) is
    the split's Σ NLL / Σ(T_i − 1), not a mean of batch means. ``first_frame``: score
    every real frame, the first of each row too (log p(x_1) from the empty start; rows
    must be whole pieces), Σ NLL / Σ T_i: the ``train_first_frame`` training loss.
    """
    frames, mask = batch["frames"].float(), batch["mask"]  # (B, T, K), (B, T)
    if getattr(model, "reads_onsets", False):
        frames = model.input_frames(batch)  # (B, T, 2K): keys ‖ onsets
    if first_frame and not hasattr(model, "frame_log_prob"):
        raise ConfigError(f"{type(model).__name__} does not score the first frame of a piece "
                          "(no frame_log_prob); train it without train_first_frame")
    total, count = frame_nll(sequence_log_probs(model, frames, mask), mask, first_frame)
    return {"loss": total / max(count, 1), "count": count}


def model_pieces(model, pieces: Sequence[np.ndarray],
                 onsets: Sequence[np.ndarray] | None = None) -> Sequence[np.ndarray]:
    """The pieces as ``model`` reads them: frames (T, K), or, for a model whose head
    models onsets (``reads_onsets``), frames ‖ onsets (T, 2K). Its NLL then covers
    where each note starts too, so it is ≥ the onset-less figure of the same music."""
    if not getattr(model, "reads_onsets", False):
        return pieces
    if onsets is None:
        raise ConfigError(f"{type(model).__name__} with an onset head scores frames and "
                          "onsets: prepare the data with onset=true")
    return [np.concatenate([np.asarray(p), np.asarray(o)], axis=1)
            for p, o in zip(pieces, onsets, strict=True)]


#: most padded frames (pieces × longest) in one scoring batch: a piece of 5,000+ frames is
#: scored alone, whole, so that e.g. a Transformer's (T, T) attention of one piece is the
#: largest tensor (about 0.4 GB per head-layer tensor at 5,000 frames, 4 heads)
SCORE_MAX_FRAMES = 8192


@torch.no_grad()
def score_split(model, pieces: Sequence[np.ndarray], batch_size: int = 32,
                max_frames: int | None = SCORE_MAX_FRAMES) -> float:
    """Mean NLL (nats) per scored frame of a split, in eval mode, padded batches.

    Every piece is scored whole (frames 2…T, each given all frames before it). A model
    that reads onsets takes the pieces of :func:`model_pieces` (T, 2K). Batches
    hold at most ``batch_size`` pieces and ``max_frames`` padded frames (None: no limit),
    so long pieces are scored alone. The sums are accumulated in float64, batch by batch,
    so the figure does not depend on how the pieces are batched beyond float32 rounding
    inside a batch.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        for batch_ids in length_batches([len(p) for p in pieces], batch_size,
                                        max_frames=max_frames):
            batch = collate_frames([pieces[i] for i in batch_ids])
            frames, mask = batch["frames"].to(device), batch["mask"].to(device)
            nll, n = frame_nll(sequence_log_probs(model, frames, mask), mask)
            total += float(nll)
            count += n
    finally:
        model.train(was_training)
    return total / max(count, 1)
