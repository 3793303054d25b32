"""What the token Transformers share: the pre-LN feed-forward block, the key/value cache,
and one sampler (KV-cached, constrained, primed, sliding-window) over event tokens.

The two families (:mod:`tunesmith.models.music_transformer`, :mod:`tunesmith.models.gpt`)
bring their attention and their prefix; :class:`TokenTransformer` gives them ``loss``,
``generate`` and ``generate_naive``.

Sequences the network sees are ``prefix + window``: a few model-only tokens (a window-start
token, and for the GPT conditioning tokens), ids past the tokenizer's vocabulary, then up
to ``context - len(prefix)`` event tokens. Outputs are logits over the tokenizer's
vocabulary only, so extras are never sampled.

Long generation slides the window: when the next token would not fit, the window drops
its oldest ``window_shift`` tokens and is **re-encoded** from scratch (the prefix stays).
Rolling the cache instead would keep keys/values of upper layers that were computed while
attending to the dropped tokens (and, with learned absolute positions, positions that no
longer fit), so the cached sampler would stop being the model applied to its window.
Re-encoding every ``window_shift`` tokens keeps it exactly that — ``generate`` and
``generate_naive`` (which recomputes the whole window for every token, on the same
schedule) agree token for token — at an amortised cost of O(context²/window_shift)
per token on top of the O(context) cached step: linear in the generated length.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.errors import ConfigError
from tunesmith.models.base import GenerativeModel, ModelConfig
from tunesmith.models.sampling import SamplingControls, sample_categorical
from tunesmith.representations.events import BOS_ID, EventsConfig, build_tokenizer
from tunesmith.representations.grammar import BatchGrammar, TokenGrammar
from tunesmith.representations.info import DataInfo


@dataclasses.dataclass
class TokenModelConfig(ModelConfig):
    """Options both token Transformers share (the families add their own)."""

    vocab_size: int = 0  # tokenizer vocabulary; filled from the data (0 = not known yet)
    events: dict | None = None  # the data's EventsConfig (rebuilds the tokenizer for the grammar)
    context: int = 512  # positions the network attends over, prefix included
    d_model: int = 256  # width of the residual stream
    n_layers: int = 6  # Transformer blocks
    n_heads: int = 8  # attention heads (d_model must divide by it)
    d_ff: int = 1024  # hidden width of each block's feed-forward network
    dropout: float = 0.1  # on attention weights, residual branches and embeddings
    window_shift: int = 0  # tokens dropped per slide in long generation (0 = half a window)
    constrained: bool = True  # mask tokens the tokenizer's grammar forbids when sampling
    transpose: int = 3  # training: shift pitches by k ~ U{-n..n} semitones (Huang et al.: ±3)

    def check(self) -> None:
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model {self.d_model} must divide by n_heads {self.n_heads}")
        if self.context < 2:
            raise ConfigError(f"context must be >= 2 tokens, got {self.context}")
        if self.transpose < 0 or self.window_shift < 0:
            raise ConfigError("transpose and window_shift must be >= 0")


class FeedForward(nn.Module):
    """Position-wise MLP d → d_ff → d with GELU."""

    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.up = nn.Linear(d_model, d_ff)
        self.down = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.gelu(self.up(x))))


class KVCache:
    """Preallocated keys and values of every layer: ``k[l]``, ``v[l]`` (B, H, capacity, Dh).

    A forward pass over new tokens writes them at ``length`` in each layer, then
    :meth:`advance` moves ``length`` on once all layers are done.
    """

    def __init__(self, n_layers, batch, heads, capacity, head_dim, device, dtype):
        shape = (batch, heads, capacity, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.length = 0
        self.capacity = capacity
        self.state: dict[str, torch.Tensor] = {}  # per-sequence facts a family carries along

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Write new (B, H, T, Dh) keys/values; return all so far (B, H, length + T, Dh)."""
        end = self.length + k.shape[2]
        if end > self.capacity:
            raise ConfigError(f"KV cache overflow: {end} > {self.capacity} positions")
        self.k[layer][:, :, self.length : end] = k
        self.v[layer][:, :, self.length : end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, steps: int) -> None:
        self.length += steps


