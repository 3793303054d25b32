"""MusicVAE: a hierarchical recurrent variational autoencoder of fixed-length phrases.

Roberts, Engel, Raffel, Hawthorne & Eck, "A Hierarchical Latent Vector Model for Learning
Long-Term Structure in Music", ICML 2018.

* Encoder: a two-layer bidirectional LSTM reads the whole phrase; the final states of both
  directions give μ and σ = softplus(·) of a diagonal Gaussian q(z|x); z = μ + σ·ε.
* Hierarchical decoder: z → tanh(FC) → initial state of a "conductor" LSTM that emits one
  embedding c_u per bar (U = ``bars`` subsequences). Bar u is decoded by a bottom-level
  LSTM whose initial state is tanh(FC(c_u)) and whose input at every step is the previous
  output concatenated with c_u; it decodes only its own bar, so the decoder cannot
  bypass z by attending to a long history (the paper's remedy for posterior collapse).
* Flat decoder (``decoder="flat"``): one LSTM over the whole phrase from tanh(FC(z)),
  with z concatenated to every input, the baseline of the paper's Table 1.
* Loss: reconstruction NLL + β·max(KL − free_nats, 0) with β annealed by :func:`kl_beta`.

Two representations: Magenta melody events (categorical per step; ``music-vae``,
``music-vae-flat``) and multi-track piano-rolls (independent Bernoulli per
track × pitch; ``music-vae-pianoroll``, :class:`MusicVAEPianoroll`).

The modes (sample from the prior, reconstruct, interpolate, attribute vectors) are the
functions at the end of this file; ``tunesmith vae`` wraps them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.config import Range, at_least
from tunesmith.data.batching import pad_sequences
from tunesmith.errors import ConfigError
from tunesmith.models.base import GenerativeModel, ModelConfig
from tunesmith.models.sampling import (
    SamplingControls,
    mask_logits,
    sample_bernoulli,
    sample_categorical,
)
from tunesmith.representations.info import DataInfo

BETA_SCHEDULES = ("constant", "linear", "sigmoid")
DECODERS = ("hierarchical", "flat")


@dataclass
class MusicVAEConfig(ModelConfig):
    """Sizes and training options of a MusicVAE (defaults: a small CPU-sized model)."""

    decoder: str = "hierarchical"  # "hierarchical" (conductor + per-bar LSTMs) | "flat"
    bars: int = 2  # phrase length in bars; the conductor emits one embedding per bar
    steps_per_bar: int = 16  # 16 = sixteenth notes in 4/4 (filled from the data)
    vocab_size: int = 130  # melody events: 0 hold, 1 note-off, 2.. note-on (from the data)
    n_keys: int = 0  # piano-roll only: tracks × pitches (from the data)
    n_tracks: int = 1  # piano-roll only: tracks (for per-track note caps when sampling)
    input_embedding: int = 64  # size of the token embedding / frame projection
    encoder_hidden: int = 256  # per direction; 2 layers, bidirectional
    encoder_layers: int = 2
    latent_dim: int = 64  # z size (512 in the paper)
    conductor_hidden: int = 256  # conductor LSTM size (1024 in the paper)
    conductor_layers: int = 2
    conductor_output: int = 128  # size of each bar embedding c_u
    decoder_hidden: int = 256  # bottom-level (or flat) decoder LSTM size
    decoder_layers: int = 2
    beta_max: float = 0.2  # final weight of the KL term (paper: 0.2 for 2-bar melodies)
    beta_schedule: str = "linear"  # "constant" | "linear" | "sigmoid" warm-up of β
    beta_warmup_steps: int = 2000  # training steps to reach beta_max
    free_nats: float = 0.0  # KL (nats per sequence) below this is not penalised
    dropout: float = 0.0  # between stacked LSTM layers

    choices: ClassVar[dict[str, tuple]] = {"decoder": DECODERS, "beta_schedule": BETA_SCHEDULES}
    ranges: ClassVar[dict[str, Range]] = {
        "bars": at_least(1), "steps_per_bar": at_least(1),
        **dict.fromkeys(("beta_max", "free_nats", "beta_warmup_steps"), at_least(0))}

    @property
    def steps(self) -> int:
        return self.bars * self.steps_per_bar


# --------------------------------------------------------------------------- pure functions


def kl_beta(step: int, beta_max: float, warmup_steps: int, schedule: str = "linear") -> float:
    """Weight β of the KL term at training step ``step`` (KL annealing, Bowman et al. 2016).

    * ``constant``: β_max from the start;
    * ``linear``: β_max · min(1, step / warmup_steps);
    * ``sigmoid``: β_max · σ(10 · (step / warmup_steps − 0.5)), i.e. β_max/2 at half the
      warm-up, ≈0.0067 β_max at step 0 and ≈0.9933 β_max at the end of the warm-up;
      exactly β_max from then on.
    """
    if schedule not in BETA_SCHEDULES:
        raise ConfigError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {schedule!r}")
    if schedule == "constant" or warmup_steps <= 0 or step >= warmup_steps:
        return float(beta_max)
    progress = max(step, 0) / warmup_steps
    if schedule == "linear":
        return float(beta_max * progress)
    return float(beta_max / (1.0 + math.exp(-10.0 * (progress - 0.5))))


def kl_divergence(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) per dimension: ½(μ² + σ² − 1) − log σ. Shapes (B, Z) -> (B, Z)."""
    return 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0) - torch.log(sigma)


