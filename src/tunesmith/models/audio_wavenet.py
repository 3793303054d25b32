"""WaveNet over raw audio: μ-law samples, a 256-way softmax, gated dilated residual stacks,
global and local (piano-roll) conditioning, and cached (Fast WaveNet) generation.

van den Oord et al. (2016), "WaveNet: a generative model for raw audio": audio is
μ-law companded and quantised to 2^bits levels (§2.2), the model is a stack of causal
dilated convolutions (kernel 2, dilations 1, 2, …, 2^(levels−1) repeated ``blocks``
times, §2.1), each layer a gated unit z = tanh(W_f ∗ x + V_f c) ⊙ σ(W_g ∗ x + V_g c) with
a 1×1 residual and skip output (§2.3-2.4); the skips are summed, then ReLU → 1×1 → ReLU
→ 1×1 give the logits of the next sample's bin.

**Output** (``output``). "softmax": 2^bits logits. "mol": a mixture of ``mixtures``
logistics over the amplitude (Salimans et al. 2017, "PixelCNN++", §2.1; the output of
Parallel WaveNet, van den Oord et al. 2018): 3 outputs per logistic (π logit, μ, log s),
and p(bin) is the mixture's mass between the bin's μ-law edges mapped to the linear
domain (the outer bins reach ±∞), so its NLL is the probability of the same bins as the
softmax's, in the same bits per sample; sampling inverts the CDF of those bins.

**Conditioning** (§2.5). Global: a learned embedding of ``corpus_id`` (corpus or
instrument). Local: a piano-roll ``roll`` (B, F, R) with one frame every ``local_hop``
samples (sounding keys and onsets, as ``rendered:`` data gives), passed through a small
non-causal convolution stack at the frame rate and upsampled by repetition; each layer
adds its 1×1 projection V c. A model trained on ``rendered:CORPUS`` with a roll is a
neural synthesiser: ``tunesmith audio synth FILE.mid`` renders any MIDI file through it.

**Generation.** :meth:`AudioWaveNet.generate` runs one time step of each layer per
sample (Paine et al. 2016, "Fast WaveNet generation algorithm"): with kernel 2 the layer
at dilation d needs its input from d steps back, so each layer keeps a queue of d
entries holding W_past · x of the last d steps; a step is one matrix product per layer
for [W_now | W_past] · x_t, the gate and one for the residual/skip output. The
conditioning projections are computed once per roll frame. :meth:`generate_naive`
recomputes the whole prefix (or the last ``window`` samples) at every step; both draw
the next bin by inverting the CDF at the same pre-drawn uniforms, so for a seed they give
the same samples.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.audio.mulaw import mu_law_decode, mu_law_encode
from tunesmith.config import Range, at_least
from tunesmith.errors import ConfigError
from tunesmith.models.base import GenerativeModel, ModelConfig
from tunesmith.models.sampling import SamplingControls
from tunesmith.models.wavenet import GatedResidualLayer, conv_bias

OUTPUTS = ("softmax", "mol")


@dataclasses.dataclass
class AudioWaveNetConfig(ModelConfig):
    """Options of the audio WaveNet. (data) marks sizes the prepared audio sets."""

    sample_rate: int = 16000  # (data) samples per second the model was trained at
    bits: int = 8  # μ-law bits: a 2^bits-way softmax (8: 256 classes, as in the paper)
    output: str = "softmax"  # "softmax" over the bins, or "mol": discretised logistic mixture
    mixtures: int = 10  # logistics in the "mol" output (PixelCNN++ uses 5-10)
    channels: int = 64  # residual channels
    skip_channels: int = 64  # skip channels (= hidden size of the output stack)
    levels: int = 10  # dilations 1 … 2^(levels-1) in a stack (10: 1 … 512)
    blocks: int = 2  # stacks of those levels (2 × 10 = 20 layers, 2,047-sample field)
    dilations: list[int] = dataclasses.field(default_factory=list)  # explicit; overrides above
    n_global_classes: int = 0  # >0: learned embedding of batch key corpus_id (B,)
    global_channels: int = 16  # size of that embedding
    roll_conditioned: bool = False  # condition on the piano-roll of rendered: data (synth)
    local_channels: int = 0  # (data) roll channels R of batch key roll (B, F, R); 0: none
    local_hop: int = 0  # (data) samples per roll frame
    local_hidden: int = 64  # channels of the conditioning stack over roll frames
    local_kernel: int = 3  # its kernel (frames; centred: sees the next frames too)
    zero_init_condition: bool = True  # V = 0 at init: a conditioned model starts as an
    # unconditioned one and learns to read the conditioning (ControlNet-style zero init)

    choices: ClassVar[dict[str, tuple]] = {"output": OUTPUTS}
    ranges: ClassVar[dict[str, Range]] = {
        "bits": Range(1, 16), "mixtures": at_least(1),
        **dict.fromkeys(("sample_rate", "channels", "skip_channels", "levels", "blocks",
                        "global_channels", "local_hidden", "local_kernel", "dilations"),
                        at_least(1)),
        "n_global_classes": at_least(0), "local_channels": at_least(0)}

    def check(self) -> None:
        if self.local_channels and self.local_hop < 1:
            raise ConfigError("a roll-conditioned model needs local_hop >= 1 samples per frame")
        if self.local_kernel % 2 == 0:
            raise ConfigError(f"local_kernel must be odd (centred), got {self.local_kernel}")

    def layer_dilations(self) -> list[int]:
        if self.dilations:
            return [int(d) for d in self.dilations]
        return [2**i for i in range(self.levels)] * self.blocks

    @property
    def classes(self) -> int:
        return 2**self.bits

    @property
    def out_channels(self) -> int:
        """Outputs per sample: the bins' logits, or 3 per logistic (π logit, μ, log s)."""
        return self.classes if self.output == "softmax" else 3 * self.mixtures

    @property
    def cond_channels(self) -> int:
        return ((self.global_channels if self.n_global_classes else 0)
                + (self.local_hidden if self.local_channels else 0))


