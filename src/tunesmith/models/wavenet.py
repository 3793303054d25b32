"""WaveNet and TCN over piano-roll frames, with cached (Fast WaveNet) generation.

Two residual blocks share one causal, dilated convolutional backbone:

* ``block="gated"`` — WaveNet (van den Oord et al. 2016, "WaveNet: a generative model for
  raw audio"): per layer z = tanh(W_f ∗ x + V_f c) ⊙ σ(W_g ∗ x + V_g c), a 1×1 residual
  output added to x and a 1×1 skip output; the skips are summed, then ReLU → 1×1 → ReLU
  gives the features.
* ``block="relu"`` — the TCN TemporalBlock of Bai, Kolter & Koltun (2018), "An empirical
  evaluation of generic convolutional and recurrent networks for sequence modeling": two
  weight-normalised dilated causal convolutions with ReLU and dropout, plus a residual
  (1×1 convolution when the channel counts differ); the features are the last level's
  output (no skips).

Frames are the piano-roll of :mod:`tunesmith.representations.pianoroll`, flattened
track-major to K = tracks × pitches keys. The network sees its input shifted right by one
step (an all-zero frame first), so the features at step t have seen frames < t only and
predict frame t; the output distribution comes from a swappable head
(:func:`tunesmith.models.heads.make_head`: independent sigmoids, NADE, one categorical
per voice...).

**First frame.** Frame 0 is predicted from the zero frame alone. It is scored by
:meth:`WaveNet.loss` unless ``WaveNetConfig.score_first_frame`` is False; the published
polyphonic benchmark protocol (Boulanger-Lewandowski et al. 2012; Bai et al. 2018) does
not score it — use ``score_first_frame=False`` or :meth:`WaveNet.frame_log_prob` (all
frames, (B, T)) and drop column 0 yourself.

**Conditioning.** A per-step conditioning vector c (B, T, C_c) enters every layer through
a 1×1 projection: a learned embedding of ``corpus_id`` (global), a 12-bin pitch-class
histogram ``pitch_histogram`` (global, see :func:`tunesmith.music.keys.key_profile`) and a local
sequence ``local_cond`` (B, T_c, C) at ``local_rate`` steps per conditioning frame,
upsampled by repetition or a transposed convolution (e.g. chords, or a given melody).

**Generation.** :meth:`WaveNet.generate` keeps, per convolution, a ring buffer of its
last (kernel-1)·dilation+1 inputs (Paine et al. 2016, "Fast WaveNet generation
algorithm"), so a step costs one time step of each layer. :meth:`WaveNet.generate_naive`
recomputes the whole prefix at each step; the two give the same samples for one seed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from tunesmith.config import UNIT_OPEN, Range, at_least
from tunesmith.errors import ConfigError
from tunesmith.models.base import GenerativeModel, ModelConfig
from tunesmith.models.heads import VoiceOnsetHead, head_reads_onsets, make_head
from tunesmith.models.rolls import pitch_class_histograms
from tunesmith.models.sampling import SamplingControls, limit_sustain
from tunesmith.representations.info import DataInfo


@dataclasses.dataclass
class WaveNetConfig(ModelConfig):
    """Options of the WaveNet/TCN family. Sizes marked (data) are set by ``config_for_data``."""

    keys: int = 88  # (data) keys per frame K = n_tracks × n_pitches, track-major
    n_tracks: int = 1  # (data) tracks per frame; note limits apply per track
    n_pitches: int = 88  # (data) pitches per track
    pitch_low: int = 21  # (data) MIDI pitch of key 0, for pitch histograms computed from frames
    block: str = "gated"  # "gated" (WaveNet) | "relu" (TCN TemporalBlock of Bai et al.)
    kernel_size: int = 2  # taps of every dilated convolution (WaveNet 2; Bai JSB 3)
    levels: int = 8  # dilations 1, 2, 4, ..., 2^(levels-1) in a stack (8: 256 steps = 16 bars)
    blocks: int = 1  # stacks of those levels (WaveNet repeats 1..512 several times)
    dilations: list[int] = dataclasses.field(default_factory=list)  # explicit; overrides above
    channels: int = 64  # residual channels (TCN: channels of every level)
    skip_channels: int = 64  # skip channels of the gated block = feature size H
    dropout: float = 0.0  # gated: on z; relu: after each ReLU inside a block (Bai JSB 0.5)
    input_dropout: float = 0.0  # dropout on the context frames the network reads (training)
    head: str = "bernoulli"  # output head from models.heads.HEADS ("bernoulli", "nade", "voices",
    # "voices-onset": strike / hold / rest per voice; reads and writes frames ‖ onsets)
    nade_hidden: int = 150  # hidden units of the NADE or voices head
    nade_dropout: float = 0.0  # NADE head: dropout on its hidden units (training only)
    nade_order_agnostic: bool = False  # NADE head: train on a random key ordering per frame
    nade_orderings: int = 1  # NADE head: score with the mixture of this many orderings
    n_global_classes: int = 0  # >0: learned embedding of batch key corpus_id (B,) in [0, n)
    global_channels: int = 16  # size of that embedding
    pitch_histogram_cond: bool = False  # condition on batch key pitch_histogram (B, 12)
    local_channels: int = 0  # >0: condition on batch key local_cond (B, T_c, local_channels)
    local_rate: int = 1  # steps per local conditioning frame (T_c · local_rate ≥ T)
    local_upsample: str = "repeat"  # "repeat" | "transposed" (learned, kernel = stride = rate)
    score_first_frame: bool = True  # loss includes frame 0 (predicted from the zero frame)

    choices: ClassVar[dict[str, tuple]] = {"block": ("gated", "relu")}
    ranges: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(("kernel_size", "levels", "blocks", "channels", "skip_channels",
                        "global_channels", "local_rate", "nade_hidden", "dilations"),
                        at_least(1)),
        "dropout": UNIT_OPEN, "input_dropout": UNIT_OPEN}

    def check(self) -> None:
        if self.keys != self.n_tracks * self.n_pitches:
            raise ConfigError(
                f"keys ({self.keys}) must equal n_tracks × n_pitches "
                f"({self.n_tracks} × {self.n_pitches})"
            )
        if self.n_global_classes < 0 or self.local_channels < 0:
            raise ConfigError("n_global_classes and local_channels must be >= 0")
        if self.local_upsample not in ("repeat", "transposed"):
            raise ConfigError(
                f"local_upsample must be 'repeat' or 'transposed', got {self.local_upsample!r}"
            )

    @property
    def frame_width(self) -> int:
        """Columns of a frame the network reads and writes: K, or 2K (sounding keys ‖
        onsets) with an onset head."""
        return self.keys * (2 if head_reads_onsets(self.head) else 1)

    def layer_dilations(self) -> list[int]:
        """Dilation of every layer (gated) or TemporalBlock (relu), input to output."""
        if self.dilations:
            return [int(d) for d in self.dilations]
        return [2**i for i in range(self.levels)] * self.blocks

    @property
    def cond_channels(self) -> int:
        """Size of the per-step conditioning vector c fed to every layer (0 = none)."""
        return (
            (self.global_channels if self.n_global_classes else 0)
            + (12 if self.pitch_histogram_cond else 0)
            + self.local_channels
        )


class CausalConv1d(nn.Conv1d):
    """Dilated convolution padded on the left only: output t sees inputs ≤ t."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left_pad = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, T) -> (B, C_out, T)
        return super().forward(F.pad(x, (self.left_pad, 0)))


