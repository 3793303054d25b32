"""Tiny but real model families for the trainer, checkpoint and generation tests.

They keep the :class:`~tunesmith.models.base.GenerativeModel` contract with a few
hundred parameters, so the generic machinery is tested without any real family.
``register_tiny_families(monkeypatch)`` adds them to the registry for one test.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from tunesmith.data.batching import collate_frames
from tunesmith.errors import ConfigError
from tunesmith.models.base import GenerativeModel, ModelConfig
from tunesmith.models.heads import BernoulliHead
from tunesmith.representations import pianoroll
from tunesmith.representations.info import DataInfo


@dataclass
class TinyFrameConfig(ModelConfig):
    keys: int = 8  # tracks × pitches of a frame
    hidden: int = 16
    dropout: float = 0.1  # exercises the RNG in resume tests
    group_size: int = 0  # pitches per track (for max_notes_per_step); 0 = keys


class TinyFrameModel(GenerativeModel):
    """p(x_t | x_{t-1}): one hidden layer over the previous frame and a Bernoulli head."""

    family = "tiny-frames"
    representation = "pianoroll"
    config_class = TinyFrameConfig

    def __init__(self, config: TinyFrameConfig):
        super().__init__(config)
        self.start = nn.Parameter(torch.zeros(config.keys))
        self.inp = nn.Linear(config.keys, config.hidden)
        self.drop = nn.Dropout(config.dropout)
        self.head = BernoulliHead(config.hidden, config.keys)

    @classmethod
    def config_for_data(cls, config, info):
        return config.updated(keys=info.keys, group_size=info.n_pitches)

    def features(self, previous: torch.Tensor) -> torch.Tensor:
        return self.drop(torch.tanh(self.inp(previous)))  # (..., H)

    def loss(self, batch):
        frames, mask = batch["frames"], batch["mask"].float()  # (B, T, K), (B, T)
        start = self.start.expand(frames.shape[0], 1, -1)
        previous = torch.cat([start, frames[:, :-1]], dim=1)  # (B, T, K)
        log_prob = self.head.log_prob(self.features(previous), frames)  # (B, T)
        loss = -(log_prob * mask).sum() / mask.sum().clamp(min=1)
        return {"loss": loss, "notes_per_step": frames.sum(-1).mean()}

    @torch.no_grad()
    def generate(self, n, steps, controls=None, prime=None, condition=None):
        from tunesmith.models.sampling import SamplingControls

        controls = controls or SamplingControls()
        generator = controls.generator()
        out = torch.zeros(n, steps, self.config.keys)
        begin = 0
        if prime is not None:
            begin = min(prime.shape[1], steps)
            out[:, :begin] = prime[:, :begin].float()
        previous = out[:, begin - 1] if begin else self.start.expand(n, -1)
        for t in range(begin, steps):
            frame = self.head.sample(self.features(previous), controls, generator,
                                     self.config.group_size or None)  # (n, K)
            out[:, t] = frame
            previous = frame
        return out


@dataclass
class TinyManualConfig(ModelConfig):
    keys: int = 8
    hidden: int = 8


class TinyManualModel(TinyFrameModel):
    """Two optimisers stepped by the model itself, as a GAN does (manual optimisation)."""

    family = "tiny-manual"
    config_class = TinyManualConfig
    automatic_optimization = False

    def __init__(self, config: TinyManualConfig):
        super().__init__(TinyFrameConfig(keys=config.keys, hidden=config.hidden, dropout=0.0))
        self.config = config

    @classmethod
    def config_for_data(cls, config, info):
        return config.updated(keys=info.keys)

    def configure_optimizers(self, lr, weight_decay=0.0):
        head = list(self.head.parameters())
        body = [self.start, *self.inp.parameters()]
        return [torch.optim.Adam(body, lr=lr), torch.optim.SGD(head, lr=lr, momentum=0.9)]

    def manual_training_step(self, batch, optimizers, manual_backward):
        logs = {}
        for i, optimizer in enumerate(optimizers):
            optimizer.zero_grad()
            loss = self.loss(batch)["loss"]
            manual_backward(loss)
            optimizer.step()
            logs[f"loss_{i}"] = loss.detach()
        logs["loss"] = loss.detach()
        return logs


TINY_FAMILIES = {
    "tiny-frames": ("tiny_model:TinyFrameModel", {}),
    "tiny-manual": ("tiny_model:TinyManualModel", {}),
}


def register_tiny_families(monkeypatch) -> None:
    from tunesmith.models import registry

    for name, entry in TINY_FAMILIES.items():
        monkeypatch.setitem(registry.FAMILIES, name, entry)


def tiny_pieces(n: int, keys: int = 8, steps: int = 12, seed: int = 0) -> list[np.ndarray]:
    """Learnable piano-roll pieces (T, K): rising patterns with a random start and length."""
    rng = np.random.default_rng(seed)
    pieces = []
    for _ in range(n):
        length = int(rng.integers(steps // 2, steps + 1))
        start = int(rng.integers(0, keys))
        piece = np.zeros((length, keys), np.uint8)
        for t in range(length):
            piece[t, (start + t) % keys] = 1
        pieces.append(piece)
    return pieces


def tiny_loader(pieces, batch_size: int = 2, shuffle: bool = False):
    """A plain DataLoader over pieces (no tunesmith sampler: cannot resume mid-epoch)."""
    return torch.utils.data.DataLoader(pieces, batch_size=batch_size, shuffle=shuffle,
                                       collate_fn=collate_frames)


def tiny_prepared(n_train: int = 6, n_valid: int = 2, steps: int = 12, seed: int = 0):
    """Tiny pieces as prepared piano-roll data (``TINY_INFO``), for the real datasets and
    loaders of :mod:`tunesmith.data.datasets`; ids ``train0...``, ``valid0...``."""
    from pathlib import Path

    from tunesmith.data.prepare import PreparedData

    pieces = tiny_pieces(n_train, steps=steps, seed=seed)
    pieces += tiny_pieces(n_valid, steps=steps, seed=seed + 1)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64)
    splits = ["train"] * n_train + ["valid"] * n_valid
    ids = [f"{split}{i}" for split, n in (("train", n_train), ("valid", n_valid))
           for i in range(n)]
    return PreparedData(
        corpus="tiny", representation="pianoroll", repr_config=dict(TINY_INFO.repr_config),
        info=TINY_INFO, skipped=[], cache_dir=Path("."), piece_ids=ids,
        piece_splits=splits, piece_meta=[{} for _ in pieces],
        data=np.concatenate(pieces), offsets=offsets,
    )


def roll_info(track_names=("Upper", "Lower"), pitch_low: int = 60, pitch_high: int = 63,
              resolution: int = 2, programs=None) -> DataInfo:
    """The DataInfo of piano-rolls prepared with these separate tracks (merge_tracks=False)."""
    cfg = pianoroll.PianorollConfig(
        resolution=resolution, pitch_low=pitch_low, pitch_high=pitch_high,
        track_names=list(track_names), programs=list(programs or [0] * len(track_names)),
        is_drum=[False] * len(track_names))
    info = pianoroll.info(cfg)
    return dataclasses.replace(info, repr_config={**info.repr_config, "merge_tracks": False})


#: data info of the tiny piano-roll data: 2 tracks × 4 pitches
TINY_INFO = roll_info(programs=[0, 33])

#: TINY_INFO as a checkpoint written before DataInfo holds it (``data_info`` of config.json)
TINY_INFO_LEGACY = {
    "representation": "pianoroll",
    "repr_config": {"resolution": 2, "pitch_low": 60, "pitch_high": 63,
                    "track_names": ["Upper", "Lower"], "programs": [0, 33],
                    "is_drum": [False, False], "merge_tracks": False},
    "n_tracks": 2,
    "n_pitches": 4,
    "keys": 8,
    "track_names": ["Upper", "Lower"],
    "programs": [0, 33],
    "steps_per_quarter": 2,
    "pitch_low": 60,
    "pitch_high": 63,
}


def save_tiny_checkpoint(folder, **metadata):
    """A seeded tiny-frames model saved as a checkpoint in ``folder`` (its path returned)."""
    from tunesmith.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = TinyFrameModel(TinyFrameModel.config_for_data(TinyFrameConfig(), TINY_INFO))
    return save_checkpoint(folder, model, model_name="tiny-frames", data_info=TINY_INFO,
                           **metadata)


def assert_input_dropout_acts_in_training_only(build, frames: torch.Tensor) -> None:
    """``build(input_dropout=p)`` -> a piano-roll model without other dropout: p changes
    nothing in eval mode, changes the figures in training, and 1.0 is refused."""
    plain, dropped = build(input_dropout=0.0), build(input_dropout=0.5)
    dropped.load_state_dict(plain.state_dict())  # same weights: only the option differs
    plain.eval()
    dropped.eval()
    torch.testing.assert_close(dropped.frame_log_prob(frames), plain.frame_log_prob(frames))
    plain.train()
    dropped.train()
    torch.manual_seed(3)
    assert not torch.allclose(dropped.frame_log_prob(frames), plain.frame_log_prob(frames))
    with pytest.raises(ConfigError, match="input_dropout"):
        build(input_dropout=1.0)
