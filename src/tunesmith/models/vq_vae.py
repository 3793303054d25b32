"""VQ-VAE over raw audio, one or two levels (van den Oord et al. 2017, "Neural discrete
representation learning"; Razavi et al. 2019, VQ-VAE-2; Dhariwal et al. 2020, "Jukebox").

* **Encoder**: a 7-tap convolution, then per stride s a strided convolution (kernel 2s,
  stride s) with ReLU and a dilated residual block, then a 3-tap projection to the code
  dimension D: (B, 1, T) → (B, D, T / hop), hop = Π strides.
* **Codebook** (:class:`EMACodebook`): nearest-neighbour quantisation; the codes are
  exponential moving averages of the encoder outputs assigned to them (VQ-VAE appendix
  A.1: N_k ← γ N_k + (1−γ) n_k, m_k ← γ m_k + (1−γ) Σ z, e_k = m_k / Ñ_k with Laplace
  smoothing of N); a commitment loss β ‖z − sg(e)‖²; straight-through gradients. To keep
  the codes in use: the lookup is in a ``lookup_dim``-dimensional projection of z with
  l2-normalised vectors (Yu et al. 2022, "Vector-quantized image modeling with improved
  VQGAN", §3.2); the codes start as k-means(++) centroids of the first
  ``kmeans_init_rows`` encoder outputs; a code no row used in the last ``usage_window``
  updates (or whose N_k falls below ``restart_threshold``) is restarted on a random
  encoder output of the batch (Jukebox §3.2, "random restarts").
* **Decoder**: the mirror: transposed convolutions (kernel 2s, stride s), tanh output.
* **Loss**: L1 on the waveform + ``spectral_weight`` × multi-resolution STFT loss
  (spectral convergence + log-magnitude, Yamamoto et al. 2020; Jukebox uses a spectral
  loss beside the waveform one) + commitment.
* **Two levels** (``top_strides``): a top encoder over the bottom encoder's output gives a
  coarser code sequence (hop × Π top_strides) with its own codebook; its decoding is
  upsampled to the bottom rate and added to the bottom encoder's output before that is
  quantised and to the bottom decoder's input (VQ-VAE-2's hierarchy).

The bitrate is Σ_levels (sample_rate / hop_level) · log2(codebook_size). The prior over
codes is a separate family (the ``music-transformer`` over code tokens, trained by
``tunesmith audio prior``); :meth:`VQVAE.generate` alone decodes codes drawn from the
codebook's usage (a unigram prior).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.audio.features import multi_resolution_stft_loss
from tunesmith.config import Range, at_least
from tunesmith.errors import ConfigError
from tunesmith.models.base import GenerativeModel, ModelConfig
from tunesmith.models.sampling import SamplingControls


@dataclasses.dataclass
class VQVAEConfig(ModelConfig):
    """VQ-VAE options. (data) marks what the prepared audio sets."""

    sample_rate: int = 16000  # (data) samples per second
    strides: list[int] = dataclasses.field(default_factory=lambda: [4, 4, 4])  # hop 64
    top_strides: list[int] = dataclasses.field(default_factory=list)  # [] one level; [4]: two
    channels: int = 64  # convolution channels
    code_dim: int = 64  # D, the size of each code vector
    codebook_size: int = 512  # K codes per level (9 bits: 250 codes/s × 9 = 2.25 kbps)
    beta: float = 0.25  # commitment weight β
    ema_decay: float = 0.99  # γ of the codebook's moving averages
    restart_threshold: float = 0.0  # also restart codes whose EMA count N_k is below this
    usage_window: int = 50  # restart codes no row used in this many updates (0: never)
    lookup_dim: int = 16  # codes looked up in a projected, l2-normalised space of this size
    # (capped at code_dim; 0: in the code space itself, not normalised)
    kmeans_init_rows: int = 4096  # k-means init of the codes from this many first rows (0: off)
    spectral_weight: float = 1.0  # weight of the multi-resolution STFT loss

    # checkpoints saved before the factorised lookup, k-means init and usage-window
    # restarts looked codes up in the code space itself
    saved_defaults: ClassVar[dict[str, Any]] = {"lookup_dim": 0, "kmeans_init_rows": 0,
                                                "usage_window": 0}
    ranges: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(("sample_rate", "channels", "code_dim", "codebook_size"),
                        at_least(1)),
        "strides": at_least(2), "top_strides": at_least(2),
        "ema_decay": Range(0, 1, low_open=True, high_open=True),
        **dict.fromkeys(("beta", "spectral_weight", "restart_threshold", "usage_window",
                         "lookup_dim", "kmeans_init_rows"), at_least(0))}

    def check(self) -> None:
        if not self.strides:
            raise ConfigError("vq-vae option strides needs at least one stride")

    @property
    def hop(self) -> int:
        return math.prod(self.strides)

    @property
    def top_hop(self) -> int:
        return self.hop * math.prod(self.top_strides) if self.top_strides else 0

    @property
    def bitrate(self) -> float:
        """Bits per second of the codes of every level."""
        bits = math.log2(self.codebook_size)
        rate = self.sample_rate / self.hop + (self.sample_rate / self.top_hop
                                               if self.top_strides else 0)
        return rate * bits


class EMACodebook(nn.Module):
    """K codes of size D updated by moving averages, with dead-code restarts (see above).

    Options (all off by default here; :class:`VQVAE` turns them on from its config):

    * ``normalise``: codes and inputs are l2-normalised, so the lookup is by cosine
      similarity (Yu et al. 2022, "Vector-quantized image modeling with improved
      VQGAN", §3.2: with a low-dimensional lookup space it keeps far more codes in use);
    * ``init_rows`` > 0: the codes start as k-means centroids (``kmeans_iters``
      iterations) of the first ``init_rows`` encoder outputs, gathered over the first
      batches (until then they are random rows of the first batch, and nothing restarts);
    * ``usage_window`` > 0: a code assigned no row in the last ``usage_window`` updates is
      dead and restarted on a random row of the batch (usage over a window rather than
      the EMA count alone, which restarts codes still settling).
    """

    # buffers (saved with the weights; an exact resume needs them all)
    embedding: torch.Tensor  # e_k (K, D)
    cluster_size: torch.Tensor  # N_k (K,)
    embed_sum: torch.Tensor  # m_k = N_k e_k (K, D)
    initialised: torch.Tensor  # () bool
    init_buffer: torch.Tensor  # (init_rows, D) rows gathered for k-means
    init_count: torch.Tensor  # () long
    recent_usage: torch.Tensor  # (K,) rows assigned since the usage window began
    window_steps: torch.Tensor  # () long

    def __init__(self, size: int, dim: int, decay: float, restart_threshold: float,
                 eps: float = 1e-5, *, normalise: bool = False, init_rows: int = 0,
                 kmeans_iters: int = 10, usage_window: int = 0):
        super().__init__()
        self.size, self.dim, self.decay, self.eps = size, dim, decay, eps
        self.restart_threshold = restart_threshold
        self.normalise, self.kmeans_iters, self.usage_window = normalise, kmeans_iters, usage_window
        embedding = self._norm(torch.randn(size, dim) * 0.1)
        self.register_buffer("embedding", embedding)  # e_k (K, D)
        self.register_buffer("cluster_size", torch.ones(size))  # N_k
        self.register_buffer("embed_sum", embedding.clone())  # m_k = N_k e_k
        self.register_buffer("initialised", torch.tensor(False))
        # k-means initialisation: rows gathered so far (kept for an exact resume)
        self.register_buffer("init_buffer", torch.zeros(init_rows, dim))
        self.register_buffer("init_count", torch.tensor(0))
        # rows assigned to each code since the window began, and updates in the window
        self.register_buffer("recent_usage", torch.zeros(size))
        self.register_buffer("window_steps", torch.tensor(0))

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) if self.normalise else x

    def codes(self, flat: torch.Tensor) -> torch.Tensor:
        """Nearest code of each row of (M, D) -> (M,) long (rows normalised as the codes)."""
        flat = self._norm(flat)
        if self.normalise:  # unit vectors: nearest = most similar
            return (flat @ self.embedding.t()).argmax(1)
        distances = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embedding.t()
                     + self.embedding.pow(2).sum(1)[None])  # (M, K)
        return distances.argmin(1)

    @torch.no_grad()
    def kmeans(self, rows: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """K centroids of ``rows`` (M, D) by Lloyd's iterations from k-means++ seeds
        (Arthur & Vassilvitskii 2007: each seed drawn with probability ∝ its squared
        distance to the seeds so far; spherical k-means when normalised); an empty cluster
        is moved to a random row."""
        centroids = rows.new_empty(self.size, rows.shape[1])
        centroids[0] = rows[torch.randint(0, len(rows), (1,), generator=generator)]
        nearest = (rows - centroids[0]).pow(2).sum(1)  # (M,) squared distance to the seeds
        for k in range(1, self.size):
            weights = nearest if nearest.sum() > 0 else torch.ones_like(nearest)
            centroids[k] = rows[torch.multinomial(weights, 1, generator=generator)]
            nearest = torch.minimum(nearest, (rows - centroids[k]).pow(2).sum(1))
        for _ in range(self.kmeans_iters):
            self.embedding.copy_(centroids)
            assign = self.codes(rows)
            counts = torch.bincount(assign, minlength=self.size).float()
            sums = torch.zeros_like(centroids).index_add_(0, assign, rows)
            empty = counts == 0
            centroids = self._norm(sums / counts.clamp(min=1)[:, None])
            centroids[empty] = rows[torch.randint(0, len(rows), (int(empty.sum()),),
                                                  generator=generator)]
        return centroids

    @torch.no_grad()
    def update(self, flat: torch.Tensor, codes: torch.Tensor) -> int:
        """One EMA step from encoder outputs (M, D) and their codes (M,); then restart the
        dead codes on random rows of ``flat``. Returns how many restarted."""
        flat = self._norm(flat)
        if not bool(self.initialised):  # first batch: codes start on encoder outputs
            rows = flat[torch.randint(0, len(flat), (self.size,), device=flat.device)]
            self._reset(rows, torch.ones(self.size, device=flat.device))
            self.initialised.fill_(True)
            codes = self.codes(flat)
        gathering = int(self.init_count) < len(self.init_buffer)
        if gathering:  # k-means from the first batches' rows
            start = int(self.init_count)
            take = flat[: len(self.init_buffer) - start]
            self.init_buffer[start : start + len(take)] = take
            self.init_count.add_(len(take))
            if int(self.init_count) == len(self.init_buffer):
                centroids = self.kmeans(self.init_buffer)
                assign = self.codes(self.init_buffer)
                per_row = len(flat) / len(self.init_buffer)  # counts at one batch's scale
                counts = torch.bincount(assign, minlength=self.size).float() * per_row
                self._reset(centroids, counts.clamp(min=per_row))
                codes = self.codes(flat)
                gathering = False
        onehot = F.one_hot(codes, self.size).type(flat.dtype)  # (M, K)
        used = onehot.sum(0)
        self.cluster_size.mul_(self.decay).add_(used, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.size * self.eps) * total
        self.embedding.copy_(self._norm(self.embed_sum / smoothed[:, None]))
        if gathering:
            return 0
        dead = self.cluster_size < self.restart_threshold
        if self.usage_window:
            self.recent_usage.add_(used)
            self.window_steps.add_(1)
            if int(self.window_steps) >= self.usage_window:
                dead |= self.recent_usage == 0
                self.recent_usage.zero_()
                self.window_steps.zero_()
        n_dead = int(dead.sum())
        if n_dead:
            rows = flat[torch.randint(0, len(flat), (n_dead,), device=flat.device)]
            self.embedding[dead] = rows
            self.embed_sum[dead] = rows
            self.cluster_size[dead] = 1.0
        return n_dead

    def _reset(self, codes: torch.Tensor, counts: torch.Tensor) -> None:
        self.embedding.copy_(codes)
        self.cluster_size.copy_(counts)
        self.embed_sum.copy_(codes * counts[:, None])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, D, N) -> (straight-through quantised (B, D, N), codes (B, N), commitment
        ‖z − sg(e)‖² mean); EMA-updates the codes in training mode. With ``normalise``
        the quantised vectors and z are unit vectors."""
        b, d, n = z.shape
        flat = self._norm(z.transpose(1, 2).reshape(-1, d))  # (B·N, D)
        codes = self.codes(flat)
        if self.training:
            self.update(flat.detach(), codes)
            codes = self.codes(flat)  # against the updated codes
        quantised = self.embedding[codes]  # (B·N, D)
        commitment = F.mse_loss(flat, quantised.detach())
        out = flat + (quantised - flat).detach()  # straight through
        return out.reshape(b, n, d).transpose(1, 2), codes.reshape(b, n), commitment

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, N) long -> (B, D, N)."""
        return self.embedding[codes].transpose(1, 2)


class Quantiser(nn.Module):
    """An :class:`EMACodebook` in a low-dimensional lookup space (Yu et al. 2022, §3.2,
    "factorized codes"): a 1×1 projection D → d before the (l2-normalised) lookup and
    d → D after it; the same interface as the codebook, with ``book`` its codebook."""

    def __init__(self, book: EMACodebook, dim: int):
        super().__init__()
        self.book = book
        self.down = nn.Conv1d(dim, book.dim, 1)
        self.up = nn.Conv1d(book.dim, dim, 1)

    @property
    def cluster_size(self) -> torch.Tensor:
        return self.book.cluster_size

    @property
    def embedding(self) -> torch.Tensor:
        return self.book.embedding

    def forward(self, z: torch.Tensor):
        """z (B, D, N) -> (quantised (B, D, N), codes (B, N), commitment)."""
        quantised, codes, commitment = self.book(self.down(z))  # (B, d, N)
        return self.up(quantised), codes, commitment

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, N) long -> (B, D, N)."""
        return self.up(self.book.lookup(codes))


