"""Music Transformer (Huang et al., "Music Transformer: Generating Music with Long-Term
Structure", ICLR 2019): a decoder-only Transformer over event tokens whose self-attention
adds learned *relative* position logits.

For a head with queries Q, keys K, values V (T × Dh) and relative embeddings E_r (one row
per distance, L rows for distances L-1 ... 0), attention is
``softmax((Q Kᵀ + S_rel) / √Dh) V`` with ``S_rel[i, j] = q_i · e_{i-j}`` for j ≤ i. The
"skewing" procedure (§3.4.1) gets S_rel from Q E_rᵀ (T × T) without the T × T × Dh tensor
of Shaw et al. (2018): pad a zero column on the left, reshape (T, T+1) to (T+1, T), drop
the first row. :func:`relative_attention_naive` is the O(T²·Dh)-memory reference.

The cached sampler computes the new query's row of relative logits directly,
``q_t · E_r[L-1-t .. L-1]ᵀ``. There are no absolute positions: as in the paper's
relative-only model, order is known through the causal mask and E_r.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.models.transformer_blocks import (
    Block,
    KVCache,
    TokenModelConfig,
    TokenTransformer,
    merge_heads,
    split_heads,
)


@dataclasses.dataclass
class MusicTransformerConfig(TokenModelConfig):
    """Music Transformer options. The shared defaults (:class:`TokenModelConfig`) are a
    small model that trains on a CPU; the paper's models are larger."""

    relative_per_head: bool = True  # one E_r per head (False: one E_r shared by all heads)


def relative_logits_skewed(q: torch.Tensor, er: torch.Tensor) -> torch.Tensor:
    """S_rel (B, H, T, T) with S_rel[i, j] = q_i · e_{i-j} for j ≤ i (entries j > i are
    meaningless and must be masked) by the skewing procedure.

    ``q`` (B, H, T, Dh); ``er`` (H or 1, T, Dh): embeddings of distances T-1 ... 0.
    """
    b, h, t, _ = q.shape
    q_er = torch.matmul(q, er.transpose(-1, -2))  # (B, H, T, T): [i, r] = q_i · e_{T-1-r}
    padded = F.pad(q_er, (1, 0))  # (B, H, T, T + 1): a zero column on the left
    skewed = padded.reshape(b, h, t + 1, t)  # (B, H, T + 1, T)
    return skewed[:, :, 1:]  # (B, H, T, T): [i, j] = q_i · e_{i-j}


def relative_attention_naive(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, er: torch.Tensor
) -> torch.Tensor:
    """Causal relative attention with the explicit (H, T, T, Dh) tensor of embeddings.

    ``q, k, v`` (B, H, T, Dh); ``er`` (H, L, Dh) or (L, Dh) with L ≥ T, row L-1-d embedding
    distance d. Returns (B, H, T, Dh). The reference for :class:`RelativeSelfAttention`.
    """
    _, h, t, dh = q.shape
    if er.dim() == 2:
        er = er.unsqueeze(0).expand(h, -1, -1)
    length = er.shape[1]
    distance = torch.arange(t)[:, None] - torch.arange(t)[None, :]  # (T, T): i - j
    rows = (length - 1 - distance).clamp(0, length - 1)  # (T, T)
    embeddings = er[:, rows]  # (H, T, T, Dh): e_{i-j} for every pair
    s_rel = torch.einsum("bhid,hijd->bhij", q, embeddings)  # (B, H, T, T)
    logits = (q @ k.transpose(-1, -2) + s_rel) / math.sqrt(dh)
    logits = logits.masked_fill(distance < 0, float("-inf"))  # causal
    return torch.softmax(logits, dim=-1) @ v


class RelativeSelfAttention(nn.Module):
    """Multi-head causal self-attention with learned relative position logits (skewed)."""

    def __init__(self, d_model: int, n_heads: int, context: int, per_head: bool, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.context = context
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        # E_r: (H or 1, L, Dh), row L-1-d for distance d (max distance L-1 = context - 1)
        self.er = nn.Parameter(
            torch.randn(n_heads if per_head else 1, context, self.head_dim)
            / math.sqrt(self.head_dim)
        )
        self.dropout = dropout

    def distance_embeddings(self, length: int) -> torch.Tensor:
        """E_r rows for distances length-1 ... 0: (H or 1, length, Dh). Distances beyond
        the learned ``context - 1`` share the farthest row (clipped, as Shaw et al. 2018)."""
        if length <= self.context:
            return self.er[:, self.context - length :]
        far = self.er[:, :1].expand(-1, length - self.context, -1)
        return torch.cat([far, self.er], dim=1)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0):
        _, t, d = x.shape
        q, k, v = (split_heads(z, self.n_heads) for z in self.qkv(x).split(d, dim=-1))
        past = cache.length if cache is not None else 0  # positions before x
        if cache is not None:
            k, v = cache.store(layer, k, v)  # (B, H, past + T, Dh)
        total = past + t
        scale = 1.0 / math.sqrt(self.head_dim)
        if past == 0:  # a whole window: skewing
            s_rel = relative_logits_skewed(q, self.distance_embeddings(t))  # (B, H, T, T)
            future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        elif t == 1:  # a cached step: the query's row directly, keys at distances past ... 0
            s_rel = q @ self.distance_embeddings(total).transpose(-1, -2)  # (B, H, 1, total)
            future = torch.zeros(1, total, dtype=torch.bool, device=x.device)
        else:  # several tokens after a cache: gather the embeddings (not used by the sampler)
            rows = past + torch.arange(t, device=x.device)[:, None] - torch.arange(
                total, device=x.device
            )[None, :]  # (T, total): distances
            future = rows < 0
            embeddings = self.er[:, (self.context - 1 - rows).clamp(0, self.context - 1)]
            s_rel = torch.einsum("bhid,hijd->bhij", q, embeddings.expand(self.n_heads, -1, -1, -1))
        bias = (s_rel * scale).masked_fill(future, float("-inf"))  # added to QKᵀ/√Dh
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, Dh)
        return self.out(merge_heads(y))


def relative_attention_blocks(c) -> nn.ModuleList:
    """``c.n_layers`` pre-norm blocks with relative self-attention, from a config with
    d_model, n_heads, d_ff, context, relative_per_head and dropout (the Music Transformer's
    and the frame Transformer's)."""
    return nn.ModuleList(
        Block(
            RelativeSelfAttention(c.d_model, c.n_heads, c.context, c.relative_per_head,
                                  c.dropout),
            c.d_model, c.d_ff, c.dropout,
        )
        for _ in range(c.n_layers)
    )


class MusicTransformer(TokenTransformer):
    """Decoder-only Transformer with relative self-attention over event tokens."""

    family = "music-transformer"
    config_class = MusicTransformerConfig
    config: MusicTransformerConfig
    n_extra_tokens = 1  # the window-start token

    def __init__(self, config: MusicTransformerConfig):
        super().__init__(config)
        c = config
        self.embed = nn.Embedding(c.vocab_size + self.n_extra_tokens, c.d_model)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = relative_attention_blocks(c)
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size)

    def forward_tokens(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        h = self.dropout(self.embed(x))  # (B, T, D)
        for layer, block in enumerate(self.blocks):
            h = block(h, cache, layer)
        if cache is not None:
            cache.advance(x.shape[1])
        return self.head(self.norm(h))  # (B, T, V)
