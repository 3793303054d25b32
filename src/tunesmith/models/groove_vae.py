"""GrooVAE: MusicVAE over drum hits, velocities and micro-timing offsets.

Gillick, Roberts, Engel, Eck & Bamman, "Learning to Groove with Inverse Sequence
Transformations", ICML 2019. Built on :mod:`tunesmith.models.music_vae` (Roberts et al.
2018): the same two-layer bidirectional LSTM encoder, conductor and per-bar decoder (or
flat decoder), KL annealing and free bits.

* Data: ``(B, T, 27)`` windows of 2 bars of sixteenths, hits | velocities | offsets of 9
  drum classes (:mod:`tunesmith.representations.drums`).
* Output: per step a joint hit/velocity/offset vector from one linear layer (B, T, 27):
  hit logits, velocity = sigmoid(·), offset = ½·tanh(·). Reconstruction loss, summed over
  steps and voices: binary cross-entropy of the hits plus the squared errors of the
  velocities and offsets (the paper's §3.1), these two where the data has a hit
  (:func:`reconstruction_terms` says why).
* Inverse sequence transformations (the paper's §3.2): GrooVAE learns to undo a
  transformation of the drums, which the encoder reads, and which the decoder also reads
  at every step as a *control* (Magenta's ``groovae_2bar_hits_control``). One model here
  learns the four tasks at once, each training window drawing a task (``task_mix``); a
  one-hot of the task is part of the control:

  - ``sample``: the encoder reads the drums themselves, the decoder only the task (a
    plain VAE: sampling from the prior, interpolation);
  - ``humanize``: the hits alone (:func:`~tunesmith.representations.drums.quantise`,
    no dynamics or micro-timing) -> the performance;
  - ``drumify``: the single-voice tap (:func:`~tunesmith.representations.drums.flatten_to_tap`)
    -> a full kit;
  - ``infill``: the drums with some voices removed (the hi-hats with probability
    ``hihat_infill``, else a random subset) and a mask of the voices kept -> all voices.

  When generating, what the input fixes is written over the decoder's draws before they
  are fed back (:meth:`GrooVAE.decode`'s ``forced``): Humanize keeps the input's hits
  exactly, Infill keeps the other voices bit-identical.

The modes are the functions at the end; ``tunesmith groove`` wraps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.config import UNIT, Range, at_least
from tunesmith.errors import ConfigError
from tunesmith.models.music_vae import (
    MusicVAE,
    MusicVAEConfig,
    _initial_state,
    free_bits_kl,
    kl_beta,
    kl_divergence,
    slerp,
)
from tunesmith.models.sampling import SamplingControls
from tunesmith.representations import drums as drum_repr
from tunesmith.representations.info import DataInfo

TASKS = ("sample", "humanize", "drumify", "infill")
N = drum_repr.N_CLASSES  # 9 voices
WIDTH = drum_repr.WIDTH  # 27 = hits | velocities | offsets
#: control = given voices (27) | tap (3) | voices kept (9) | task one-hot (4)
CONTROL = WIDTH + 3 + N + len(TASKS)


@dataclass
class GrooVAEConfig(MusicVAEConfig):
    """MusicVAE's sizes plus the task mixture (defaults: a small CPU-sized model)."""

    encoder_hidden: int = 160  # per direction (512 in the paper); 1.8 M parameters in all
    conductor_hidden: int = 160
    decoder_hidden: int = 160  # (256 in the paper)
    latent_dim: int = 64  # (256 in the paper)
    beta_max: float = 0.2  # the paper's β for 2-bar drums
    # KL below this many nats per window is free (Magenta's 2-bar configs: 48 free bits).
    # At 0 the KL fell to 0.004 nats by epoch 2 of a GMD run; with 48 the first shipped
    # run kept a KL of ~34 nats, yet spent it on a near-constant μ (0 active units): in 32
    # CPU minutes the decoder, which reads each step's control and the previous step,
    # learnt to ignore z. decoder_input_dropout on the sample task fixed that
    # (docs/benchmarks.md, "Drums that groove")
    free_nats: float = 48.0
    # Word dropout (Bowman et al. 2016, §3.2), per task in the order of TASKS: while
    # training, each step's previous-step drums fed to the decoder are zeroed with the
    # window's task's probability, so the decoder cannot rebuild the groove from its own
    # past and must read it from z (and the control). All 0 (the default, and the first
    # shipped model's): they are fed always; the shipped one has [0.75, 0, 0, 0]. A try
    # with 0.5 for every task still had 0 active units after 2 epochs; the sample task,
    # whose decoder reads nothing but z, is where it matters (docs/benchmarks.md)
    decoder_input_dropout: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    # BN-VAE (Zhu et al., ACL 2020): μ goes through a batch normalisation without learnt
    # affine, times this fixed scale γ, so every latent unit varies across windows with
    # variance γ² (a floor under the KL: ½·γ² per unit on average) and the decoder cannot
    # meet a constant code. 0 (the default; the shipped model's too): no normalisation
    mu_batchnorm: float = 0.0
    # A learned per-position bias (steps_per_bar, 27) added to the raw outputs: each
    # voice's hit logit, velocity and offset at each 16th of the bar start from their own
    # value, the model's output is a residual from that template (baseline (b) of
    # benchmarks/groove.py is this table, fitted). False (the default, and the first
    # shipped model's): no table; the shipped one has it
    position_bias: bool = False
    # probability of each training task, in the order of TASKS
    task_mix: list[float] = field(default_factory=lambda: [0.25, 0.25, 0.25, 0.25])
    hihat_infill: float = 0.5  # infill windows whose removed voices are the hi-hats

    ranges: ClassVar[dict[str, Range]] = {"hihat_infill": UNIT, "mu_batchnorm": at_least(0)}

    def check(self) -> None:
        super().check()
        if len(self.task_mix) != len(TASKS) or min(self.task_mix) < 0 or sum(self.task_mix) <= 0:
            raise ConfigError(f"task_mix needs {len(TASKS)} weights >= 0 ({', '.join(TASKS)}) "
                              f"with a positive sum, got {self.task_mix}")
        if (len(self.decoder_input_dropout) != len(TASKS)
                or not all(0 <= p < 1 for p in self.decoder_input_dropout)):
            raise ConfigError(f"decoder_input_dropout needs {len(TASKS)} probabilities in "
                              f"[0, 1) ({', '.join(TASKS)}), got {self.decoder_input_dropout}")


