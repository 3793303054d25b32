"""What every model that predicts a piano-roll frame from the frames before it shares.

A backbone (the LSTM/GRU of :mod:`~tunesmith.models.rnn`, the relative-attention
Transformer of :mod:`~tunesmith.models.frame_transformer`) turns the frames before step t
into features h[:, t]; an output head (:mod:`~tunesmith.models.heads`: independent
sigmoids, NADE, voices) gives the distribution of frame t from them. This module holds the
head's options and what follows from that split: the exact log-likelihood of every frame,
the training loss and the sampling loop (one frame a step, the backbone's state carried
from step to step).

The input at step t is frame t-1 (an all-zero start frame at t = 0), so every frame, the
first included, has a distribution; the benchmark protocol simply leaves frame 0 unscored.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from tunesmith.errors import ConfigError
from tunesmith.models.base import GenerativeModel, ModelConfig
from tunesmith.models.heads import FrameHead
from tunesmith.models.sampling import SamplingControls, limit_sustain


@dataclasses.dataclass
class NextFrameConfig(ModelConfig):
    """The frame and output-head options of every next-frame backbone's config."""

    keys: int = 88  # tracks × pitches of a frame (set from the data)
    pitches_per_track: int = 0  # keys of one track, for note limits per track (0 = all keys)
    head: str = "bernoulli"  # output head: "bernoulli" (independent sigmoids) | "nade" |
    # "voices" (one categorical per track over its pitches + rest)
    nade_hidden: int = 150  # hidden units of the NADE or voices head
    nade_low: int = 0  # NADE head: autoregression over keys [nade_low, nade_high) only;
    nade_high: int = 0  # keys outside get independent sigmoids (0 = all keys)
    nade_dropout: float = 0.0  # NADE head: dropout on its hidden units (training only)
    nade_order_agnostic: bool = False  # NADE head: train on a random key ordering per frame
    nade_orderings: int = 1  # NADE head: score with the mixture of this many orderings


def head_options(config: NextFrameConfig) -> dict[str, Any]:
    """The head settings of a next-frame config, for :func:`~tunesmith.models.heads.make_head`."""
    per_track = config.pitches_per_track or config.keys
    if config.keys % per_track:
        raise ConfigError(f"{config.keys} keys do not split into tracks of {per_track} pitches")
    return {"n_tracks": config.keys // per_track, "nade_hidden": config.nade_hidden,
            "nade_low": config.nade_low, "nade_high": config.nade_high,
            "nade_dropout": config.nade_dropout, "nade_order_agnostic": config.nade_order_agnostic,
            "nade_orderings": config.nade_orderings}


class NextFrameModel(GenerativeModel):
    """Base of the next-frame families: a subclass builds ``self.head`` and gives
    :meth:`features` (and :meth:`initial_state` when it carries a state in sampling)."""

    representation = "pianoroll"
    config: NextFrameConfig
    head: FrameHead

    @classmethod
    def config_for_data(cls, config, info):
        # note limits apply per track: a track is n_pitches keys of the frame
        return config.updated(keys=info.keys, pitches_per_track=info.n_pitches)

    def features(self, frames: torch.Tensor, state=None) -> tuple[torch.Tensor, Any]:
        """Features h (B, T, H) where h[:, t] has seen frames ≤ t (and ``state``'s past);
        returns (h, the state after them)."""
        raise NotImplementedError

    def initial_state(self, n: int, steps: int) -> Any:
        """What :meth:`features` carries between sampling steps before the first (None:
        a recurrent network starts from zeros)."""
        return None

    # ---- training and scoring -------------------------------------------------------
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
