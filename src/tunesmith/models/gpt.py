"""A GPT-style multi-track event model with conditioning tokens (after MuseNet, Payne 2019,
and GPT-2, Radford et al. 2019).

One token stream holds every track (REMI / MIDI-Like with ``use_programs``: a ``Program``
token before each note). Each input token's embedding is the sum of

* its token embedding,
* a *track* embedding: the program of the latest ``Program`` token at or before it in the
  window (MuseNet's instrument embedding; none before the first), and
* with ``positions="learned"`` a learned absolute position embedding (GPT-2), while
  ``positions="rotary"`` rotates queries and keys instead (RoFormer, Su et al. 2021).

Every window starts with conditioning tokens, one per slot — corpus, key, tempo bucket,
density bucket — then a window-start token. They are extra ids after the tokenizer's
vocabulary (``EventGPTConfig.condition_sizes()`` says how many per slot; value 0 of each slot is
"unknown"). In training they come from the batch key ``condition_tokens`` (B, 4) long
(slot values) when the data provides it, else they are computed from the batch:
corpus from ``corpus_id`` (B,), key by Krumhansl–Schmuckler from the pitch tokens, tempo
from ``Tempo`` tokens, density as notes per bar (REMI); each slot is dropped to "unknown"
with probability ``condition_dropout`` so unconditioned sampling stays in distribution.
At generation ``condition`` gives ``condition_tokens`` (n, 4) or any of ``corpus``,
``key``, ``tempo``, ``density`` (int or (n,) long slot values); missing ones are unknown.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.errors import ConfigError
from tunesmith.models.transformer_blocks import (
    Block,
    KVCache,
    TokenModelConfig,
    TokenTransformer,
    merge_heads,
    split_heads,
)
from tunesmith.music.keys import MAJOR_PROFILE, MINOR_PROFILE

#: conditioning slots, in the order of the prefix and of ``condition_tokens`` columns
CONDITION_SLOTS = ("corpus", "key", "tempo", "density")
N_KEYS = 24  # key slot values 1..24: 1 + 12 * mode + tonic (mode 0 major, 1 minor)
N_PROGRAM_TRACKS = 130  # track ids: 0 none, 1 + (program + 1) for programs -1 (drums) .. 127


@dataclasses.dataclass
class EventGPTConfig(TokenModelConfig):
    """GPT options on top of the shared ones (:class:`TokenModelConfig`)."""

    positions: str = "rotary"  # "rotary" (RoPE) or "learned" (absolute, as GPT-2)
    rotary_base: float = 10000.0  # RoPE frequency base (Su et al. 2021)
    track_embeddings: bool = True  # add an embedding of the current Program to each token
    n_corpora: int = 8  # corpus ids 0..n-1 (batch "corpus_id"); larger ids share the last
    n_tempo_buckets: int = 8  # tempo slot: equal-width buckets over 50..200 quarters/min
    n_density_buckets: int = 8  # density slot: log-spaced buckets over 1..64 notes per bar
    condition_dropout: float = 0.1  # training: each slot set to "unknown" with this chance

    def check(self) -> None:
        super().check()
        if self.positions not in ("rotary", "learned"):
            raise ConfigError(f"positions must be 'rotary' or 'learned', got {self.positions!r}")
        if self.positions == "rotary" and (self.d_model // self.n_heads) % 2:
            raise ConfigError("rotary positions need an even head size (d_model / n_heads)")

    def condition_sizes(self) -> tuple[int, ...]:
        """Values of each slot, "unknown" (0) included."""
        return (self.n_corpora + 1, N_KEYS + 1, self.n_tempo_buckets + 1,
                self.n_density_buckets + 1)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of x (B, H, T, Dh) with cos/sin (T, Dh/2): pairs (x1, x2) of the
    two halves turned by the position's angles."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention, optionally with rotary positions."""

    cos: torch.Tensor  # (context, head_dim / 2) rotary angles (buffers, with rotary only)
    sin: torch.Tensor

    def __init__(self, config: EventGPTConfig):
        super().__init__()
        c = config
        self.n_heads = c.n_heads
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)
        self.out = nn.Linear(c.d_model, c.d_model)
        self.dropout = c.dropout
        self.rotary = c.positions == "rotary"
        if self.rotary:
            half = c.d_model // c.n_heads // 2
            inverse = c.rotary_base ** (-torch.arange(half, dtype=torch.float64) / half)
            angles = torch.arange(c.context, dtype=torch.float64)[:, None] * inverse  # (L, Dh/2)
            self.register_buffer("cos", angles.cos().float(), persistent=False)
            self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0):
        _, t, d = x.shape
        q, k, v = (split_heads(z, self.n_heads) for z in self.qkv(x).split(d, dim=-1))
        past = cache.length if cache is not None else 0
        if self.rotary:
            cos = self.cos[past : past + t].to(q.dtype)
            sin = self.sin[past : past + t].to(q.dtype)
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if cache is not None:
            k, v = cache.store(layer, k, v)  # (B, H, past + T, Dh)
        drop = self.dropout if self.training else 0.0
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        else:  # query i (at past + i) sees keys j <= past + i
            allowed = (torch.arange(past + t, device=x.device)[None, :]
                       <= past + torch.arange(t, device=x.device)[:, None])  # (T, past + T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=drop)
        return self.out(merge_heads(y))  # (B, T, D)