# --------------------------------------------------------------------------- pure functions


def reconstruction_terms(outputs: torch.Tensor, x: torch.Tensor, weight: torch.Tensor
                         ) -> dict[str, torch.Tensor]:
    """Per-sequence loss terms of raw outputs (B, T, 27) against drums x (B, T, 27).

    ``weight`` (B, T) masks padded steps. Returns (B,) sums over steps and voices of
    ``hits`` = BCE(hit logits, hits), and, over the cells with a true hit only,
    ``velocities`` = (sigmoid(v) − v*)² and ``offsets`` = (½·tanh(o) − o*)².

    Velocities and offsets are scored where the target has a hit: the samplers multiply
    them by the hits they draw or are given, so their value elsewhere is never used, and
    squared errors against the zeros of the ~85 % empty cells would pull every
    prediction towards 0 by the model's doubt about the hit (at epoch 0 of the GMD run,
    sampled velocities averaged 22 against the data's 71).
    """
    hits_logits, velocities, offsets = split_outputs(outputs)
    w = weight[..., None]  # (B, T, 1)
    hits = x[..., drum_repr.HITS]
    bce = F.binary_cross_entropy_with_logits(hits_logits, hits, reduction="none")
    struck = hits * w  # velocities and offsets count where there is a hit
    return {
        "hits": (bce * w).sum((1, 2)),
        "velocities": ((velocities - x[..., drum_repr.VELOCITIES]) ** 2 * struck).sum((1, 2)),
        "offsets": ((offsets - x[..., drum_repr.OFFSETS]) ** 2 * struck).sum((1, 2)),
    }


