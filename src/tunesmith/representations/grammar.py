"""Constrained decoding for event tokens: masks of the tokens a tokenizer's grammar allows next.

A model over miditok tokens (REMI, Huang & Yang 2020; MIDI-Like, Oore et al. 2018) can
sample any token after any other; many successions do not decode to music (a ``Pitch``
without its ``Duration``, a ``NoteOff`` for a silent pitch, a ``Position`` going back in
time). :class:`TokenGrammar` is a per-sequence state machine over token *types* — the
succession graph is miditok's own ``tokenizer.tokens_types_graph`` — plus the value rules
miditok's ``tokens_errors`` checks:

* REMI-like (``Bar``/``Position`` tokens): ``Position`` strictly increases within a bar and
  stays inside the bar of the current time signature; a note (``Program``, ``Pitch``,
  ``Velocity``, ``Duration``) is only started when the remaining length can finish it;
  no duplicated (program, pitch) at one position when the tokenizer removes duplicates;
  ``PitchDrum`` only after ``Program_-1`` and ``Pitch`` only after another program.
* MIDI-Like (``NoteOn``/``NoteOff``): ``NoteOff`` only for a pitch sounding in the current
  program and started before the current time; no second ``NoteOn`` for a sounding pitch;
  near the end of the requested length the grammar stops opening notes and closes the
  sounding ones, so no note is left unended (miditok counts those as errors).
* any other single-stream tokenizer (TSD, Structured...): the type graph only.

Special tokens (PAD, BOS, EOS, MASK) are never generated. Every mask keeps at least one
token: if the value rules leave none, the type rule alone is used.

:class:`TokenVocabulary` holds what models need to know about the ids: token types and
values, pitches, programs, and the token-level transposition used for augmentation.
"""

from __future__ import annotations

import dataclasses

import torch

from tunesmith.errors import ConfigError

SPECIAL_TYPES = frozenset({"PAD", "BOS", "EOS", "MASK"})
#: token types that carry a transposable MIDI pitch (drum tokens are not transposed)
PITCHED_TYPES = frozenset({"Pitch", "NoteOn", "NoteOff"})
#: token types that carry a pitch of any kind, drums included
NOTE_TYPES = frozenset({"Pitch", "NoteOn", "NoteOff", "PitchDrum", "DrumOn", "DrumOff"})


def _split(name: str) -> tuple[str, str]:
    kind, _, value = name.partition("_")
    return kind, value


