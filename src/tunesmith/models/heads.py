"""Output heads: from a backbone's features to a distribution over the next frame.

A piano-roll backbone (TCN/WaveNet, LSTM, Transformer) produces features ``h`` (B, T, H)
where ``h[:, t]`` has seen frames ``< t+1``; a head turns them into a distribution over
the binary frame ``x[:, t+1]`` in {0,1}^K. Heads are interchangeable, so every backbone
can trade independent sigmoids for a head that models the notes of a frame jointly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.errors import ConfigError


class FrameHead(nn.Module):
    """Interface: ``log_prob(h, x)`` for training and scoring, ``sample(h, ...)`` for generation."""

    def log_prob(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Log-probability in nats of frames x (B, T, K) given features h (B, T, H) -> (B, T)."""
        raise NotImplementedError

    def sample(self, h: torch.Tensor, controls, generator=None, group_size=None) -> torch.Tensor:
        """Draw a frame for each feature vector h (B, H) -> (B, K) float 0/1."""
        raise NotImplementedError


class BernoulliHead(FrameHead):
    """Independent sigmoid per key: p(x) = Π_k σ(w_kᵀh)^x_k (1-σ(w_kᵀh))^(1-x_k)."""

    def __init__(self, hidden: int, keys: int):
        super().__init__()
        self.proj = nn.Linear(hidden, keys)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h)  # (..., K)

    def log_prob(self, h, x):
        logits = self.logits(h)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)

    def sample(self, h, controls, generator=None, group_size=None):
        from tunesmith.generation.sampling import sample_bernoulli

        return sample_bernoulli(self.logits(h), controls, generator, group_size)


#: head name -> class taking (hidden, keys). Backbones build heads through make_head().
HEADS: dict[str, type[FrameHead]] = {"bernoulli": BernoulliHead}


def make_head(name: str, hidden: int, keys: int, **kwargs) -> FrameHead:
    try:
        cls = HEADS[name]
    except KeyError:
        raise ConfigError(f"unknown output head {name!r}; available: {', '.join(HEADS)}") from None
    return cls(hidden, keys, **kwargs)
