"""Continue a piece and regenerate a range of its steps while keeping both sides.

Autoregressive families (WaveNet/TCN, LSTM/GRU with Bernoulli or NADE heads, the frame
Transformer, the Melody RNN) sample p(x_t | x_<t) left to right. Regenerating steps
[start, end) of a piece x with the music after ``end`` kept needs a draw from

    p(x_[start,end) | x_<start, x_>=end)  ∝  p(x_[start,end) | x_<start) · p(x_>=end | x_<end)

:func:`resample_range` draws it by **sampling-importance-resampling** (Rubin 1987; the
infilling-by-proposal scheme of e.g. Hadjeres & Nielsen, "Anticipation-RNN", 2020, uses
the same factorisation): ``candidates`` proposals are drawn from the model given the left
side (one batched primed call of the family's own sampler, which honours temperature,
top-p and note limits), each proposal is weighted by the likelihood the model gives the
kept right side after it, ``p(x_>=end | x_<start, proposal)`` (one parallel scoring
pass), and one proposal is drawn with probability proportional to its weight. With one
candidate it is plain left-to-right resampling; as the number grows the draw approaches
the conditional above. The steps outside the range are copied unchanged, always.

Event tokens have no time grid: :func:`resample_token_range` cuts the decoded music at
the range's ends and weights the spliced proposals by the tokens after the range.

MusicVAE phrases are not sampled left to right: :func:`vae_regenerate` interpolates
(slerp) from the piece's posterior mean μ to a fresh prior draw and keeps the decoded
steps inside the range only (Roberts et al. 2018, "A hierarchical latent vector model
for learning long-term structure in music", §5.2: interpolation in latent space).

Arrays are in the checkpoint's representation: piano-roll frames ``(T, K)`` float 0/1,
melody events ``(T,)`` int64.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from tunesmith.errors import ConfigError
from tunesmith.generation.generate import (
    EVENT_TOKENS_PER_BAR,
    condition_tensors,
    crop_score,
    prime_tensor,
    repr_options,
    sampling_threads,
)
from tunesmith.models.likelihood import sequence_log_probs
from tunesmith.models.sampling import SamplingControls
from tunesmith.representations import events
from tunesmith.representations.adapter import get_representation, representation_names
from tunesmith.representations.events import open_tokens

#: proposals drawn per regeneration by default (a batch of 8 costs little more than 1)
DEFAULT_CANDIDATES = 8


def _scores_frames(model) -> bool:
    """A frame model that scores each frame (its own ``frame_log_prob``, or features and
    a frame head)."""
    representation = type(model).representation
    return representation in representation_names() and get_representation(
        representation).frames and (
        hasattr(model, "frame_log_prob") or (hasattr(model, "features")
                                             and hasattr(model, "head")))


def _scores_events(model) -> bool:
    """An event model whose forward pass gives each step's class logits (Melody RNN)."""
    return hasattr(model, "lookback_labels")


def can_score(model) -> bool:
    """Whether the model gives per-step log-likelihoods (needed to weight proposals)."""
    return _scores_frames(model) or _scores_events(model)


def step_log_probs(model, batch: torch.Tensor, condition: dict | None = None) -> torch.Tensor:
    """log p(x_t | x_<t) in nats for every step of a batch: (B, T[, K]) -> (B, T)."""
    if _scores_frames(model):
        if condition is not None:  # a conditioned WaveNet scores with its condition
            return model.frame_log_prob(batch, None, condition)
        mask = torch.ones(batch.shape[:2], dtype=torch.bool, device=batch.device)
        return sequence_log_probs(model, batch, mask)
    if _scores_events(model):
        logits = model(batch)  # (B, T, C)
        targets = model.lookback_labels(batch) if model.lookback else batch
        return -F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    raise ConfigError(f"{type(model).__name__} cannot score steps one by one")


def continue_array(model, meta: dict, array: np.ndarray, steps: int,
                   controls: SamplingControls, pitch_histogram=None) -> np.ndarray:
    """``array`` followed by ``steps`` new steps sampled after it (the array is kept)."""
    representation = meta.get("representation") or type(model).representation
    array = get_representation(representation).open(array)  # tokens: drop the end
    total = len(array) + steps
    condition = condition_tensors(model, pitch_histogram, 1)
    prime = prime_tensor(array, representation, 1) if len(array) else None
    if controls.seed is not None:
        torch.manual_seed(int(controls.seed))
    with sampling_threads(1), torch.no_grad():
        out = model.generate(1, total, controls, prime=prime, condition=condition)
    return out[0].detach().cpu().numpy()


