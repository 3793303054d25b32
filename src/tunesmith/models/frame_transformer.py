"""Transformer over piano-roll frames with a swappable output head.

The decoder-only Transformer of the event models, run over whole frames instead of tokens:
frame t-1 (an all-zero start frame at t = 0) is projected to the model width, the blocks
apply causal self-attention with the learned *relative* position logits of the Music
Transformer (Huang et al., ICLR 2019; skewed, so memory stays O(T²) per head) and the
features at step t go to the output head, which gives the distribution of frame t. With
``head="bernoulli"`` the keys are independent sigmoids; with ``head="nade"`` each key is
conditioned on the keys below it in the same frame (the NADE of Boulanger-Lewandowski et
al. 2012), so a frame's likelihood is exact.

Relative distances beyond ``context - 1`` share one learned embedding (clipping, as Shaw
et al. 2018), so training, scoring and sampling take pieces of any length; attention always
covers the whole piece. Sampling keeps a key/value cache: one frame per step costs
O(length) attention, not a re-run of the prefix.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.config import UNIT_OPEN, Range
from tunesmith.errors import ConfigError
from tunesmith.models.heads import make_head
from tunesmith.models.music_transformer import relative_attention_blocks
from tunesmith.models.next_frame import NextFrameConfig, NextFrameModel, head_options
from tunesmith.models.transformer_blocks import KVCache


@dataclasses.dataclass
class FrameTransformerConfig(NextFrameConfig):
    d_model: int = 128  # width of the residual stream
    n_layers: int = 3  # Transformer blocks
    n_heads: int = 4  # attention heads (d_model must divide by it)
    d_ff: int = 512  # hidden width of each block's feed-forward network
    context: int = 256  # distances with their own relative embedding (longer ones share one)
    relative_per_head: bool = True  # one E_r per head (False: one shared by all heads)
    dropout: float = 0.1  # on the input projection, attention weights and residual branches
    input_dropout: float = 0.0  # dropout on the context frames the network reads (training)

    ranges: ClassVar[dict[str, Range]] = {"dropout": UNIT_OPEN, "input_dropout": UNIT_OPEN}

    def check(self) -> None:
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model {self.d_model} must divide by n_heads {self.n_heads}")
        if self.context < 2 or self.n_layers < 1:
            raise ConfigError("context must be >= 2 and n_layers >= 1")


class FrameTransformer(NextFrameModel):
    """Causal relative-attention Transformer over frames; ``features`` -> head.

    Scoring, the loss and the sampling loop are :class:`NextFrameModel`'s; the state carried
    between sampling steps is a :class:`KVCache`.
    """

    family = "frame-transformer"
    config_class = FrameTransformerConfig
    config: FrameTransformerConfig

    def __init__(self, config: FrameTransformerConfig):
        super().__init__(config)
        c = config
        self.project = nn.Linear(c.keys, c.d_model)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = relative_attention_blocks(c)
        self.norm = nn.LayerNorm(c.d_model)
        self.head = make_head(c.head, c.d_model, c.keys, **head_options(c))

    def features(self, frames: torch.Tensor, state: KVCache | None = None):
        """Features h (B, T, D) where h[:, t] has seen frames ≤ t (and any cached before);
        returns (h, cache)."""
        if self.training and self.config.input_dropout:
            # context-note dropout, as the TCN's: the frames to predict are untouched
            frames = F.dropout(frames, self.config.input_dropout, training=True)
        h = self.dropout(self.project(frames))  # (B, T, D)
        for layer, block in enumerate(self.blocks):
            h = block(h, state, layer)
        if state is not None:
            state.advance(frames.shape[1])
        return self.norm(h), state

    def initial_state(self, n: int, steps: int) -> KVCache:
        """An empty key/value cache for ``n`` pieces of up to ``steps`` frames."""
        c = self.config
        parameter = next(self.parameters())
        return KVCache(c.n_layers, n, c.n_heads, steps + 1, c.d_model // c.n_heads,
                       parameter.device, parameter.dtype)
