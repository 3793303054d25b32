"""Output heads: from a backbone's features to a distribution over the next frame.

A piano-roll backbone (TCN/WaveNet, LSTM, Transformer) produces features ``h`` (B, T, H)
where ``h[:, t]`` has seen frames ``< t+1``; a head turns them into a distribution over
the binary frame ``x[:, t+1]`` in {0,1}^K. Heads are interchangeable, so every backbone
can trade independent sigmoids for a head that models the notes of a frame jointly.

Every head holds ``allowed_keys`` (K,) bool, the keys the training data ever sounds (set
by :meth:`tunesmith.models.base.GenerativeModel.set_output_mask`; None = all). Families
sample through :meth:`FrameHead.draw`, which silences the other keys whatever the head;
a head that reads ``allowed_keys`` inside ``sample`` (Bernoulli, NADE) also draws the
rest of the frame knowing those keys are off.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.errors import ConfigError
from tunesmith.models.sampling import (
    SamplingControls,
    draw_notes,
    mask_logits,
    sample_bernoulli,
    sample_categorical,
)


class FrameHead(nn.Module):
    """Interface: ``log_prob(h, x)`` for training and scoring, ``sample(h, ...)`` for generation."""

    reads_onsets = False  # True: frames are (..., 2K) sounding keys ‖ onsets
    allowed_keys: torch.Tensor | None

    def __init__(self):
        super().__init__()
        # (K,) bool keys the data sounds, None = all; not a weight (never in safetensors)
        self.register_buffer("allowed_keys", None, persistent=False)

    def draw(self, h: torch.Tensor, controls: SamplingControls,
             generator: torch.Generator | None = None,
             group_size: int | None = None) -> torch.Tensor:
        """:meth:`sample`, with the keys outside ``allowed_keys`` silenced: what families call."""
        frame = self.sample(h, controls, generator, group_size)
        if self.allowed_keys is None:
            return frame
        return frame * self.allowed_keys.to(frame.dtype)

    def log_prob(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Log-probability in nats of frames x (B, T, K) given features h (B, T, H) -> (B, T)."""
        raise NotImplementedError

    def sample(self, h: torch.Tensor, controls: SamplingControls,
               generator: torch.Generator | None = None,
               group_size: int | None = None) -> torch.Tensor:
        """Draw a frame for each feature vector h (B, H) -> (B, K) float 0/1."""
        raise NotImplementedError


class BernoulliHead(FrameHead):
    """Independent sigmoid per key: p(x) = Π_k σ(w_kᵀh)^x_k (1-σ(w_kᵀh))^(1-x_k)."""

    def __init__(self, hidden: int, keys: int):
        super().__init__()
        self.proj = nn.Linear(hidden, keys)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h)  # (..., K)

    def log_prob(self, h, x):
        logits = self.logits(h)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)

    def sample(self, h, controls: SamplingControls, generator=None, group_size=None):
        return sample_bernoulli(self.logits(h), controls, generator, group_size,
                                self.allowed_keys)