def free_bits_kl(kl_per_sequence: torch.Tensor, free_nats: float) -> torch.Tensor:
    """max(KL − free_nats, 0) per sequence (Kingma et al. 2016; MusicVAE's free bits)."""
    return torch.clamp(kl_per_sequence - free_nats, min=0.0)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985) between codes (..., Z); t=0 -> z0, t=1 -> z1.

    Falls back to linear interpolation where the codes are (anti)parallel.
    """
    n0 = z0 / z0.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    n1 = z1 / z1.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = (n0 * n1).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    sin = torch.sin(omega)
    linear = (1 - t) * z0 + t * z1
    safe_sin = torch.where(sin.abs() < 1e-6, torch.ones_like(sin), sin)
    spherical = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / safe_sin
    return torch.where(sin.abs() < 1e-6, linear, spherical)


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """Active latent units (Burda et al. 2016): dims with Cov_x(E_q[z_d | x]) > threshold.

    ``mu`` (N, Z) are the posterior means over a data set. Returns (count, variances (Z,)).
    """
    variances = mu.var(dim=0, unbiased=True) if mu.shape[0] > 1 else torch.zeros(mu.shape[1])
    return int((variances > threshold).sum()), variances


def bar_windows(
    x: torch.Tensor, mask: torch.Tensor, steps: int, steps_per_bar: int, random: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut one bar-aligned window of ``steps`` steps out of each sequence of a batch.

    ``x`` (B, T, ...) and ``mask`` (B, T) -> (B, steps, ...), (B, steps). With
    ``random`` the window starts on a random bar inside the real (unmasked) steps, else on
    the first. Sequences shorter than the window are padded and masked.
    """
    batch, total = mask.shape
    if total < steps:
        pad = steps - total
        x = torch.cat([x, x.new_zeros(batch, pad, *x.shape[2:])], dim=1)
        mask = torch.cat([mask, mask.new_zeros(batch, pad)], dim=1)
        total = steps
    lengths = mask.sum(dim=1)  # (B,)
    starts = torch.zeros(batch, dtype=torch.long)
    if random:
        n_starts = ((lengths - steps).clamp_min(0) // steps_per_bar + 1).cpu()  # (B,)
        starts = (torch.rand(batch) * n_starts).long() * steps_per_bar
    index = starts[:, None] + torch.arange(steps)[None, :]  # (B, steps)
    index = index.to(x.device)
    rows = torch.arange(batch, device=x.device)[:, None]
    return x[rows, index], mask[rows, index]


# --------------------------------------------------------------------------- modules


def _initial_state(fc: nn.Linear, vector: torch.Tensor, layers: int, hidden: int):
    """tanh(FC(vector)) split into an LSTM's (h0, c0), each (layers, B, hidden)."""
    state = torch.tanh(fc(vector)).view(vector.shape[0], 2, layers, hidden)
    return (
        state[:, 0].transpose(0, 1).contiguous(),
        state[:, 1].transpose(0, 1).contiguous(),
    )


class MusicVAE(GenerativeModel):
    """MusicVAE over melody events (one categorical per step)."""

    family = "music-vae"
    representation = "melody"
    config_class = MusicVAEConfig
    config: MusicVAEConfig
    kl_step: torch.Tensor  # () long buffer: training steps taken, for the KL schedule

    def __init__(self, config: MusicVAEConfig):
        super().__init__(config)
        c = config
        self.input_proj = self._make_input_projection()  # tokens/frames -> (.., E)
        self.encoder = nn.LSTM(
            c.input_embedding, c.encoder_hidden, num_layers=c.encoder_layers,
            batch_first=True, bidirectional=True, dropout=c.dropout if c.encoder_layers > 1 else 0,
        )
        self.to_mu = nn.Linear(2 * c.encoder_hidden, c.latent_dim)
        self.to_sigma = nn.Linear(2 * c.encoder_hidden, c.latent_dim)
        if c.decoder == "hierarchical":
            self.conductor_init = nn.Linear(
                c.latent_dim, 2 * c.conductor_layers * c.conductor_hidden
            )
            self.conductor = nn.LSTM(
                1, c.conductor_hidden, num_layers=c.conductor_layers, batch_first=True,
                dropout=c.dropout if c.conductor_layers > 1 else 0,
            )
            self.conductor_out = nn.Linear(c.conductor_hidden, c.conductor_output)
            condition_size = c.conductor_output
        else:
            condition_size = c.latent_dim
        # the bottom-level decoder starts from tanh(FC(c_u)) (flat: from tanh(FC(z)))
        self.decoder_init = nn.Linear(condition_size, 2 * c.decoder_layers * c.decoder_hidden)
        self.decoder = nn.LSTM(
            c.input_embedding + condition_size, c.decoder_hidden, num_layers=c.decoder_layers,
            batch_first=True, dropout=c.dropout if c.decoder_layers > 1 else 0,
        )
        self.output = self._make_output_layer()
        # training steps seen, for the β schedule (a buffer: saved with the weights)
        self.register_buffer("kl_step", torch.zeros((), dtype=torch.long))

    # ---- representation-specific pieces (overridden for piano-rolls) ---------------
    batch_key = "events"

    @classmethod
    def config_for_data(cls, config, info: DataInfo):
        return config.updated(vocab_size=info.vocab_size, steps_per_bar=info.steps_per_bar)

    def _make_input_projection(self) -> nn.Module:
        # index vocab_size is the "start" token fed before the first step
        return nn.Embedding(self.config.vocab_size + 1, self.config.input_embedding)

    def _make_output_layer(self) -> nn.Module:
        return nn.Linear(self.config.decoder_hidden, self.config.vocab_size)

    def _start_input(self, batch: int, device) -> torch.Tensor:
        """The decoder's first input: the start token. -> (B,) long."""
        return torch.full((batch,), self.config.vocab_size, dtype=torch.long, device=device)

    def _shift_right(self, x: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing inputs: the start token, then x[:, :-1]. (B, T) -> (B, T)."""
        start = self._start_input(x.shape[0], x.device)[:, None]
        return torch.cat([start, x[:, :-1]], dim=1)

    def _log_prob(self, outputs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x_t | ...) per step: logits (B, T, V), tokens (B, T) -> (B, T)."""
        return -F.cross_entropy(outputs.transpose(1, 2), x, reduction="none")

    def _correct(self, outputs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """1 where the most likely output equals the target, per step. -> (B, T) bool."""
        return outputs.argmax(-1) == x

    def _draw(self, outputs: torch.Tensor, controls: SamplingControls, generator,
              greedy: bool) -> torch.Tensor:
        """One output per row: logits (B, V) -> (B,) long, among the events the training
        data holds (the output mask)."""
        if greedy:
            return mask_logits(outputs, self.allowed_outputs()).argmax(-1)
        return sample_categorical(outputs, controls, generator, self.allowed_outputs())

    def _empty_output(self, n: int, steps: int, device) -> torch.Tensor:
        return torch.zeros(n, steps, dtype=torch.long, device=device)

    # ---- encoder ------------------------------------------------------------------
    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        """q(z|x): (B, T) tokens (or (B, T, K) frames) -> μ (B, Z), σ (B, Z)."""
        embedded = self.input_proj(x)  # (B, T, E)
        if mask is not None and not bool(mask.all()):
            lengths = mask.sum(1).clamp_min(1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(
                embedded, lengths, batch_first=True, enforce_sorted=False
            )
            _, (h_n, _) = self.encoder(packed)
        else:
            _, (h_n, _) = self.encoder(embedded)
        # h_n (layers * 2, B, H): the last layer's forward and backward final states
        final = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # (B, 2H)
        mu = self.to_mu(final)
        sigma = F.softplus(self.to_sigma(final)) + 1e-6
        return mu, sigma

    # ---- decoder ------------------------------------------------------------------
    def bar_conditions(self, z: torch.Tensor) -> torch.Tensor:
        """Conductor: z (B, Z) -> one embedding per bar (B, U, C); flat: z as (B, 1, Z)."""
        c = self.config
        if c.decoder == "flat":
            return z[:, None, :]
        state = _initial_state(self.conductor_init, z, c.conductor_layers, c.conductor_hidden)
        zeros = z.new_zeros(z.shape[0], c.bars, 1)  # the conductor reads no input
        out, _ = self.conductor(zeros, state)  # (B, U, H_c)
        return self.conductor_out(out)  # (B, U, C)

    def decode_inputs(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Decoder features of every step given all its inputs at once (teacher forcing):
        z (B, Z), inputs (B, T, E) -> (B, T, H). The shared path of
        :meth:`decode_teacher_forced` and GrooVAE's controlled decoder."""
        c = self.config
        conditions = self.bar_conditions(z)  # (B, U, C)
        batch, steps = inputs.shape[:2]
        if c.decoder == "flat":
            state = _initial_state(self.decoder_init, z, c.decoder_layers, c.decoder_hidden)
            cond = conditions.expand(batch, steps, conditions.shape[-1])
            out, _ = self.decoder(torch.cat([inputs, cond], -1), state)  # (B, T, H)
            return out
        # hierarchical: all bars decoded in parallel, each from its own c_u only
        u, length = c.bars, steps // c.bars
        bar_inputs = inputs.reshape(batch * u, length, -1)  # (B·U, L, E)
        bar_cond = conditions.reshape(batch * u, -1)  # (B·U, C)
        state = _initial_state(self.decoder_init, bar_cond, c.decoder_layers, c.decoder_hidden)
        cond = bar_cond[:, None, :].expand(-1, length, -1)  # (B·U, L, C)
        out, _ = self.decoder(torch.cat([bar_inputs, cond], -1), state)  # (B·U, L, H)
        return out.reshape(batch, steps, -1)

    def decode_teacher_forced(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Output logits of every step given the true previous outputs. -> (B, T, V or K)."""
        inputs = self.input_proj(self._shift_right(x))  # (B, T, E)
        return self.output(self.decode_inputs(z, inputs))

    @torch.no_grad()
    def decode(
        self, z: torch.Tensor, controls: SamplingControls | None = None, greedy: bool = False,
        steps: int | None = None
    ) -> torch.Tensor:
        """Decode codes z (B, Z) autoregressively, each output fed back as the next input.

        ``greedy`` takes the most likely output at each step (argmax / p > 0.5);
        otherwise outputs are drawn with ``controls``. -> (B, T) tokens or (B, T, K).
        """
        c = self.config
        controls = controls or SamplingControls()
        generator = controls.generator(z.device)
        steps = steps or c.steps
        if steps % c.steps_per_bar:
            raise ConfigError(
                f"steps ({steps}) must be a whole number of {c.steps_per_bar}-step bars"
            )
        if c.decoder == "hierarchical" and steps != c.steps:
            raise ConfigError(f"the hierarchical decoder produces exactly {c.steps} steps")
        batch = z.shape[0]
        result = self._empty_output(batch, steps, z.device)
        conditions = self.bar_conditions(z)  # (B, U, C)
        previous = self._start_input(batch, z.device)
        state = None
        for t in range(steps):
            if c.decoder == "flat":
                cond = conditions[:, 0]
                if t == 0:
                    state = _initial_state(self.decoder_init, z, c.decoder_layers, c.decoder_hidden)
            else:
                cond = conditions[:, t // c.steps_per_bar]  # (B, C)
                if t % c.steps_per_bar == 0:  # a new bar restarts from tanh(FC(c_u))
                    state = _initial_state(
                        self.decoder_init, cond, c.decoder_layers, c.decoder_hidden
                    )
            step_input = torch.cat([self.input_proj(previous), cond], -1)[:, None]  # (B, 1, .)
            out, state = self.decoder(step_input, state)
            previous = self._draw(self.output(out[:, 0]), controls, generator, greedy)
            result[:, t] = previous
        return result

    # ---- training -----------------------------------------------------------------
    def _windows(self, batch: dict[str, torch.Tensor]):
        x = batch[self.batch_key]
        mask = batch.get("mask")
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        if x.shape[1] == self.config.steps and bool(mask.all()):
            return x, mask
        return bar_windows(x, mask, self.config.steps, self.config.steps_per_bar, self.training)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """−ELBO with annealed β and free bits: NLL + β·max(KL − free_nats, 0) per sequence."""
        c = self.config
        x, mask = self._windows(batch)  # (B, T), (B, T)
        mu, sigma = self.encode(x, mask)
        z = mu + sigma * torch.randn_like(sigma)  # reparameterisation
        outputs = self.decode_teacher_forced(z, x)
        weight = mask.float()
        nll = -(self._log_prob(outputs, x) * weight).sum(1)  # (B,)
        kl = kl_divergence(mu, sigma).sum(1)  # (B,)
        beta = kl_beta(int(self.kl_step), c.beta_max, c.beta_warmup_steps, c.beta_schedule)
        kl_cost = free_bits_kl(kl, c.free_nats)
        loss = (nll + beta * kl_cost).mean()
        if self.training:
            self.kl_step += 1
        with torch.no_grad():
            accuracy = (self._correct(outputs, x).float() * weight).sum() / weight.sum()
        return {
            "loss": loss,
            "reconstruction": nll.mean().detach(),
            "kl": kl.mean().detach(),
            "beta": torch.tensor(beta),
            "accuracy": accuracy,
        }

    # ---- sampling -----------------------------------------------------------------
    def prior_codes(self, n: int, controls: SamplingControls,
                    condition: dict | None = None) -> torch.Tensor:
        """``condition["z"]`` when given, else z ~ N(0, I) drawn with the controls' seed
        -> (n, Z) on the model's device."""
        device = next(self.parameters()).device
        if condition is not None and "z" in condition:
            return condition["z"].to(device)
        generator = controls.generator("cpu")
        return torch.randn(n, self.config.latent_dim, generator=generator).to(device)

    @torch.no_grad()
    def generate(self, n: int, steps: int | None = None,
                 controls: SamplingControls | None = None, prime: torch.Tensor | None = None,
                 condition: dict | None = None) -> torch.Tensor:
        """Sample from the prior: z ~ N(0, I), then decode. ``condition={"z": (n, Z)}``
        decodes given codes instead. -> (n, steps) tokens / (n, steps, K) frames."""
        if prime is not None:
            raise ConfigError("MusicVAE does not continue a prime; use reconstruct or interpolate")

        controls = controls or SamplingControls()
        z = self.prior_codes(n, controls, condition)
        return self.decode(z, controls, steps=steps or self.config.steps)


class MusicVAEPianoroll(MusicVAE):
    """MusicVAE over multi-track piano-rolls: a Bernoulli per track × pitch and step."""

    family = "music-vae-pianoroll"
    representation = "pianoroll"
    batch_key = "frames"

    @classmethod
    def config_for_data(cls, config, info: DataInfo):
        return config.updated(n_keys=info.keys, n_tracks=info.n_tracks,
                              steps_per_bar=info.steps_per_bar)

    def _make_input_projection(self):
        if self.config.n_keys <= 0:
            raise ConfigError("music-vae-pianoroll needs n_keys (tracks × pitches) > 0")
        return nn.Linear(self.config.n_keys, self.config.input_embedding)

    def _make_output_layer(self):
        return nn.Linear(self.config.decoder_hidden, self.config.n_keys)

    def _start_input(self, batch, device):
        return torch.zeros(batch, self.config.n_keys, device=device)  # a silent frame

    def _shift_right(self, x):
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)

    def _log_prob(self, outputs, x):
        return -F.binary_cross_entropy_with_logits(outputs, x.float(), reduction="none").sum(-1)

    def _correct(self, outputs, x):
        """A step is right when every key of the frame is right."""
        return ((outputs > 0) == (x > 0.5)).all(-1)

    def _draw(self, outputs, controls: SamplingControls, generator, greedy):
        """Keys the training data never sounds (the output mask) stay silent."""
        allowed = self.allowed_outputs()
        if greedy:
            notes = (outputs > 0).float()
            return notes if allowed is None else notes * allowed.float()

        group = self.config.n_keys // max(self.config.n_tracks, 1)
        return sample_bernoulli(outputs, controls, generator, group_size=group, allowed=allowed)

    def _empty_output(self, n, steps, device):
        return torch.zeros(n, steps, self.config.n_keys, device=device)

    def encode(self, x, mask=None):
        return super().encode(x.float(), mask)

    def decode_teacher_forced(self, z, x):
        return super().decode_teacher_forced(z, x.float())


# --------------------------------------------------------------------------- modes


def _as_batch(model: MusicVAE, sequences) -> tuple[torch.Tensor, torch.Tensor]:
    """A list of (T_i,) token / (T_i, K) frame arrays -> the model's fixed-length window."""
    x, mask = pad_sequences(sequences)
    x = x.long() if model.batch_key == "events" else x.float()
    device = next(model.parameters()).device
    return bar_windows(
        x.to(device), mask.to(device), model.config.steps, model.config.steps_per_bar, False
    )


@torch.no_grad()
def encode_sequences(model: MusicVAE, sequences) -> torch.Tensor:
    """Posterior means μ (N, Z) of sequences (the first ``bars`` bars of each)."""
    model.eval()
    x, mask = _as_batch(model, sequences)
    mu, _ = model.encode(x, mask)
    return mu


@torch.no_grad()
def sample_prior(model: MusicVAE, n: int, controls: SamplingControls | None = None) -> torch.Tensor:
    """n phrases decoded from z ~ N(0, I)."""
    model.eval()
    return model.generate(n, model.config.steps, controls)


@torch.no_grad()
def reconstruct(model: MusicVAE, sequences, controls: SamplingControls | None = None,
                greedy: bool = True) -> torch.Tensor:
    """Encode to μ and decode again (argmax decoding by default)."""
    model.eval()
    return model.decode(encode_sequences(model, sequences), controls, greedy=greedy)


@torch.no_grad()
def interpolate(
    model: MusicVAE, start, end, n_steps: int = 5, controls: SamplingControls | None = None,
    greedy: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``n_steps`` codes slerped from μ(start) to μ(end) (both ends included).

    Returns (codes (n_steps, Z), phrases (n_steps, T[, K])).
    """
    if n_steps < 2:
        raise ConfigError(f"interpolation needs at least 2 steps, got {n_steps}")
    mu = encode_sequences(model, [start, end])  # (2, Z)
    codes = torch.stack([slerp(mu[0], mu[1], i / (n_steps - 1)) for i in range(n_steps)])
    return codes, model.decode(codes, controls, greedy=greedy)


def note_density(model: MusicVAE, sequence) -> float:
    """Note onsets per step of a phrase: melody events >= 2, or piano-roll onsets."""
    x = torch.as_tensor(sequence)
    if model.batch_key == "events":
        return float((x >= 2).float().mean()) if len(x) else 0.0
    frames = (x > 0.5).float()  # (T, K)
    previous = torch.cat([torch.zeros_like(frames[:1]), frames[:-1]], 0)
    return float(((frames > 0) & (previous == 0)).float().sum(-1).mean()) if len(x) else 0.0


@torch.no_grad()
def attribute_vector(model: MusicVAE, sequences, attribute=None, quantile: float = 0.25):
    """Mean μ of the pieces high in an attribute minus that of the pieces low in it.

    ``attribute(model, sequence) -> float`` defaults to :func:`note_density`; "high" and
    "low" are the top and bottom ``quantile`` of the pieces (Roberts et al. 2018, §5.3).
    """
    attribute = attribute or note_density
    values = torch.tensor([attribute(model, s) for s in sequences])
    if len(sequences) < 2 or float(values.max() - values.min()) == 0:
        raise ConfigError("an attribute vector needs pieces that differ in the attribute")
    mu = encode_sequences(model, sequences)
    low_cut, high_cut = torch.quantile(values, quantile), torch.quantile(values, 1 - quantile)
    high, low = values >= high_cut, values <= low_cut
    return mu[high].mean(0) - mu[low].mean(0)


@torch.no_grad()
def apply_attribute(
    model: MusicVAE, sequences, vector: torch.Tensor, scales=(0.0, 1.0),
    controls: SamplingControls | None = None,
    greedy: bool = True,
) -> list[torch.Tensor]:
    """Decode μ(x) + s·vector for each scale s. -> one (N, T[, K]) tensor per scale."""
    mu = encode_sequences(model, sequences)
    return [model.decode(mu + s * vector, controls, greedy=greedy) for s in scales]