class GatedResidualLayer(nn.Module):
    """WaveNet layer: gated dilated conv, conditioning, 1×1 residual and skip outputs."""

    def __init__(self, channels, skip_channels, kernel_size, dilation, cond_channels, dropout):
        super().__init__()
        self.channels = channels
        self.dilated = CausalConv1d(channels, 2 * channels, kernel_size, dilation)  # [W_f; W_g]
        self.cond = nn.Conv1d(cond_channels, 2 * channels, 1, bias=False) if cond_channels else None
        self.res_skip = nn.Conv1d(channels, channels + skip_channels, 1)  # [residual; skip]
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, cond):  # x (B, C, T), cond (B, C_c, T) or None
        a = self.dilated(x)  # (B, 2C, T)
        if self.cond is not None:
            a = a + self.cond(cond)
        filt, gate = a.chunk(2, dim=1)  # (B, C, T) each
        z = self.dropout(torch.tanh(filt) * torch.sigmoid(gate))  # (B, C, T)
        out = self.res_skip(z)  # (B, C + S, T)
        return x + out[:, : self.channels], out[:, self.channels :]  # (B, C, T), (B, S, T)


class TemporalBlock(nn.Module):
    """Bai et al. (2018) TCN block: 2 × (weight-normed causal conv → ReLU → dropout) + residual."""

    def __init__(self, in_channels, out_channels, kernel_size, dilation, cond_channels, dropout):
        super().__init__()
        self.conv1 = weight_norm(CausalConv1d(in_channels, out_channels, kernel_size, dilation))
        self.conv2 = weight_norm(CausalConv1d(out_channels, out_channels, kernel_size, dilation))
        self.cond = nn.Conv1d(cond_channels, out_channels, 1, bias=False) if cond_channels else None
        self.downsample = (
            nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )
        if self.downsample is not None:
            self.downsample.weight.data.normal_(0, 0.01)  # as in Bai et al.'s code
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, cond):  # x (B, C_in, T), cond (B, C_c, T) or None -> (B, C_out, T)
        y = self.conv1(x)
        if self.cond is not None:
            y = y + self.cond(cond)
        y = self.dropout(torch.relu(y))
        y = self.dropout(torch.relu(self.conv2(y)))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.relu(y + residual)


