"""Biaxial RNN: a time-axis LSTM tied across pitches, then a note-axis LSTM across pitches.

Johnson (2017), "Generating polyphonic music using tied parallel networks" (EvoMUSART),
after his 2015 "biaxial RNN". For each pitch p, a time-axis LSTM with weights shared by
all pitches reads relative-pitch features of the previous frame: the pitch's own state
and its neighbours within ±``window`` semitones, its pitch class (one-hot), its position
on the keyboard, a binary clock of the step, and optionally how many notes of each pitch
class, relative to p, sounded. Then within each step a note-axis LSTM runs from the lowest
pitch to the highest, predicting each note from the time-axis output of its pitch and the
notes already chosen below it (teacher forcing in training). The frame's distribution is
the exact product of these conditionals, so its NLL is the benchmark's.

The benchmark piano-rolls do not separate held from repeated notes, so the "articulate"
bit of the original collapses into "play". Shapes: B pieces, T steps, K pitches.

Multi-track frames (K = tracks × pitches, track-major, as in the prepared piano-rolls)
keep every relative feature within a track: neighbours and the keys "below" never cross
into another track, the time axis also sees a one-hot of the key's track, and the note
axis runs through the tracks one after the other (still an exact product of
conditionals). Note limits in sampling apply per track.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.errors import ConfigError
from tunesmith.models.base import GenerativeModel, ModelConfig
from tunesmith.models.sampling import SamplingControls, limit_sustain


@dataclasses.dataclass
class BiaxialConfig(ModelConfig):
    #: older checkpoints and command lines spell pitch_low "lowest_pitch"; still read
    renamed: ClassVar[dict[str, str | tuple[str, Callable[[Any], Any]]]] = {
        "lowest_pitch": "pitch_low"}

    keys: int = 88  # keys of a frame: n_tracks × pitches per track, track-major
    pitch_low: int = 21  # MIDI pitch of key 0 of every track (pitch classes depend on it)
    n_tracks: int = 1  # tracks of a frame (set from the data)
    window: int = 12  # time axis sees the previous frame within ±window semitones
    beat_bits: int = 4  # binary clock of the step (period 2**beat_bits)
    pitch_class_context: bool = True  # count of each relative pitch class last step
    time_hidden: int = 128  # units per time-axis LSTM layer (Johnson: 300)
    time_layers: int = 2
    note_hidden: int = 64  # units per note-axis LSTM layer (Johnson: 100/50)
    note_layers: int = 2
    note_window: int = 12  # note axis sees this many already-chosen keys just below
    dropout: float = 0.0  # on both LSTMs' outputs (Johnson: 0.5)
    active_low: int = 0  # keys [active_low, active_high) run through the two LSTMs; keys
    active_high: int = 0  # outside get one learned independent logit each (0 = all keys)


class BiaxialRNN(GenerativeModel):
    """Time axis tied over pitches (vectorised over B × K), note axis over pitches (B × T)."""

    family = "biaxial"
    representation = "pianoroll"
    config_class = BiaxialConfig
    config: BiaxialConfig
    # buffers (not weights)
    pitch_class_onehot: torch.Tensor  # (K, 12)
    relative_classes: torch.Tensor  # (K, 12) long: class (pc(p) + i) % 12 of key p
    position: torch.Tensor  # (K, 1) in [0, 1)
    track_onehot: torch.Tensor  # (K, tracks), (K, 0) with one track

    def __init__(self, config: BiaxialConfig):
        super().__init__(config)
        keys, window, tracks = config.keys, config.window, config.n_tracks
        if tracks < 1 or keys % tracks:
            raise ConfigError(f"{keys} keys do not split into {tracks} tracks")
        self.pitches = keys // tracks  # P, keys of one track
        pitch = torch.arange(keys) % self.pitches  # (K,) index of each key within its track
        pitch_class = (pitch + config.pitch_low) % 12  # (K,)
        self.register_buffer("pitch_class_onehot", F.one_hot(pitch_class, 12).float(), False)
        # relative pitch-class context: entry i of pitch p counts notes of class (pc(p)+i) % 12
        relative = (pitch_class.unsqueeze(1) + torch.arange(12)) % 12  # (K, 12)
        self.register_buffer("relative_classes", relative, False)
        self.register_buffer("position", (pitch.float() / self.pitches).unsqueeze(1), False)
        track = F.one_hot(torch.arange(keys) // self.pitches, tracks).float()  # (K, tracks)
        self.register_buffer("track_onehot", track if tracks > 1 else track[:, :0], False)
        time_inputs = 2 * window + 1 + 12 + 1 + config.beat_bits + self.track_onehot.shape[1]
        time_inputs += 12 if config.pitch_class_context else 0
        self.time_rnn = nn.LSTM(
            time_inputs, config.time_hidden, config.time_layers, batch_first=True,
            dropout=config.dropout if config.time_layers > 1 else 0.0,
        )
        self.note_rnn = nn.LSTM(
            config.time_hidden + config.note_window, config.note_hidden, config.note_layers,
            batch_first=True, dropout=config.dropout if config.note_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.note_hidden, 1)
        self.low, self.high = config.active_low, config.active_high or keys
        if not 0 <= self.low < self.high <= keys:
            raise ConfigError(
                f"active keys [{self.low}, {self.high}) must lie within [0, {keys})"
            )
        self.outside_logit = nn.Parameter(torch.full((keys,), -6.0))  # keys outside the range

    @classmethod
    def config_for_data(cls, config, info):
        return config.updated(keys=info.keys, pitch_low=info.pitch_low,
                              n_tracks=info.n_tracks)

    def _by_track(self, x: torch.Tensor) -> torch.Tensor:
        """(..., K) -> (..., tracks, P)."""
        return x.reshape(*x.shape[:-1], self.config.n_tracks, self.pitches)

    # ---- features ---------------------------------------------------------------------
    def time_inputs(self, previous: torch.Tensor, first_step: int = 0) -> torch.Tensor:
        """Relative-pitch inputs from the previous frames (B, T, K) -> (B, T, K, F)."""
        batch, steps, keys = previous.shape
        window = self.config.window
        padded = F.pad(self._by_track(previous), (window, window))  # (B, T, tracks, P + 2w)
        neighbours = padded.unfold(-1, 2 * window + 1, 1)  # (B, T, tracks, P, 2w+1)
        neighbours = neighbours.reshape(batch, steps, keys, -1)  # (B, T, K, 2w+1)
        step = torch.arange(first_step, first_step + steps, device=previous.device)
        bits = (step.unsqueeze(1) >> torch.arange(self.config.beat_bits, device=step.device)) & 1
        parts = [
            neighbours,
            self.pitch_class_onehot.expand(batch, steps, keys, 12),
            self.position.expand(batch, steps, keys, 1),
            self.track_onehot.expand(batch, steps, keys, -1),
            bits.float()[None, :, None, :].expand(batch, steps, keys, -1),
        ]
        if self.config.pitch_class_context:
            counts = previous @ self.pitch_class_onehot  # (B, T, 12)
            parts.append(counts[:, :, self.relative_classes])  # (B, T, K, 12)
        return torch.cat(parts, dim=-1)[:, :, self.low : self.high]  # (B, T, Ka, F)

    def run_time_axis(self, previous: torch.Tensor, state=None, first_step: int = 0):
        """Time-axis LSTM for every active pitch: (B, T, K) -> (B, T, Ka, Ht), state."""
        batch, steps, keys = previous.shape[0], previous.shape[1], self.high - self.low
        inputs = self.time_inputs(previous, first_step)  # (B, T, K, F)
        inputs = inputs.permute(0, 2, 1, 3).reshape(batch * keys, steps, -1)  # (B·K, T, F)
        out, state = self.time_rnn(inputs, state)  # (B·K, T, Ht)
        out = self.dropout(out).reshape(batch, keys, steps, -1).permute(0, 2, 1, 3)
        return out, state  # (B, T, K, Ht)

    def lower_notes(self, frames: torch.Tensor) -> torch.Tensor:
        """For each key the ``note_window`` keys just below it in its track (nearest last):
        (..., K) -> (..., K, W)."""
        width = self.config.note_window
        below = F.pad(self._by_track(frames), (width, 0))[..., :-1].unfold(-1, width, 1)
        return below.reshape(*frames.shape, width)  # (..., tracks, P, W) -> (..., K, W)

    def lower_notes_of_key(self, frame: torch.Tensor, k: int) -> torch.Tensor:
        """``lower_notes(frame)[:, k]`` for one key, reading only the ``note_window`` keys
        below it (sampling builds a frame key by key): (n, K) -> (n, W)."""
        width = self.config.note_window
        start = max((k // self.pitches) * self.pitches, k - width)  # within k's track
        return F.pad(frame[:, start:k], (width - (k - start), 0))

    def logits(self, previous: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Logit of every key of ``frames`` (B, T, K) given the previous frames and lower keys."""
        batch, steps, keys = frames.shape
        time_out, _ = self.run_time_axis(previous)  # (B, T, Ka, Ht)
        below = self.lower_notes(frames)[:, :, self.low : self.high]  # (B, T, Ka, W)
        note_in = torch.cat([time_out, below], dim=-1)  # (B, T, Ka, Ht+W)
        note_out, _ = self.note_rnn(note_in.reshape(batch * steps, self.high - self.low, -1))
        active = self.output(self.dropout(note_out)).reshape(batch, steps, -1)  # (B, T, Ka)
        outside = self.outside_logit.expand(batch, steps, keys)
        return torch.cat([outside[..., : self.low], active, outside[..., self.high :]], dim=-1)

    # ---- training and scoring ---------------------------------------------------------
    def frame_log_prob(self, frames: torch.Tensor, mask: torch.Tensor | None = None):
        """log p(frame t | frames < t) in nats: (B, T, K) -> (B, T); frame 0 follows silence."""
        previous = torch.cat([torch.zeros_like(frames[:, :1]), frames[:, :-1]], dim=1)
        logits = self.logits(previous, frames)
        return -F.binary_cross_entropy_with_logits(logits, frames, reduction="none").sum(-1)

    def loss(self, batch):
        mask = batch["mask"].float()  # (B, T)
        log_prob = self.frame_log_prob(batch["frames"], batch["mask"])
        nll = -(log_prob * mask).sum() / mask.sum().clamp(min=1)
        return {"loss": nll, "nll_per_frame": nll.detach()}

    # ---- sampling ---------------------------------------------------------------------
    def sample_frame(self, time_out: torch.Tensor, controls: SamplingControls,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """One frame, pitch by pitch from low to high, track after track: time_out
        (n, Ka, Ht) -> (n, K). ``max_notes_per_step`` applies to each track; keys the
        training data never sounds (the output mask) are never drawn."""
        n = time_out.shape[0]
        allowed = self.allowed_outputs()  # (K,) bool | None
        frame = torch.zeros(n, self.config.keys, device=time_out.device)
        state = None
        for k in range(self.config.keys):
            if k % self.pitches == 0:  # a new track: its own note count
                notes = torch.zeros(n, device=time_out.device)
            if self.low <= k < self.high:
                below = self.lower_notes_of_key(frame, k)  # (n, W): keys chosen below k
                note_in = torch.cat([time_out[:, k - self.low], below], dim=-1).unsqueeze(1)
                out, state = self.note_rnn(note_in, state)  # (n, 1, Hn)
                logit = self.output(out[:, 0]).squeeze(-1)  # (n,)
            else:
                logit = self.outside_logit[k].expand(n)
            prob = torch.sigmoid(logit / controls.temperature)
            if controls.threshold is not None:
                note = (prob > controls.threshold).float()
            else:
                note = (torch.rand(prob.shape, generator=generator, device=prob.device) < prob)
                note = note.float()
            if allowed is not None:
                note = note * allowed[k].float()
            if controls.max_notes_per_step > 0:
                note = note * (notes < controls.max_notes_per_step).float()
            notes = notes + note
            frame[:, k] = note
        return frame

    @torch.no_grad()
    def generate(self, n: int, steps: int, controls: SamplingControls | None = None,
                 prime: torch.Tensor | None = None, condition: dict | None = None
                 ) -> torch.Tensor:
        controls = controls or SamplingControls()
        generator = controls.generator()
        device = next(self.parameters()).device
        frames = torch.zeros(n, 0, self.config.keys, device=device)
        state, previous = None, torch.zeros(n, 1, self.config.keys, device=device)
        if prime is not None and prime.shape[1] > 0:
            frames = prime.to(device).float()[:, :steps]
            history = torch.cat([previous, frames[:, :-1]], dim=1)
            _, state = self.run_time_axis(history)  # read the prime, keep the state
            previous = frames[:, -1:]
        while frames.shape[1] < steps:
            time_out, state = self.run_time_axis(previous, state, first_step=frames.shape[1])
            frame = self.sample_frame(time_out[:, 0], controls, generator)  # (n, K)
            frame = limit_sustain(frames, frame, controls.max_sustain_steps)
            previous = frame.unsqueeze(1)
            frames = torch.cat([frames, previous], dim=1)
        return frames
