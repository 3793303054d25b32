"""What the GAN families (MidiNet, MuseGAN) share: losses, gradient penalty, the step.

* ``loss="standard"``: the non-saturating GAN of Goodfellow et al. (NeurIPS 2014) with
  binary cross-entropy; the discriminator's real label can be smoothed (one-sided label
  smoothing, Salimans et al. 2016: 0.9 instead of 1).
* ``loss="wgan-gp"``: Wasserstein GAN with gradient penalty (Gulrajani et al., NeurIPS
  2017): the critic minimises D(fake) − D(real) + λ·(‖∇_x̂ D(x̂)‖₂ − 1)² on random
  interpolates x̂ = εx + (1 − ε)G(z), the generator minimises −D(G(z)); the critic takes
  ``n_critic`` steps per generator step.

:class:`GANModel` is the alternating step both families use (``automatic_optimization =
False``): each call of :meth:`GANModel.manual_training_step` updates the discriminator
once and the generator every ``n_critic`` calls. Every ``diversity_every`` steps it logs
:func:`diversity` of the fakes, a mode-collapse check.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from tunesmith.config import UNIT_OPEN, Range, at_least
from tunesmith.errors import ConfigError
from tunesmith.models.base import GenerativeModel, ModelConfig
from tunesmith.models.music_vae import slerp
from tunesmith.models.rolls import pitch_class_histograms
from tunesmith.models.sampling import SamplingControls, sample_bernoulli

LOSSES = ("standard", "wgan-gp")


@dataclass
class GANConfig(ModelConfig):
    """The options :class:`GANModel` reads, which every GAN family's config has; each
    family sets its own defaults (MidiNet: the standard loss, MuseGAN: WGAN-GP)."""

    n_pitches: int = 128  # pitches per track (filled from the data)
    pitch_low: int = 0  # MIDI pitch of the first pitch row (filled from the data)
    loss: str = "standard"  # "standard" (non-saturating BCE) | "wgan-gp"
    real_label: float = 1.0  # one-sided label smoothing for the standard loss (1 = none)
    n_critic: int = 1  # discriminator steps per generator step
    gp_weight: float = 10.0  # λ of the gradient penalty (wgan-gp)
    adam_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    diversity_every: int = 50  # log diversity() of the fakes every this many steps (0 = never)

    choices: ClassVar[dict[str, tuple]] = {"loss": LOSSES}
    ranges: ClassVar[dict[str, Range]] = {"n_critic": at_least(1), "adam_betas": UNIT_OPEN}

    def check(self) -> None:
        if len(self.adam_betas) != 2:
            raise ConfigError(f"adam_betas must be two numbers (β1, β2), got {self.adam_betas}")


def check_loss_name(loss: str) -> None:
    if loss not in LOSSES:
        raise ConfigError(f"GAN loss must be one of {LOSSES}, got {loss!r}")


# --------------------------------------------------------------------------- losses


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, loss: str, real_label: float = 1.0
) -> torch.Tensor:
    """The discriminator's (critic's) loss from its outputs on real and fake examples (B,).

    standard: BCE(D(x), real_label) + BCE(D(G(z)), 0); wgan-gp: E D(G(z)) − E D(x)
    (the gradient penalty is added separately, see :func:`gradient_penalty`).
    """
    check_loss_name(loss)
    if loss == "wgan-gp":
        return fake_logits.mean() - real_logits.mean()
    real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_label))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    """standard (non-saturating): BCE(D(G(z)), 1) = −E log σ(D(G(z))); wgan-gp: −E D(G(z))."""
    check_loss_name(loss)
    if loss == "wgan-gp":
        return -fake_logits.mean()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = 10.0,
    epsilon: torch.Tensor | None = None,
) -> torch.Tensor:
    """λ · E_x̂ (‖∇_x̂ D(x̂)‖₂ − 1)² with x̂ = εx + (1 − ε)x̃, ε ~ U[0, 1] per example.

    ``critic`` maps a batch like ``real`` (B, ...) to scores (B,). The penalty keeps its
    graph, so its gradient reaches the critic's weights.
    """
    if epsilon is None:
        epsilon = torch.rand(real.shape[0], device=real.device)
    epsilon = epsilon.reshape(-1, *([1] * (real.dim() - 1)))
    mixed = (epsilon * real.detach() + (1 - epsilon) * fake.detach()).requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    norms = grad.reshape(grad.shape[0], -1).norm(2, dim=1)  # (B,)
    return weight * ((norms - 1.0) ** 2).mean()


# --------------------------------------------------------------------------- diversity


def diversity(samples: torch.Tensor, n_pitches: int | None = None, pitch_low: int = 0):
    """Mode-collapse check: mean pairwise distances within a batch of piano-rolls.

    ``samples`` (N, T, K) 0/1. Returns
    ``{"diversity_roll": mean over pairs of the fraction of cells that differ,
    "diversity_pitch_class": mean over pairs of the total-variation distance ½‖h_a − h_b‖₁
    of their pitch-class histograms}``. Both are 0 for identical samples (a collapsed
    generator) and at most 1. ``n_pitches`` (pitches per track) defaults to K (one track).
    """
    n = samples.shape[0]
    if n < 2:
        raise ConfigError("diversity needs at least two samples")
    flat = samples.float().reshape(n, -1)
    histograms = pitch_class_histograms(samples, n_pitches or samples.shape[-1], pitch_low)
    pairs = list(itertools.combinations(range(n), 2))
    a = torch.tensor([i for i, _ in pairs])
    b = torch.tensor([j for _, j in pairs])
    roll = (flat[a] - flat[b]).abs().mean(1).mean()
    pitch_class = 0.5 * (histograms[a] - histograms[b]).abs().sum(1).mean()
    return {"diversity_roll": roll, "diversity_pitch_class": pitch_class}


# --------------------------------------------------------------------------- the step


class GANModel(GenerativeModel):
    """Base of the GAN families: Adam for G and D, the alternating manual step.

    A family implements :meth:`real_examples`, :meth:`sample_latents`,
    :meth:`generate_from_latents`, :meth:`critic`, :meth:`as_pianoroll` and lists its
    halves in :meth:`generator_parameters` / :meth:`discriminator_parameters`. Its config
    has ``loss``, ``n_critic``, ``gp_weight``, ``real_label``, ``adam_betas`` and
    ``diversity_every``.
    """

    automatic_optimization = False
    config: GANConfig
    gan_step: torch.Tensor  # () long buffer: training steps taken (discriminator updates)

    def __init__(self, config: GANConfig):
        super().__init__(config)  # the config checked loss and n_critic (GANConfig)
        self.register_buffer("gan_step", torch.zeros((), dtype=torch.long))

    # ---- the family's pieces ----------------------------------------------------------
    def real_examples(self, batch) -> tuple[torch.Tensor, dict]:
        """Training examples cut from a data batch and their conditions."""
        raise NotImplementedError

    def sample_latents(self, n: int, generator=None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def generate_from_latents(self, latents: dict, condition: dict) -> torch.Tensor:
        """Generator output in [0, 1] shaped like :meth:`real_examples`' examples."""
        raise NotImplementedError

    def critic(self, x: torch.Tensor, condition: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Discriminator scores (B,) (logits) and the features used for feature matching."""
        raise NotImplementedError

    def as_pianoroll(self, x: torch.Tensor) -> torch.Tensor:
        """Examples -> (B, T, K) piano-rolls (for diversity and generation)."""
        raise NotImplementedError

    def generator_parameters(self):
        raise NotImplementedError

    def discriminator_parameters(self):
        raise NotImplementedError

    def expand_condition(self, condition: dict | None, n: int) -> dict:
        """The condition for ``n`` examples at generation time (default: as given)."""
        return dict(condition or {})

    def binarize(self, probs: torch.Tensor, controls: SamplingControls,
                 allowed: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """Generator outputs in [0, 1] (B, T, K) -> 0/1 notes with the sampling controls.

        ``controls.threshold`` gives hard thresholding, None Bernoulli sampling (the two
        test-time binarisations of Dong et al. 2018); note caps are per track. Keys not
        ``allowed`` ((K,) bool, default the output mask: pitches the training data never
        sounds) are zeroed before either.
        """
        if allowed is None:
            allowed = self.allowed_outputs()
        logits = torch.logit(probs.clamp(1e-6, 1 - 1e-6))
        generator = controls.generator(probs.device)
        return sample_bernoulli(logits, controls, generator, group_size=self.config.n_pitches,
                                allowed=allowed)

    def sample_notes(self, probs: torch.Tensor, controls: SamplingControls) -> torch.Tensor:
        """Generator outputs (examples' shape) -> 0/1 piano-rolls (B, T, K)."""
        return self.binarize(self.as_pianoroll(probs), controls)

    def extra_generator_loss(self, real, fake, real_features, fake_features) -> dict:
        """Terms added to the generator loss (MidiNet's feature matching). Default none."""
        return {}

    # ---- training -------------------------------------------------------------------
    def configure_optimizers(self, lr: float, weight_decay: float = 0.0):
        beta1, beta2 = self.config.adam_betas
        betas = (beta1, beta2)
        opt_g = torch.optim.Adam(self.generator_parameters(), lr, betas, weight_decay=weight_decay)
        opt_d = torch.optim.Adam(
            self.discriminator_parameters(), lr, betas, weight_decay=weight_decay
        )
        return [opt_g, opt_d]

    def fake_examples(self, n: int, condition: dict) -> torch.Tensor:
        """n generator outputs. A batch of one (a data set's last batch) is drawn as two
        and cut, since the generators' batch normalisation needs two examples to train."""
        if n == 1 and self.training:
            condition = {k: v.expand(2, *v.shape[1:]) for k, v in condition.items()}
            return self.generate_from_latents(self.sample_latents(2), condition)[:1]
        return self.generate_from_latents(self.sample_latents(n), condition)

    def discriminator_objective(self, real, fake, condition) -> dict[str, torch.Tensor]:
        c = self.config
        real_logits, _ = self.critic(real, condition)
        fake_logits, _ = self.critic(fake.detach(), condition)
        d_loss = discriminator_loss(real_logits, fake_logits, c.loss, c.real_label)
        out = {"d_loss": d_loss}
        if c.loss == "wgan-gp":
            penalty = gradient_penalty(
                lambda x: self.critic(x, condition)[0], real, fake, c.gp_weight
            )
            out["gradient_penalty"] = penalty.detach()
            out["wasserstein"] = (real_logits.mean() - fake_logits.mean()).detach()
            d_loss = d_loss + penalty
        out["d_total"] = d_loss
        return out

    def generator_objective(self, real, fake, condition) -> dict[str, torch.Tensor]:
        fake_logits, fake_features = self.critic(fake, condition)
        g_loss = generator_loss(fake_logits, self.config.loss)
        out = {"g_adversarial": g_loss.detach()}
        real_features = None
        if type(self).extra_generator_loss is not GANModel.extra_generator_loss:
            with torch.no_grad():
                _, real_features = self.critic(real, condition)
        extra = self.extra_generator_loss(real, fake, real_features, fake_features)
        for name, term in extra.items():
            out[name] = term.detach()
            g_loss = g_loss + term
        out["g_loss"] = g_loss
        return out

    def manual_training_step(self, batch, optimizers, manual_backward):
        """One discriminator update; one generator update every ``n_critic`` calls."""
        opt_g, opt_d = optimizers
        real, condition = self.real_examples(batch)
        n = real.shape[0]
        fake = self.fake_examples(n, condition)
        d_out = self.discriminator_objective(real, fake, condition)
        opt_d.zero_grad()
        manual_backward(d_out["d_total"])
        opt_d.step()
        logs = {k: v.detach() for k, v in d_out.items() if k != "d_total"}
        step = int(self.gan_step)
        if step % self.config.n_critic == 0:
            fake = self.fake_examples(n, condition)
            g_out = self.generator_objective(real, fake, condition)
            opt_g.zero_grad()
            manual_backward(g_out["g_loss"])
            opt_g.step()
            logs.update({k: v.detach() for k, v in g_out.items()})
        every = self.config.diversity_every
        if every > 0 and step % every == 0 and n >= 2:
            with torch.no_grad():
                logs.update(self._diversity(fake.detach()))
        self.gan_step += 1
        return logs

    def _diversity(self, fake: torch.Tensor) -> dict:
        rolls = (self.as_pianoroll(fake) > 0.5).float()
        return diversity(rolls, self.config.n_pitches, self.config.pitch_low)

    def loss(self, batch):
        """Validation: both losses on a batch, no update. ``loss`` is the generator's."""
        real, condition = self.real_examples(batch)
        with torch.no_grad():
            fake = self.fake_examples(real.shape[0], condition)
            real_logits, _ = self.critic(real, condition)
            fake_logits, _ = self.critic(fake, condition)
            d_loss = discriminator_loss(real_logits, fake_logits, self.config.loss,
                                        self.config.real_label)
            g_loss = generator_loss(fake_logits, self.config.loss)
        return {"loss": g_loss, "d_loss": d_loss, "g_loss": g_loss}


@torch.no_grad()
def interpolate_latents(
    model: GANModel, n_steps: int = 5, condition: dict | None = None,
    controls: SamplingControls | None = None,
    latents: tuple[dict, dict] | None = None,
) -> torch.Tensor:
    """Generate along a spherical path between two latent draws (all latent parts slerped).

    Returns ``n_steps`` piano-rolls (n_steps, T, K) 0/1; the first and last are the
    generator's outputs for the two draws.
    """
    if n_steps < 2:
        raise ConfigError(f"interpolation needs at least 2 steps, got {n_steps}")
    controls = controls or SamplingControls(threshold=0.5)
    model.eval()
    generator = controls.generator("cpu")
    start, end = latents or (model.sample_latents(1, generator), model.sample_latents(1, generator))
    path = {
        name: torch.cat([slerp(start[name], end[name], i / (n_steps - 1)) for i in range(n_steps)])
        for name in start
    }
    condition = model.expand_condition(condition, n_steps)
    probs = model.generate_from_latents(path, condition)
    return model.sample_notes(probs, controls)