class TokenVocabulary:
    """Types, values and pitches of a single-vocabulary miditok tokenizer's ids."""

    def __init__(self, tokenizer):
        if getattr(tokenizer, "is_multi_voc", False):
            raise ConfigError(
                f"{type(tokenizer).__name__} uses several vocabularies; token models need a "
                "single-stream tokenizer (REMI, MIDILike, TSD, Structured...)"
            )
        vocab = tokenizer.vocab  # name -> id
        self.size = len(vocab)
        self.names = [""] * self.size
        for name, idx in vocab.items():
            self.names[idx] = name
        self.types = [_split(n)[0] for n in self.names]
        self.values = [_split(n)[1] for n in self.names]
        self.ids_by_type: dict[str, list[int]] = {}
        for idx, kind in enumerate(self.types):
            self.ids_by_type.setdefault(kind, []).append(idx)
        # (V,) MIDI pitch of each id, -1 for ids that are not notes
        self.pitch = torch.full((self.size,), -1, dtype=torch.long)
        for idx, (kind, value) in enumerate(zip(self.types, self.values, strict=True)):
            if kind in NOTE_TYPES:
                self.pitch[idx] = int(value)
        self.pitched = torch.tensor([t in PITCHED_TYPES for t in self.types])  # (V,) bool
        pitches = self.pitch[self.pitched]
        # (low, high) inclusive, as the vocabulary has them (miditok includes the high end)
        self.pitch_range = (int(pitches.min()), int(pitches.max())) if len(pitches) else (0, 127)
        #: Program token ids in vocabulary order (index + 1 is a track id; 0 = no program)
        self.program_ids = self.ids_by_type.get("Program", [])
        self.id_of = dict(vocab)

    def type_mask(self, *kinds: str) -> torch.Tensor:
        """(V,) bool: True for ids of the given types."""
        mask = torch.zeros(self.size, dtype=torch.bool)
        for kind in kinds:
            mask[self.ids_by_type.get(kind, [])] = True
        return mask

    def transpose(self, tokens: torch.Tensor, semitones: torch.Tensor) -> torch.Tensor:
        """Shift pitched tokens of each sequence by its number of semitones.

        ``tokens`` (B, T) long, ``semitones`` (B,) long. A sequence whose shifted pitches
        would leave the tokenizer's pitch range is shifted by the nearest amount that
        keeps them all in range (towards 0). Drum tokens and ids outside the vocabulary
        (model extras) are left unchanged. Returns (B, T) long.
        """
        inside = tokens < self.size  # (B, T)
        safe = tokens.clamp(max=self.size - 1)
        pitched = self.pitched.to(tokens.device)[safe] & inside  # (B, T)
        pitch = self.pitch.to(tokens.device)[safe]  # (B, T)
        big, small = torch.iinfo(torch.long).max, torch.iinfo(torch.long).min
        low = torch.where(pitched, pitch, big).min(dim=1).values  # (B,)
        high = torch.where(pitched, pitch, small).max(dim=1).values  # (B,)
        has_notes = pitched.any(dim=1)
        up_room = torch.where(has_notes, self.pitch_range[1] - high, 0)
        down_room = torch.where(has_notes, low - self.pitch_range[0], 0)
        shift = torch.minimum(torch.maximum(semitones, -down_room), up_room)  # (B,)
        # within one type, consecutive pitches have consecutive ids (miditok builds them so)
        return torch.where(pitched, tokens + shift[:, None], tokens)


@dataclasses.dataclass
class GrammarState:
    """Where one sequence stands in the grammar."""

    previous_type: str | None = None  # type of the last non-special token (None: nothing yet)
    program: int = 0  # current program (0 when the tokenizer has no Program tokens)
    position: int = -1  # REMI: position in the bar (-1: none yet in this bar)
    positions_per_bar: int = 0  # REMI: positions in a bar of the current time signature
    notes_here: set = dataclasses.field(default_factory=set)  # (program, pitch) at this time
    time: int = 0  # MIDI-Like: number of time shifts so far
    sounding: dict = dataclasses.field(default_factory=dict)  # MIDI-Like: (prog, pitch) -> onset