def resample_range(model, meta: dict, array: np.ndarray, start: int, end: int,
                   controls: SamplingControls, candidates: int = DEFAULT_CANDIDATES,
                   pitch_histogram=None) -> tuple[np.ndarray, dict]:
    """``array`` with steps [start, end) drawn again given both sides (see module doc).

    Returns the new array (same shape; every step outside the range equal to the
    input's) and facts: the candidates drawn, the chosen one's log-weight and the
    effective sample size of the weights (1 … candidates; near 1 means the right side
    picked one proposal clearly).
    """
    total = len(array)
    if not 0 <= start < end <= total:
        raise ConfigError(f"the range [{start}, {end}) is not inside the piece's {total} steps")
    if candidates < 1:
        raise ConfigError(f"candidates must be >= 1, got {candidates}")
    representation = meta.get("representation") or type(model).representation
    if end == total or not can_score(model):
        candidates = 1  # nothing kept on the right (or no scorer): plain resampling
    condition = condition_tensors(model, pitch_histogram, candidates)
    prime = prime_tensor(array[:start], representation, candidates) if start else None
    if controls.seed is not None:
        torch.manual_seed(int(controls.seed))
    with sampling_threads(1), torch.no_grad():
        proposals = model.generate(candidates, end, controls, prime=prime,
                                   condition=condition)  # (C, end[, K])
        right = torch.as_tensor(array[end:], dtype=proposals.dtype)
        full = torch.cat([proposals, right[None].expand(candidates, *right.shape)], dim=1)
        log_weight = torch.zeros(candidates)
        if candidates > 1:
            log_probs = step_log_probs(model, full, condition)  # (C, T)
            log_weight = log_probs[:, end:].sum(dim=1).double()  # log p(right | left, c)
    probs = torch.softmax(log_weight, dim=0)
    generator = controls.generator()
    choice = int(torch.multinomial(probs.float(), 1, generator=generator)) if candidates > 1 \
        else 0
    out = np.array(array, copy=True)
    out[start:end] = full[choice, start:end].cpu().numpy().astype(out.dtype)
    ess = float(1.0 / (probs ** 2).sum())
    return out, {"candidates": candidates, "log_weight": float(log_weight[choice]),
                 "effective_candidates": ess}


def token_log_probs(model, tokens: np.ndarray) -> torch.Tensor | None:
    """log p(token i | prefix, tokens < i) in nats for one event-token piece: (T,) -> (T,);
    None when the piece does not fit the model's context (then it cannot be weighted)."""
    x = torch.as_tensor(np.asarray(tokens), dtype=torch.long)[None]  # (1, T)
    prefix = model.prefix_tokens(1, None)  # (1, P)
    if prefix.shape[1] + x.shape[1] - 1 > model.config.context:
        return None
    logits = model.forward_tokens(torch.cat([prefix, x[:, :-1]], dim=1))  # (1, P+T-1, V)
    logits = logits[:, prefix.shape[1] - 1:]  # (1, T, V): position i predicts token i
    return torch.log_softmax(logits.float(), dim=-1)[0].gather(1, x[0, :, None])[:, 0]


def splice_scores(piece, middle, start: int, end: int):
    """``piece`` with its notes in ticks [start, end) replaced by ``middle``'s.

    Notes of ``piece`` that start before ``start`` are cut to end there, its notes that
    start at or after ``end`` are kept as they are; ``middle``'s notes that start in
    [start, end) are added, cut to end at ``end``, to the track of the same program
    (a new one when ``piece`` has none). Both Scores must share ticks per quarter.
    """
    from symusic import Note

    out = piece.copy()
    for track in out.tracks:
        kept = []
        for note in track.notes:
            if note.time < start:
                kept.append(Note(note.time, max(1, min(note.duration, start - note.time)),
                                 note.pitch, note.velocity))
            elif note.time >= end:
                kept.append(note)
        track.notes.clear()
        track.notes.extend(kept)
    tracks = {(t.program, t.is_drum): t for t in out.tracks}
    for source in middle.tracks:
        notes = [Note(n.time, max(1, min(n.duration, end - n.time)), n.pitch, n.velocity)
                 for n in source.notes if start <= n.time < end]
        if not notes:
            continue
        key = (source.program, source.is_drum)
        if key not in tracks:
            track = source.copy()
            track.notes.clear()
            out.tracks.append(track)
            tracks[key] = out.tracks[-1]
        tracks[key].notes.extend(notes)
        tracks[key].notes.sort(key=lambda n: (n.time, n.pitch))
    return out