class AudioWaveNet(GenerativeModel):
    """μ-law WaveNet over audio samples (see the module docstring)."""

    family = "audio-wavenet"
    representation = "audio"
    data_help = ("audio: folder:PATH (WAV/FLAC/OGG) or rendered:CORPUS; roll_conditioned=true "
                 "(a MIDI-to-audio synthesiser) needs rendered:CORPUS (audio + piano-roll)")
    config_class = AudioWaveNetConfig
    config: AudioWaveNetConfig
    edges: torch.Tensor  # buffer (Q + 1,): the bins' edges in the linear domain

    def __init__(self, config: AudioWaveNetConfig):
        super().__init__(config)
        c = config
        self.embed = nn.Embedding(c.classes, c.channels)  # one-hot input → 1×1 conv
        self.layers = nn.ModuleList(
            GatedResidualLayer(c.channels, c.skip_channels, 2, d, c.cond_channels, 0.0)
            for d in c.layer_dilations()
        )
        if c.zero_init_condition:
            for layer in self.gated_layers:
                if layer.cond is not None:
                    nn.init.zeros_(layer.cond.weight)
        self.post = nn.Conv1d(c.skip_channels, c.skip_channels, 1)
        self.out = nn.Conv1d(c.skip_channels, c.out_channels, 1)
        # the bins' edges in the linear domain ("mol"): not saved, a function of bits
        self.register_buffer("edges", bin_edges(c.bits), persistent=False)
        self.corpus_embedding = (
            nn.Embedding(c.n_global_classes, c.global_channels) if c.n_global_classes else None
        )
        self.local_net: nn.Sequential | None = None
        if c.local_channels:
            pad = c.local_kernel // 2
            self.local_net = nn.Sequential(  # (B, R, F) -> (B, H_l, F), at the frame rate
                nn.Conv1d(c.local_channels, c.local_hidden, c.local_kernel, padding=pad),
                nn.Tanh(),
                nn.Conv1d(c.local_hidden, c.local_hidden, c.local_kernel, padding=pad),
                nn.Tanh(),
            )

    @classmethod
    def config_for_audio(cls, config: ModelConfig, data: Any) -> AudioWaveNetConfig:
        """The sample rate of ``data`` (an :class:`~tunesmith.data.audio.AudioData`), and
        its roll's channels and hop when the model is ``roll_conditioned``."""
        assert isinstance(config, AudioWaveNetConfig)
        changes = {"sample_rate": data.sample_rate}
        if config.roll_conditioned:
            if not data.has_rolls:
                raise ConfigError(f"a roll-conditioned model needs rendered: data; {data.spec} "
                                  "has no piano-rolls (train without roll_conditioned)")
            changes.update(local_channels=data.roll_channels, local_hop=data.hop)
        return config.updated(**changes)

    @property
    def gated_layers(self) -> list[GatedResidualLayer]:
        """The residual layers, in order (``self.layers`` typed)."""
        return [layer for layer in self.layers if isinstance(layer, GatedResidualLayer)]

    @property
    def receptive_field(self) -> int:
        """Past samples the prediction of sample t sees: t−R … t−1."""
        return 1 + sum(self.config.layer_dilations())

    @property
    def silence(self) -> int:
        """The μ-law bin of 0.0, the input before the first sample."""
        return int(mu_law_encode(torch.zeros(1), self.config.bits))

    # ---- conditioning ---------------------------------------------------------------
    def frame_condition(self, condition: dict | None, batch: int) -> torch.Tensor | None:
        """The conditioning at the roll's frame rate (B, C_c, F), or (B, C_c, 1) when the
        model is conditioned on a corpus only; None without conditioning."""
        c = self.config
        condition = condition or {}
        device = self.embed.weight.device
        parts = []
        frames = 1
        if self.local_net is not None:
            roll = condition.get("roll")
            if roll is None:
                raise ConfigError("this model is conditioned on a piano-roll; pass one "
                                  f"(condition['roll'], (B, F, {c.local_channels}))")
            roll = torch.as_tensor(roll, dtype=torch.float32, device=device)
            if roll.dim() == 2:
                roll = roll[None]
            if roll.dim() != 3 or roll.shape[2] != c.local_channels:
                raise ConfigError(f"roll must be (B, F, {c.local_channels}), got "
                                  f"{tuple(roll.shape)}")
            roll = roll.expand(batch, -1, -1) if roll.shape[0] == 1 else roll
            parts.append(self.local_net(roll.transpose(1, 2)))  # (B, H_l, F)
            frames = roll.shape[1]
        if self.corpus_embedding is not None:
            corpus = torch.as_tensor(condition.get("corpus_id", 0), device=device).long()
            corpus = corpus.reshape(-1).expand(batch) if corpus.numel() == 1 else corpus
            if corpus.min() < 0 or corpus.max() >= c.n_global_classes:
                raise ConfigError(f"corpus_id must be in [0, {c.n_global_classes})")
            parts.append(self.corpus_embedding(corpus)[:, :, None].expand(-1, -1, frames))
        if not parts:
            return None
        return torch.cat(parts, dim=1)

    def _upsample(self, frame_cond: torch.Tensor | None, steps: int) -> torch.Tensor | None:
        """(B, C_c, F) -> (B, C_c, steps) by repeating each frame ``local_hop`` times."""
        if frame_cond is None:
            return None
        if self.local_net is None:
            return frame_cond[:, :, :1].expand(-1, -1, steps)
        hop = self.config.local_hop
        if frame_cond.shape[2] * hop < steps:
            raise ConfigError(f"the roll covers {frame_cond.shape[2]} frames × {hop} samples "
                              f"< {steps} samples")
        return frame_cond.repeat_interleave(hop, dim=2)[:, :, :steps]

    # ---- training -------------------------------------------------------------------
    def outputs(self, bins: torch.Tensor, condition: dict | None = None,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        """The output layer (B, O, T) for every sample from the bins before it; ``bins``
        (B, T). O = 2^bits logits, or 3 × mixtures for the "mol" output."""
        batch, steps = bins.shape
        if cond is None:
            cond = self._upsample(self.frame_condition(condition, batch), steps)
        inputs = F.pad(bins, (1, -1), value=self.silence)  # sample t-1 at step t
        x = self.embed(inputs).transpose(1, 2)  # (B, C, T)
        skips = torch.zeros((), dtype=x.dtype, device=x.device)
        for layer in self.layers:
            x, skip = layer(x, cond)  # (B, C, T), (B, S, T)
            skips = skips + skip
        h = torch.relu(self.post(torch.relu(skips)))  # (B, S, T)
        return self.out(h)  # (B, O, T)

    def bin_logits(self, out: torch.Tensor) -> torch.Tensor:
        """(B, O, T) outputs -> (B, Q, T) logits of the bins: the softmax's, or the
        "mol" output's discretised log-probabilities (they sum to 1 over the bins)."""
        if self.config.output == "softmax":
            return out
        return mol_bin_log_probs(out, self.edges)

    def logits(self, bins: torch.Tensor, condition: dict | None = None,
               cond: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, Q, T) of every sample's bin from the bins before it; ``bins`` (B, T)."""
        return self.bin_logits(self.outputs(bins, condition, cond))

    def sample_nll(self, audio: torch.Tensor, condition: dict | None = None) -> torch.Tensor:
        """−log p(bin_t | bins < t, c) in nats for every sample: (B, T). For both outputs
        this is the probability of the sample's μ-law bin, so the two compare in bits per
        sample (the "mol" output integrates its mixture over the bin's edges)."""
        bins = mu_law_encode(audio, self.config.bits)
        out = self.outputs(bins, condition)
        if self.config.output == "softmax":
            return F.cross_entropy(out, bins, reduction="none")
        return -mol_log_prob(out, bins, self.edges)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Mean NLL over real samples, nats per sample; also logged in bits per sample."""
        nll = self.sample_nll(batch["audio"], batch)  # (B, T)
        mask = batch.get("mask")
        weights = torch.ones_like(nll) if mask is None else mask.float()
        loss = (nll * weights).sum() / weights.sum().clamp(min=1)
        return {"loss": loss, "bits_per_sample": loss.detach() / torch.log(torch.tensor(2.0))}

    # ---- sampling -------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, n: int, steps: int, controls: SamplingControls | None = None,
                 prime: torch.Tensor | None = None,
                 condition: dict | None = None) -> torch.Tensor:
        """Sample (n, steps) float audio in [-1, 1], one layer time step per sample (cached).

        ``prime`` (n|1, P) float audio is kept at the start; ``condition`` holds ``roll``
        (n|1, F, R) and/or ``corpus_id``. ``controls``: its ``temperature`` and ``seed``.
        """
        return self._generate(n, steps, controls, prime, condition, cached=True)

    @torch.no_grad()
    def generate_naive(self, n: int, steps: int, controls: SamplingControls | None = None,
                       prime=None, condition=None,
                       window: int | None = None) -> torch.Tensor:
        """Reference sampler: a full forward pass over the prefix (or its last ``window``
        ≥ receptive-field samples) for every sample. Same samples as :meth:`generate`."""
        if window is not None and window < self.receptive_field:
            raise ConfigError(f"window {window} < receptive field {self.receptive_field}")
        return self._generate(n, steps, controls, prime, condition, cached=False,
                              window=window)

    def _generate(self, n, steps, controls, prime, condition, cached, window=None):
        temperature = float(getattr(controls, "temperature", 1.0) or 1.0)
        seed = getattr(controls, "seed", None)
        device = self.embed.weight.device
        generator = None if seed is None else torch.Generator(device).manual_seed(int(seed))
        uniforms = torch.rand(n, steps, generator=generator, device=device)  # inverse CDF
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                bins = torch.full((n, steps), self.silence, dtype=torch.long, device=device)
                n_prime = 0
                if prime is not None:
                    prime = torch.as_tensor(prime, dtype=torch.float32, device=device)
                    prime = prime[None] if prime.dim() == 1 else prime
                    n_prime = min(prime.shape[1], steps)
                    bins[:, :n_prime] = mu_law_encode(prime[:, :n_prime], self.config.bits)
                frame_cond = self.frame_condition(condition, n)  # (n, C_c, F) | None
                if frame_cond is not None and self.local_net is not None:
                    self._upsample(frame_cond, steps)  # checks the roll is long enough
                if cached:
                    self._sample_cached(bins, n_prime, frame_cond, uniforms, temperature)
                else:
                    cond = self._upsample(frame_cond, steps)
                    for t in range(n_prime, steps):
                        # bins t - window … t - 1 are seen
                        start = 0 if window is None else max(0, t - window)
                        part = None if cond is None else cond[:, :, start : t + 1]
                        out = self.outputs(bins[:, start : t + 1], cond=part)[:, :, -1:]
                        logits = self.bin_logits(out)[:, :, 0]  # (n, Q)
                        bins[:, t] = _draw(logits, uniforms[:, t], temperature)
        finally:
            self.train(was_training)
        return mu_law_decode(bins, self.config.bits).clone()

    def _sample_cached(self, bins, n_prime, frame_cond, uniforms, temperature) -> None:
        steps = bins.shape[1]
        state = _FastState(self, bins.shape[0], frame_cond)
        out = np.empty(bins.shape, np.int64)  # the bins, on the CPU
        out[:, :n_prime] = bins[:, :n_prime].cpu().numpy()
        previous = np.full(bins.shape[0], self.silence, np.int64)
        uniforms = uniforms.cpu()
        softmax = self.config.output == "softmax"
        for t in range(steps):
            head = state.step(previous, t)  # (n, O): p(bin_t | bins < t)
            logits = head if softmax else self.bin_logits(head[:, :, None])[:, :, 0]
            if t >= n_prime:
                out[:, t] = _draw(logits, uniforms[:, t], temperature).numpy()
            previous = out[:, t]
        bins.copy_(torch.from_numpy(out))


# ---- the discretised mixture of logistics ("mol" output) ------------------------------
# Salimans et al. (2017), "PixelCNN++", §2.1; as the output of Parallel WaveNet (van den
# Oord et al. 2018). Here the mixture lives in the linear amplitude domain and is
# integrated over the edges of each μ-law bin, so that its likelihood is the probability
# of the same 2^bits bins as the softmax's and the two compare in bits per sample.

EDGE = 1e6  # stands for ±∞ at the outer edges (finite: no inf · 0 in the gradients)
MIN_LOG_SCALE, MAX_LOG_SCALE = -9.0, 3.0  # the logistics' log s is clamped to this range


def bin_edges(bits: int) -> torch.Tensor:
    """The Q + 1 edges (linear domain) of the Q = 2^bits μ-law bins, ±EDGE outside:
    bin i holds the x that :func:`mu_law_encode` rounds to i."""
    mu = 2**bits - 1
    y = (2 * torch.arange(1, mu + 1, dtype=torch.float64) - 1) / mu - 1  # companded edges
    x = torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu
    return torch.cat([torch.tensor([-EDGE]), x, torch.tensor([EDGE])]).float()  # (Q + 1,)


def _mol_parts(out: torch.Tensor):
    """(B, 3K, …) -> log π (B, K, …), μ, 1/s."""
    logit_pi, mean, log_scale = out.chunk(3, dim=1)
    inv_scale = torch.exp(-log_scale.clamp(MIN_LOG_SCALE, MAX_LOG_SCALE))
    return torch.log_softmax(logit_pi, dim=1), mean, inv_scale


def _log_delta(lower, upper, mean, inv_scale):
    """log(σ((U − μ)/s) − σ((L − μ)/s)), stably: σ(b) − σ(a) = σ(b) σ(−a) (1 − e^(a−b))."""
    a, b = (lower - mean) * inv_scale, (upper - mean) * inv_scale
    return F.logsigmoid(b) + F.logsigmoid(-a) + torch.log(-torch.expm1((lower - upper)
                                                                       * inv_scale))


def mol_log_prob(out: torch.Tensor, bins: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """log p(bin) (B, T) of each bin (B, T) under the mixtures ``out`` (B, 3K, T)."""
    log_pi, mean, inv_scale = _mol_parts(out)  # (B, K, T) each
    lower, upper = edges[bins][:, None], edges[bins + 1][:, None]  # (B, 1, T)
    return torch.logsumexp(log_pi + _log_delta(lower, upper, mean, inv_scale), dim=1)


def mol_bin_log_probs(out: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """log p of every bin (B, Q, T) under the mixtures ``out`` (B, 3K, T)."""
    log_pi, mean, inv_scale = (p[:, :, None] for p in _mol_parts(out))  # (B, K, 1, T)
    lower, upper = edges[:-1, None], edges[1:, None]  # (Q, 1)
    return torch.logsumexp(log_pi + _log_delta(lower, upper, mean, inv_scale), dim=1)


def _draw(logits: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    """The bin whose CDF first exceeds u: (n, Q) logits, (n,) uniforms -> (n,) long."""
    cdf = torch.softmax(logits / temperature, dim=-1).cumsum(-1)  # (n, Q)
    return (cdf < u[:, None]).sum(-1).clamp(max=logits.shape[-1] - 1)


class _FastState:
    """One sample at a time through an :class:`AudioWaveNet` (see the module docstring).

    The per-sample step costs 8 small ops per layer, so its time is mostly the cost of
    calling each op: the step runs on numpy arrays (a numpy call on a (1, 256) array
    costs a fraction of a torch one; profiled in ``benchmarks/audio_wavenet.py speed``),
    every op writing into a preallocated buffer, with the model's float32 weights
    rearranged once:

    * per layer ``w_both`` (C, 4C) = [W_now | W_past] of the kernel-2 dilated conv, so one
      product gives this step's W_now x_t and the W_past x_t that the step t + d reads;
      a queue of d rows, row t mod d holding W_past x_{t−d} + b + V c_t (written d steps
      earlier; the first d rows start as b + V c_t, the zero padding);
    * σ(g) = (1 + tanh(g / 2)) / 2: the gate's half of every pre-activation is stored
      halved, so one tanh covers both halves, and 2z = tanh f ⊙ (1 + tanh(g / 2)); the ½
      is folded into the 1×1 weights, which read the layer's buffer [2z | 1] (bias row);
    * the residual 1×1 is one product per layer; the skip 1×1s of all layers are one
      product at the end over all the layers' buffers (one contiguous array).
    """

    def __init__(self, model: AudioWaveNet, n: int, frame_cond: torch.Tensor | None):
        c = model.config
        C, S, L = c.channels, c.skip_channels, len(model.layers)
        width = C + 1  # [2z | 1]
        self.n, self.channels = n, C
        self.hop = c.local_hop if model.local_net is not None else 0

        def numpy(t: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.detach().float().cpu().numpy())

        half = torch.ones(2 * C)
        half[C:] = 0.5  # the gate's half, for σ(g) = (1 + tanh(g / 2)) / 2
        self.embed = numpy(model.embed.weight)  # (Q, C)
        self.x = np.zeros((n, C), np.float32)  # the residual stream x
        self.both = np.empty((n, 4 * C), np.float32)  # [W_now x_t | W_past x_t]
        self.now, self.past = self.both[:, : 2 * C], self.both[:, 2 * C :]
        self.res = np.empty((n, C), np.float32)
        self.tanh = np.empty((n, 2 * C), np.float32)  # [tanh f | tanh(g / 2)]
        self.tanh_f, self.tanh_g = self.tanh[:, :C], self.tanh[:, C:]
        self.zall = np.ones((n, L, width), np.float32)  # every layer's [2z | 1]
        self.layers = []
        skip_rows = []
        for index, layer in enumerate(model.gated_layers):
            w = layer.dilated.weight.detach()  # (2C, C, 2): tap 0 reads t − d, tap 1 reads t
            w_both = numpy(torch.cat([w[:, :, 1] * half[:, None], w[:, :, 0] * half[:, None]],
                                     dim=0).t())  # (C, 4C)
            bias = conv_bias(layer.dilated)  # (2C,)
            if frame_cond is not None:  # (F, n, 2C): b + V c_f
                per_frame = (layer.cond(frame_cond) + bias[None, :, None]).permute(2, 0, 1)
            else:
                per_frame = bias.expand(1, n, -1)
            per_frame = numpy(per_frame * half)
            frames = list(per_frame)  # F × (n, 2C) views
            d = layer.dilated.dilation[0]
            queue = np.stack([frames[self._frame(t, len(frames))] for t in range(d)])
            rs_w = layer.res_skip.weight.detach()[:, :, 0].t()  # (C, C + S)
            rs_b = conv_bias(layer.res_skip)
            rows = torch.cat([0.5 * rs_w, rs_b[None]])  # (C + 1, C + S), read [2z | 1]
            skip_rows.append(rows[:, C:])  # (width, S)
            last = index == L - 1  # its residual output is never read
            z = self.zall[:, index]  # (n, width) view
            self.layers.append((w_both, frames, list(queue), d, z[:, :C], z,
                                None if last else numpy(rows[:, :C])))
        self.zflat = self.zall.reshape(n, L * width)
        self.skip_w = numpy(torch.cat(skip_rows))  # (L·width, S)
        self.skips = np.empty((n, S), np.float32)
        self.post_w = numpy(model.post.weight[:, :, 0].t())
        self.post_b = numpy(conv_bias(model.post))
        self.out_w = numpy(model.out.weight[:, :, 0].t())
        self.out_b = numpy(conv_bias(model.out))
        self.h = np.empty((n, S), np.float32)
        self.out = np.empty((n, self.out_w.shape[1]), np.float32)
        self.out_t = torch.from_numpy(self.out)  # shares the memory

    def _frame(self, t: int, frames: int) -> int:
        return min(t // self.hop, frames - 1) if self.hop else 0

    def step(self, previous: np.ndarray, t: int) -> torch.Tensor:
        """The output layer (n, Q) for sample t from bin t−1 (``previous``, (n,) ints);
        a view of one buffer, overwritten by the next step."""
        x, both, now, past, res = self.x, self.both, self.now, self.past, self.res
        hop = self.hop
        np.take(self.embed, previous, axis=0, out=x)  # x (n, C)
        tanh, tanh_f, tanh_g = self.tanh, self.tanh_f, self.tanh_g
        for w_both, frames, queue, d, z2, z, res_w in self.layers:
            np.dot(x, w_both, out=both)  # (n, 4C)
            slot = queue[t % d]  # W_past x_{t-d} + b + V c_t (gate half halved)
            np.add(now, slot, out=tanh)
            # W_past x_t + b + V c_{t+d}, for step t + d
            np.add(past, frames[min((t + d) // hop, len(frames) - 1) if hop else 0], out=slot)
            np.tanh(tanh, out=tanh)  # [tanh f | tanh(g / 2)] = [tanh f | 2σ(g) − 1]
            tanh_g += 1  # 2σ(g)
            np.multiply(tanh_f, tanh_g, out=z2)  # 2z
            if res_w is not None:
                np.dot(z, res_w, out=res)  # the residual 1×1 of z
                np.add(x, res, out=x)
        np.dot(self.zflat, self.skip_w, out=self.skips)  # Σ skips (n, S)
        np.maximum(self.skips, 0, out=self.skips)
        np.dot(self.skips, self.post_w, out=self.h)
        self.h += self.post_b
        np.maximum(self.h, 0, out=self.h)
        np.dot(self.h, self.out_w, out=self.out)
        self.out += self.out_b
        return self.out_t  # (n, Q)
