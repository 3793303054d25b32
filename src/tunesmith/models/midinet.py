"""MidiNet: a convolutional GAN generating melody bar by bar, conditioned on chords.

Yang, Chou & Yang, "MidiNet: A Convolutional Generative Adversarial Network for
Symbolic-domain Music Generation", ISMIR 2017.

* A bar is a (steps_per_bar × P) piano-roll of one (monophonic) track: 16 sixteenths × the
  data's pitches. The melody track is ``track`` of the data (0 = soprano of S/A/T/B
  chorales).
* Generator: noise z and the 1-D condition y (the bar's chord: 12 root pitch classes +
  a minor flag = 13 dims) → two dense layers → a (C, 2, 1) map → transposed convolutions
  doubling the time axis to steps_per_bar, then one spanning the pitches. The 2-D
  condition is the previous bar, read by a conditioner CNN whose feature maps (time sizes
  16, 8, 4, 2) are concatenated to the generator's maps of the same size, with y broadcast
  as extra channels at every layer.
* Discriminator: two convolutions and a dense layer, y concatenated at each. Its first
  convolution's features f give the feature-matching term of the generator:
  λ1‖E x − E G(z)‖² + λ2‖E f(x) − E f(G(z))‖². One-sided label smoothing (real label
  0.9). The discriminator has no batch normalisation so that the WGAN-GP penalty, which
  needs per-example gradients, can be used too (``loss="wgan-gp"``).
* Generation: bar by bar, each bar conditioned on the previous generated one and on its
  chord; :func:`parse_chord_progression` and :func:`generate_with_chords` take chords as
  text ("C G Am F").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.errors import ConfigError
from tunesmith.models.gan import GANConfig, GANModel
from tunesmith.models.music_vae import bar_windows
from tunesmith.models.rolls import pitch_class_histograms
from tunesmith.models.sampling import SamplingControls
from tunesmith.music.chords import TRIADS, Chord, parse_progression
from tunesmith.music.chords import parse_chord as parse_chord_symbol

CHORD_DIM = 13  # 12 root pitch classes + 1 minor flag
DEFAULT_PROGRESSION = "C G Am F"  # used when generation is asked for without chords



@dataclass
class MidiNetConfig(GANConfig):
    """MidiNet sizes and training options (defaults: the paper's layer shapes, smaller dense)."""

    n_tracks: int = 1  # tracks of the data (filled from the data)
    n_pitches: int = 128  # pitches per track (filled from the data)
    pitch_low: int = 0  # MIDI pitch of the first pitch row (filled from the data)
    track: int = 0  # which data track is the melody (0 = soprano)
    steps_per_bar: int = 16  # sixteenth notes in 4/4; must be a multiple of 8
    z_dim: int = 100  # noise size
    use_chords: bool = True  # 1-D condition: the bar's chord
    use_previous_bar: bool = True  # 2-D condition: the previous bar through the conditioner
    g_dense: int = 1024  # generator's first dense layer
    g_channels: int = 128  # generator feature maps (paper: 128 = gf_dim·2)
    conditioner_channels: int = 16  # previous-bar conditioner feature maps (paper: 16)
    d_channels: list[int] = field(default_factory=lambda: [14, 77])  # D's two convolutions
    d_dense: int = 1024  # discriminator's dense layer
    loss: str = "standard"  # "standard" (non-saturating BCE) | "wgan-gp"
    real_label: float = 0.9  # one-sided label smoothing (standard loss)
    feature_matching_x: float = 0.1  # λ1: ‖E x − E G(z)‖²
    feature_matching_f: float = 1.0  # λ2: ‖E f(x) − E f(G(z))‖² over D's first-layer features
    n_critic: int = 1  # discriminator steps per generator step
    gp_weight: float = 10.0  # λ of the gradient penalty (wgan-gp)
    adam_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    diversity_every: int = 50  # log diversity() of the fakes every this many steps (0 = never)

    def check(self) -> None:
        super().check()
        if self.steps_per_bar % 8:
            raise ConfigError(
                f"MidiNet needs steps_per_bar divisible by 8, got {self.steps_per_bar}"
            )
        if not 0 <= self.track < self.n_tracks:
            raise ConfigError(f"track {self.track} does not exist in {self.n_tracks} track(s)")


# --------------------------------------------------------------------------- chords


def parse_chord(symbol: str) -> torch.Tensor:
    """A chord symbol -> its 13-dim MidiNet condition (root one-hot, minor flag).

    Symbols as :func:`tunesmith.music.chords.parse_chord` reads them (MidiNet models only
    major and minor triads); ``N`` (or ``-`` alone) is no chord: all zeros.
    """
    return _condition(parse_chord_symbol(symbol))


def _condition(chord: Chord | None) -> torch.Tensor:
    vector = torch.zeros(CHORD_DIM)
    if chord is not None:
        vector[chord.root] = 1.0
        vector[12] = float(chord.minor)
    return vector


def parse_chord_progression(text: str, bars: int | None = None) -> torch.Tensor:
    """"C G Am F" (one chord per bar, spaces or ``|`` between) -> (bars, 13).

    With ``bars`` the progression is repeated or cut to that many bars.
    """
    progression = torch.stack([_condition(c) for c in parse_progression(text)])  # (n, 13)
    if bars is not None:
        if bars < 1:
            raise ConfigError(f"bars must be >= 1, got {bars}")
        progression = progression.repeat((bars + len(progression) - 1) // len(progression),
                                         1)[:bars]
    return progression


def chords_from_frames(
    frames: torch.Tensor, n_pitches: int, pitch_low: int
) -> torch.Tensor:
    """The 13-dim chord condition of bars of data: (B, steps, tracks·P) -> (B, 13).

    The triad (of the 24 major and minor ones) whose three pitch classes hold the most
    sounding cells of all tracks; ties go to the lowest root, major before minor. A
    silent bar gets all zeros.
    """
    histograms = pitch_class_histograms(frames, n_pitches, pitch_low)  # (B, 12)
    templates = torch.as_tensor(TRIADS, dtype=histograms.dtype)  # (24, 12)
    scores = histograms @ templates.T.to(histograms.device)  # (B, 24)
    best = scores.argmax(-1)  # (B,) first maximum
    out = torch.zeros(frames.shape[0], CHORD_DIM, device=frames.device)
    out[torch.arange(len(best)), best // 2] = 1.0
    out[:, 12] = (best % 2).float()
    silent = histograms.sum(-1) == 0
    out[silent] = 0.0
    return out


# --------------------------------------------------------------------------- networks


def _with_condition(h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Concatenate y (B, 13) to feature maps (B, C, H, W) as 13 constant channels."""
    return torch.cat([h, y[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])], 1)


class Conditioner(nn.Module):
    """The previous bar (B, 1, S, P) -> feature maps of time sizes S, S/2, S/4, S/8."""

    def __init__(self, n_pitches: int, channels: int):
        super().__init__()
        self.pitch = nn.Conv2d(1, channels, (1, n_pitches))  # (B, c, S, 1)
        self.down = nn.ModuleList(
            nn.Conv2d(channels, channels, (2, 1), stride=(2, 1)) for _ in range(3)
        )
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(4))

    def forward(self, previous: torch.Tensor) -> list[torch.Tensor]:
        h = F.leaky_relu(self.norms[0](self.pitch(previous)), 0.2)
        maps = [h]
        for conv, norm in zip(self.down, self.norms[1:], strict=True):
            h = F.leaky_relu(norm(conv(h)), 0.2)
            maps.append(h)
        return maps  # time sizes S, S/2, S/4, S/8


class MidiNetGenerator(nn.Module):
    """z (B, Z), y (B, 13), previous bar (B, 1, S, P) -> logits of a bar (B, 1, S, P)."""

    def __init__(self, c: MidiNetConfig):
        super().__init__()
        self.c = c
        y, cc = CHORD_DIM, c.conditioner_channels if c.use_previous_bar else 0
        self.start_steps = c.steps_per_bar // 8
        self.fc1 = nn.Linear(c.z_dim + y, c.g_dense)
        self.bn1 = nn.BatchNorm1d(c.g_dense)
        self.fc2 = nn.Linear(c.g_dense + y, c.g_channels * self.start_steps)
        self.bn2 = nn.BatchNorm1d(c.g_channels * self.start_steps)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(c.g_channels + y + cc, c.g_channels, (2, 1), stride=(2, 1))
            for _ in range(3)
        )
        self.up_norms = nn.ModuleList(nn.BatchNorm2d(c.g_channels) for _ in range(3))
        self.to_pitches = nn.ConvTranspose2d(c.g_channels + y + cc, 1, (1, c.n_pitches))
        self.conditioner = (
            Conditioner(c.n_pitches, c.conditioner_channels) if c.use_previous_bar else None
        )

    def forward(self, z, y, previous):
        c = self.c
        prev_maps = self.conditioner(previous)[::-1] if self.conditioner is not None else None
        h = F.relu(self.bn1(self.fc1(torch.cat([z, y], 1))))  # (B, g_dense)
        h = F.relu(self.bn2(self.fc2(torch.cat([h, y], 1))))
        h = h.view(-1, c.g_channels, self.start_steps, 1)  # (B, C, S/8, 1)
        for layer, (conv, norm) in enumerate(zip(self.up, self.up_norms, strict=True)):
            h = _with_condition(h, y)
            if prev_maps is not None:
                h = torch.cat([h, prev_maps[layer]], 1)
            h = F.relu(norm(conv(h)))  # time size doubles: S/4, S/2, S
        h = _with_condition(h, y)
        if prev_maps is not None:
            h = torch.cat([h, prev_maps[3]], 1)
        return self.to_pitches(h)  # (B, 1, S, P)


class MidiNetDiscriminator(nn.Module):
    """A bar (B, 1, S, P) and y -> (score (B,), first-layer features (B, F))."""

    def __init__(self, c: MidiNetConfig):
        super().__init__()
        y = CHORD_DIM
        c1, c2 = c.d_channels
        self.conv1 = nn.Conv2d(1 + y, c1, (2, c.n_pitches), stride=(2, 1))  # (B, c1, S/2, 1)
        self.conv2 = nn.Conv2d(c1 + y, c2, (4, 1), stride=(2, 1))  # (B, c2, S/4 - 1, 1)
        steps_after = (c.steps_per_bar // 2 - 4) // 2 + 1
        self.fc1 = nn.Linear(c2 * steps_after + y, c.d_dense)
        self.fc2 = nn.Linear(c.d_dense + y, 1)

    def forward(self, x, y):
        features = F.leaky_relu(self.conv1(_with_condition(x, y)), 0.2)
        h = F.leaky_relu(self.conv2(_with_condition(features, y)), 0.2)
        h = F.leaky_relu(self.fc1(torch.cat([h.flatten(1), y], 1)), 0.2)
        score = self.fc2(torch.cat([h, y], 1)).squeeze(1)
        return score, features.flatten(1)


class MidiNet(GANModel):
    """MidiNet (model 3 of the paper: chord and previous-bar conditions, feature matching)."""

    family = "midinet"
    representation = "pianoroll"
    config_class = MidiNetConfig
    config: MidiNetConfig

    def __init__(self, config: MidiNetConfig):
        super().__init__(config)
        self.generator = MidiNetGenerator(config)
        self.discriminator = MidiNetDiscriminator(config)

    @classmethod
    def config_for_data(cls, config, info):
        changes = {"n_tracks": info.n_tracks, "n_pitches": info.n_pitches,
                   "pitch_low": info.pitch_low, "steps_per_bar": info.steps_per_bar}
        if config.track >= info.n_tracks:
            changes["track"] = 0
        return config.updated(**changes)

    def generator_parameters(self):
        return list(self.generator.parameters())

    def discriminator_parameters(self):
        return list(self.discriminator.parameters())

    # ---- data -------------------------------------------------------------------------
    def real_examples(self, batch):
        """Random (previous bar, bar) pairs of the melody track and the bar's chord."""
        c = self.config
        frames, mask = batch["frames"].float(), batch.get("mask")
        if mask is None:
            mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
        window, _ = bar_windows(frames, mask, 2 * c.steps_per_bar, c.steps_per_bar, self.training)
        bars = window.view(len(window), 2, c.steps_per_bar, c.n_tracks, c.n_pitches)
        melody = bars[:, :, :, c.track, :]  # (B, 2, S, P)
        chords = chords_from_frames(window[:, c.steps_per_bar:], c.n_pitches, c.pitch_low)
        condition = {"chords": chords, "previous": melody[:, :1]}
        return melody[:, 1:], condition  # (B, 1, S, P)

    def _chords(self, condition, n):
        chords = condition.get("chords")
        if chords is None or not self.config.use_chords:
            return torch.zeros(n, CHORD_DIM, device=self.gan_step.device)
        return chords

    def _previous(self, condition, n):
        c = self.config
        previous = condition.get("previous")
        if previous is None or not c.use_previous_bar:
            return torch.zeros(n, 1, c.steps_per_bar, c.n_pitches, device=self.gan_step.device)
        return previous

    # ---- the GAN's pieces -------------------------------------------------------------
    def sample_latents(self, n, generator=None):
        z = torch.randn(n, self.config.z_dim, generator=generator)
        return {"z": z.to(self.gan_step.device)}

    def generate_from_latents(self, latents, condition):
        z = latents["z"]
        chords, previous = self._chords(condition, len(z)), self._previous(condition, len(z))
        logits = self.generator(z, chords, previous)
        return torch.sigmoid(logits)  # (B, 1, S, P)

    def critic(self, x, condition):
        return self.discriminator(x, self._chords(condition, len(x)))

    def extra_generator_loss(self, real, fake, real_features, fake_features):
        """Feature matching: λ1‖E x − E G(z)‖² + λ2‖E f(x) − E f(G(z))‖² (batch means)."""
        c = self.config
        terms = {}
        if c.feature_matching_x > 0:
            terms["fm_x"] = c.feature_matching_x * (real.mean(0) - fake.mean(0)).pow(2).sum()
        if c.feature_matching_f > 0:
            terms["fm_f"] = c.feature_matching_f * (
                real_features.mean(0) - fake_features.mean(0)
            ).pow(2).sum()
        return terms

    def as_pianoroll(self, x):
        """Melody bars (B, 1, S, P) -> (B, S, tracks·P) with the other tracks silent."""
        c = self.config
        out = x.new_zeros(x.shape[0], c.steps_per_bar, c.n_tracks, c.n_pitches)
        out[:, :, c.track] = x[:, 0]
        return out.reshape(x.shape[0], c.steps_per_bar, -1)

    def sample_notes(self, probs, controls: SamplingControls):
        """Monophonic: at most one note per step (the most likely), as in the paper.

        Bars (B, 1, S, P) in [0, 1] -> (B, S, tracks·P) 0/1, the other tracks silent.
        """
        from dataclasses import replace

        allowed = self.allowed_outputs()  # (tracks·P,): the melody track's keys
        if allowed is not None:
            allowed = allowed.view(self.config.n_tracks, -1)[self.config.track]  # (P,)
        melody = self.binarize(probs[:, 0], replace(controls, max_notes_per_step=1), allowed)
        return self.as_pianoroll(melody[:, None])

    def expand_condition(self, condition, n):
        condition = dict(condition or {})
        chords = condition.get("chords")
        if chords is None:
            chords = parse_chord_progression(DEFAULT_PROGRESSION, 1)
        chords = torch.as_tensor(chords, dtype=torch.float32)
        if chords.dim() == 2:
            chords = chords[:1]
        condition["chords"] = chords.reshape(-1, CHORD_DIM).expand(n, -1).to(self.gan_step.device)
        return condition

    # ---- generation -------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, n: int, steps: int, controls: SamplingControls | None = None,
                 prime: torch.Tensor | None = None, condition: dict | None = None
                 ) -> torch.Tensor:
        """``n`` melodies of ``steps`` steps (a whole number of bars), bar by bar.

        By default each step sounds the pitch of highest activation, as in the paper
        (``threshold=0``); a higher ``controls.threshold`` leaves rests where no pitch
        reaches it, ``threshold=None`` draws the notes (Bernoulli, at most one per step).

        ``condition["chords"]``: (bars, 13) for all or (n, bars, 13) per melody (repeated
        when shorter than the melody; default: "C G Am F"). ``prime`` (n, S', K) keeps its
        whole bars and conditions the next bar on its last one. -> (n, steps, tracks·P) 0/1
        with only the melody track sounding.
        """
        c = self.config
        controls = controls or SamplingControls(threshold=0.0)
        if steps % c.steps_per_bar:
            raise ConfigError(
                f"steps ({steps}) must be a whole number of {c.steps_per_bar}-step bars"
            )
        bars = steps // c.steps_per_bar
        device = self.gan_step.device
        chords = (condition or {}).get("chords")
        if chords is None:
            chords = parse_chord_progression(DEFAULT_PROGRESSION)
        chords = torch.as_tensor(chords, dtype=torch.float32, device=device)
        if chords.dim() == 2:
            chords = chords[None].expand(n, -1, -1)
        if chords.shape[0] != n or chords.shape[-1] != CHORD_DIM:
            raise ConfigError(
                f"chords must be (bars, 13) or ({n}, bars, 13), got {tuple(chords.shape)}"
            )
        reps = (bars + chords.shape[1] - 1) // chords.shape[1]
        chords = chords.repeat(1, reps, 1)[:, :bars]  # (n, bars, 13)
        was_training = self.training
        self.eval()
        generator = controls.generator("cpu")
        out = torch.zeros(n, steps, c.n_tracks * c.n_pitches, device=device)
        previous = torch.zeros(n, 1, c.steps_per_bar, c.n_pitches, device=device)
        first = 0
        if prime is not None:
            prime = torch.as_tensor(prime, dtype=torch.float32, device=device)
            first = min(prime.shape[1] // c.steps_per_bar, bars)
            out[:, : first * c.steps_per_bar] = prime[:, : first * c.steps_per_bar]
            if first:
                last = prime[:, (first - 1) * c.steps_per_bar : first * c.steps_per_bar]
                last = last.reshape(n, c.steps_per_bar, c.n_tracks, c.n_pitches)[:, :, c.track]
                previous = last[:, None]
        for bar in range(first, bars):
            probs = self.generate_from_latents(
                self.sample_latents(n, generator),
                {"chords": chords[:, bar], "previous": previous},
            )
            notes = self.sample_notes(probs, controls)  # (n, S, K)
            out[:, bar * c.steps_per_bar : (bar + 1) * c.steps_per_bar] = notes
            melody = notes.view(n, c.steps_per_bar, c.n_tracks, c.n_pitches)[:, :, c.track]
            previous = melody[:, None]
        self.train(was_training)
        return out


def generate_with_chords(
    model: MidiNet, chords: str, bars: int | None = None, n: int = 1,
    controls: SamplingControls | None = None,
) -> torch.Tensor:
    """Melodies over a chord progression given as text, one chord per bar.

    ``bars`` defaults to the number of chords (the progression repeats to fill more).
    -> (n, bars · steps_per_bar, tracks·P) 0/1.
    """
    progression = parse_chord_progression(chords)
    bars = bars or len(progression)
    return model.generate(
        n, bars * model.config.steps_per_bar, controls,
        condition={"chords": parse_chord_progression(chords, bars)},
    )
