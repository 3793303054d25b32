"""Piano-roll facts the roll families share, in torch: pitch-class histograms of frames.

A roll's frames are (B, T, K = tracks × pitches), track-major, pitch ``pitch_low + p`` at
column ``track * n_pitches + p`` (:mod:`tunesmith.representations.pianoroll`). The
note-level histogram of a Score is :func:`tunesmith.music.keys.pitch_class_histogram`.
"""

from __future__ import annotations

import torch


def pitch_class_histograms(samples: torch.Tensor, n_pitches: int, pitch_low: int,
                           mask: torch.Tensor | None = None) -> torch.Tensor:
    """Normalised pitch-class histograms of piano-rolls (N, T, tracks·P) -> (N, 12).

    Each sounding cell counts its value (1 for a binary roll: duration-weighted, like a
    Score's histogram); ``mask`` (N, T) leaves padded steps out. A roll without notes
    gets an all-zero histogram.
    """
    if mask is not None:
        samples = samples.float() * mask[..., None].float()
    n, steps, keys = samples.shape
    per_pitch = samples.float().reshape(n, steps, keys // n_pitches, n_pitches).sum((1, 2))
    classes = (torch.arange(n_pitches, device=samples.device) + pitch_low) % 12  # (P,)
    histogram = torch.zeros(n, 12, device=samples.device).index_add_(1, classes, per_pitch)
    total = histogram.sum(1, keepdim=True)
    return torch.where(total > 0, histogram / total.clamp_min(1e-12), histogram)
