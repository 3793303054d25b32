"""Melody RNN: an LSTM over melody events (Magenta; Waite, "Generating long-term
structure in songs and stories", 2016).

Three modes, one class (registry names ``melody-rnn-basic``, ``-lookback``,
``-attention``):

* ``basic``: one-hot events -> LSTM -> softmax over the next event.
* ``lookback``: Magenta's ``LookbackEventSequenceEncoderDecoder``. The input at step t
  (which predicts event e_t) adds, to the previous event e_{t-1}:
  the events one and two bars back from the predicted one, e_{t-B} and e_{t-2B}
  (NO_EVENT before the start); a binary clock of t (bits of ``t mod 2B`` as ±1, 5 bits for
  B = 16 steps per bar, identical to Magenta's counter there); and two flags telling
  whether e_{t-1} repeats e_{t-1-B} and e_{t-1-2B}. The softmax has two extra classes,
  "repeat the event 1 bar ago" (V) and "2 bars ago" (V + 1). Target rule, Magenta's
  ``events_to_label``, in this order: if t < 2B and e_t is NO_EVENT -> V + 1; else if
  t >= 2B and e_t == e_{t-2B} -> V + 1; else if t >= B and e_t == e_{t-B} -> V; else e_t.
  Sampling resolves V / V + 1 into e_{t-B} / e_{t-2B} (NO_EVENT before the start).
* ``attention``: additive (Bahdanau) attention over the last ``attn_length`` outputs of
  the top LSTM layer: with c_t the current output and h_i the previous ones,
  u_i = vᵀ tanh(W1 h_i + W2 c_t), a = softmax(u), h' = Σ a_i h_i, and [c_t; h'] feeds
  the softmax layer. As in TensorFlow's ``AttentionCellWrapper``, the window starts
  filled with zero vectors. Unlike it, h' is not fed back into the next step's input,
  so training runs the LSTM over whole sequences at once.

Steps count from the start of the sequence: the lookback clock assumes sequences start
on a bar line (the melody representation starts at tick 0; crop at bar lines).

Unlike Magenta, which needs a primer, step 0 is predicted from a learned START input
(input index V, never an output), so the loss covers every event and ``generate`` can
start from nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.config import UNIT_OPEN, Range, at_least
from tunesmith.errors import ConfigError
from tunesmith.models.base import GenerativeModel, ModelConfig
from tunesmith.models.sampling import SamplingControls, sample_categorical
from tunesmith.representations.info import DataInfo

NO_EVENT = 0  # melody representation: hold / silence goes on
MODES = ("basic", "lookback", "attention")


@dataclass
class MelodyRNNConfig(ModelConfig):
    """Melody RNN options. Defaults follow Magenta's ``basic_rnn``, ``lookback_rnn`` and
    ``attention_rnn`` configs: two LSTM layers of 128 units, dropout 0.5, window 40."""

    mode: str = "basic"  # "basic" | "lookback" | "attention"
    vocab_size: int = 38  # melody events (filled from the data: NO_EVENT, NOTE_OFF, pitches)
    steps_per_bar: int = 16  # grid steps per bar (filled from the data); lookback distances
    embedding_size: int = 0  # 0 = one-hot inputs as in Magenta; >0 = learned embeddings
    hidden_size: int = 128  # LSTM units per layer
    num_layers: int = 2  # stacked LSTM layers
    dropout: float = 0.5  # between layers and on the output (Magenta keep_prob 0.5)
    attn_length: int = 40  # attention window, in steps (Magenta's attention_rnn: 40)

    choices: ClassVar[dict[str, tuple]] = {"mode": MODES}
    ranges: ClassVar[dict[str, Range]] = {
        "vocab_size": at_least(3), "embedding_size": at_least(0), "dropout": UNIT_OPEN,
        **dict.fromkeys(("steps_per_bar", "hidden_size", "num_layers", "attn_length"),
                        at_least(1))}


class MelodyRNN(GenerativeModel):
    """LSTM language model over melody events, in basic, lookback or attention mode."""

    family = "melody-rnn"
    representation = "melody"
    config_class = MelodyRNNConfig
    config: MelodyRNNConfig

    def __init__(self, config: MelodyRNNConfig):
        super().__init__(config)
        c = config
        self.vocab_size = c.vocab_size
        self.start_index = c.vocab_size  # input-only START category
        self.lookback = c.mode == "lookback"
        self.attention = c.mode == "attention"
        self.bar = c.steps_per_bar
        self.clock_bits = max(1, math.ceil(math.log2(2 * c.steps_per_bar)))
        n_inputs = c.vocab_size + 1
        self.embed = nn.Embedding(n_inputs, c.embedding_size) if c.embedding_size else None
        slot = c.embedding_size or n_inputs  # width of one encoded event
        input_size = 3 * slot + self.clock_bits + 2 if self.lookback else slot
        self.lstm = nn.LSTM(input_size, c.hidden_size, c.num_layers, batch_first=True,
                            dropout=c.dropout if c.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(c.dropout)
        if self.attention:
            self.attn_keys = nn.Linear(c.hidden_size, c.hidden_size, bias=False)  # W1
            self.attn_query = nn.Linear(c.hidden_size, c.hidden_size)  # W2 (and bias)
            self.attn_score = nn.Linear(c.hidden_size, 1, bias=False)  # v
        head_in = 2 * c.hidden_size if self.attention else c.hidden_size
        self.n_classes = c.vocab_size + 2 if self.lookback else c.vocab_size
        self.head = nn.Linear(head_in, self.n_classes)

    @classmethod
    def config_for_data(cls, config, info: DataInfo):
        return config.updated(vocab_size=info.vocab_size, steps_per_bar=info.steps_per_bar)

    # ---- inputs ---------------------------------------------------------------------
    def _encode_event(self, index: torch.Tensor) -> torch.Tensor:
        """(...) long -> (..., slot) one-hot or embedding."""
        if self.embed is not None:
            return self.embed(index)
        return F.one_hot(index, self.vocab_size + 1).float()

    def _back(self, events: torch.Tensor, steps: torch.Tensor, distance: int, fill: int):
        """events[:, t - distance] for each t in ``steps`` (B, S); ``fill`` where t < distance."""
        source = steps - distance  # (S,)
        gathered = events[:, source.clamp(min=0)]  # (B, S)
        return torch.where(source >= 0, gathered, torch.full_like(gathered, fill))

    def features(self, events: torch.Tensor, first: int = 0, last: int | None = None):
        """LSTM inputs of steps ``first..last-1``: step t sees only ``events[:, :t]``.

        events (B, N) long -> (B, last - first, input_size). Entries of ``events`` at or
        after a step are never read for that step (causality by construction).
        """
        last = events.shape[1] if last is None else last
        steps = torch.arange(first, last, device=events.device)  # (S,)
        previous = self._back(events, steps, 1, self.start_index)  # (B, S)
        parts = [self._encode_event(previous)]
        if self.lookback:
            B = self.bar
            parts.append(self._encode_event(self._back(events, steps, B, NO_EVENT)))
            parts.append(self._encode_event(self._back(events, steps, 2 * B, NO_EVENT)))
            clock = (steps % (2 * B))[:, None] // (2 ** torch.arange(self.clock_bits,
                                                                      device=events.device))
            clock = (clock % 2).float() * 2 - 1  # (S, bits) in {-1, 1}
            parts.append(clock.expand(events.shape[0], -1, -1))
            for distance in (B, 2 * B):
                earlier = self._back(events, steps, 1 + distance, -1)  # -1: before the start
                parts.append(((earlier >= 0) & (previous == earlier)).float()[..., None])
        return torch.cat(parts, dim=-1)

    def lookback_labels(self, events: torch.Tensor) -> torch.Tensor:
        """(B, T) events -> (B, T) targets over V + 2 classes (rule in the module doc)."""
        V, B = self.vocab_size, self.bar
        steps = torch.arange(events.shape[1], device=events.device)
        one_bar = (steps >= B) & (events == self._back(events, steps, B, -1))
        two_bars = (steps >= 2 * B) & (events == self._back(events, steps, 2 * B, -1))
        early_rest = (steps < 2 * B) & (events == NO_EVENT)
        labels = torch.where(one_bar, torch.full_like(events, V), events)
        return torch.where(two_bars | early_rest, torch.full_like(events, V + 1), labels)

    # ---- network --------------------------------------------------------------------
    def _attend(self, outputs: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        """Additive attention of each output (B, S, H) over its window (B, S, n, H)."""
        keys = self.attn_keys(window)  # (B, S, n, H): W1 h_i
        query = self.attn_query(outputs)[:, :, None]  # (B, S, 1, H): W2 c_t
        scores = self.attn_score(torch.tanh(keys + query)).squeeze(-1)  # (B, S, n)
        weights = torch.softmax(scores, dim=-1)
        return (weights[..., None] * window).sum(dim=2)  # (B, S, H)

    def _head(self, outputs: torch.Tensor, window: torch.Tensor | None) -> torch.Tensor:
        if self.attention:
            assert window is not None  # an attention model always passes its window
            outputs = torch.cat([outputs, self._attend(outputs, window)], dim=-1)
        return self.head(self.dropout(outputs))

    def forward(self, events: torch.Tensor) -> torch.Tensor:
        """(B, T) events -> (B, T, n_classes) logits; step t predicts e_t from e_{<t}."""
        outputs, _ = self.lstm(self.features(events))  # (B, T, H)
        window = None
        if self.attention:
            n = self.config.attn_length
            padded = F.pad(outputs, (0, 0, n, 0))  # n zero vectors before the start
            # window of step t: outputs t-n .. t-1 -> (B, T, n, H)
            window = padded.unfold(1, n, 1)[:, : outputs.shape[1]].permute(0, 1, 3, 2)
        return self._head(outputs, window)

    # ---- training -------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Masked next-event cross-entropy (nats per event) and accuracy."""
        events, mask = batch["events"].long(), batch["mask"].bool()  # (B, T)
        logits = self(events)  # (B, T, C)
        targets = self.lookback_labels(events) if self.lookback else events
        nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, T)
        weight = mask.float()
        count = weight.sum().clamp(min=1)
        correct = (logits.argmax(-1) == targets).float()
        return {"loss": (nll * weight).sum() / count, "accuracy": (correct * weight).sum() / count}

    # ---- sampling -------------------------------------------------------------------
    def _resolve(self, classes: torch.Tensor, events: torch.Tensor, t: int) -> torch.Tensor:
        """Lookback classes V / V+1 at step t -> the events 1 / 2 bars back."""
        if not self.lookback:
            return classes
        V = self.vocab_size
        step = torch.tensor([t], device=events.device)
        one_bar = self._back(events, step, self.bar, NO_EVENT)[:, 0]
        two_bars = self._back(events, step, 2 * self.bar, NO_EVENT)[:, 0]
        out = torch.where(classes == V, one_bar, classes)
        return torch.where(classes == V + 1, two_bars, out)

    def step_logits(self, events: torch.Tensor, t: int, state):
        """Logits of step t from the carried state; returns ``(logits (B, C), state)``.

        ``state`` is ``(lstm (h, c), attention window (B, n, H) or None)``, None at t = 0.
        """
        lstm_state, window = state if state is not None else (None, None)
        output, lstm_state = self.lstm(self.features(events, t, t + 1), lstm_state)  # (B,1,H)
        if not self.attention:
            return self._head(output, None)[:, 0], (lstm_state, None)
        if window is None:
            window = output.new_zeros(output.shape[0], self.config.attn_length, output.shape[-1])
        logits = self._head(output, window[:, None])[:, 0]
        window = torch.cat([window[:, 1:], output], dim=1)  # drop the oldest output
        return logits, (lstm_state, window)

    def allowed_classes(self) -> torch.Tensor | None:
        """(n_classes,) bool: the events the training data holds, and the lookback classes
        (they repeat events already in the melody); None without an output mask."""
        allowed = self.allowed_outputs()  # (V,)
        if allowed is None or not self.lookback:
            return allowed
        return torch.cat([allowed, allowed.new_ones(2)])

    @torch.no_grad()
    def generate(self, n: int, steps: int, controls: SamplingControls | None = None,
                 prime: torch.Tensor | None = None, condition: dict | None = None
                 ) -> torch.Tensor:
        """Sample ``n`` melodies of ``steps`` events -> (n, steps) long.

        The LSTM state (and attention window) is carried from step to step; ``prime``
        (P,) or (n, P) events are kept unchanged as the first P steps.
        """
        if condition:
            raise ConfigError("melody-rnn takes no conditioning inputs")
        controls = controls or SamplingControls()
        device = self.head.weight.device
        generator = controls.generator(device)
        events = torch.zeros(n, steps, dtype=torch.long, device=device)
        n_prime = 0
        if prime is not None:
            prime = torch.as_tensor(prime, device=device).long()
            prime = prime.expand(n, -1) if prime.dim() == 1 or prime.shape[0] == 1 else prime
            if prime.shape[0] != n or prime.min() < 0 or prime.max() >= self.vocab_size:
                raise ConfigError(
                    f"prime must be (P,) or ({n}, P) events in 0..{self.vocab_size - 1}"
                )
            n_prime = min(prime.shape[1], steps)
            events[:, :n_prime] = prime[:, :n_prime]
        allowed = self.allowed_classes()  # (C,) classes of events the data holds
        was_training = self.training
        self.eval()  # no dropout while sampling
        try:
            state = None
            for t in range(steps):
                logits, state = self.step_logits(events, t, state)  # (n, C)
                if t >= n_prime:
                    classes = sample_categorical(logits, controls, generator, allowed)  # (n,)
                    events[:, t] = self._resolve(classes, events, t)
        finally:
            self.train(was_training)
        return events
