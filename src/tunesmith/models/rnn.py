"""Recurrent piano-roll model: an LSTM (or GRU) over frames with a swappable output head.

The LSTM/GRU baselines of Bai, Kolter & Koltun (2018), "An empirical evaluation of generic
convolutional and recurrent networks for sequence modeling", use independent sigmoids per
key (``head="bernoulli"``); with ``head="nade"`` the same backbone becomes an LSTM-NADE in
the manner of Boulanger-Lewandowski et al. (2012)'s RNN-NADE. Scoring, the loss and the
sampling loop are those of every next-frame model (:mod:`tunesmith.models.next_frame`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from tunesmith.config import UNIT_OPEN, Range, at_least
from tunesmith.models.heads import make_head
from tunesmith.models.next_frame import NextFrameConfig, NextFrameModel, head_options


@dataclasses.dataclass
class RNNConfig(NextFrameConfig):
    cell: str = "lstm"  # "lstm" | "gru"
    hidden: int = 220  # units per layer (220, 1 layer ≈ 290K parameters with 88 keys)
    layers: int = 1  # stacked recurrent layers
    dropout: float = 0.0  # dropout on inputs, between layers and on the features

    choices: ClassVar[dict[str, tuple]] = {"cell": ("lstm", "gru")}
    ranges: ClassVar[dict[str, Range]] = {"hidden": at_least(1), "layers": at_least(1),
                                          "dropout": UNIT_OPEN}


class FrameRNN(NextFrameModel):
    """LSTM/GRU over piano-roll frames; ``features`` -> head distribution of the next frame."""

    family = "lstm"
    config_class = RNNConfig
    config: RNNConfig

    def __init__(self, config: RNNConfig):
        super().__init__(config)
        rnn_class = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = rnn_class(
            config.keys,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = make_head(config.head, config.hidden, config.keys, **head_options(config))

    def features(self, frames: torch.Tensor, state=None):
        """Features h (B, T, H) where h[:, t] has seen frames ≤ t; returns (h, state)."""
        h, state = self.rnn(self.dropout(frames), state)
        return self.dropout(h), state
