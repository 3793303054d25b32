"""Recurrent piano-roll model: an LSTM (or GRU) over frames with a swappable output head.

The LSTM/GRU baselines of Bai, Kolter & Koltun (2018), "An empirical evaluation of generic
convolutional and recurrent networks for sequence modeling", use independent sigmoids per
key (``head="bernoulli"``); with ``head="nade"`` the same backbone becomes an LSTM-NADE in
the manner of Boulanger-Lewandowski et al. (2012)'s RNN-NADE.

The input at step t is frame t-1 (a learned-free all-zero start frame at t = 0), so the
output at step t predicts frame t from frames < t and every frame, the first included,
has a distribution; the benchmark protocol simply leaves frame 0 unscored.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from tunesmith.config import UNIT_OPEN, Range, at_least
from tunesmith.errors import ConfigError
from tunesmith.models.base import GenerativeModel, ModelConfig
from tunesmith.models.heads import make_head
from tunesmith.models.sampling import SamplingControls, limit_sustain


@dataclasses.dataclass
class RNNConfig(ModelConfig):
    keys: int = 88  # tracks × pitches of a frame (set from the data)
    pitches_per_track: int = 0  # keys of one track, for note limits per track (0 = all keys)
    cell: str = "lstm"  # "lstm" | "gru"
    hidden: int = 220  # units per layer (220, 1 layer ≈ 290K parameters with 88 keys)
    layers: int = 1  # stacked recurrent layers
    dropout: float = 0.0  # dropout on inputs, between layers and on the features
    head: str = "bernoulli"  # output head: "bernoulli" (independent sigmoids) | "nade" |
    # "voices" (one categorical per track over its pitches + rest)
    nade_hidden: int = 150  # hidden units of the NADE or voices head
    nade_low: int = 0  # NADE head: autoregression over keys [nade_low, nade_high) only;
    nade_high: int = 0  # keys outside get independent sigmoids (0 = all keys)
    nade_dropout: float = 0.0  # NADE head: dropout on its hidden units (training only)
    nade_order_agnostic: bool = False  # NADE head: train on a random key ordering per frame
    nade_orderings: int = 1  # NADE head: score with the mixture of this many orderings

    choices: ClassVar[dict[str, tuple]] = {"cell": ("lstm", "gru")}
    ranges: ClassVar[dict[str, Range]] = {"hidden": at_least(1), "layers": at_least(1),
                                          "dropout": UNIT_OPEN}


def head_options(config) -> dict:
    """The head settings of an RNN or frame-Transformer config, for :func:`make_head`."""
    per_track = config.pitches_per_track or config.keys
    if config.keys % per_track:
        raise ConfigError(f"{config.keys} keys do not split into tracks of {per_track} pitches")
    return {"n_tracks": config.keys // per_track, "nade_hidden": config.nade_hidden,
            "nade_low": config.nade_low, "nade_high": config.nade_high,
            "nade_dropout": config.nade_dropout, "nade_order_agnostic": config.nade_order_agnostic,
            "nade_orderings": config.nade_orderings}


class FrameRNN(GenerativeModel):
    """LSTM/GRU over piano-roll frames; ``features`` -> head distribution of the next frame."""

    family = "lstm"
    representation = "pianoroll"
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

    @classmethod
    def config_for_data(cls, config, info):
        # note limits apply per track: a track is n_pitches keys of the frame
        return config.updated(keys=info.keys, pitches_per_track=info.n_pitches)

    # ---- training and scoring -------------------------------------------------------
    def features(self, frames: torch.Tensor, state=None):
        """Features h (B, T, H) where h[:, t] has seen frames ≤ t; returns (h, state)."""
        h, state = self.rnn(self.dropout(frames), state)
        return self.dropout(h), state

    def frame_log_prob(self, frames: torch.Tensor, mask: torch.Tensor | None = None):
        """log p(frame t | frames < t) in nats for every step: (B, T, K) -> (B, T)."""
        previous = torch.cat([torch.zeros_like(frames[:, :1]), frames[:, :-1]], dim=1)
        h, _ = self.features(previous)  # h[:, t] has seen frames < t
        return self.head.log_prob(h, frames)

    def loss(self, batch):
        mask = batch["mask"].float()  # (B, T)
        log_prob = self.frame_log_prob(batch["frames"], batch["mask"])  # (B, T)
        nll = -(log_prob * mask).sum() / mask.sum().clamp(min=1)
        return {"loss": nll, "nll_per_frame": nll.detach()}

    # ---- sampling -------------------------------------------------------------------
    def initial_state(self, n: int, steps: int):
        """What :meth:`features` carries between sampling steps before the first (RNN: None)."""
        return None

    @torch.no_grad()
    def generate(self, n: int, steps: int, controls: SamplingControls | None = None,
                 prime: torch.Tensor | None = None, condition: dict | None = None
                 ) -> torch.Tensor:
        controls = controls or SamplingControls()
        generator = controls.generator()
        device = next(self.parameters()).device
        start = torch.zeros(n, 1, self.config.keys, device=device)
        frames = start[:, :0]
        if prime is not None and prime.shape[1] > 0:
            frames = prime.to(device).float()[:, :steps]
        state, last = self.initial_state(n, steps), start
        if frames.shape[1]:  # carried state: read start + all but the last primed frame
            _, state = self.features(torch.cat([start, frames[:, :-1]], dim=1), state)
            last = frames[:, -1:]
        group = self.config.pitches_per_track or None
        while frames.shape[1] < steps:
            h, state = self.features(last, state)  # (n, 1, H)
            frame = self.head.draw(h[:, -1], controls, generator, group)  # (n, K)
            frame = limit_sustain(frames, frame, controls.max_sustain_steps)
            last = frame.unsqueeze(1)
            frames = torch.cat([frames, last], dim=1)
        return frames