class NADEHead(FrameHead):
    """Autoregressive over the keys of a frame: RNN-NADE's output layer.

    Larochelle & Murray (2011), "The neural autoregressive distribution estimator", with
    the biases conditioned on the backbone as in Boulanger-Lewandowski, Bengio & Vincent
    (2012), "Modeling temporal dependencies in high-dimensional sequences" (RNN-NADE).
    Key k (low to high) sees the features h and the keys below it in the same frame:

        a_k = c(h) + Σ_{j<k} x_j W_j            (weight sharing: a cumulative sum, O(K·N))
        p(x_k = 1 | x_<k, h) = σ(b_k(h) + V_k · σ(a_k))

    with c(h) = C h + c₀ (N hidden units), b(h) = B h + b₀. ``log_prob`` is exact and
    vectorised over keys (teacher forcing); ``sample`` draws key by key.

    ``nade_low``/``nade_high`` (optional) limit the autoregression to keys [low, high), e.g.
    the range a corpus uses, to save time; keys outside keep p = σ(b_k(h)), independent of
    the other keys of the frame (still an exact, normalised distribution).

    Regularisers (training only; scoring and sampling are unchanged by them):

    * ``nade_dropout`` p: dropout on the NADE hidden units σ(a_k) (inverted: kept units
      scaled by 1/(1−p)); one mask per distinct hidden state, i.e. shared by the keys
      between two sounding keys, whose a_k is the same vector.
    * ``nade_order_agnostic``: order-agnostic training (Uria, Murray & Larochelle 2014,
      "A deep and tractable density estimator", ICML): each frame is scored under a
      uniformly random ordering o of the NADE keys, a_{o_i} = c(h) + Σ_{j<i} x_{o_j} W_{o_j},
      so the weights learn every ordering's conditionals. With one hidden layer and
      weight sharing the whole frame's likelihood under o costs one pass, so the loss is
      an unbiased estimate of E_o[−log p_o(x)] (the paper's DeepNADE needs a mask trick
      instead). ``nade_orderings`` K then scores (eval mode) with the uniform mixture of K
      fixed orderings, p(x) = (1/K) Σ_k p_{o_k}(x): exact, each p_{o_k} being normalised;
      ordering 0 is low to high, the others random permutations drawn once (seed 0) and
      kept in the checkpoint. Sampling picks one of the K orderings per row, uniformly,
      then draws in its order: a draw from the same mixture.
    """

    orderings: torch.Tensor | None  # (O, Ka) buffer: position -> key, None for one ordering

    def __init__(
        self, hidden: int, keys: int, nade_hidden: int = 150, nade_low: int = 0,
        nade_high: int = 0, nade_dropout: float = 0.0, nade_orderings: int = 1,
        nade_order_agnostic: bool = False,
    ):
        super().__init__()
        self.keys = keys
        self.low, self.high = nade_low, nade_high or keys
        if not 0 <= self.low < self.high <= keys:
            raise ConfigError(f"NADE keys [{self.low}, {self.high}) must lie within [0, {keys})")
        if not 0 <= nade_dropout < 1:
            raise ConfigError(f"nade_dropout must be in [0, 1), got {nade_dropout}")
        if nade_orderings < 1:
            raise ConfigError(f"nade_orderings must be >= 1, got {nade_orderings}")
        if nade_orderings > 1 and not nade_order_agnostic:
            raise ConfigError("nade_orderings > 1 scores with orderings the head was not "
                              "trained on; set nade_order_agnostic=true too")
        active = self.high - self.low
        self.dropout = float(nade_dropout)
        self.order_agnostic = bool(nade_order_agnostic)
        self.visible_bias = nn.Linear(hidden, keys)  # b(h)
        self.hidden_bias = nn.Linear(hidden, nade_hidden)  # c(h)
        self.input_weight = nn.Parameter(torch.randn(active, nade_hidden) * 0.01)  # W (Ka, N)
        self.output_weight = nn.Parameter(torch.randn(active, nade_hidden) * 0.01)  # V (Ka, N)
        orderings = None  # (O, Ka) position -> key; saved with the weights, so fixed
        if nade_orderings > 1:
            generator = torch.Generator().manual_seed(0)
            orderings = torch.stack([torch.arange(active)] + [
                torch.randperm(active, generator=generator) for _ in range(nade_orderings - 1)])
        self.register_buffer("orderings", orderings)

    def logits(self, h: torch.Tensor, x: torch.Tensor,
               order: torch.Tensor | None = None) -> torch.Tensor:
        """Logit of each key given the keys before it: h (..., H), x (..., K) -> (..., K).

        ``order`` (Ka,) or (n, Ka) long, n = the frames of x: the NADE keys' visiting order
        (position -> key index within [low, high)); None = low to high.

        a_k only changes at the keys that sound, so a frame with m notes has m + 1 distinct
        NADE hidden states. Only those are computed (one matrix product over all of them)
        and each key then picks the state of its segment: O((m + 1)·N·K) in a GEMM instead
        of O(K·N) elementwise passes over a (frames, K, N) tensor, several times faster
        on sparse piano-rolls. Exact for any x (non-binary values weight W_j by x_j).
        """
        width = self.high - self.low
        active = x[..., self.low : self.high].reshape(-1, width)  # (n, Ka) by key
        if order is not None:
            order = order.expand(active.shape[0], width)  # (n, Ka)
            active = active.gather(1, order)  # (n, Ka) by position in the order
        hidden_bias = self.hidden_bias(h).reshape(active.shape[0], -1)  # (n, N)
        sounding = active != 0  # (n, Ka)
        notes_below = sounding.cumsum(-1) - sounding.long()  # segment of each position (n, Ka)
        notes = sounding.sum(-1)  # (n,)
        first_state = torch.cumsum(notes + 1, 0) - (notes + 1)  # (n,) row of state 0 in S
        frame_of_note, place_of_note = sounding.nonzero(as_tuple=True)  # in visiting order
        key_of_note = place_of_note if order is None else order[frame_of_note, place_of_note]
        rank = notes_below[frame_of_note, place_of_note]  # 0 for a frame's first note, ...
        most = int(notes.max()) if len(notes) else 0
        weighted = self.input_weight[key_of_note] * active[frame_of_note, place_of_note, None]
        increments = hidden_bias.new_zeros(len(notes), most, hidden_bias.shape[1])
        increments = increments.index_put((frame_of_note, rank), weighted)  # (n, M, N)
        padded = torch.cat([hidden_bias.unsqueeze(1), increments], 1).cumsum(1)  # (n, M+1, N)
        in_frame = torch.arange(most + 1, device=x.device) <= notes.unsqueeze(-1)  # (n, M+1)
        states = padded[in_frame]  # (S, N): a_k of each segment, frames one after another
        hidden_units = torch.sigmoid(states)  # (S, N)
        if self.training and self.dropout:
            hidden_units = F.dropout(hidden_units, self.dropout)
        per_state = hidden_units @ self.output_weight.T  # (S, Ka) by key
        key_index = torch.arange(width, device=x.device) if order is None else order
        autoregressive = per_state[first_state.unsqueeze(-1) + notes_below, key_index]  # (n, Ka)
        if order is not None:  # back from visiting order to key order
            autoregressive = torch.empty_like(autoregressive).scatter_(1, order, autoregressive)
        autoregressive = autoregressive.reshape(*x.shape[:-1], -1)  # (..., Ka)
        autoregressive = F.pad(autoregressive, (self.low, self.keys - self.high))  # (..., K)
        return self.visible_bias(h) + autoregressive

    def _log_prob(self, h, x, order=None):
        logits = self.logits(h, x, order)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)

    def log_prob(self, h, x):
        if self.order_agnostic and self.training:  # one random ordering per frame
            frames = x[..., 0].numel()
            order = torch.rand(frames, self.high - self.low, device=x.device).argsort(-1)
            return self._log_prob(h, x, order)  # (...)
        if self.orderings is None:
            return self._log_prob(h, x)
        each = torch.stack([self._log_prob(h, x, order) for order in self.orderings])  # (O, ...)
        return torch.logsumexp(each, 0) - math.log(len(self.orderings))  # the mixture (...)

    def sample(self, h, controls: SamplingControls, generator=None, group_size=None):
        """Key by key, low to high (or in one of the K orderings, chosen per row);
        temperature, threshold and max notes per group apply."""
        size = group_size or self.keys
        if self.keys % size:
            raise ConfigError(f"{self.keys} keys do not split into groups of {size}")
        if self.orderings is not None:
            return self._sample_ordered(h, controls, generator, size)
        visible_bias = self.visible_bias(h)  # (B, K)
        pre_hidden = self.hidden_bias(h)  # (B, N)
        frame = torch.zeros_like(visible_bias)
        notes_in_group = torch.zeros(h.shape[0], device=h.device)
        for k in range(self.keys):
            if k % size == 0:
                notes_in_group = torch.zeros(h.shape[0], device=h.device)
            logit = visible_bias[:, k]  # (B,)
            if self.low <= k < self.high:
                logit = logit + torch.sigmoid(pre_hidden) @ self.output_weight[k - self.low]
            allowed = None if self.allowed_keys is None else self.allowed_keys[k]
            note = draw_notes(torch.sigmoid(logit.float() / controls.temperature), controls,
                              generator, allowed)
            if controls.max_notes_per_step > 0:
                note = note * (notes_in_group < controls.max_notes_per_step).float()
            notes_in_group = notes_in_group + note
            frame[:, k] = note
            if self.low <= k < self.high:
                pre_hidden = pre_hidden + note.unsqueeze(-1) * self.input_weight[k - self.low]
        return frame

    def _sample_ordered(self, h, controls: SamplingControls, generator, size: int):
        """:meth:`sample` with K orderings: keys outside [low, high) first (independent),
        then the NADE keys in the row's ordering (one of K, uniform)."""
        rows = h.shape[0]
        visible_bias = self.visible_bias(h)  # (B, K)
        pre_hidden = self.hidden_bias(h)  # (B, N)
        frame = torch.zeros_like(visible_bias)
        notes_in_group = torch.zeros(rows, self.keys // size, device=h.device)  # (B, G)
        orderings = self.orderings
        assert orderings is not None  # sample() calls this only when there are orderings
        pick = torch.randint(len(orderings), (rows,), generator=generator,
                             device=orderings.device).to(h.device)
        order = orderings.to(h.device)[pick] + self.low  # (B, Ka) keys in visiting order
        outside = [k for k in range(self.keys) if not self.low <= k < self.high]
        row = torch.arange(rows, device=h.device)
        steps = [torch.full((rows,), k, device=h.device, dtype=torch.long) for k in outside]
        steps += [order[:, i] for i in range(order.shape[1])]
        for key in steps:  # (B,) the key each row draws now
            logit = visible_bias[row, key]  # (B,)
            nade = (key >= self.low) & (key < self.high)
            index = (key - self.low).clamp(0, self.high - self.low - 1)
            logit = logit + nade * (torch.sigmoid(pre_hidden)
                                    * self.output_weight[index]).sum(-1)
            allowed = None if self.allowed_keys is None else self.allowed_keys[key]
            note = draw_notes(torch.sigmoid(logit.float() / controls.temperature), controls,
                              generator, allowed)
            group = key // size
            if controls.max_notes_per_step > 0:
                note = note * (notes_in_group[row, group] < controls.max_notes_per_step).float()
            notes_in_group[row, group] += note
            frame[row, key] = note
            pre_hidden = pre_hidden + (note * nade).unsqueeze(-1) * self.input_weight[index]
        return frame


class VoiceHead(FrameHead):
    """One categorical per voice over (its pitches + rest), voices autoregressive in a frame.

    For piano-rolls whose tracks are monophonic voices (the SATB chorales): track v's keys
    ``x[v·P : (v+1)·P]`` hold at most one note, so its step is one of P + 1 states, pitch
    0 … P-1 or rest (state P). A voice falls silent only when the model picks "rest", never
    because P independent sigmoids all happened to say no. The voices of a frame are drawn
    in track order (S, A, T, B), each conditioned on the earlier voices' states, so the
    head models chords (which intervals sound together), not only each line. A categorical
    NADE over V voices (Larochelle & Murray 2011's weight sharing, categorical outputs):

        a_v = c(h) + Σ_{u<v} W_u[s_u]                        (N hidden units, W_u (P+1, N))
        p(s_v | s_<v, h) = softmax(b_v(h) + U_v σ(a_v))      (U_v (P+1, N), b(h) = B h + b₀)

    ``log_prob`` is exact on frames with at most one note per track; in eval mode a frame
    with two or more notes in one track gets −inf (this head gives it probability 0), so a
    held-out figure never hides such frames. In training mode such a track is scored as its
    highest note, so the rare chord in a voice (9 of 74,654 frames in the bach-chorales
    training split, none in valid or test) keeps the loss finite. ``sample`` honours
    temperature, top-k and top-p (:func:`sample_categorical`); with a threshold it takes
    the most likely state of each voice (greedy). ``max_notes_per_step`` is always met
    (one note per voice).
    """

    extra_states = 1  # states after the P pitches: rest

    def __init__(self, hidden: int, keys: int, n_tracks: int = 1, nade_hidden: int = 150):
        super().__init__()
        if n_tracks < 1 or keys % n_tracks:
            raise ConfigError(f"voices head: {keys} keys do not split into {n_tracks} tracks")
        self.keys, self.voices = keys, n_tracks
        self.pitches = keys // n_tracks
        states = self.pitches + self.extra_states  # pitches + rest (+ hold)
        self.visible_bias = nn.Linear(hidden, n_tracks * states)  # b(h), voice-major
        self.hidden_bias = nn.Linear(hidden, nade_hidden)  # c(h)
        self.input_weight = nn.Parameter(torch.randn(n_tracks - 1, states, nade_hidden) * 0.01)
        self.output_weight = nn.Parameter(torch.randn(n_tracks, states, nade_hidden) * 0.01)

    def states(self, x: torch.Tensor) -> torch.Tensor:
        """Each voice's state from frames x (..., K) -> (..., V) long: the index of its
        (highest) sounding pitch, or P for a rest."""
        grouped = x.reshape(*x.shape[:-1], self.voices, self.pitches) > 0  # (..., V, P)
        index = torch.arange(1, self.pitches + 1, device=x.device)
        highest = (grouped * index).amax(-1) - 1  # (..., V): -1 where the voice rests
        return torch.where(highest < 0, self.pitches, highest)

    def chords(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (..., K) in which some track holds two or more notes -> (...) bool."""
        return (x.reshape(*x.shape[:-1], self.voices, self.pitches) > 0).sum(-1).gt(1).any(-1)

    def logits(self, h: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Logits of each voice's state given the earlier voices' states (teacher forcing):
        h (..., H), states (..., V) long -> (..., V, S) with S = P + extra_states."""
        voice = torch.arange(self.voices - 1, device=h.device)
        earlier = self.input_weight[voice, states[..., :-1]]  # (..., V-1, N): W_u[s_u]
        below = F.pad(earlier.cumsum(-2), (0, 0, 1, 0))  # (..., V, N): Σ_{u<v} W_u[s_u]
        hidden = torch.sigmoid(self.hidden_bias(h).unsqueeze(-2) + below)  # σ(a_v) (..., V, N)
        visible = self.visible_bias(h).unflatten(-1, (self.voices, -1))
        return visible + torch.einsum("...vn,vsn->...vs", hidden, self.output_weight)

    def log_prob(self, h, x):
        states = self.states(x)  # (..., V)
        log_probs = torch.log_softmax(self.logits(h, states), -1)  # (..., V, P+1)
        total = log_probs.gather(-1, states.unsqueeze(-1)).squeeze(-1).sum(-1)  # (...)
        if self.training:
            return total
        return total.masked_fill(self.chords(x), float("-inf"))

    def sample(self, h, controls: SamplingControls, generator=None, group_size=None):
        """Voice by voice in track order; each voice's categorical is filtered and drawn."""
        if group_size not in (None, self.pitches):
            raise ConfigError(f"voices head has {self.pitches} pitches per track, "
                              f"not groups of {group_size}")
        visible = self.visible_bias(h).unflatten(-1, (self.voices, self.pitches + 1))
        pre_hidden = self.hidden_bias(h)  # a_0 = c(h) (B, N)
        frame = h.new_zeros(h.shape[0], self.voices, self.pitches + 1)  # one-hot states
        allowed = None  # (V, P+1): a voice draws only pitches its training data sounds, or rest
        if self.allowed_keys is not None:
            allowed = torch.cat([self.allowed_keys.reshape(self.voices, self.pitches).bool(),
                                 self.allowed_keys.new_ones(self.voices, 1, dtype=torch.bool)], 1)
        for v in range(self.voices):
            logits = (visible[:, v] + torch.sigmoid(pre_hidden) @ self.output_weight[v].T).float()
            voice_allowed = None if allowed is None else allowed[v]
            if controls.threshold is not None:
                state = mask_logits(logits, voice_allowed).argmax(-1)  # (B,) most likely state
            else:
                state = sample_categorical(logits, controls, generator, voice_allowed)  # (B,)
            frame[:, v].scatter_(-1, state.unsqueeze(-1), 1.0)
            if v < self.voices - 1:
                pre_hidden = pre_hidden + self.input_weight[v, state]
        return frame[..., : self.pitches].reshape(h.shape[0], self.keys)  # drop the rests


class VoiceOnsetHead(VoiceHead):
    """One categorical per voice over strike pitch p, hold, or rest: repeated notes exist.

    :class:`VoiceHead` without onsets cannot tell a held half note from two repeated
    quarters: the piano-roll merges them into one long note. Here a voice's step is one
    of P + 2 states: strike pitch 0 … P-1 (a note starts), hold (state P: the pitch this
    voice sounded on the previous frame goes on), or rest (state P+1). Hold is allowed
    only where the voice sounded on the previous frame, and gets probability 0 elsewhere.
    The same categorical NADE over the voices as :class:`VoiceHead` (Larochelle & Murray
    2011; Boulanger-Lewandowski et al. 2012 for conditioning on a sequence model's
    features), with W_u (P+2, N) and U_v (P+2, N).

    Frames x are (..., 2K): the K sounding keys, then the K onsets of
    :func:`tunesmith.representations.pianoroll.encode_with_onsets` (what
    ``pianoroll.decode(frames, cfg, onsets=...)`` reads back). A voice strikes at step t
    when it sounds a pitch that did not sound in that voice at t-1, or that carries an
    onset; it holds when it sounds the pitch of t-1 without an onset. That is exactly the
    rule by which ``decode`` splits notes, so states and (frames, onsets) map one to one.
    ``log_prob`` scores frames plus onsets: the probability of the step's notes *and*
    where they start, so it is ≥ the onset-less figure of the same music in nats.
    Each frame needs the previous frame's sounding keys: ``previous`` (..., K), or, when
    None, x is read as consecutive steps (..., T, 2K) whose first previous is silence.
    Frames with two notes in a voice: as in :class:`VoiceHead` (−inf in eval mode).

    ``sample`` needs ``previous`` (B, 2K) (None: silence) and honours
    ``controls.max_sustain_steps`` given ``held`` (B,) steps each voice's note has lasted:
    a note that long may not be held again (the voice strikes or rests).
    """

    extra_states = 2  # states after the P pitches: hold (P), rest (P+1)
    reads_onsets = True  # frames are (..., 2K): sounding keys ‖ onsets

    @property
    def hold(self) -> int:
        return self.pitches

    @property
    def rest(self) -> int:
        return self.pitches + 1

    def pitch_states(self, sounding: torch.Tensor) -> torch.Tensor:
        """Each voice's sounding pitch 0 … P-1 (its highest), or P when silent: (..., K)
        -> (..., V) long."""
        return VoiceHead.states(self, sounding)

    def states(self, x: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """Each voice's state (strike p / hold P / rest P+1) from frames ‖ onsets x
        (..., 2K) and the previous frame's sounding keys (..., K) -> (..., V) long."""
        sounding, onsets = x[..., : self.keys], x[..., self.keys :]
        previous = self._previous(x) if previous is None else previous[..., : self.keys]
        pitch = self.pitch_states(sounding)  # (..., V): P where silent
        before = self.pitch_states(previous)  # (..., V)
        voice_onsets = (onsets.reshape(*onsets.shape[:-1], self.voices, self.pitches) > 0)
        struck = F.pad(voice_onsets, (0, 1)).gather(-1, pitch.unsqueeze(-1)).squeeze(-1)
        hold = (pitch < self.pitches) & (pitch == before) & ~struck
        return torch.where(pitch == self.pitches, self.rest,
                           torch.where(hold, self.hold, pitch))

    def _previous(self, x: torch.Tensor) -> torch.Tensor:
        """Sounding keys of the step before each of x (..., T, 2K): silence before step 0."""
        return F.pad(x[..., :-1, : self.keys], (0, 0, 1, 0))

    def hold_allowed(self, previous: torch.Tensor) -> torch.Tensor:
        """(..., V) bool: the voices that sounded on the previous frame (..., K)."""
        return self.pitch_states(previous[..., : self.keys]) < self.pitches

    def log_prob(self, h, x, previous=None):
        previous = self._previous(x) if previous is None else previous[..., : self.keys]
        states = self.states(x, previous)  # (..., V)
        logits = self.logits(h, states)  # (..., V, P+2)
        no_hold = ~self.hold_allowed(previous)  # (..., V)
        logits[..., self.hold] = logits[..., self.hold].masked_fill(no_hold, float("-inf"))
        log_probs = torch.log_softmax(logits, -1)
        total = log_probs.gather(-1, states.unsqueeze(-1)).squeeze(-1).sum(-1)  # (...)
        if self.training:
            return total
        return total.masked_fill(self.chords(x[..., : self.keys]), float("-inf"))

    def draw(self, h: torch.Tensor, controls: SamplingControls,
             generator: torch.Generator | None = None, group_size: int | None = None,
             previous: torch.Tensor | None = None,
             held: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`sample`; it already keeps to ``allowed_keys`` (a hold continues a pitch
        that was drawn or primed)."""
        return self.sample(h, controls, generator, group_size, previous, held)

    def sample(self, h, controls: SamplingControls, generator=None, group_size=None,
               previous=None, held=None):
        """Voice by voice in track order -> (B, 2K) sounding keys ‖ onsets."""
        if group_size not in (None, self.pitches):
            raise ConfigError(f"voices head has {self.pitches} pitches per track, "
                              f"not groups of {group_size}")
        batch = h.shape[0]
        if previous is None:
            previous = h.new_zeros(batch, self.keys)
        before = self.pitch_states(previous[:, : self.keys])  # (B, V): P where silent
        can_hold = before < self.pitches  # (B, V)
        if held is not None and controls.max_sustain_steps > 0:
            can_hold = can_hold & (held < controls.max_sustain_steps)
        allowed = h.new_ones(batch, self.voices, self.pitches + 2, dtype=torch.bool)
        if self.allowed_keys is not None:  # a voice strikes only pitches its data sounds
            allowed[..., : self.pitches] = self.allowed_keys.reshape(
                self.voices, self.pitches).bool()
        allowed[..., self.hold] = can_hold
        visible = self.visible_bias(h).unflatten(-1, (self.voices, self.pitches + 2))
        pre_hidden = self.hidden_bias(h)  # a_0 = c(h) (B, N)
        states = torch.empty(batch, self.voices, dtype=torch.long, device=h.device)
        for v in range(self.voices):
            logits = (visible[:, v] + torch.sigmoid(pre_hidden) @ self.output_weight[v].T).float()
            if controls.threshold is not None:
                state = mask_logits(logits, allowed[:, v]).argmax(-1)  # (B,) most likely
            else:
                state = sample_categorical(logits, controls, generator, allowed[:, v])  # (B,)
            states[:, v] = state
            if v < self.voices - 1:
                pre_hidden = pre_hidden + self.input_weight[v, state]
        return self.frame_of_states(states, before)

    def frame_of_states(self, states: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
        """States (B, V) and the previous pitch states (B, V) -> (B, 2K) sounding ‖ onsets."""
        batch = states.shape[0]
        pitch = torch.where(states == self.hold, before, states)  # (B, V): a hold keeps p
        sounding = pitch < self.pitches  # (B, V)
        frame = torch.zeros(batch, self.voices, self.pitches + 1, device=states.device)
        frame.scatter_(-1, torch.where(sounding, pitch, self.pitches).unsqueeze(-1), 1.0)
        onsets = frame * (states < self.pitches).unsqueeze(-1)  # strikes only
        return torch.cat([frame[..., : self.pitches].reshape(batch, self.keys),
                          onsets[..., : self.pitches].reshape(batch, self.keys)], -1)


#: head name -> class taking (hidden, keys, **its options). Backbones build heads through
#: make_head().
HEADS: dict[str, type[FrameHead]] = {"bernoulli": BernoulliHead, "nade": NADEHead,
                                     "voices": VoiceHead, "voices-onset": VoiceOnsetHead}


def head_reads_onsets(name: str) -> bool:
    """Whether head ``name`` models frames ‖ onsets (..., 2K) rather than frames (..., K)."""
    return bool(getattr(HEADS.get(name), "reads_onsets", False))


def make_head(name: str, hidden: int, keys: int, **options) -> FrameHead:
    """Build head ``name`` for features of size ``hidden`` and frames of ``keys`` keys.

    ``options`` are a backbone's head settings (``n_tracks``, ``nade_hidden``,
    ``nade_low``...; ``onset_input=True`` from a backbone that reads frames ‖ onsets,
    which a head with ``reads_onsets`` requires); each head takes the ones its
    constructor names and ignores the rest, so a backbone can pass all of them whatever
    head its config picks.
    """
    try:
        cls = HEADS[name]
    except KeyError:
        raise ConfigError(f"unknown output head {name!r}; available: {', '.join(HEADS)}") from None
    if cls.reads_onsets and not options.get("onset_input"):
        raise ConfigError(f"output head {name!r} models onsets; only a backbone that reads "
                          "frames and onsets (wavenet) can use it")
    accepted = inspect.signature(cls.__init__).parameters
    return cls(hidden, keys,  # type: ignore[call-arg]  # every head in HEADS takes these
               **{k: v for k, v in options.items() if k in accepted})