class TokenGrammar:
    """Masks of the next tokens a miditok tokenizer's grammar allows (see module doc)."""

    def __init__(self, tokenizer):
        self.vocab = TokenVocabulary(tokenizer)
        config = tokenizer.config
        types = set(self.vocab.ids_by_type)
        self.style = (
            "remi"
            if {"Bar", "Position"} <= types
            else "midilike"
            if "NoteOff" in types
            else "graph"
        )
        self.use_programs = "Program" in types
        self.use_velocities = "Velocity" in types
        self.remove_duplicates = bool(config.remove_duplicated_notes)
        self.positions_per_beat = int(config.max_num_pos_per_beat)
        self.n_positions = len(self.vocab.ids_by_type.get("Position", []))
        v = self.vocab
        # (V,) bool masks of the successors of each type, special tokens removed
        self.after: dict[str | None, torch.Tensor] = {
            kind: v.type_mask(*(set(successors) - SPECIAL_TYPES))
            for kind, successors in tokenizer.tokens_types_graph.items()
        }
        if self.style == "remi":
            self.after[None] = v.type_mask("Bar")
        elif self.style == "midilike":
            self.after[None] = self.after["TimeShift"] | v.type_mask("TimeShift")
        else:
            self.after[None] = ~v.type_mask(*SPECIAL_TYPES)
        self.value_of = [_value_int(x) for x in v.values]  # int value of each id (or None)
        # per type: its ids and their int values (-1 when the value is not an int)
        self.type_ids = {kind: torch.tensor(ids) for kind, ids in v.ids_by_type.items()}
        self.type_values = {
            kind: torch.tensor([self.value_of[i] if self.value_of[i] is not None else -1
                                for i in ids])
            for kind, ids in v.ids_by_type.items()
        }
        # tokens one note takes in REMI: [Program] Pitch [Velocity] [Duration]
        self.note_length = (
            int(self.use_programs) + 1 + int(self.use_velocities) + int("Duration" in types)
        )
        # MIDI-Like: tokens to open then close one note: [Program] NoteOn [Velocity]
        # TimeShift [Program] NoteOff
        self.per_close = 2 if self.use_programs else 1
        self.open_cost = 1 + int(self.use_velocities) + 1 + self.per_close + int(self.use_programs)
        self.closing_types = v.type_mask(
            "Velocity", "TimeShift", "Program", "NoteOff", "DrumOff", "NoteOn", "DrumOn"
        )

    # ---- state ---------------------------------------------------------------------
    def start(self) -> GrammarState:
        return GrammarState(positions_per_bar=self._positions_per_bar(4))

    def _positions_per_bar(self, numerator: int) -> int:
        """REMI positions in a bar of ``numerator`` beats (of the time signature's unit)."""
        return min(numerator * self.positions_per_beat, self.n_positions)

    def advance(self, state: GrammarState, token: int) -> GrammarState:
        """Update ``state`` in place with the next token id and return it."""
        if token >= self.vocab.size:
            return state  # a model's extra token (conditioning, start): not music
        kind, value = self.vocab.types[token], self.value_of[token]
        if kind in SPECIAL_TYPES:
            return state
        if kind == "Bar":
            state.position, state.notes_here = -1, set()
        elif kind == "TimeSig":
            state.positions_per_bar = self._positions_per_bar(
                int(self.vocab.values[token].split("/")[0])
            )
        elif kind == "Position":
            state.position, state.notes_here = value, set()
        elif kind == "Program":
            state.program = value
        elif kind in ("TimeShift", "Rest"):
            state.time += 1
            state.notes_here = set()
        elif kind in ("Pitch", "PitchDrum"):
            state.notes_here.add((state.program, value))
        elif kind in ("NoteOn", "DrumOn"):
            state.notes_here.add((state.program, value))
            state.sounding[(state.program, value)] = state.time
        elif kind in ("NoteOff", "DrumOff"):
            state.sounding.pop((state.program, value), None)
        state.previous_type = kind
        return state

    # ---- masks ---------------------------------------------------------------------
    def mask(self, state: GrammarState, remaining: int) -> torch.Tensor:
        """(V,) bool: tokens allowed next, with ``remaining`` tokens left to generate
        (this one included)."""
        base = self.after.get(state.previous_type, self.after[None])
        allowed = base.clone()
        if self.style == "remi":
            self._remi_rules(state, remaining, allowed)
        elif self.style == "midilike":
            self._midilike_rules(state, remaining, allowed)
        else:
            self._note_rules(state, remaining, allowed)
        if not allowed.any():  # value rules left nothing: fall back on the type rule
            allowed = base.clone()
        if not allowed.any():  # a type with no successor (EOS): anything but specials
            allowed = self.after[None].clone()
        return allowed

    def _forbid(self, allowed: torch.Tensor, kind: str, keep=None) -> None:
        """Forbid tokens of ``kind`` except those whose values pass ``keep`` (a function of
        the (N,) long tensor of the type's values returning (N,) bool; None: forbid all)."""
        ids = self.type_ids.get(kind)
        if ids is None:
            return
        if keep is None:
            allowed[ids] = False
        else:
            allowed[ids[~keep(self.type_values[kind])]] = False

    def _remi_rules(self, s: GrammarState, remaining: int, allowed: torch.Tensor) -> None:
        limit = s.positions_per_bar
        self._forbid(allowed, "Position", lambda p: (p > s.position) & (p < limit))
        self._note_rules(s, remaining, allowed)

    def _note_rules(self, s: GrammarState, remaining: int, allowed: torch.Tensor) -> None:
        """Notes with duration tokens (REMI, TSD...): whole notes only, pitch rules."""
        note_start = "Program" if self.use_programs else "Pitch"
        if remaining < self.note_length:  # a new note could not be finished
            self._forbid(allowed, note_start)
            if note_start == "Pitch":
                self._forbid(allowed, "PitchDrum")
        self._pitch_rules(s, allowed, "Pitch", "PitchDrum", forbid_sounding=False)

    def _pitch_rules(self, s, allowed, pitch_type, drum_type, forbid_sounding) -> None:
        """Drum pitches only in program -1; no duplicate or (MIDI-Like) sounding pitch."""
        drums = self.use_programs and s.program == -1
        self._forbid(allowed, pitch_type if drums else drum_type)
        taken = {p for prog, p in s.notes_here if prog == s.program} if (
            self.remove_duplicates
        ) else set()
        if forbid_sounding:
            taken |= {p for prog, p in s.sounding if prog == s.program}
        if taken:
            taken_values = torch.tensor(sorted(taken), dtype=torch.long)
            self._forbid(
                allowed, drum_type if drums else pitch_type,
                lambda p: ~torch.isin(p, taken_values),
            )

    def _midilike_rules(self, s: GrammarState, remaining: int, allowed: torch.Tensor) -> None:
        self._pitch_rules(s, allowed, "NoteOn", "DrumOn", forbid_sounding=True)
        closable = {key for key, onset in s.sounding.items() if onset < s.time}
        drums = self.use_programs and s.program == -1
        off_type, other_off = ("DrumOff", "NoteOff") if drums else ("NoteOff", "DrumOff")
        self._forbid(allowed, other_off)
        closable_here = torch.tensor(
            sorted(p for prog, p in closable if prog == s.program), dtype=torch.long
        )
        self._forbid(allowed, off_type, lambda p: torch.isin(p, closable_here))
        if not self._closing(s, remaining):
            return
        # closing: open no new note, spend the remaining tokens on ending the sounding ones
        closable_programs = {prog for prog, _ in closable}
        allowed &= self.closing_types
        programs = torch.tensor(sorted(closable_programs), dtype=torch.long)
        self._forbid(allowed, "Program", lambda p: torch.isin(p, programs))
        if s.previous_type != "Program" or any(prog == s.program for prog, _ in closable):
            self._forbid(allowed, "NoteOn")  # (after a Program with nothing to close, a
            self._forbid(allowed, "DrumOn")  # note must be opened: the budget counts it)
        if closable:
            time_shifts = allowed & self.vocab.type_mask("TimeShift")
            self._forbid(allowed, "TimeShift")
            if not allowed.any():  # NoteOff cannot follow this type: shift time first
                allowed |= time_shifts

    def _closing(self, s: GrammarState, remaining: int) -> bool:
        """True when the tokens left only just suffice to end every sounding note."""
        pending = 0
        if s.previous_type in ("NoteOn", "DrumOn") and self.use_velocities:
            pending = 1  # its Velocity
        elif s.previous_type == "Program":
            pending = 1 + int(self.use_velocities) + self.per_close  # a note it may open
        time_shift = int(bool(s.sounding) or pending > 0)
        cost = pending + time_shift + len(s.sounding) * self.per_close
        return remaining <= cost + self.open_cost


def _value_int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


class BatchGrammar:
    """One :class:`TokenGrammar` state per sequence of a batch, for samplers."""

    def __init__(self, grammar: TokenGrammar, n: int):
        self.grammar = grammar
        self.states = [grammar.start() for _ in range(n)]

    def advance(self, tokens: torch.Tensor) -> None:
        """Feed (n,) or (n, T) token ids."""
        rows = tokens.reshape(len(self.states), -1).tolist()
        for state, row in zip(self.states, rows, strict=True):
            for token in row:
                self.grammar.advance(state, token)

    def mask(self, remaining: int, width: int | None = None) -> torch.Tensor:
        """(n, width) bool of allowed next tokens; ids past the vocabulary are forbidden."""
        size = self.grammar.vocab.size
        out = torch.zeros(len(self.states), width or size, dtype=torch.bool)
        for i, state in enumerate(self.states):
            out[i, :size] = self.grammar.mask(state, remaining)
        return out