def resample_token_range(model, meta: dict, tokens: np.ndarray, start_q: float, end_q: float,
                         controls: SamplingControls,
                         candidates: int = DEFAULT_CANDIDATES) -> tuple[np.ndarray, dict]:
    """An event-token piece with the music between quarter notes ``start_q`` and
    ``end_q`` drawn again given both sides.

    Tokens have no time grid, so the range is cut in the music: the piece is decoded,
    its notes before ``start_q`` are encoded again as the prime, ``candidates``
    continuations are sampled for the range's length (:data:`EVENT_TOKENS_PER_BAR` a
    bar), and each one's notes in the range are spliced between the piece's own notes
    before and after it (:func:`splice_scores`). Each spliced piece is weighted, as in
    :func:`resample_range`, by the likelihood the model gives the tokens after the range
    (when the piece fits the model's context; else one candidate, drawn given the left
    side). Returns the re-encoded piece and the facts of :func:`resample_range`.
    """
    if not 0 <= start_q < end_q:
        raise ConfigError(f"the range [{start_q}, {end_q}) quarters is empty")
    cfg = events.EventsConfig.from_dict(repr_options(meta))
    piece = events.decode(open_tokens(tokens), cfg)
    tpq = piece.ticks_per_quarter
    start, end = round(start_q * tpq), round(end_q * tpq)
    prime = open_tokens(events.encode(crop_score(piece.copy(), start_q), cfg))
    budget = math.ceil((end_q - start_q) / 4 * EVENT_TOKENS_PER_BAR)
    if controls.seed is not None:
        torch.manual_seed(int(controls.seed))
    with sampling_threads(1), torch.no_grad():
        prime_t = torch.as_tensor(prime, dtype=torch.long) if len(prime) else None
        proposals = model.generate(candidates, len(prime) + budget, controls, prime=prime_t)
        spliced = []
        log_weight = torch.zeros(candidates, dtype=torch.float64)
        weighted = candidates > 1  # False once the kept side cannot be scored
        for i, row in enumerate(proposals.cpu().numpy()):
            joined = splice_scores(piece, events.decode(row, cfg), start, end)
            whole = events.encode(joined, cfg)
            spliced.append(whole)
            if candidates == 1:
                continue
            # the tokens up to the range's end: the spliced piece's notes before it
            head = open_tokens(events.encode(crop_score(joined.copy(), end_q), cfg))
            log_probs = token_log_probs(model, whole)
            if log_probs is None or not np.array_equal(whole[: len(head)], head):
                weighted = False  # the kept side cannot be scored: no weighting
                break
            log_weight[i] = float(log_probs[len(head):].sum())
    if not weighted:
        weights_used, probs = 1, torch.ones(1, dtype=torch.float64)
        choice = 0
    else:
        weights_used = candidates
        probs = torch.softmax(log_weight, dim=0)
        choice = int(torch.multinomial(probs.float(), 1, generator=controls.generator()))
    ess = float(1.0 / (probs ** 2).sum())
    return np.asarray(spliced[choice], np.int64), {
        "candidates": weights_used,
        "log_weight": float(log_weight[choice]) if weights_used > 1 else 0.0,
        "effective_candidates": ess}


def vae_regenerate(model, array: np.ndarray, start: int, end: int, amount: float,
                   controls: SamplingControls) -> np.ndarray:
    """A MusicVAE phrase with steps [start, end) taken from the decoding of
    ``slerp(μ(piece), z_new, amount)``, z_new ~ N(0, I); the other steps are kept.

    ``amount`` 0 re-decodes the piece itself, 1 a new prior draw."""
    from tunesmith.models.music_vae import encode_sequences, slerp

    if not 0 <= amount <= 1:
        raise ConfigError(f"the interpolation amount must be in [0, 1], got {amount}")
    steps = model.config.steps
    if len(array) != steps:
        raise ConfigError(f"this MusicVAE decodes phrases of {steps} steps, the piece has "
                          f"{len(array)}")
    if not 0 <= start < end <= steps:
        raise ConfigError(f"the range [{start}, {end}) is not inside the phrase's {steps} steps")
    with torch.no_grad():
        mu = encode_sequences(model, [array])  # (1, Z)
        generator = controls.generator()
        fresh = torch.randn(mu.shape, generator=generator).to(mu.device)  # (1, Z)
        z = slerp(mu, fresh, float(amount))
        decoded = model.decode(z, controls, steps=steps)[0].cpu().numpy()
    out = np.array(array, copy=True)
    out[start:end] = decoded[start:end].astype(out.dtype)
    return out


__all__ = ["DEFAULT_CANDIDATES", "can_score", "continue_array", "open_tokens", "resample_range",
           "resample_token_range", "splice_scores", "step_log_probs", "token_log_probs",
           "vae_regenerate"]