class WaveNet(GenerativeModel):
    """Causal dilated CNN over piano-roll frames (gated WaveNet or ReLU TCN) + frame head."""

    family = "wavenet"
    representation = "pianoroll"
    config_class = WaveNetConfig
    config: WaveNetConfig

    def __init__(self, config: WaveNetConfig):
        super().__init__(config)
        c = config
        cond_channels = c.cond_channels
        self.corpus_embedding = (
            nn.Embedding(c.n_global_classes, c.global_channels) if c.n_global_classes else None
        )
        self.local_upsampler = (
            nn.ConvTranspose1d(c.local_channels, c.local_channels, c.local_rate, c.local_rate)
            if c.local_channels and c.local_upsample == "transposed" and c.local_rate > 1
            else None
        )
        dilations = c.layer_dilations()
        self.input: nn.Conv1d | None  # gated: frames -> residual channels
        self.post: nn.Conv1d | None  # gated: after ReLU(sum of skips)
        self.layers: nn.ModuleList  # GatedResidualLayer or TemporalBlock
        if c.block == "gated":
            self.input = nn.Conv1d(c.frame_width, c.channels, 1)  # frames -> residual channels
            self.layers = nn.ModuleList(
                GatedResidualLayer(c.channels, c.skip_channels, c.kernel_size, d,
                                   cond_channels, c.dropout)
                for d in dilations
            )
            self.post = nn.Conv1d(c.skip_channels, c.skip_channels, 1)  # after ReLU(Σ skips)
            hidden = c.skip_channels
        else:
            self.input = None  # Bai's first block reads the K keys directly
            self.layers = nn.ModuleList(
                TemporalBlock(c.frame_width if i == 0 else c.channels, c.channels, c.kernel_size, d,
                              cond_channels, c.dropout)
                for i, d in enumerate(dilations)
            )
            self.post = None
            hidden = c.channels
        self.head = make_head(c.head, hidden, c.keys, n_tracks=c.n_tracks,
                              nade_hidden=c.nade_hidden, nade_dropout=c.nade_dropout,
                              nade_order_agnostic=c.nade_order_agnostic,
                              nade_orderings=c.nade_orderings, onset_input=True)
        self.reads_onsets = self.head.reads_onsets  # frames (B, T, 2K): keys ‖ onsets

    @classmethod
    def config_for_data(cls, config: ModelConfig, info: DataInfo) -> WaveNetConfig:
        """Take K, tracks, pitches and the lowest pitch from the prepared data's info."""
        assert isinstance(config, WaveNetConfig)
        if head_reads_onsets(config.head) and not info.onsets:
            raise ConfigError(f"the {config.head} head needs onset grids: prepare the data "
                              "with --repr-set onset=true")
        return config.updated(keys=info.keys, n_tracks=info.n_tracks, n_pitches=info.n_pitches,
                              pitch_low=info.pitch_low)

    # ---- sizes ----------------------------------------------------------------------
    @property
    def receptive_field(self) -> int:
        """How many past frames the prediction of frame t sees: frames t-R … t-1.

        1 (the 1×1 input) + Σ (k-1)·d over the dilated convolutions (two per TCN block).
        """
        convs_per_layer = 1 if self.config.block == "gated" else 2
        return 1 + convs_per_layer * sum(
            (self.config.kernel_size - 1) * d for d in self.config.layer_dilations()
        )

    # ---- conditioning ---------------------------------------------------------------
    def condition_features(self, condition: dict | None, batch: int, steps: int,
                           frames: torch.Tensor | None = None) -> torch.Tensor | None:
        """Per-step conditioning vector c (B, C_c, T) from batch keys, or None without any.

        ``pitch_histogram`` falls back to the histogram of ``frames`` when given (training
        on data that carries none); ``corpus_id`` and ``local_cond`` are required when the
        model was built for them.
        """
        c = self.config
        condition = condition or {}
        device = next(self.parameters()).device
        parts = []  # each (B, C_i, T)
        if self.corpus_embedding is not None:
            corpus_id = _batched(condition.get("corpus_id"), batch, "corpus_id", device).long()
            if corpus_id.dim() != 1:
                raise ConfigError(f"corpus_id must be (B,), got shape {tuple(corpus_id.shape)}")
            if corpus_id.min() < 0 or corpus_id.max() >= c.n_global_classes:
                raise ConfigError(f"corpus_id must be in [0, {c.n_global_classes}), "
                                  f"got {corpus_id.tolist()}")
            parts.append(self.corpus_embedding(corpus_id)[:, :, None].expand(-1, -1, steps))
        if c.pitch_histogram_cond:
            histogram = condition.get("pitch_histogram")
            if histogram is None and frames is not None:
                histogram = pitch_histogram_from_frames(frames, c.n_pitches, c.pitch_low)
            histogram = _batched(histogram, batch, "pitch_histogram", device).float()
            if histogram.shape != (batch, 12):
                raise ConfigError(f"pitch_histogram must be (B, 12), got {tuple(histogram.shape)}")
            parts.append(histogram[:, :, None].expand(-1, -1, steps))
        if c.local_channels:
            parts.append(self._upsample_local(condition.get("local_cond"), batch, steps, device))
        return torch.cat(parts, dim=1) if parts else None

    def _upsample_local(self, local, batch, steps, device) -> torch.Tensor:
        """local_cond (B, T_c, C) -> (B, C, T) at the step rate."""
        c = self.config
        local = _batched(local, batch, "local_cond", device).float()
        if local.dim() != 3 or local.shape[2] != c.local_channels:
            raise ConfigError(f"local_cond must be (B, T_c, {c.local_channels}), "
                              f"got {tuple(local.shape)}")
        if local.shape[1] * c.local_rate < steps:
            raise ConfigError(
                f"local_cond has {local.shape[1]} frames × local_rate {c.local_rate} "
                f"< {steps} steps"
            )
        local = local.transpose(1, 2)  # (B, C, T_c)
        if self.local_upsampler is not None:
            local = self.local_upsampler(local)  # (B, C, T_c·rate), one kernel per frame
        elif c.local_rate > 1:
            local = local.repeat_interleave(c.local_rate, dim=2)  # (B, C, T_c·rate)
        return local[:, :, :steps]

    # ---- training and scoring -------------------------------------------------------
    def forward_features(self, frames: torch.Tensor, condition: dict | None = None):
        """Features h (B, T, H) with h[:, t] computed from frames[:, :t] only (and c ≤ t).

        ``frames`` (B, T, K) (or (B, T, 2K), keys ‖ onsets, for an onset head) are the
        frames to predict; the shift by one step happens here,
        so ``head.log_prob(h, frames)`` scores every frame, frame 0 from the zero frame.
        """
        batch, steps, _ = frames.shape
        sounding = frames[..., : self.config.keys]  # (B, T, K) without the onsets
        cond = self.condition_features(condition, batch, steps, sounding)  # (B, C_c, T) | None
        return self._features(frames, cond)

    def _features(self, frames: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        x = F.pad(frames.transpose(1, 2), (1, -1))  # (B, K, T): frame t-1 at step t, zeros at 0
        if self.training and self.config.input_dropout:
            # Context-note dropout: the past frames are read with notes dropped (the frames
            # to predict and the loss are untouched), so the network cannot lean on any one
            # note of the context; scoring and sampling (eval mode) read every note.
            x = F.dropout(x, self.config.input_dropout, training=True)
        if self.input is not None and self.post is not None:  # gated
            x = self.input(x)  # (B, C, T)
            skips = torch.zeros((), dtype=x.dtype, device=x.device)
            for layer in self.layers:
                x, skip = layer(x, cond)  # (B, C, T), (B, S, T)
                skips = skips + skip
            h = torch.relu(self.post(torch.relu(skips)))  # (B, S, T)
        else:
            for layer in self.layers:
                x = layer(x, cond)  # (B, C, T)
            h = x
        return h.transpose(1, 2)  # (B, T, H)

    def frame_log_prob(self, frames: torch.Tensor, mask: torch.Tensor | None = None,
                       condition: dict | None = None) -> torch.Tensor:
        """log p(frame t | frames < t, c) in nats, summed over keys, every step: (B, T).

        With an onset head, ``frames`` are (B, T, 2K), sounding keys ‖ onsets, and the
        figure is that of frames and onsets together (where each note starts, too).

        Column 0 is the first frame (predicted from the zero frame); the benchmark protocol
        drops it. ``mask`` is accepted for the common scoring interface and not needed: the
        network is causal, so padding at the end changes no real step.
        """
        h = self.forward_features(frames, condition)  # (B, T, H)
        return self.head.log_prob(h, frames)  # (B, T)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Mean over scored real steps of −log p(frame), in nats per frame (summed over keys)."""
        frames = self.input_frames(batch)  # (B, T, K) or (B, T, 2K)
        mask = batch.get("mask")
        mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device) \
            if mask is None else mask.bool().clone()  # (B, T)
        if not self.config.score_first_frame:
            mask[:, 0] = False
        log_prob = self.frame_log_prob(frames, condition=batch)  # (B, T)
        weights = mask.float()
        nll = -(log_prob * weights).sum() / weights.sum().clamp(min=1)
        return {"loss": nll, "nll_per_frame": nll.detach()}

    def input_frames(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The frames the network models: ``frames`` (B, T, K), or with an onset head
        ``frames`` ‖ ``onsets`` (B, T, 2K)."""
        frames = batch["frames"].float()  # (B, T, K)
        if not self.reads_onsets or frames.shape[-1] == self.config.frame_width:
            return frames
        if batch.get("onsets") is None:
            raise ConfigError(f"the {self.config.head} head needs the batch's onsets: "
                              "prepare the data with --repr-set onset=true")
        return torch.cat([frames, batch["onsets"].float()], -1)  # (B, T, 2K)

    # ---- sampling -------------------------------------------------------------------
    def generate(self, n: int, steps: int, controls: SamplingControls | None = None,
                 prime: torch.Tensor | None = None,
                 condition: dict | None = None) -> torch.Tensor:
        """Sample (n, steps, K) 0/1 frames with per-layer activation queues (Fast WaveNet);
        (n, steps, 2K), sounding keys ‖ onsets, with an onset head.

        Each step runs one time step of every layer: the input (frame t-1) is written into
        each convolution's ring buffer of its last (k-1)·d+1 inputs and the k taps are read
        back, so the cost per step does not grow with the receptive field or the length.
        ``prime`` (n|1, P, K) frames are kept unchanged at the start; one parallel forward
        pass over them fills the buffers (an onset head takes a (…, K) prime too: its notes
        then start where a key turns on). ``controls`` (:class:`SamplingControls`):
        temperature, threshold, per-track note limit, ``max_sustain_steps``, seed.
        """
        return self._generate(n, steps, controls, prime, condition, cached=True)

    def generate_naive(self, n: int, steps: int, controls: SamplingControls | None = None,
                       prime: torch.Tensor | None = None, condition: dict | None = None,
                       window: int | None = None) -> torch.Tensor:
        """Reference sampler: recompute the features of the whole prefix at every step.

        With ``window`` (≥ :attr:`receptive_field`) only the last ``window`` frames are
        fed to the network at each step, which gives the same result faster. Same samples
        as :meth:`generate` for a seed.
        """
        if window is not None and window < self.receptive_field:
            raise ConfigError(f"window {window} < receptive field {self.receptive_field}")
        return self._generate(n, steps, controls, prime, condition, cached=False, window=window)

    def _generate(self, n: int, steps: int, controls: SamplingControls | None,
                  prime: torch.Tensor | None, condition: dict | None, cached: bool,
                  window: int | None = None) -> torch.Tensor:
        controls = controls or SamplingControls()
        device = next(self.parameters()).device
        generator = controls.generator(device)
        was_training = self.training
        self.eval()  # no dropout while sampling
        try:
            with torch.inference_mode():
                width = self.config.frame_width
                frames = torch.zeros(n, steps, width, device=device)  # (n, steps, K | 2K)
                n_prime = self._write_prime(frames, prime)
                cond = self.condition_features(condition, n, steps)  # (n, C_c, steps) | None
                if cached:
                    cache = _CachedSteps(self, n, steps, cond)
                    cache.prefill(frames[:, :n_prime], cond)  # prime: one parallel pass
                    step_features = cache.features
                else:
                    step_features = self._prefix_features(cond, window)
                group = self.config.n_pitches  # note limits apply per track
                held = self._held_steps(frames[:, :n_prime])  # (n, V) | None
                for t in range(n_prime, steps):  # primed frames stay as given
                    h = step_features(frames, t)  # (n, H)
                    if held is None:
                        frame = self.head.draw(h, controls, generator, group)  # (n, K)
                        frames[:, t] = limit_sustain(frames[:, :t], frame,
                                                     controls.max_sustain_steps)
                    else:  # the head keeps notes to max_sustain_steps itself
                        assert isinstance(self.head, VoiceOnsetHead)
                        previous = frames[:, t - 1] if t else frames.new_zeros(n, width)
                        frames[:, t] = self.head.draw(h, controls, generator, group,
                                                      previous, held)  # (n, 2K)
                        held = self._held_steps(frames[:, t : t + 1], held)
        finally:
            self.train(was_training)
        return frames.clone()  # a normal tensor (outside inference mode), usable anywhere

    def _held_steps(self, frames: torch.Tensor,
                    held: torch.Tensor | None = None) -> torch.Tensor | None:
        """Onset head: how many steps each voice's note has sounded by the end of frames
        (n, T, 2K), continuing ``held`` (n, V) (None: from silence) -> (n, V) long; None
        for other heads."""
        if not self.reads_onsets:
            return None
        c = self.config
        if held is None:
            held = torch.zeros(frames.shape[0], c.n_tracks, dtype=torch.long,
                               device=frames.device)
        voices = frames.unflatten(-1, (2, c.n_tracks, c.n_pitches)) > 0  # (n, T, 2, V, P)
        for t in range(frames.shape[1]):
            sounding = voices[:, t, 0].any(-1)  # (n, V)
            struck = (voices[:, t, 0] & voices[:, t, 1]).any(-1)  # (n, V)
            held = torch.where(sounding & ~struck, held + 1, sounding.long())
        return held

    def _write_prime(self, frames: torch.Tensor, prime) -> int:
        """Copy prime (n|1, P, K) or (P, K) into the first steps of frames; returns P used.

        An onset model takes (…, 2K) primes, or (…, K) ones whose onsets are where a key
        turns on (repeated notes of such a primer merge)."""
        if prime is None:
            return 0
        n, steps, keys = frames.shape
        prime = torch.as_tensor(prime, dtype=torch.float32, device=frames.device)
        if prime.dim() == 2:
            prime = prime[None]
        if self.reads_onsets and prime.dim() == 3 and prime.shape[2] == self.config.keys:
            before = F.pad(prime[:, :-1], (0, 0, 1, 0))  # (n|1, P, K) the step before
            prime = torch.cat([prime, prime * (1 - before)], -1)  # onsets where keys turn on
        if prime.dim() != 3 or prime.shape[2] != keys or prime.shape[0] not in (1, n):
            raise ConfigError(f"prime must be ({n} or 1, P, {keys}), got {tuple(prime.shape)}")
        n_prime = min(prime.shape[1], steps)
        frames[:, :n_prime] = prime[:, :n_prime]
        return n_prime

    def _prefix_features(self, cond, window):
        """Naive step function: h_t from a full forward pass over frames[:, :t+1]."""

        def features(frames, t):
            start = 0 if window is None else max(0, t - window)  # frames t-window … t-1 seen
            sliced = None if cond is None else cond[:, :, start : t + 1]
            return self._features(frames[:, start : t + 1], sliced)[:, -1]  # (n, H)

        return features


class _CachedSteps:
    """One-time-step inference of a :class:`WaveNet` with a ring buffer per convolution.

    Weights are read once into plain matrices (weight norm applied, kernels flattened
    tap-major) so that a step is a handful of tensor ops per layer and no module calls;
    the conditioning projections of all steps are precomputed and folded into the conv
    biases. The gated layers keep the residual stream x and the sum of skips in one
    state row [x | skips] (n, C + S), updated by a single ``addmm`` per layer.
    """

    def __init__(self, model: WaveNet, n: int, steps: int, cond: torch.Tensor | None):
        config = model.config
        self.gated = config.block == "gated"
        self.n = n
        self.channels = config.channels
        device = next(model.parameters()).device
        self.model = model
        self.rings: dict[nn.Module, _RingConv] = {}  # each dilated conv module -> its ring
        # gated layers: (conv, W_rs, b_rs); TCN blocks: (conv1, conv2, W_down, b_down)
        self.gated_layers: list[tuple[_RingConv, torch.Tensor, torch.Tensor]] = []
        self.tcn_layers: list[tuple[_RingConv, _RingConv,
                                    tuple[torch.Tensor, torch.Tensor] | None]] = []
        with parametrize.cached():  # weight norm computed once
            for layer in model.layers:
                if isinstance(layer, GatedResidualLayer):
                    conv = self.rings[layer.dilated] = _RingConv(layer.dilated, layer.cond,
                                                                 cond, n, steps)
                    res_skip = layer.res_skip
                    self.gated_layers.append((conv, _matrix(res_skip),
                                              conv_bias(res_skip).expand(n, -1)))
                else:
                    assert isinstance(layer, TemporalBlock)
                    down = layer.downsample
                    self.rings[layer.conv1] = _RingConv(layer.conv1, layer.cond, cond, n, steps)
                    self.rings[layer.conv2] = _RingConv(layer.conv2, None, None, n, steps)
                    self.tcn_layers.append((
                        self.rings[layer.conv1],
                        self.rings[layer.conv2],
                        None if down is None else (_matrix(down), conv_bias(down)),
                    ))
        if model.input is not None and model.post is not None:  # gated
            self.input_w = _matrix(model.input)  # (K, C)
            self.input_b = conv_bias(model.input).expand(n, -1).contiguous()  # (n, C)
            self.post_w = _matrix(model.post)  # (S, S)
            self.post_b = conv_bias(model.post).expand(n, -1).contiguous()  # (n, S)
            self.state = torch.zeros(n, config.channels + config.skip_channels, device=device)
        self.zero_frame = torch.zeros(n, config.frame_width, device=device)

    def prefill(self, prime: torch.Tensor, cond: torch.Tensor | None) -> None:
        """Fill the rings with the inputs of times 0 … P-1 from one forward pass over the
        prime (n, P, K), as if steps 0 … P-1 had been run; the next step is t = P."""
        steps = prime.shape[1]
        if steps == 0:
            return
        captured = {}  # conv module -> its input (n, C_in, P)

        def capture(module, args):
            captured[module] = args[0]

        hooks = [module.register_forward_pre_hook(capture) for module in self.rings]
        try:
            self.model._features(prime, None if cond is None else cond[:, :, :steps])
        finally:
            for hook in hooks:
                hook.remove()
        for module, ring in self.rings.items():
            ring.fill(captured[module])

    def features(self, frames: torch.Tensor, t: int) -> torch.Tensor:
        """h_t (n, H) from frame t-1 (pushed into the rings) and the rings' past inputs."""
        previous = self.zero_frame if t == 0 else frames[:, t - 1]  # (n, K)
        if not self.gated:
            x = previous
            for conv1, conv2, downsample in self.tcn_layers:
                y = torch.relu_(conv1.step(x, t))  # (n, C)
                y = torch.relu_(conv2.step(y, t))  # (n, C)
                if downsample is None:
                    residual_added = y + x
                else:  # 1×1 residual projection
                    down_w, down_b = downsample
                    residual_added = torch.addmm(y, x, down_w).add_(down_b)
                x = torch.relu_(residual_added)  # (n, C)
            return x
        channels = self.channels
        state = self.state
        state[:, :channels] = torch.addmm(self.input_b, previous, self.input_w)  # x (n, C)
        state[:, channels:] = 0  # skips (n, S)
        for conv, res_skip_w, res_skip_b in self.gated_layers:
            filt, gate = conv.step(state[:, :channels], t).chunk(2, dim=1)  # (n, C) each
            z = torch.tanh(filt) * torch.sigmoid(gate)  # (n, C)
            state = torch.addmm(state, z, res_skip_w).add_(res_skip_b)  # [x + res | skips + skip]
        skips = state[:, channels:]  # (n, S)
        return torch.relu(torch.addmm(self.post_b, torch.relu(skips), self.post_w))  # (n, S)


class _RingConv:
    """A causal dilated conv evaluated one time step at a time over a ring of its inputs."""

    def __init__(self, conv: CausalConv1d, cond_proj, cond, n: int, steps: int):
        weight = conv.weight.detach()  # (C_out, C_in, k), weight norm applied
        c_out, c_in, kernel = weight.shape
        dilation = conv.dilation[0]
        self.n = n
        self.length = (kernel - 1) * dilation + 1  # inputs needed at one step
        self.buffer = torch.zeros(n, self.length, c_in, device=weight.device)  # (n, L, C_in)
        # at time t, tap j reads input t - (k-1-j)·d, kept in slot (t - (k-1-j)·d) mod L
        self.taps = [
            torch.tensor([(t - (kernel - 1 - j) * dilation) % self.length for j in range(kernel)],
                         device=weight.device)
            for t in range(self.length)
        ]
        self.weight = weight.permute(2, 1, 0).reshape(kernel * c_in, c_out).contiguous()
        self.flat_inputs = kernel * c_in
        if cond_proj is not None and cond is not None:  # bias + V c_t for every step t
            bias = cond_proj(cond) + conv_bias(conv)[None, :, None]  # (n, C_out, steps)
            self.bias_at = bias.permute(2, 0, 1).contiguous().unbind(0)  # steps × (n, C_out)
        else:
            self.bias_at = None
            self.bias = conv_bias(conv).expand(n, -1).contiguous()  # (n, C_out)

    def fill(self, inputs: torch.Tensor) -> None:
        """Store the last L of the inputs (n, C_in, P) of times 0 … P-1 in their slots."""
        steps = inputs.shape[2]
        for time_index in range(max(0, steps - self.length), steps):
            self.buffer[:, time_index % self.length] = inputs[:, :, time_index]

    def step(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Push input x (n, C_in) of time t; return the conv output at t (n, C_out)."""
        slot = t % self.length
        self.buffer[:, slot] = x
        taps = self.buffer.index_select(1, self.taps[slot]).view(self.n, self.flat_inputs)
        bias = self.bias if self.bias_at is None else self.bias_at[t]
        return torch.addmm(bias, taps, self.weight)  # (n, C_out)


def _matrix(conv: nn.Conv1d) -> torch.Tensor:
    """A 1×1 convolution's weight as an (in, out) matrix for ``x @ W``."""
    return conv.weight.detach()[:, :, 0].t().contiguous()


def conv_bias(conv: nn.Conv1d) -> torch.Tensor:
    """A convolution's bias (C_out,), detached; every conv read here has one."""
    assert conv.bias is not None
    return conv.bias.detach()


def _batched(value, batch: int, name: str, device) -> torch.Tensor:
    """A conditioning input as a tensor with batch size ``batch`` (a batch of 1 or an
    unbatched value is repeated)."""
    if value is None:
        raise ConfigError(f"this model is conditioned on {name!r}; pass it in the batch/condition")
    value = torch.as_tensor(value, device=device)
    expected_dims = {"corpus_id": 1, "pitch_histogram": 2, "local_cond": 3}[name]
    if value.dim() == expected_dims - 1:
        value = value[None]
    if value.shape[0] == 1 and batch > 1:
        value = value.expand(batch, *value.shape[1:])
    if value.shape[0] != batch:
        raise ConfigError(f"{name} has batch size {value.shape[0]}, expected {batch}")
    return value


# ---- pitch-class histograms for conditioning ------------------------------------------
def pitch_histogram_from_frames(frames: torch.Tensor, n_pitches: int, pitch_low: int,
                                mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pitch-class histogram of piano-roll frames (B, T, K = tracks × pitches) -> (B, 12)
    (:func:`tunesmith.models.rolls.pitch_class_histograms`); a piece without notes gets
    the uniform histogram."""
    histogram = pitch_class_histograms(frames, n_pitches, pitch_low, mask)  # (B, 12)
    empty = histogram.sum(1, keepdim=True) == 0
    return torch.where(empty, torch.full_like(histogram, 1 / 12), histogram)


def music_seconds(steps: int, steps_per_quarter: int, qpm: float) -> float:
    """Duration in seconds of ``steps`` grid steps at ``qpm`` quarter notes per minute."""
    return steps / steps_per_quarter * 60.0 / qpm


def steps_for_minutes(minutes: float, steps_per_quarter: int, qpm: float) -> int:
    """Grid steps of ``minutes`` of music at ``qpm`` quarter notes per minute."""
    return math.ceil(minutes * qpm * steps_per_quarter)