def split_outputs(outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw (…, 27) -> hit logits, velocities in (0, 1), offsets in (−½, ½), each (…, 9)."""
    return (outputs[..., :N], torch.sigmoid(outputs[..., N:2 * N]),
            0.5 * torch.tanh(outputs[..., 2 * N:]))


def make_controls(x: torch.Tensor, task: torch.Tensor, kept: torch.Tensor | None = None,
                  tap: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(encoder input, decoder control), each (B, T, CONTROL), of drums x (B, T, 27).

    ``task`` (B,) indexes TASKS; ``kept`` (B, 9) bool: the voices infill keeps; ``tap``
    (B, T, 3): drumify's tap (default: flatten_to_tap of x).
    """
    batch, steps, _ = x.shape
    given = torch.zeros_like(x)  # (B, T, 27)
    tap_part = torch.zeros(batch, steps, 3, device=x.device)
    kept_part = torch.zeros(batch, steps, N, device=x.device)
    one_hot = F.one_hot(task, len(TASKS)).float()[:, None, :].expand(-1, steps, -1)
    is_task = [(task == i)[:, None, None] for i in range(len(TASKS))]  # (B, 1, 1) each
    # humanize: the hits alone
    hits_only = torch.zeros_like(x)
    hits_only[..., drum_repr.HITS] = (x[..., drum_repr.HITS] > 0.5).float()
    given = torch.where(is_task[1], hits_only, given)
    # drumify: the tap
    if tap is None:
        tap = torch.as_tensor(drum_repr.flatten_to_tap(x.detach().cpu().numpy()),
                              device=x.device)
    tap_part = torch.where(is_task[2], tap, tap_part)
    # infill: the kept voices, and which they are
    if kept is not None:
        keep3 = kept.float().repeat(1, 3)[:, None, :]  # (B, 1, 27)
        given = torch.where(is_task[3], x * keep3, given)
        kept_part = torch.where(is_task[3], kept.float()[:, None, :].expand(-1, steps, -1),
                                kept_part)
    control = torch.cat([given, tap_part, kept_part, one_hot], -1)  # (B, T, CONTROL)
    # sample: the encoder reads the drums, the decoder only the task
    full = torch.cat([x, torch.zeros_like(tap_part), torch.ones_like(kept_part), one_hot], -1)
    encoder_input = torch.where(is_task[0], full, control)
    decoder_control = torch.where(is_task[0], torch.cat([torch.zeros_like(x), tap_part * 0,
                                                         kept_part * 0, one_hot], -1), control)
    return encoder_input, decoder_control


def draw_tasks(batch: int, config: GrooVAEConfig, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """A task per window (B,) from ``task_mix`` and the voices infill keeps (B, 9) bool:
    all but the hi-hats with probability ``hihat_infill``, else each voice removed with
    probability ⅓ (at least one removed)."""
    weights = torch.tensor(config.task_mix, dtype=torch.float)
    task = torch.multinomial(weights, batch, replacement=True, generator=generator)
    removed = torch.rand(batch, N, generator=generator) < 1 / 3
    none_removed = ~removed.any(1)
    removed[none_removed, torch.randint(0, N, (int(none_removed.sum()),),
                                        generator=generator)] = True
    hihats = torch.rand(batch, generator=generator) < config.hihat_infill
    hihat_mask = torch.zeros(N, dtype=torch.bool)
    hihat_mask[list(drum_repr.VOICE_GROUPS["hihat"])] = True
    removed = torch.where(hihats[:, None], hihat_mask[None, :], removed)
    return task, ~removed


# --------------------------------------------------------------------------- module


class GrooVAE(MusicVAE):
    """MusicVAE over drums with a joint hit/velocity/offset output and task controls."""

    family = "groovae"
    representation = "drums"
    config_class = GrooVAEConfig
    batch_key = "drums"
    config: GrooVAEConfig
    kl_step: torch.Tensor  # a registered buffer (MusicVAE): optimisation steps taken

    def __init__(self, config: GrooVAEConfig):
        super().__init__(config)
        # the decoder's input: the previous step's drums and this step's control
        self.decoder_proj = nn.Linear(WIDTH + CONTROL, config.input_embedding)
        # created only when asked, so checkpoints without them (the first shipped one) still load
        self.mu_norm: nn.BatchNorm1d | None = None
        if config.mu_batchnorm > 0:
            self.mu_norm = nn.BatchNorm1d(config.latent_dim, affine=False)
        self.position_table: nn.Parameter | None = None
        if config.position_bias:
            self.position_table = nn.Parameter(torch.zeros(config.steps_per_bar, WIDTH))

    def _positioned(self, outputs: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Raw outputs (B, T, 27) of steps start..start+T-1 plus the position table's row
        of each step's 16th in the bar (no-op without ``position_bias``)."""
        if self.position_table is None:
            return outputs
        positions = torch.arange(start, start + outputs.shape[1],
                                 device=outputs.device) % self.config.steps_per_bar
        return outputs + self.position_table[positions]  # (T, 27) broadcast over B

    def _dropped(self, previous: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
        """Word dropout of the previous-step drums (B, T, 27): whole steps zeroed with
        the probability of each window's task (read from the control's task one-hot,
        (B, T, CONTROL)), in training mode only."""
        rates = self.config.decoder_input_dropout
        if not self.training or max(rates) <= 0:
            return previous
        one_hot = control[:, 0, -len(TASKS):]  # (B, 4)
        p = one_hot @ torch.tensor(rates, dtype=one_hot.dtype, device=one_hot.device)  # (B,)
        keep = torch.rand(previous.shape[:2], device=previous.device) >= p[:, None]  # (B, T)
        return previous * keep[..., None].to(previous.dtype)

    @classmethod
    def config_for_data(cls, config, info: DataInfo):
        cfg = drum_repr.DrumsConfig.from_dict(info.repr_config)
        return config.updated(steps_per_bar=info.steps_per_bar, bars=cfg.window_bars)

    def _make_input_projection(self) -> nn.Module:
        return nn.Linear(CONTROL, self.config.input_embedding)  # the encoder's input

    def _make_output_layer(self) -> nn.Module:
        return nn.Linear(self.config.decoder_hidden, WIDTH)

    def encode(self, x, mask=None):
        """q(z|input): encoder inputs (B, T, CONTROL) -> μ, σ (B, Z); with
        ``mu_batchnorm`` γ, μ = γ·BN(μ) (batch statistics in training, running ones in
        eval)."""
        mu, sigma = super().encode(x.float(), mask)
        if self.mu_norm is not None:
            if self.training and mu.shape[0] < 2:
                raise ConfigError("mu_batchnorm needs training batches of 2 windows or more")
            mu = self.config.mu_batchnorm * self.mu_norm(mu)
        return mu, sigma

    # ---- decoder ------------------------------------------------------------------
    def decode_controlled(self, z: torch.Tensor, x: torch.Tensor, control: torch.Tensor
                          ) -> torch.Tensor:
        """Teacher-forced raw outputs (B, T, 27) given z (B, Z), the true drums x and the
        decoder control (B, T, CONTROL)."""
        previous = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)  # (B, T, 27)
        previous = self._dropped(previous, control)
        inputs = self.decoder_proj(torch.cat([previous, control], -1))  # (B, T, E)
        return self._positioned(self.output(self.decode_inputs(z, inputs)))  # (B, T, 27)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, controls: SamplingControls | None = None,
               greedy: bool = False, steps: int | None = None,
               control: torch.Tensor | None = None,
               forced: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Decode codes z (B, Z) step by step -> drums (B, T, 27).

        A hit is drawn from its Bernoulli (logit / temperature, or above ``threshold``;
        ``greedy``: p > ½); velocity and offset are the predicted values where there is
        a hit, else 0. ``control`` (B, T, CONTROL) defaults to the ``sample`` task's;
        ``forced`` = (values (B, T, 27), which (B, T, 27) bool) overwrites those outputs
        before they are fed back.
        """
        c = self.config
        controls = controls or SamplingControls()
        generator = controls.generator(z.device)
        steps = steps or c.steps
        if steps != c.steps:
            raise ConfigError(f"GrooVAE decodes exactly {c.steps} steps ({c.bars} bars)")
        batch = z.shape[0]
        if control is None:
            control = torch.zeros(batch, steps, CONTROL, device=z.device)
            control[..., -len(TASKS)] = 1.0  # the sample task
        result = torch.zeros(batch, steps, WIDTH, device=z.device)
        conditions = self.bar_conditions(z)  # (B, U, C)
        previous = torch.zeros(batch, WIDTH, device=z.device)
        state = None
        temperature = max(float(controls.temperature), 1e-6)
        for t in range(steps):
            if c.decoder == "flat":
                cond = conditions[:, 0]
                if t == 0:
                    state = _initial_state(self.decoder_init, z, c.decoder_layers,
                                           c.decoder_hidden)
            else:
                cond = conditions[:, t // c.steps_per_bar]  # (B, C)
                if t % c.steps_per_bar == 0:
                    state = _initial_state(self.decoder_init, cond, c.decoder_layers,
                                           c.decoder_hidden)
            step_input = torch.cat([self.decoder_proj(torch.cat([previous, control[:, t]], -1)),
                                    cond], -1)[:, None]  # (B, 1, E + C)
            out, state = self.decoder(step_input, state)
            raw = self._positioned(self.output(out), t)[:, 0]  # (B, 27)
            logits, velocity, offset = split_outputs(raw)  # (B, 9) each
            if greedy:
                hits = (logits > 0).float()
            elif controls.threshold is not None:
                hits = (torch.sigmoid(logits) > controls.threshold).float()
            else:
                probs = torch.sigmoid(logits / temperature)
                hits = torch.bernoulli(probs, generator=generator)
            if forced is not None:  # forced hits first: they get the model's dynamics
                values, which = forced
                hits = torch.where(which[:, t, :N], values[:, t, :N], hits)
            step = torch.cat([hits, velocity * hits, offset * hits], -1)  # (B, 27)
            if forced is not None:
                step = torch.where(which[:, t], values[:, t], step)
            result[:, t] = step
            previous = step
        return result

    # ---- training -----------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """−ELBO: (hit BCE + velocity SE + offset SE) + β·max(KL − free_nats, 0) per
        window, each window with a task drawn from ``task_mix``."""
        c = self.config
        x, mask = self._windows(batch)  # (B, T, 27), (B, T)
        x = x.float()
        task, kept = draw_tasks(x.shape[0], c)
        task, kept = task.to(x.device), kept.to(x.device)
        encoder_input, control = make_controls(x, task, kept)
        mu, sigma = self.encode(encoder_input, mask)
        z = mu + sigma * torch.randn_like(sigma)  # reparameterisation
        outputs = self.decode_controlled(z, x, control)
        weight = mask.float()
        terms = reconstruction_terms(outputs, x, weight)
        nll = terms["hits"] + terms["velocities"] + terms["offsets"]  # (B,)
        kl = kl_divergence(mu, sigma).sum(1)
        beta = kl_beta(int(self.kl_step), c.beta_max, c.beta_warmup_steps, c.beta_schedule)
        loss = (nll + beta * free_bits_kl(kl, c.free_nats)).mean()
        if self.training:
            self.kl_step += 1
        with torch.no_grad():
            hits = x[..., drum_repr.HITS] > 0.5
            predicted = outputs[..., :N] > 0
            w = weight[..., None].bool()
            accuracy = ((predicted == hits) & w).sum() / (w.sum() * N)
        return {"loss": loss, "reconstruction": nll.mean().detach(),
                "hits": terms["hits"].mean().detach(),
                "velocities": terms["velocities"].mean().detach(),
                "offsets": terms["offsets"].mean().detach(),
                "kl": kl.mean().detach(), "beta": torch.tensor(beta), "accuracy": accuracy}

    @torch.no_grad()
    def generate(self, n: int, steps: int | None = None,
                 controls: SamplingControls | None = None,
                 prime: torch.Tensor | None = None,
                 condition: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Drums from the prior (the ``sample`` task): z ~ N(0, I) -> (n, T, 27)."""
        if prime is not None:
            raise ConfigError("GrooVAE does not continue a prime; use tunesmith groove")
        controls = controls or SamplingControls()
        return self.decode(self.prior_codes(n, controls, condition), controls, steps=steps)


# --------------------------------------------------------------------------- modes


def _windows_of(model: GrooVAE, array: np.ndarray) -> torch.Tensor:
    """A performance (T, C) -> its consecutive windows (W, steps, C) (zero-padded end)."""
    steps = model.config.steps
    array = np.asarray(array, dtype=np.float32)
    n = max(1, -(-len(array) // steps))
    padded = np.zeros((n * steps, *array.shape[1:]), np.float32)
    padded[: len(array)] = array
    device = next(model.parameters()).device
    return torch.as_tensor(padded.reshape(n, steps, *array.shape[1:]), device=device)


def _run_task(model: GrooVAE, x: torch.Tensor, task: str, kept=None, tap=None,
              controls: SamplingControls | None = None,
              forced=None, use_mean: bool = True, greedy: bool = False) -> torch.Tensor:
    model.eval()
    task_index = torch.full((x.shape[0],), TASKS.index(task), dtype=torch.long,
                            device=x.device)
    encoder_input, control = make_controls(x, task_index, kept, tap)
    mu, sigma = model.encode(encoder_input)
    if use_mean:
        z = mu
    else:
        generator = controls.generator("cpu") if controls is not None else None
        z = mu + sigma * torch.randn(mu.shape, generator=generator).to(mu.device)
    return model.decode(z, controls, greedy=greedy, control=control, forced=forced)


@torch.no_grad()
def humanize(model: GrooVAE, drums: np.ndarray,
             controls: SamplingControls | None = None) -> np.ndarray:
    """Velocities and micro-timing for quantised drums (T, 27) -> (T', 27), T' = T in
    whole windows; the input's hits are kept exactly."""
    x = _windows_of(model, drums)  # (W, S, 27)
    hits = (x[..., drum_repr.HITS] > 0.5).float()
    values = torch.zeros_like(x)
    values[..., drum_repr.HITS] = hits
    which = torch.zeros_like(x, dtype=torch.bool)
    which[..., drum_repr.HITS] = True
    out = _run_task(model, x, "humanize", controls=controls, forced=(values, which))
    return out.reshape(-1, WIDTH).cpu().numpy()


@torch.no_grad()
def drumify(model: GrooVAE, tap: np.ndarray, controls: SamplingControls | None = None,
            greedy: bool = False) -> np.ndarray:
    """A full kit (T', 27) for a tap (T, 3) (hit, velocity, offset per step); ``greedy``
    strikes where p(hit) > ½ instead of drawing."""
    tap_windows = _windows_of(model, tap)  # (W, S, 3)
    x = torch.zeros(*tap_windows.shape[:2], WIDTH, device=tap_windows.device)
    out = _run_task(model, x, "drumify", tap=tap_windows, controls=controls, greedy=greedy)
    return out.reshape(-1, WIDTH).cpu().numpy()


@torch.no_grad()
def infill(model: GrooVAE, drums: np.ndarray, voices: list[int],
           controls: SamplingControls | None = None,
           greedy: bool = False) -> np.ndarray:
    """Regenerate ``voices`` (class indices) of drums (T, 27); every other voice is kept
    bit-identical. -> (T', 27). ``greedy``: see :func:`drumify`."""
    x = _windows_of(model, drums)
    kept = torch.ones(x.shape[0], N, dtype=torch.bool, device=x.device)
    kept[:, voices] = False
    which = kept.repeat(1, 3)[:, None, :].expand(-1, x.shape[1], -1)  # (W, S, 27)
    out = _run_task(model, x, "infill", kept=kept, controls=controls, forced=(x, which),
                    greedy=greedy)
    return out.reshape(-1, WIDTH).cpu().numpy()


@torch.no_grad()
def sample(model: GrooVAE, n: int, controls: SamplingControls | None = None) -> np.ndarray:
    """n windows from the prior -> (n, steps, 27)."""
    model.eval()
    return model.generate(n, controls=controls).cpu().numpy()


@torch.no_grad()
def interpolate(model: GrooVAE, start: np.ndarray, end: np.ndarray, n_steps: int = 5,
                controls: SamplingControls | None = None, greedy: bool = True) -> np.ndarray:
    """Decode ``n_steps`` codes slerped from μ(first window of start) to μ(end's)
    (both ends included) -> (n_steps, steps, 27)."""
    if n_steps < 2:
        raise ConfigError(f"interpolation needs at least 2 steps, got {n_steps}")
    model.eval()
    x = torch.cat([_windows_of(model, start)[:1], _windows_of(model, end)[:1]])  # (2, S, 27)
    task = torch.zeros(2, dtype=torch.long, device=x.device)
    encoder_input, _ = make_controls(x, task)
    mu, _ = model.encode(encoder_input)
    codes = torch.stack([slerp(mu[0], mu[1], i / (n_steps - 1)) for i in range(n_steps)])
    return model.decode(codes, controls, greedy=greedy).cpu().numpy()