class EventGPT(TokenTransformer):
    """GPT over multi-track event tokens with track embeddings and conditioning tokens."""

    family = "gpt-events"
    config_class = EventGPTConfig
    config: EventGPTConfig

    def __init__(self, config: EventGPTConfig):
        super().__init__(config)
        c = config
        self.n_extra_tokens = 1 + sum(c.condition_sizes())  # start token, then conditions
        self.embed = nn.Embedding(c.vocab_size + self.n_extra_tokens, c.d_model)
        self.position = nn.Embedding(c.context, c.d_model) if c.positions == "learned" else None
        self.track = nn.Embedding(N_PROGRAM_TRACKS, c.d_model) if c.track_embeddings else None
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(CausalSelfAttention(c), c.d_model, c.d_ff, c.dropout) for _ in range(c.n_layers)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size)
        self._tables: dict[str, torch.Tensor] | None = None

    # ---- per-token facts from the tokenizer ----------------------------------------
    def tables(self) -> dict[str, torch.Tensor]:
        """(V + extras,) tables: track id, pitch class of onsets, note onsets, bars, tempo."""
        if self._tables is None or self._tables["track"].device != self._device():
            size = self.config.vocab_size + self.n_extra_tokens
            tables = {
                "track": torch.zeros(size, dtype=torch.long),
                "pitch_class": torch.full((size,), -1, dtype=torch.long),
                "onset": torch.zeros(size, dtype=torch.bool),
                "bar": torch.zeros(size, dtype=torch.bool),
                "tempo": torch.full((size,), float("nan")),
            }
            vocab = self.vocabulary()
            if vocab is not None:
                for idx, (kind, value) in enumerate(zip(vocab.types, vocab.values, strict=True)):
                    if kind == "Program":
                        tables["track"][idx] = int(value) + 2
                    elif kind in ("Pitch", "NoteOn"):
                        tables["pitch_class"][idx] = int(value) % 12
                    if kind in ("Pitch", "NoteOn", "PitchDrum", "DrumOn"):
                        tables["onset"][idx] = True
                    elif kind == "Bar":
                        tables["bar"][idx] = True
                    elif kind == "Tempo":
                        tables["tempo"][idx] = float(value)
            self._tables = {k: v.to(self._device()) for k, v in tables.items()}
        return self._tables

    # ---- conditioning --------------------------------------------------------------
    def condition_values(self, tokens: torch.Tensor, batch: dict) -> torch.Tensor:
        """(B, 4) slot values of a training batch (see module docstring)."""
        c, device = self.config, tokens.device
        if "condition_tokens" in batch:
            return batch["condition_tokens"].long()
        n = tokens.shape[0]
        tables = self.tables()
        values = torch.zeros(n, len(CONDITION_SLOTS), dtype=torch.long, device=device)
        if "corpus_id" in batch:
            values[:, 0] = batch["corpus_id"].long().clamp(0, c.n_corpora - 1) + 1
        mask = batch.get("mask", torch.ones_like(tokens, dtype=torch.bool))
        values[:, 1] = estimate_key(tables["pitch_class"][tokens].masked_fill(~mask, -1))
        tempo = tables["tempo"][tokens].masked_fill(~mask, float("nan"))  # (B, T)
        mean_tempo = tempo.nanmean(dim=1)  # (B,) nan where no Tempo token
        edges = torch.linspace(50, 200, c.n_tempo_buckets + 1, device=device)[1:-1]
        values[:, 2] = torch.where(mean_tempo.isnan(), 0,
                                   torch.bucketize(mean_tempo.nan_to_num(), edges) + 1)
        bars = (tables["bar"][tokens] & mask).sum(dim=1)  # (B,)
        notes = (tables["onset"][tokens] & mask).sum(dim=1)
        per_bar = notes.float() / bars.clamp(min=1)
        edges = torch.logspace(0, 6, c.n_density_buckets + 1, base=2.0, device=device)[1:-1]
        values[:, 3] = torch.where(bars > 0, torch.bucketize(per_bar, edges) + 1, 0)
        if self.training and c.condition_dropout > 0:
            dropped = torch.rand(values.shape, device=device) < c.condition_dropout
            values = values.masked_fill(dropped, 0)
        return values

    def condition_from_user(self, n: int, condition: dict | None) -> torch.Tensor:
        """(n, 4) slot values from a generation ``condition`` dict."""
        device = self._device()
        condition = condition or {}
        if "condition_tokens" in condition:
            values = torch.as_tensor(condition["condition_tokens"], dtype=torch.long,
                                     device=device)
            return values.expand(n, -1) if values.dim() == 1 else values
        values = torch.zeros(n, len(CONDITION_SLOTS), dtype=torch.long, device=device)
        for slot, name in enumerate(CONDITION_SLOTS):
            if name in condition:
                values[:, slot] = torch.as_tensor(condition[name], dtype=torch.long,
                                                  device=device)
        return values

    def prefix_tokens(self, n, condition=None, tokens=None, batch=None) -> torch.Tensor:
        """(n, 5): the four conditioning tokens, then the window-start token."""
        if tokens is not None:
            values = self.condition_values(tokens, batch or {})
        else:
            values = self.condition_from_user(n, condition)
        sizes = torch.tensor(self.config.condition_sizes(), device=values.device)
        if ((values < 0) | (values >= sizes)).any():
            raise ConfigError(
                f"condition values out of range: slots {CONDITION_SLOTS} take 0..{sizes - 1}"
            )
        offsets = torch.cumsum(sizes, 0) - sizes  # first id of each slot
        ids = self.config.vocab_size + 1 + offsets + values  # (n, 4)
        start = torch.full((n, 1), self.start_token, dtype=torch.long, device=values.device)
        return torch.cat([ids, start], dim=1)

    # ---- network -------------------------------------------------------------------
    def track_ids(self, x: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        """(B, T) track id of each token: the latest Program at or before it in the window."""
        program = self.tables()["track"][x]  # (B, T): 0 for tokens that are not Programs
        steps = torch.arange(x.shape[1], device=x.device).expand_as(x)
        latest = torch.where(program > 0, steps, -1).cummax(dim=1).values  # (B, T)
        carried = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        if cache is not None:
            carried = cache.state.get("track", carried)
        track = torch.where(latest >= 0, program.gather(1, latest.clamp(min=0)),
                            carried[:, None])
        if cache is not None:
            cache.state["track"] = track[:, -1]
        return track

    def forward_tokens(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        past = cache.length if cache is not None else 0
        h = self.embed(x)  # (B, T, D)
        if self.position is not None:
            h = h + self.position(torch.arange(past, past + x.shape[1], device=x.device))
        if self.track is not None:
            h = h + self.track(self.track_ids(x, cache))
        h = self.dropout(h)
        for layer, block in enumerate(self.blocks):
            h = block(h, cache, layer)
        if cache is not None:
            cache.advance(x.shape[1])
        return self.head(self.norm(h))  # (B, T, V)


def estimate_key(pitch_class: torch.Tensor) -> torch.Tensor:
    """Key slot value (1 + 12 * mode + tonic; 0 without notes) of each row of pitch
    classes (B, T) (-1 = not a note), by the Krumhansl–Schmuckler algorithm: the major or
    minor Krumhansl–Kessler profile, rotated to each tonic, best correlated with the
    pitch-class histogram (Krumhansl, *Cognitive Foundations of Musical Pitch*, 1990)."""
    valid = pitch_class >= 0
    histogram = torch.zeros(pitch_class.shape[0], 12, device=pitch_class.device)
    histogram.scatter_add_(1, pitch_class.clamp(min=0), valid.float())  # (B, 12)
    index = (torch.arange(12)[None, :] - torch.arange(12)[:, None]) % 12  # [tonic, pc]
    profiles = torch.stack([torch.as_tensor(MAJOR_PROFILE, dtype=torch.float32)[index],
                            torch.as_tensor(MINOR_PROFILE, dtype=torch.float32)[index]])
    profiles = profiles.reshape(N_KEYS, 12).to(pitch_class.device)  # (24, 12): mode-major
    centred = profiles - profiles.mean(dim=1, keepdim=True)
    h = histogram - histogram.mean(dim=1, keepdim=True)
    correlation = (h @ centred.T) / (
        h.norm(dim=1, keepdim=True) * centred.norm(dim=1)[None, :]
    ).clamp(min=1e-12)  # (B, 24)
    key = correlation.argmax(dim=1) + 1
    return torch.where(valid.any(dim=1) & (h.norm(dim=1) > 0), key, 0)
