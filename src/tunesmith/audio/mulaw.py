"""μ-law companding and quantisation (ITU-T G.711; van den Oord et al. 2016, §2.2).

f(x) = sign(x) · ln(1 + μ|x|) / ln(1 + μ) maps [-1, 1] to [-1, 1], finer near 0; the
result is quantised to ``bits`` bits (256 levels for μ = 255, WaveNet's softmax). Works
on numpy arrays and torch tensors alike.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _mu(bits: int) -> int:
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}")
    return 2**bits - 1


def mu_law_encode(audio, bits: int = 8):
    """Float audio in [-1, 1] -> integer bins 0 … 2^bits − 1 (int64; same kind as input)."""
    mu = _mu(bits)
    if isinstance(audio, torch.Tensor):
        x = audio.clamp(-1.0, 1.0)
        y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)  # [-1, 1]
        return torch.round((y + 1) / 2 * mu).long()
    clipped = np.clip(np.asarray(audio, np.float64), -1.0, 1.0)
    companded = np.sign(clipped) * np.log1p(mu * np.abs(clipped)) / math.log1p(mu)
    return np.round((companded + 1) / 2 * mu).astype(np.int64)


def mu_law_decode(bins, bits: int = 8):
    """Integer bins -> float audio in [-1, 1] (float32), the inverse of the companding."""
    mu = _mu(bits)
    if isinstance(bins, torch.Tensor):
        y = bins.float() / mu * 2 - 1
        return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu
    companded = np.asarray(bins, np.float64) / mu * 2 - 1
    return (np.sign(companded) * np.expm1(np.abs(companded) * math.log1p(mu)) / mu
            ).astype(np.float32)