class ResBlock(nn.Module):
    """x + conv1×1(ReLU(dilated conv3(ReLU(x))))."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        return x + self.proj(torch.relu(self.conv(torch.relu(x))))


def _encoder(c_in: int, channels: int, code_dim: int, strides: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv1d(c_in, channels, 7, padding=3)]
    for i, s in enumerate(strides):
        layers += [nn.Conv1d(channels, channels, 2 * s, stride=s, padding=s // 2), nn.ReLU(),
                   ResBlock(channels, 3 ** (i % 3))]
    layers.append(nn.Conv1d(channels, code_dim, 3, padding=1))
    return nn.Sequential(*layers)


def _decoder(code_dim: int, channels: int, c_out: int, strides: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv1d(code_dim, channels, 3, padding=1)]
    for i, s in enumerate(reversed(strides)):
        layers += [ResBlock(channels, 3 ** (i % 3)),
                   nn.ConvTranspose1d(channels, channels, 2 * s, stride=s, padding=s // 2),
                   nn.ReLU()]
    layers.append(nn.Conv1d(channels, c_out, 7, padding=3))
    return nn.Sequential(*layers)


class VQVAE(GenerativeModel):
    """Audio VQ-VAE with EMA codebooks (see the module docstring)."""

    family = "vq-vae"
    representation = "audio"
    data_help = ("audio: folder:PATH (WAV/FLAC/OGG) or rendered:CORPUS; its prior "
                 "(tunesmith audio prior) trains on the codes of the same data")
    config_class = VQVAEConfig
    config: VQVAEConfig

    def __init__(self, config: VQVAEConfig):
        super().__init__(config)
        c = config
        self.encoder = _encoder(1, c.channels, c.code_dim, c.strides)
        self.codebook = self._codebook()
        self.decoder = _decoder(c.code_dim, c.channels, 1, c.strides)
        self.top_encoder: nn.Sequential | None = None
        self.top_codebook: EMACodebook | Quantiser | None = None
        self.top_decoder: nn.Sequential | None = None
        if c.top_strides:
            self.top_encoder = _encoder(c.code_dim, c.channels, c.code_dim, c.top_strides)
            self.top_codebook = self._codebook()
            self.top_decoder = _decoder(c.code_dim, c.channels, c.code_dim, c.top_strides)

    def _codebook(self) -> EMACodebook | Quantiser:
        """A level's quantiser: the EMA codebook, in a projected l2-normalised space of
        ``lookup_dim`` (D → d 1×1 in, d → D 1×1 out) unless ``lookup_dim`` = 0."""
        c = self.config
        dim = min(c.lookup_dim, c.code_dim) or c.code_dim
        book = EMACodebook(c.codebook_size, dim, c.ema_decay, c.restart_threshold,
                           normalise=bool(c.lookup_dim), init_rows=c.kmeans_init_rows,
                           usage_window=c.usage_window)
        return Quantiser(book, c.code_dim) if c.lookup_dim else book

    @classmethod
    def config_for_audio(cls, config: ModelConfig, data: Any) -> VQVAEConfig:
        """The sample rate of the prepared audio (an :class:`~tunesmith.data.audio.AudioData`)."""
        assert isinstance(config, VQVAEConfig)
        return config.updated(sample_rate=data.sample_rate)

    def _top_level(self) -> tuple[nn.Sequential, EMACodebook | Quantiser, nn.Sequential] | None:
        """The top level's (encoder, quantiser, decoder), None for a one-level model."""
        if self.top_encoder is None:
            return None
        assert self.top_codebook is not None and self.top_decoder is not None
        return self.top_encoder, self.top_codebook, self.top_decoder

    @property
    def frame(self) -> int:
        """Input lengths are padded to a multiple of this (the coarsest hop)."""
        return self.config.top_hop or self.config.hop

    def _pad(self, audio: torch.Tensor) -> torch.Tensor:
        extra = -audio.shape[-1] % self.frame
        return F.pad(audio, (0, extra)) if extra else audio

    # ---- encode / decode ------------------------------------------------------------
    def _quantise(self, audio: torch.Tensor):
        """(B, T) -> (bottom quantised, top decoded or None, codes list, commitment)."""
        z = self.encoder(self._pad(audio)[:, None])  # (B, D, N)
        top_up, codes = None, []
        commitment = z.new_zeros(())
        top = self._top_level()
        if top is not None:
            top_encoder, top_codebook, top_decoder = top
            qt, top_codes, top_commit = top_codebook(top_encoder(z))  # (B, D, N_t)
            top_up = top_decoder(qt)  # (B, D, N)
            z = z + top_up
            codes.append(top_codes)
            commitment = commitment + top_commit
        q, bottom_codes, bottom_commit = self.codebook(z)
        codes.insert(0, bottom_codes)
        return q, top_up, codes, commitment + bottom_commit

    def _decode_latent(self, q: torch.Tensor, top_up: torch.Tensor | None) -> torch.Tensor:
        if top_up is not None:
            q = q + top_up
        return torch.tanh(self.decoder(q))[:, 0]  # (B, T)

    @torch.no_grad()
    def reconstruct(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T) through the codes (no gradients; eval-mode codebook)."""
        was = self.training
        self.eval()
        try:
            return self._reconstruct(audio)
        finally:
            self.train(was)

    def _reconstruct(self, audio: torch.Tensor) -> torch.Tensor:
        q, top_up, _, _ = self._quantise(audio)
        return self._decode_latent(q, top_up)[:, : audio.shape[1]]

    @torch.no_grad()
    def encode(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """(B, T) float -> [bottom codes (B, T'/hop)] (+ [top codes (B, T'/top_hop)]),
        T' = T padded to a multiple of :attr:`frame`."""
        was = self.training
        self.eval()
        try:
            return self._quantise(audio)[2]
        finally:
            self.train(was)

    @torch.no_grad()
    def decode(self, codes: list[torch.Tensor], length: int | None = None) -> torch.Tensor:
        """Codes as :meth:`encode` gives them -> (B, T) float audio (cut to ``length``)."""
        if len(codes) != (2 if self.top_encoder is not None else 1):
            raise ConfigError(f"this VQ-VAE has {1 + bool(self.top_encoder)} code level(s), "
                              f"got {len(codes)}")
        top_up = None
        top = self._top_level()
        if top is not None:
            _, top_codebook, top_decoder = top
            top_up = top_decoder(top_codebook.lookup(codes[1]))
        audio = self._decode_latent(self.codebook.lookup(codes[0]), top_up)
        return audio if length is None else audio[:, :length]

    # ---- training -------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        audio = batch["audio"]  # (B, T)
        q, top_up, codes, commitment = self._quantise(audio)
        recon = self._decode_latent(q, top_up)[:, : audio.shape[1]]
        mask = batch.get("mask")
        weights = torch.ones_like(audio) if mask is None else mask.float()
        wave = ((recon - audio).abs() * weights).sum() / weights.sum().clamp(min=1)
        spectral = multi_resolution_stft_loss(recon * weights, audio * weights)
        loss = wave + self.config.spectral_weight * spectral + self.config.beta * commitment
        used = torch.unique(codes[0]).numel() / self.config.codebook_size
        return {"loss": loss, "wave_l1": wave.detach(), "spectral": spectral.detach(),
                "commitment": commitment.detach(),
                "codes_used": torch.tensor(float(used))}

    # ---- sampling -------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, n: int, steps: int, controls: SamplingControls | None = None,
                 prime=None,
                 condition=None) -> torch.Tensor:
        """(n, steps) audio decoded from codes drawn i.i.d. from the codebook's usage
        (N_k); a prior family over the codes samples far better (``tunesmith audio
        sample --prior``)."""
        seed = getattr(controls, "seed", None)
        generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        length = steps + (-steps % self.frame)
        codes = []
        for codebook, hop in ((self.codebook, self.config.hop),
                              (self.top_codebook, self.config.top_hop)):
            if codebook is None:
                continue
            p = codebook.cluster_size.cpu() / codebook.cluster_size.sum().cpu()
            drawn = torch.multinomial(p, n * (length // hop), replacement=True,
                                      generator=generator)
            codes.append(drawn.reshape(n, -1).to(codebook.embedding.device))
        return self.decode(codes, steps)
