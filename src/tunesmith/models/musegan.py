"""MuseGAN: multi-track, multi-bar piano-rolls from shared and private latent vectors.

Dong, Hsiao, Yang & Yang, "MuseGAN: Multi-track Sequential Generative Adversarial
Networks for Symbolic Music Generation and Accompaniment", AAAI 2018.

An example is a phrase of M tracks × ``n_bars`` bars × ``steps_per_bar`` steps × P
pitches (the S/A/T/B parts of chorales: M = 4). Four latent inputs (§3 of the paper):

* z (inter-track, time-independent) and z_t = G_temp(z') (inter-track, one per bar);
* z_i (track i, time-independent) and z_{i,t} = G_temp,i(z'_i) (track i, one per bar);

where the temporal generators G_temp are two transposed 1-D convolutions that turn one
vector into a sequence of ``n_bars`` vectors. The three models of §3.1:

* ``jamming``: one bar generator and one discriminator per track, private inputs only
  (z_i, z_{i,t});
* ``composer``: one bar generator producing all M tracks from the shared inputs (z, z_t),
  one discriminator;
* ``hybrid``: one bar generator per track from shared and private inputs
  (z, z_t, z_i, z_{i,t}), one shared discriminator.

A bar generator is a dense layer and transposed 2-D convolutions, up the time axis then
the pitch axis; the discriminator is a stack of 3-D convolutions over
(bars, steps, pitches) with the tracks as channels (one track for a jamming critic),
pitch first, then time within the bar, then across bars, and a dense layer. The
discriminators have no batch normalisation so that the WGAN-GP penalty holds per example;
MuseGAN was trained with WGAN-GP (``loss="wgan-gp"``, n_critic = 5), the default here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.config import Range, at_least
from tunesmith.errors import ConfigError
from tunesmith.models.gan import GANConfig, GANModel
from tunesmith.models.music_vae import bar_windows
from tunesmith.models.sampling import SamplingControls

MODES = ("jamming", "composer", "hybrid")


@dataclass
class MuseGANConfig(GANConfig):
    """MuseGAN sizes and training options (defaults: a small CPU-sized model)."""

    mode: str = "hybrid"  # "jamming" | "composer" | "hybrid"
    n_tracks: int = 4  # tracks (filled from the data)
    n_pitches: int = 84  # pitches per track (filled from the data); >= 12
    pitch_low: int = 24  # MIDI pitch of the first pitch row (filled from the data)
    n_bars: int = 4  # bars per phrase
    steps_per_bar: int = 16  # steps per bar; a multiple of 4
    z_dim: int = 32  # size of each latent input (z, z', z_i, z'_i)
    temporal_hidden: int = 64  # G_temp's hidden channels
    g_channels: int = 64  # bar generator feature maps
    d_channels: int = 64  # discriminator feature maps
    loss: str = "wgan-gp"  # "wgan-gp" (as the paper) | "standard"
    real_label: float = 1.0  # one-sided label smoothing for the standard loss (1 = none)
    n_critic: int = 5  # discriminator steps per generator step
    gp_weight: float = 10.0  # λ of the gradient penalty
    adam_betas: list[float] = field(default_factory=lambda: [0.5, 0.9])
    diversity_every: int = 50  # log diversity() of the fakes every this many steps (0 = never)

    choices: ClassVar[dict[str, tuple]] = {"mode": MODES}
    ranges: ClassVar[dict[str, Range]] = {
        "n_pitches": at_least(12), "n_bars": at_least(2)}

    def check(self) -> None:
        super().check()
        if self.steps_per_bar % 4:
            raise ConfigError(f"steps_per_bar must be a multiple of 4, got {self.steps_per_bar}")

    @property
    def steps(self) -> int:
        return self.n_bars * self.steps_per_bar


class TemporalGenerator(nn.Module):
    """G_temp: one vector (B, Z) -> a latent per bar (B, n_bars, Z).

    Two transposed 1-D convolutions, 1 -> 2 -> n_bars steps (the paper's 1 -> 2 -> 4).
    """

    def __init__(self, z_dim: int, hidden: int, n_bars: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose1d(z_dim, hidden, 2),  # (B, hidden, 2)
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.ConvTranspose1d(hidden, z_dim, n_bars - 1),  # (B, Z, n_bars)
            nn.BatchNorm1d(z_dim),
            nn.ReLU(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None]).transpose(1, 2)


class BarGenerator(nn.Module):
    """Latent input (B, D) -> logits of one bar (B, tracks_out, S, P)."""

    def __init__(self, in_dim: int, c: MuseGANConfig, tracks_out: int):
        super().__init__()
        self.channels, self.start = c.g_channels, c.steps_per_bar // 4
        self.fc = nn.Linear(in_dim, c.g_channels * self.start)
        self.bn = nn.BatchNorm1d(c.g_channels * self.start)
        half = c.g_channels // 2
        self.net = nn.Sequential(
            nn.ConvTranspose2d(c.g_channels, c.g_channels, (2, 1), stride=(2, 1)),  # S/2
            nn.BatchNorm2d(c.g_channels),
            nn.ReLU(),
            nn.ConvTranspose2d(c.g_channels, c.g_channels, (2, 1), stride=(2, 1)),  # S
            nn.BatchNorm2d(c.g_channels),
            nn.ReLU(),
            nn.ConvTranspose2d(c.g_channels, half, (1, c.n_pitches - 11)),  # (S, P - 11)
            nn.BatchNorm2d(half),
            nn.ReLU(),
            nn.ConvTranspose2d(half, tracks_out, (1, 12)),  # (S, P): one octave wide
        )

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.fc(latent))).view(-1, self.channels, self.start, 1)
        return self.net(h)


class MuseGANDiscriminator(nn.Module):
    """Phrases (B, tracks, bars, S, P) -> scores (B,) and pre-dense features (B, 2C)."""

    def __init__(self, c: MuseGANConfig, tracks_in: int):
        super().__init__()
        d = c.d_channels
        self.net = nn.Sequential(
            nn.Conv3d(tracks_in, d, (1, 1, 12)),  # one octave: (B, d, bars, S, P - 11)
            nn.LeakyReLU(0.2),
            nn.Conv3d(d, d, (1, 1, c.n_pitches - 11)),  # (B, d, bars, S, 1)
            nn.LeakyReLU(0.2),
            nn.Conv3d(d, d, (1, 4, 1), stride=(1, 4, 1)),  # beats: (B, d, bars, S/4, 1)
            nn.LeakyReLU(0.2),
            nn.Conv3d(d, 2 * d, (1, c.steps_per_bar // 4, 1)),  # bars: (B, 2d, bars, 1, 1)
            nn.LeakyReLU(0.2),
            nn.Conv3d(2 * d, 2 * d, (c.n_bars, 1, 1)),  # phrase: (B, 2d, 1, 1, 1)
            nn.LeakyReLU(0.2),
        )
        self.dense = nn.Linear(2 * d, 1)

    def forward(self, x):
        features = self.net(x).flatten(1)
        return self.dense(features).squeeze(1), features


class MuseGAN(GANModel):
    """MuseGAN with temporal latents in the jamming, composer or hybrid mode."""

    family = "musegan"
    representation = "pianoroll"
    config_class = MuseGANConfig
    config: MuseGANConfig

    def __init__(self, config: MuseGANConfig):
        super().__init__(config)
        c = config
        shared = c.mode in ("composer", "hybrid")
        private = c.mode in ("jamming", "hybrid")
        self.uses_shared, self.uses_private = shared, private
        if shared:
            self.shared_temporal = TemporalGenerator(c.z_dim, c.temporal_hidden, c.n_bars)
        if private:
            self.private_temporal = nn.ModuleList(
                TemporalGenerator(c.z_dim, c.temporal_hidden, c.n_bars) for _ in range(c.n_tracks)
            )
        in_dim = 2 * c.z_dim * (int(shared) + int(private))
        if c.mode == "composer":
            self.bar_generators = nn.ModuleList([BarGenerator(in_dim, c, c.n_tracks)])
        else:
            self.bar_generators = nn.ModuleList(
                BarGenerator(in_dim, c, 1) for _ in range(c.n_tracks)
            )
        if c.mode == "jamming":
            self.discriminators = nn.ModuleList(
                MuseGANDiscriminator(c, 1) for _ in range(c.n_tracks)
            )
        else:
            self.discriminators = nn.ModuleList([MuseGANDiscriminator(c, c.n_tracks)])

    @classmethod
    def config_for_data(cls, config, info):
        return config.updated(n_tracks=info.n_tracks, n_pitches=info.n_pitches,
                              pitch_low=info.pitch_low, steps_per_bar=info.steps_per_bar)

    def generator_parameters(self):
        return [p for name, p in self.named_parameters() if not name.startswith("discriminators")]

    def discriminator_parameters(self):
        return list(self.discriminators.parameters())

    # ---- data -------------------------------------------------------------------------
    def real_examples(self, batch):
        """Random bar-aligned phrases of the data: (B, tracks, bars, S, P)."""
        c = self.config
        frames, mask = batch["frames"].float(), batch.get("mask")
        if mask is None:
            mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
        window, _ = bar_windows(frames, mask, c.steps, c.steps_per_bar, self.training)
        return self.from_pianoroll(window), {}

    def from_pianoroll(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, bars·S, tracks·P) -> (B, tracks, bars, S, P)."""
        c = self.config
        x = frames.reshape(frames.shape[0], c.n_bars, c.steps_per_bar, c.n_tracks, c.n_pitches)
        return x.permute(0, 3, 1, 2, 4).contiguous()

    def as_pianoroll(self, x):
        """(B, tracks, bars, S, P) -> (B, bars·S, tracks·P), track-major keys."""
        c = self.config
        return x.permute(0, 2, 3, 1, 4).reshape(x.shape[0], c.steps, c.n_tracks * c.n_pitches)

    # ---- the GAN's pieces -------------------------------------------------------------
    def sample_latents(self, n, generator=None):
        c = self.config
        device = self.gan_step.device
        latents = {}
        if self.uses_shared:
            latents["shared"] = torch.randn(n, c.z_dim, generator=generator).to(device)
            latents["shared_temporal"] = torch.randn(n, c.z_dim, generator=generator).to(device)
        if self.uses_private:
            shape = (n, c.n_tracks, c.z_dim)
            latents["private"] = torch.randn(shape, generator=generator).to(device)
            latents["private_temporal"] = torch.randn(shape, generator=generator).to(device)
        return latents

    def generate_from_latents(self, latents, condition):
        """Latents -> phrases in [0, 1] (B, tracks, bars, S, P)."""
        c = self.config
        n = next(iter(latents.values())).shape[0]
        parts = []  # per-track (or one shared) inputs, each (B, bars, D)
        if self.uses_shared:
            z = latents["shared"][:, None].expand(-1, c.n_bars, -1)  # (B, bars, Z)
            shared = torch.cat([z, self.shared_temporal(latents["shared_temporal"])], -1)
        if c.mode == "composer":
            parts = [shared]
        else:
            for i in range(c.n_tracks):
                z_i = latents["private"][:, i, None].expand(-1, c.n_bars, -1)
                z_it = self.private_temporal[i](latents["private_temporal"][:, i])
                private = torch.cat([z_i, z_it], -1)  # (B, bars, 2Z)
                parts.append(torch.cat([shared, private], -1) if self.uses_shared else private)
        tracks = []
        for generator, inputs in zip(self.bar_generators, parts, strict=True):
            bars = generator(inputs.reshape(n * c.n_bars, -1))  # (B·bars, m, S, P)
            tracks.append(bars.view(n, c.n_bars, -1, c.steps_per_bar, c.n_pitches))
        logits = torch.cat(tracks, 2).transpose(1, 2)  # (B, tracks, bars, S, P)
        return torch.sigmoid(logits)

    def critic(self, x, condition):
        """Shared critic over all tracks, or (jamming) the mean of per-track critics."""
        if self.config.mode != "jamming":
            return self.discriminators[0](x)
        outs = [d(x[:, i : i + 1]) for i, d in enumerate(self.discriminators)]
        scores = torch.stack([s for s, _ in outs]).mean(0)
        return scores, torch.cat([f for _, f in outs], 1)

    # ---- generation -------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, n: int, steps: int, controls: SamplingControls | None = None,
                 prime: torch.Tensor | None = None, condition: dict | None = None
                 ) -> torch.Tensor:
        """``n`` multi-track pieces of ``steps`` steps -> (n, steps, tracks·P) 0/1.

        Longer pieces are independent ``n_bars`` phrases one after another (MuseGAN
        models phrases, not their succession); the last is cut to length. By default
        notes are on where the generator's output exceeds 0.5 (hard thresholding).
        """
        if prime is not None:
            raise ConfigError("MuseGAN does not continue a prime")
        c = self.config
        controls = controls or SamplingControls(threshold=0.5)
        phrases = max(1, -(-steps // c.steps))
        was_training = self.training
        self.eval()
        generator = controls.generator("cpu")
        latents = self.sample_latents(n * phrases, generator)
        notes = self.sample_notes(self.generate_from_latents(latents, {}), controls)
        self.train(was_training)
        return notes.reshape(n, phrases * c.steps, -1)[:, :steps]
