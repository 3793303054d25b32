"""Sampling controls and filters, as pure functions over logits.

Categorical outputs (melody events, tokens): temperature, top-k (Fan et al. 2018),
top-p / nucleus (Holtzman et al. 2020). Multi-hot outputs (piano-roll frames):
independent Bernoulli draws or a threshold, with an optional cap on notes per step
and track.

Every sampler also takes ``allowed``, the outputs the training data ever holds (an
:class:`~tunesmith.representations.output_mask.OutputMask` as a (V,) / (K,) bool tensor):
categories outside it get logit -inf and keys outside it probability 0, before
temperature, top-k and top-p, so they are never drawn.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from tunesmith.errors import ConfigError


@dataclass
class SamplingControls:
    """What a user can turn when sampling. Every sampler of every family reads these."""

    temperature: float = 1.0  # logits are divided by this; <1 sharper, >1 flatter
    top_k: int = 0  # keep the k most likely categories (0 = all)
    top_p: float = 1.0  # keep the smallest set with this much probability (1 = all)
    threshold: float | None = None  # multi-hot: note on where p > threshold (None = Bernoulli)
    max_notes_per_step: int = 0  # multi-hot: at most this many notes per track and step (0 = any)
    max_sustain_steps: int = 0  # multi-hot: release a note held this many steps (0 = never)
    seed: int | None = None  # random seed for reproducible samples

    def __post_init__(self):
        if not 0 < self.temperature < math.inf:  # NaN and infinity fail too
            raise ConfigError(f"temperature must be > 0 and finite, got {self.temperature}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.threshold is not None and not 0 <= self.threshold < 1:
            raise ConfigError(f"threshold must be in [0, 1), got {self.threshold}")
        if self.max_notes_per_step < 0 or self.max_sustain_steps < 0:
            raise ConfigError("max_notes_per_step and max_sustain_steps must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    def generator(self, device: torch.device | str = "cpu") -> torch.Generator | None:
        """A torch Generator seeded with ``seed``, or None for the global RNG."""
        if self.seed is None:
            return None
        return torch.Generator(device=device).manual_seed(int(self.seed))


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set all but the k largest logits (last axis) to -inf. k = 0 keeps all."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the most likely categories whose probabilities sum to >= p."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    # drop a category when the ones before it already reach p (the first is always kept)
    drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


FILTER_LOGITS_FN = {"top_k": filter_top_k, "top_p": filter_top_p}


def _check_allowed(allowed: torch.Tensor, size: int) -> torch.Tensor:
    if allowed.shape[-1] != size:
        raise ConfigError(f"the output mask has {allowed.shape[-1]} outputs, the model {size}")
    return allowed.bool()


def mask_logits(logits: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """Set the logits (..., V) of categories not ``allowed`` ((V,) or (..., V) bool) to -inf.

    A row that would be left with no finite logit (another constraint, e.g. a grammar,
    already removed every allowed category) keeps its logits unchanged.
    """
    if allowed is None:
        return logits
    masked = logits.masked_fill(~_check_allowed(allowed, logits.shape[-1]), float("-inf"))
    empty = torch.isneginf(masked).all(dim=-1, keepdim=True)
    return torch.where(empty, logits, masked)


def sample_categorical(
    logits: torch.Tensor, controls: SamplingControls, generator: torch.Generator | None = None,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw one category per row of ``logits`` (..., V) -> (...) long, among the
    ``allowed`` ones ((V,) bool; None = all)."""
    logits = mask_logits(logits, allowed) / controls.temperature
    logits = filter_top_p(filter_top_k(logits, controls.top_k), controls.top_p)
    probs = torch.softmax(logits.float(), dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    draws = torch.multinomial(flat, 1, generator=generator).squeeze(-1)
    return draws.reshape(probs.shape[:-1])


def sample_bernoulli(
    logits: torch.Tensor,
    controls: SamplingControls,
    generator: torch.Generator | None = None,
    group_size: int | None = None,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw independent notes from logits (..., K) -> (...) float 0/1.

    With ``controls.threshold`` the draw is deterministic (p > threshold). With
    ``controls.max_notes_per_step`` only the most likely of the drawn notes are kept
    within each group of ``group_size`` keys (one group = one track's pitches). Keys not
    ``allowed`` ((K,) bool; None = all) are never drawn.
    """
    probs = torch.sigmoid(logits.float() / controls.temperature)
    notes = draw_notes(probs, controls, generator, allowed)
    if controls.max_notes_per_step > 0:
        notes = limit_notes_per_group(notes, probs, controls.max_notes_per_step, group_size)
    return notes


def draw_notes(
    probs: torch.Tensor, controls: SamplingControls, generator: torch.Generator | None = None,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """0/1 notes from probabilities: p > threshold when one is set, else Bernoulli draws.

    ``allowed`` (bool, broadcast against ``probs``: (K,) for frames (..., K), a scalar for
    one key) sets the probability of the keys it excludes to 0.
    """
    if allowed is not None:
        probs = probs * allowed.to(probs.device, probs.dtype)
    if controls.threshold is not None:
        return (probs > controls.threshold).float()
    noise = torch.rand(probs.shape, generator=generator, device=probs.device)
    return (noise < probs).float()


def limit_notes_per_group(
    notes: torch.Tensor, probs: torch.Tensor, max_notes: int, group_size: int | None = None
) -> torch.Tensor:
    """Keep at most ``max_notes`` of the drawn notes (the most probable) in each group."""
    size = group_size or notes.shape[-1]
    if notes.shape[-1] % size:
        raise ConfigError(f"{notes.shape[-1]} keys do not split into groups of {size}")
    grouped_notes = notes.reshape(*notes.shape[:-1], -1, size)
    grouped_probs = probs.reshape(*probs.shape[:-1], -1, size)
    if max_notes >= size:
        return notes
    score = torch.where(grouped_notes > 0, grouped_probs, torch.full_like(grouped_probs, -1.0))
    keep_idx = torch.topk(score, max_notes, dim=-1).indices
    keep = torch.zeros_like(grouped_notes).scatter(-1, keep_idx, 1.0)
    return (grouped_notes * keep).reshape(notes.shape)


def limit_sustain(frames: torch.Tensor, new_frame: torch.Tensor, max_steps: int) -> torch.Tensor:
    """Release keys of ``new_frame`` (B, K) held for ``max_steps`` steps of ``frames`` (B, T, K)."""
    if max_steps <= 0 or frames.shape[1] < max_steps:
        return new_frame
    held = frames[:, -max_steps:, :].prod(dim=1)  # 1 where the key sounded in every recent step
    return new_frame * (1 - held)
