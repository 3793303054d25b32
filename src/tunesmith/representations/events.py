"""Event tokens for Transformers, through miditok.

Three tokenizations, all one token stream per piece (every track interleaved, a
``Program`` token before each note when ``use_programs``):

* ``"REMI"`` (Huang & Yang, "Pop Music Transformer", ACM MM 2020):
  ``Bar, [TimeSig], Position, Program, Pitch, Velocity, Duration ...``;
* ``"MIDILike"`` (Oore et al., "This time with feeling", 2018; the Music Transformer's
  performance events): ``Program, NoteOn, Velocity, TimeShift, Program, NoteOff ...``;
* ``"TSD"`` (Time-Shift-Duration, Fradet et al. 2023):
  ``TimeShift, Program, Pitch, Velocity, Duration ...``.

``encode(score, cfg)`` gives an int32 array of token ids (by default wrapped in BOS/EOS),
``decode(tokens, cfg)`` a Score (special tokens ignored). Ids 0, 1, 2 are always PAD,
BOS, EOS: :func:`tunesmith.data.batching.collate_tokens` pads with 0 = PAD.

:class:`Grammar` / :func:`allowed_next` give the tokens that may follow a prefix, from
miditok's token-type graph (which type may follow which), for constrained decoding.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from symusic import Score

from tunesmith.errors import ConfigError, RepresentationError

TOKENIZERS = ("REMI", "MIDILike", "TSD")
SPECIAL_TOKENS = ("PAD", "BOS", "EOS")  # ids 0, 1, 2
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
#: Scores from decode() are resampled to this resolution (ticks per quarter).
DECODE_TPQ = 480


@dataclass
class EventsConfig:
    """Which tokenizer, at which resolution, with which token kinds (miditok options)."""

    tokenizer: str = "REMI"  # "REMI" | "MIDILike" | "TSD"
    pitch_range: list[int] = field(default_factory=lambda: [21, 109])  # [low, high) MIDI
    # [first beat, last beat, positions per beat]: onsets/durations within a note's first
    # 4 beats at 1/8 beat, then up to 12 beats at 1/4 beat (miditok's default)
    beat_res: list[list[int]] = field(default_factory=lambda: [[0, 4, 8], [4, 12, 4]])
    num_velocities: int = 32  # velocity bins
    use_programs: bool = True  # a Program token per note: multi-track in one stream
    use_time_signatures: bool = True
    use_tempos: bool = False
    num_tempos: int = 32
    use_rests: bool = False
    add_bos_eos: bool = True  # encode() wraps every piece in BOS ... EOS

    def __post_init__(self):
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(
                f"unknown tokenizer {self.tokenizer!r}; choose one of {', '.join(TOKENIZERS)}"
            )
        low, high = self.pitch_range
        if not 0 <= low < high <= 128:
            raise ConfigError(f"pitch_range must satisfy 0 <= low < high <= 128, got {low, high}")
        if not self.beat_res or any(len(r) != 3 or r[0] >= r[1] or r[2] < 1
                                    for r in self.beat_res):
            raise ConfigError(
                f"beat_res must be [[first_beat, last_beat, positions_per_beat], ...], "
                f"got {self.beat_res}"
            )
        if self.num_velocities < 1:
            raise ConfigError(f"num_velocities must be >= 1, got {self.num_velocities}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EventsConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown events option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def key(self) -> str:
        """A hashable identity of the tokenizer these options build."""
        return json.dumps(self.to_dict(), sort_keys=True)


# ----------------------------------------------------------------------------- tokenizer


def build_tokenizer(cfg: EventsConfig):
    """The miditok tokenizer of a config (built once per distinct config)."""
    return _build_tokenizer(cfg.key())


@cache
def _build_tokenizer(key: str):
    import miditok

    cfg = EventsConfig.from_dict(json.loads(key))
    tokenizer_config = miditok.TokenizerConfig(
        pitch_range=tuple(cfg.pitch_range),
        beat_res={(int(a), int(b)): int(r) for a, b, r in cfg.beat_res},
        num_velocities=cfg.num_velocities,
        special_tokens=list(SPECIAL_TOKENS),
        use_programs=cfg.use_programs,
        one_token_stream_for_programs=True,
        use_time_signatures=cfg.use_time_signatures,
        use_tempos=cfg.use_tempos,
        num_tempos=cfg.num_tempos,
        use_rests=cfg.use_rests,
    )
    tokenizer = getattr(miditok, cfg.tokenizer)(tokenizer_config)
    ids = [tokenizer.vocab[f"{name}_None"] for name in SPECIAL_TOKENS]
    assert ids == [PAD_ID, BOS_ID, EOS_ID], ids  # miditok puts special tokens first
    return tokenizer


def vocab_size(cfg: EventsConfig) -> int:
    return len(build_tokenizer(cfg))


def _single_stream(score: Score, cfg: EventsConfig) -> Score:
    """Without Program tokens, the pitched tracks are merged (drums dropped)."""
    if cfg.use_programs:
        return score
    from tunesmith.music.transforms import merge_tracks

    merged = merge_tracks(score, "Merged", 0)
    merged.tracks = [t for t in merged.tracks if not t.is_drum]
    return merged


def encode(score: Score, cfg: EventsConfig) -> np.ndarray:
    """Score -> ``(n_tokens,)`` int32 token ids.

    Raises:
        RepresentationError: nothing of the piece survives tokenization (no notes in
            the pitch range).
    """
    tokenizer = build_tokenizer(cfg)
    sequence = tokenizer.encode(_single_stream(score, cfg))
    if isinstance(sequence, list):  # miditok gives one sequence per track without programs
        sequence = sequence[0]
    ids = list(sequence.ids)
    if not any(tokenizer[i].startswith(("Pitch", "NoteOn", "DrumOn")) for i in ids):
        raise RepresentationError(
            f"no note left after tokenization (pitch range {cfg.pitch_range[0]}.."
            f"{cfg.pitch_range[1] - 1})"
        )
    if cfg.add_bos_eos:
        ids = [BOS_ID, *ids, EOS_ID]
    return np.asarray(ids, dtype=np.int32)


def decode(tokens: np.ndarray, cfg: EventsConfig) -> Score:
    """Token ids -> Score at 480 ticks per quarter. Special tokens (PAD, BOS, EOS) and
    everything after the first EOS are ignored; malformed successions are skipped by
    miditok (count them with :meth:`Grammar.errors`)."""
    tokenizer = build_tokenizer(cfg)
    ids = np.asarray(tokens).astype(np.int64).reshape(-1)
    bad = ids[(ids < 0) | (ids >= len(tokenizer))]
    if len(bad):
        raise RepresentationError(
            f"token ids must lie in 0..{len(tokenizer) - 1}, got {sorted(set(bad.tolist()))}"
        )
    ends = np.nonzero(ids == EOS_ID)[0]
    if len(ends):
        ids = ids[: ends[0]]
    ids = ids[(ids != PAD_ID) & (ids != BOS_ID)]
    from miditok import TokSequence

    score = tokenizer.decode([TokSequence(ids=ids.tolist())] if not tokenizer.one_token_stream
                             else TokSequence(ids=ids.tolist()))
    if DECODE_TPQ % score.ticks_per_quarter == 0:
        score = score.resample(DECODE_TPQ, min_dur=1)
    return score


# ----------------------------------------------------------------------------- grammar


class Grammar:
    """Which token may follow a prefix, from miditok's token-type graph.

    The rules are type-level (``Pitch`` is followed by ``Velocity``, ``Velocity`` by
    ``Duration`` in REMI...), plus two about position:

    * a piece starts with ``Bar`` in REMI, with a time token (``TimeSig``, ``TimeShift``)
      or a note's first token otherwise;
    * in REMI, ``Position`` values strictly increase within a bar.

    EOS may follow any token after which a new note could start; after EOS only PAD.
    Note-level facts (a NoteOff for a note that is not sounding, a position past the end
    of a 3/4 bar) are not checked.
    """

    def __init__(self, tokenizer):
        self.size = len(tokenizer)
        self.tokens = [tokenizer[i] for i in range(self.size)]
        self.types = [t.split("_")[0] for t in self.tokens]
        type_names = sorted(set(self.types) - set(SPECIAL_TOKENS))
        graph = {t: {s.split("_")[0] for s in succ} - set(SPECIAL_TOKENS)
                 for t, succ in tokenizer.tokens_types_graph.items()
                 if t not in SPECIAL_TOKENS}
        if "Bar" in type_names:
            start = {"Bar"}
        else:
            start = ({"TimeSig", "TimeShift", "Tempo", "Rest"} | graph.get("TimeShift", set()))
            start = (start - {"NoteOff", "DrumOff"}) & set(type_names)
        self.start_types = start
        self.type_mask = {name: self._mask_of(graph.get(name, set())) for name in type_names}
        # EOS is allowed where a new note (or the time before it) could come next
        for name in type_names:
            if graph.get(name, set()) & (start | {"Program", "Position"}):
                self.type_mask[name][EOS_ID] = True
        self.start_mask = self._mask_of(start)
        self.position_value = np.array(
            [int(t.split("_")[1]) if ty == "Position" else -1
             for t, ty in zip(self.tokens, self.types, strict=True)])

    def _mask_of(self, type_names: set[str]) -> np.ndarray:
        return np.array([t in type_names for t in self.types], dtype=bool)

    def allowed_next(self, prev_ids) -> np.ndarray:
        """(V,) bool mask of the tokens that may follow ``prev_ids`` (BOS/PAD skipped)."""
        ids = [int(i) for i in np.asarray(prev_ids).reshape(-1)]
        state = _State(opened=bool(ids))
        for i in ids:
            self._advance(state, i)
        return self._mask(state)

    def errors(self, ids) -> int:
        """Number of tokens of a sequence that break this grammar (one pass)."""
        state, count = _State(), 0
        for i in (int(i) for i in np.asarray(ids).reshape(-1)):
            count += not self._mask(state)[i]
            self._advance(state, i)
        return count

    def _advance(self, state: _State, token: int) -> None:
        state.opened = True
        if token == EOS_ID:
            state.ended = True
        if token in (PAD_ID, BOS_ID, EOS_ID):
            return
        kind = self.types[token]
        state.last_type = kind
        if kind == "Bar":
            state.position = -1
        elif kind == "Position":
            state.position = int(self.position_value[token])

    def _mask(self, state: _State) -> np.ndarray:
        if state.ended:
            mask = np.zeros(self.size, dtype=bool)
            mask[PAD_ID] = True
            return mask
        if state.last_type is None:
            mask = self.start_mask.copy()
            mask[BOS_ID] = not state.opened  # BOS only opens a sequence
            return mask
        mask = self.type_mask[state.last_type].copy()
        if state.position >= 0:  # REMI: positions move forward within a bar
            mask &= ~((self.position_value >= 0) & (self.position_value <= state.position))
        return mask


@dataclass
class _State:
    """Where a token sequence stands for the grammar."""

    opened: bool = False  # any token seen (BOS included)
    ended: bool = False  # EOS seen
    last_type: str | None = None  # type of the last non-special token
    position: int = -1  # last Position value in the current bar (REMI), -1 after a Bar


@cache
def _grammar(key: str) -> Grammar:
    return Grammar(_build_tokenizer(key))


def grammar(cfg: EventsConfig) -> Grammar:
    """The (cached) :class:`Grammar` of a config's tokenizer."""
    return _grammar(cfg.key())


def allowed_next(tokenizer_or_cfg, prev_token_ids) -> np.ndarray:
    """(V,) bool mask of the tokens allowed after ``prev_token_ids``.

    Accepts an :class:`EventsConfig` (cached grammar) or a miditok tokenizer.
    """
    if isinstance(tokenizer_or_cfg, EventsConfig):
        return grammar(tokenizer_or_cfg).allowed_next(prev_token_ids)
    key = id(tokenizer_or_cfg)
    if key not in _GRAMMARS_BY_TOKENIZER:  # the tokenizer is kept alive with its grammar
        _GRAMMARS_BY_TOKENIZER[key] = (tokenizer_or_cfg, Grammar(tokenizer_or_cfg))
    return _GRAMMARS_BY_TOKENIZER[key][1].allowed_next(prev_token_ids)


_GRAMMARS_BY_TOKENIZER: dict[int, tuple[object, Grammar]] = {}