class TokenTransformer(GenerativeModel):
    """Base of the decoder-only token models: loss, cached/naive sampling, augmentation.

    Subclasses implement :meth:`forward_tokens` (logits for tokens continuing a cache),
    :meth:`prefix_tokens` and :attr:`n_extra_tokens`.
    """

    representation = "events"
    config_class = TokenModelConfig
    config: TokenModelConfig

    def __init__(self, config: TokenModelConfig):
        if config.vocab_size < 1:
            raise ConfigError(
                "vocab_size is not known: build the model through the data (registry.build "
                "with data_info) or pass vocab_size"
            )
        super().__init__(config)
        self._vocabulary = None  # TokenVocabulary, built on first use from config.events
        self._grammar = None

    # ---- data-dependent sizes ------------------------------------------------------
    @classmethod
    def config_for_data(cls, config, info: DataInfo):
        return config.updated(vocab_size=info.vocab_size, events=dict(info.repr_config))

    # ---- to implement --------------------------------------------------------------
    n_extra_tokens: int = 1  # ids vocab_size .. vocab_size + n_extra - 1 are model-only

    @property
    def start_token(self) -> int:
        """The window-start token every window begins with (first model-only id)."""
        return self.config.vocab_size

    def prefix_tokens(self, n: int, condition: dict | None = None, tokens=None, batch=None):
        """(n, P) long model-only tokens that open every window (default: the start token).

        In training ``tokens`` (n, T) and ``batch`` are given, at generation ``condition``.
        """
        return torch.full((n, 1), self.start_token, dtype=torch.long, device=self._device())

    def forward_tokens(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits (B, T, vocab_size) for tokens x (B, T) that follow ``cache.length`` cached
        positions (none without a cache)."""
        raise NotImplementedError

    def new_cache(self, batch: int) -> KVCache:
        c = self.config
        p = next(self.parameters())
        return KVCache(c.n_layers, batch, c.n_heads, c.context, c.d_model // c.n_heads,
                       p.device, p.dtype)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- the tokenizer, when the data named one ------------------------------------
    def tokenizer(self):
        """The miditok tokenizer of ``config.events`` (None when not known)."""
        if self.config.events is None:
            return None
        return build_tokenizer(EventsConfig.from_dict(self.config.events))

    def vocabulary(self):
        """:class:`TokenVocabulary` of the tokenizer (None when not known)."""
        if self._vocabulary is None and self.config.events is not None:
            self._grammar = TokenGrammar(self.tokenizer())
            self._vocabulary = self._grammar.vocab
            if self._vocabulary.size != self.config.vocab_size:
                raise ConfigError(
                    f"the tokenizer has {self._vocabulary.size} tokens, the model "
                    f"{self.config.vocab_size}"
                )
        return self._vocabulary

    def grammar(self):
        """:class:`TokenGrammar` for constrained decoding (None when not known)."""
        self.vocabulary()
        return self._grammar

    def bos_token(self) -> int | None:
        events = self.config.events or {}
        if not events.get("add_bos_eos", False):
            return None
        return BOS_ID

    # ---- training ------------------------------------------------------------------
    def augment(self, tokens: torch.Tensor) -> torch.Tensor:
        """Training-time transposition of each sequence by k ~ U{-n..n} semitones
        (clipped so every pitch stays in the tokenizer's range)."""
        vocab = self.vocabulary()
        if not self.training or self.config.transpose == 0 or vocab is None:
            return tokens
        n = self.config.transpose
        shifts = torch.randint(-n, n + 1, (tokens.shape[0],), device=tokens.device)
        return vocab.transpose(tokens, shifts)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Mean negative log-likelihood (nats) of the real tokens, each predicted from the
        prefix and the tokens before it in its window.

        Rows longer than a window are cut into consecutive windows of ``context - P + 1``
        tokens (each starting again after the prefix).
        """
        tokens, mask = batch["tokens"], batch["mask"]  # (B, T) long, (B, T) bool
        tokens = self.augment(tokens)
        prefix = self.prefix_tokens(tokens.shape[0], None, tokens=tokens, batch=batch)  # (B, P)
        span = self.config.context - prefix.shape[1] + 1  # targets per window
        n_windows = math.ceil(tokens.shape[1] / span)
        pad = n_windows * span - tokens.shape[1]
        tokens = F.pad(tokens, (0, pad)).reshape(-1, span)  # (B * W, span)
        mask = F.pad(mask, (0, pad)).reshape(-1, span)
        prefix = prefix.repeat_interleave(n_windows, dim=0)  # (B * W, P)
        keep = mask.any(dim=1)  # drop windows of padding only
        tokens, mask, prefix = tokens[keep], mask[keep], prefix[keep]
        x = torch.cat([prefix, tokens[:, :-1]], dim=1)  # (N, P + span - 1)
        logits = self.forward_tokens(x)[:, prefix.shape[1] - 1 :]  # (N, span, V)
        nll = F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")  # (N, span)
        count = mask.sum().clamp(min=1)
        mean = (nll * mask).sum() / count
        return {"loss": mean, "nll_per_token": mean.detach(), "tokens": count.detach().float()}

    # ---- sampling ------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, n: int, steps: int, controls: SamplingControls | None = None,
                 prime: torch.Tensor | None = None, condition: dict | None = None
                 ) -> torch.Tensor:
        """Sample (n, steps) token ids with the key/value cache (see module docstring).

        ``prime`` (T0,) or (n, T0) ids are kept unchanged as the first T0 tokens (default:
        BOS when the data wraps pieces in BOS/EOS); ``condition`` is read by the family
        (the GPT's conditioning tokens). With ``config.constrained`` and a known
        tokenizer, tokens the grammar forbids are never drawn
        (:mod:`tunesmith.representations.grammar`).
        """
        return self._sample(n, steps, controls, prime, condition, use_cache=True)

    @torch.no_grad()
    def generate_naive(self, n: int, steps: int, controls: SamplingControls | None = None,
                       prime: torch.Tensor | None = None, condition: dict | None = None
                       ) -> torch.Tensor:
        """Same as :meth:`generate` without a cache: every token recomputes its window."""
        return self._sample(n, steps, controls, prime, condition, use_cache=False)

    def allowed_outputs(self) -> torch.Tensor | None:
        """The ids the training data holds, with their pitches widened by the training
        transposition (``config.transpose``: the model saw those shifted pitches too)."""
        allowed = super().allowed_outputs()
        vocab = self.vocabulary()
        if allowed is None or vocab is None or self.config.transpose == 0:
            return allowed
        pitched = vocab.pitched.to(allowed.device)  # (V,) ids of transposable pitches
        pitch = vocab.pitch.to(allowed.device)  # (V,) their MIDI pitch
        seen = torch.nonzero(allowed & pitched).squeeze(-1)
        widened = allowed.clone()
        for shift in range(-self.config.transpose, self.config.transpose + 1):
            # within one type consecutive pitches have consecutive ids (see vocab.transpose)
            target = seen + shift
            inside = (target >= 0) & (target < vocab.size)
            target, source = target[inside], seen[inside]
            same = pitched[target] & (pitch[target] == pitch[source] + shift)
            widened[target[same]] = True
        return widened

    def program_limit(self, n: int) -> ProgramLimit | None:
        """The per-sequence program limit of the output mask (None without one)."""
        mask, vocab = self.output_mask, self.vocabulary()
        if mask is None or mask.max_programs < 1 or vocab is None or not vocab.program_ids:
            return None
        return ProgramLimit(vocab.program_ids, vocab.size, mask.max_programs, n,
                            self._device())

    def _window_start(self, t: int, start: int, body: int, keep: int) -> int:
        """Start (in the output) of the window that predicts token t."""
        return t - keep if t - start > body else start

    def _sample(self, n: int, steps: int, controls: SamplingControls | None,
                prime: torch.Tensor | None, condition: dict | None,
                use_cache: bool) -> torch.Tensor:
        controls = controls or SamplingControls()
        device = self._device()
        generator = controls.generator(device)
        out = torch.zeros(n, steps, dtype=torch.long, device=device)  # (n, steps)
        if prime is None and self.bos_token() is not None:
            prime = torch.tensor([self.bos_token()])
        t = 0
        if prime is not None:
            prime = torch.as_tensor(prime, dtype=torch.long, device=device)
            prime = prime.expand(n, -1) if prime.dim() == 1 else prime
            if prime.shape[0] != n or prime.shape[1] > steps:
                raise ConfigError(f"prime of shape {tuple(prime.shape)} does not fit "
                                  f"{n} sequences of {steps} tokens")
            if prime.numel() and (prime.min() < 0 or prime.max() >= self.config.vocab_size):
                raise ConfigError(f"prime ids must lie in 0..{self.config.vocab_size - 1}")
            t = prime.shape[1]
            out[:, :t] = prime
        prefix = self.prefix_tokens(n, condition)  # (n, P)
        body = self.config.context - prefix.shape[1]  # event tokens a window holds
        if body < 1:
            raise ConfigError(f"context {self.config.context} leaves no room after the prefix")
        shift = min(self.config.window_shift or max(body // 2, 1), body)
        keep = body - shift  # tokens a slide keeps
        grammar = None
        if self.config.constrained and self.grammar() is not None:
            grammar = BatchGrammar(self.grammar(), n)
            grammar.advance(out[:, :t].cpu())
        allowed = self.allowed_outputs()  # (V,) ids of the training data, None = all
        programs = self.program_limit(n)  # no more programs per piece than the data has
        if programs is not None:
            programs.advance(out[:, :t])
        was_training = self.training
        self.eval()
        try:
            start, cache = 0, None
            while t < steps:
                new_start = self._window_start(t, start, body, keep)
                if new_start != start:
                    start, cache = new_start, None
                if not use_cache:
                    x = torch.cat([prefix, out[:, start:t]], dim=1)
                    logits = self.forward_tokens(x)[:, -1]  # (n, V)
                elif cache is None:  # (re-)encode the window
                    cache = self.new_cache(n)
                    x = torch.cat([prefix, out[:, start:t]], dim=1)
                    logits = self.forward_tokens(x, cache)[:, -1]
                else:  # one cached step for the last token
                    logits = self.forward_tokens(out[:, t - 1 : t], cache)[:, -1]
                if grammar is not None:
                    legal = grammar.mask(steps - t).to(device)  # (n, V)
                    logits = logits.masked_fill(~legal, float("-inf"))
                seen = allowed if programs is None else programs.mask(allowed)  # (n|1, V)
                token = sample_categorical(logits, controls, generator, seen)  # (n,)
                out[:, t] = token
                if grammar is not None:
                    grammar.advance(token.cpu())
                if programs is not None:
                    programs.advance(token[:, None])
                t += 1
        finally:
            self.train(was_training)
        return out


class ProgramLimit:
    """At most ``most`` distinct programs in each of ``n`` sampled sequences: once a
    sequence has used that many, only its own programs' ``Program`` tokens stay allowed."""

    def __init__(self, program_ids: list[int], size: int, most: int, n: int, device):
        self.index = torch.full((size,), -1, dtype=torch.long, device=device)  # id -> slot
        self.index[torch.as_tensor(program_ids, device=device)] = torch.arange(
            len(program_ids), device=device)
        self.program_ids = torch.as_tensor(program_ids, device=device)
        self.most = most
        self.used = torch.zeros(n, len(program_ids), dtype=torch.bool, device=device)  # (n, P)

    def advance(self, tokens: torch.Tensor) -> None:
        """Note the programs of tokens (n, T) appended to each sequence."""
        slot = self.index[tokens.clamp(0, len(self.index) - 1)]  # (n, T)
        slot = torch.where(tokens < len(self.index), slot, -1)
        rows, cols = (slot >= 0).nonzero(as_tuple=True)
        self.used[rows, slot[rows, cols]] = True

    def mask(self, allowed: torch.Tensor | None) -> torch.Tensor:
        """(n, V) bool: ``allowed`` (V,) (None = all) without the new programs of the
        sequences that reached the limit."""
        n = self.used.shape[0]
        out = (torch.ones(len(self.index), dtype=torch.bool, device=self.used.device)
               if allowed is None else allowed.bool()).expand(n, -1).clone()
        full = self.used.sum(dim=1) >= self.most  # (n,)
        blocked = full[:, None] & ~self.used  # (n, P): new programs of full sequences
        out[:, self.program_ids] &= ~blocked
        return out


class Block(nn.Module):
    """Pre-LN Transformer block: x + attn(LN(x)), then x + FFN(LN(x)).

    ``attention`` is the family's self-attention, called as ``attention(h, cache, layer)``.
    """

    def __init__(self, attention: nn.Module, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.norm_attention = nn.LayerNorm(d_model)
        self.attention = attention
        self.norm_ff = nn.LayerNorm(d_model)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.norm_attention(x), cache, layer))  # (B, T, D)
        return x + self.feed_forward(self.norm_ff(x))


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, T, D) -> (B, H, T, D / H)."""
    b, t, d = x.shape
    return x.view(b, t, heads, d // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, Dh) -> (B, T, H * Dh)."""
    b, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(b, t, h * dh)
