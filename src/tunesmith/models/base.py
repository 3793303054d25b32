"""The contract every model family keeps.

A family is one file under ``models/``: a ``<Family>Config`` dataclass (JSON-serialisable), a
:class:`GenerativeModel` subclass, its loss and its sampler. The generic trainer, the
checkpoint code, the CLI, the tests and the benchmarks only ever talk to this
interface, never to a family by name.

Batches are dicts of tensors, by representation:

* ``pianoroll``: ``frames`` (B, T, K) float 0/1 with K = tracks × pitches (track-major),
  ``mask`` (B, T) bool, and optionally ``pitch_histogram`` (B, 12), ``corpus_id`` (B,),
  ``local_cond`` (B, T, C);
* ``melody``: ``events`` (B, T) long, ``mask`` (B, T) bool;
* ``events``: ``tokens`` (B, T) long, ``mask`` (B, T) bool.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from tunesmith.config import DictConfig
from tunesmith.errors import ConfigError
from tunesmith.models.heads import FrameHead
from tunesmith.models.sampling import SamplingControls
from tunesmith.representations.info import DataInfo
from tunesmith.representations.output_mask import OutputMask


@dataclasses.dataclass
class ModelConfig(DictConfig):
    """Base of every family's ``<Family>Config``: JSON round trip with a clear error on typos."""

    config_name: ClassVar[str] = "model"
    #: option -> what a checkpoint saved before the option existed meant (the old
    #: behaviour), for a saved config that lacks it; a new default applies to new models only
    saved_defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def from_saved(cls, data: dict[str, Any]):
        """A config read from a checkpoint's ``config.json``: options it predates take
        their :attr:`saved_defaults`, so an old checkpoint rebuilds the model it saved."""
        return cls.from_dict({**cls.saved_defaults, **data})

    def updated(self, **changes):
        """A copy with some fields changed (names checked)."""
        return type(self).from_dict({**self.to_dict(), **changes})


class GenerativeModel(nn.Module):
    """Base class of every family.

    Subclasses set the class attributes and implement :meth:`loss` and :meth:`generate`.
    A family that trains with several optimisers (a GAN) sets
    ``automatic_optimization = False`` and implements :meth:`manual_training_step`.
    """

    family: ClassVar[str] = ""  # registry name, e.g. "wavenet"
    representation: ClassVar[str] = ""  # "pianoroll" | "melody" | "events" | "audio"
    data_help: ClassVar[str] = ""  # the data it takes, for `tunesmith models` ("": its repr.)
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    config: ModelConfig
    automatic_optimization: ClassVar[bool] = True

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        #: what the training data holds; the sampler draws nothing else (None: everything)
        self.output_mask: OutputMask | None = None

    # ---- what the sampler may emit ---------------------------------------------------
    def set_output_mask(self, mask: OutputMask | None) -> None:
        """Keep ``mask`` (stored in checkpoints beside the weights) and hand its keys to
        every output head; None lets the sampler emit everything."""
        if mask is not None and mask.representation != type(self).representation:
            raise ConfigError(f"a {mask.representation} output mask does not fit a "
                              f"{type(self).representation} model")
        self.output_mask = mask
        allowed = self.allowed_outputs()
        for module in self.modules():
            if isinstance(module, FrameHead):
                module.allowed_keys = allowed

    def allowed_outputs(self) -> torch.Tensor | None:
        """(V,) or (K,) bool on the model's device: the token ids, events or frame keys
        the sampler may draw; None when the model has no mask."""
        if self.output_mask is None:
            return None
        parameter = next(self.parameters(), None)
        device = parameter.device if parameter is not None else "cpu"
        return torch.as_tensor(self.output_mask.array(), device=device)

    # ---- data-dependent sizes ------------------------------------------------------
    @classmethod
    def config_for_data(cls, config: ModelConfig, info: DataInfo) -> ModelConfig:
        """Fill the sizes the data decides (vocabulary, tracks × pitches...), or raise
        ConfigError (one line) for data the family cannot model.

        ``info`` is :attr:`tunesmith.data.PreparedData.info`, read through its
        attributes. The default changes nothing.
        """
        return config

    @classmethod
    def config_for_audio(cls, config: ModelConfig, data: Any) -> ModelConfig:
        """Audio families: fill the sizes the prepared audio decides (its sample rate...)
        from ``data``, a :class:`tunesmith.data.audio.AudioData`. Others cannot train on
        audio."""
        raise ConfigError(f"{cls.family} is not an audio model")

    # ---- training -------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Return a dict with the scalar ``"loss"`` to minimise, plus anything to log."""
        raise NotImplementedError

    def configure_optimizers(self, lr: float, weight_decay: float = 0.0):
        """The optimiser(s). One Adam over all parameters unless the family says more."""
        return torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)

    def manual_training_step(self, batch: dict[str, torch.Tensor], optimizers, manual_backward):
        """One step for families with ``automatic_optimization = False``; returns logs."""
        raise NotImplementedError

    # ---- sampling -------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        n: int,
        steps: int,
        controls: SamplingControls | None = None,
        prime: torch.Tensor | None = None,
        condition: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Sample ``n`` sequences of ``steps`` steps (or tokens).

        ``controls`` is a :class:`tunesmith.models.sampling.SamplingControls`; ``prime`` is a
        batch-shaped beginning (its steps are kept unchanged at the start of the
        output); ``condition`` holds conditioning inputs by batch key. Returns the
        representation's tensor: (n, steps, K) 0/1 for piano-rolls, (n, steps) long
        for melody events and tokens.
        """
        raise NotImplementedError

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
