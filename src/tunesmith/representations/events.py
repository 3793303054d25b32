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

Constrained decoding (which token may follow a prefix) lives in
:mod:`tunesmith.representations.grammar`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

import numpy as np
from symusic import Score

from tunesmith.config import DictConfig, Range, at_least
from tunesmith.errors import ConfigError, RepresentationError
from tunesmith.music.transforms import merge_tracks, pitched_tracks, select_tracks
from tunesmith.representations.adapter import (
    CorpusLayout,
    RepresentationAdapter,
    SummaryTable,
    register,
)
from tunesmith.representations.info import DataInfo

TOKENIZERS = ("REMI", "MIDILike", "TSD")
SPECIAL_TOKENS = ("PAD", "BOS", "EOS")  # ids 0, 1, 2
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
#: Scores from decode() are resampled to this resolution (ticks per quarter).
DECODE_TPQ = 480


@dataclass
class EventsConfig(DictConfig):
    """Which tokenizer, at which resolution, with which token kinds (miditok options)."""

    config_name: ClassVar[str] = "events"

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

    choices: ClassVar[dict[str, tuple]] = {"tokenizer": TOKENIZERS}
    ranges: ClassVar[dict[str, Range]] = {"num_velocities": at_least(1),
                                          "num_tempos": at_least(1)}

    def check(self) -> None:
        low, high = self.pitch_range
        if not 0 <= low < high <= 128:
            raise ConfigError(f"pitch_range must satisfy 0 <= low < high <= 128, got {low, high}")
        if not self.beat_res or any(len(r) != 3 or r[0] >= r[1] or r[2] < 1
                                    for r in self.beat_res):
            raise ConfigError(
                f"beat_res must be [[first_beat, last_beat, positions_per_beat], ...], "
                f"got {self.beat_res}"
            )

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


def info(cfg: EventsConfig) -> DataInfo:
    """What models need to know about token streams of ``cfg``: the vocabulary and the
    pitch range (no grid, and no fixed tracks: Program tokens carry them)."""
    low, high = cfg.pitch_range
    return DataInfo(representation="events", repr_config=cfg.to_dict(), pitch_low=int(low),
                    pitch_high=int(high) - 1, vocab_size=vocab_size(cfg))


def _single_stream(score: Score, cfg: EventsConfig) -> Score:
    """Without Program tokens, the pitched tracks are merged (drums dropped)."""
    if cfg.use_programs:
        return score

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
    miditok (``tokenizer.tokens_errors`` counts them)."""
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


def open_tokens(tokens: np.ndarray) -> np.ndarray:
    """An event-token piece without its end: the tokens before the first EOS (decoding
    stops there, so a continuation must start in its place)."""
    tokens = np.asarray(tokens)
    ends = np.flatnonzero(tokens == EOS_ID)
    return tokens[: ends[0]] if len(ends) else tokens


def program_of_ids(info: DataInfo) -> np.ndarray:
    """(vocab_size,) int: the program of each ``Program`` token id of event data (-1 for
    drums, as miditok writes them), -2 for every other id."""
    tokenizer = build_tokenizer(EventsConfig.from_dict(info.repr_config))
    programs = np.full(info.vocab_size, -2, dtype=np.int64)
    for name, idx in tokenizer.vocab.items():
        kind, _, value = name.partition("_")
        if kind == "Program" and idx < info.vocab_size:
            programs[idx] = int(value)
    return programs


# ----------------------------------------------------------------------------- adapter


@register
class EventsAdapter(RepresentationAdapter):
    """Score <-> ``(n,)`` int32 token ids (a cache's ``data``); options: :class:`EventsConfig`.
    Drum tracks are dropped before tokenizing."""

    name = "events"
    grid = False
    vocabulary = True
    integer_data = True
    batch_key = "tokens"
    unit = "tokens"

    def __init__(self, options: dict | None = None, corpus: CorpusLayout | None = None):
        self.cfg = EventsConfig.from_dict(dict(options or {}))

    def options(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    def encode(self, score: Score) -> dict[str, np.ndarray]:
        return {"data": np.asarray(encode(pitched_tracks(score), self.cfg), dtype=np.int32)}

    def info(self, facts: list[dict] | None = None) -> DataInfo:
        return dataclasses.replace(info(self.cfg), repr_config=self.options())

    def decode(self, array: np.ndarray, with_onsets: bool = False) -> Score:
        self.refuse_onsets(with_onsets)
        return decode(np.asarray(array).astype(np.int64), self.cfg)

    def primer(self, score: Score, where: str | Any = "", with_onsets: bool = False) -> np.ndarray:
        self.refuse_onsets(with_onsets)
        """The pitched tracks' tokens without the closing EOS: a primer is continued."""
        tokens = np.asarray(encode(select_tracks(score, drums=False), self.cfg),
                            dtype=np.int64)  # (n,)
        if self.cfg.add_bos_eos and len(tokens) and tokens[-1] == EOS_ID:
            tokens = tokens[:-1]
        return tokens

    # ---- what needs only a DataInfo ------------------------------------------------------
    @classmethod
    def open(cls, array: np.ndarray) -> np.ndarray:
        return open_tokens(array)

    @classmethod
    def max_programs(cls, info: DataInfo, pieces: Sequence) -> int:
        programs = program_of_ids(info)  # (V,) program of each Program id, else -2
        if not (programs > -2).any():
            return 0
        return max(len(set(programs[np.asarray(p, dtype=np.int64)].tolist()) - {-2})
                   for p in pieces)

    @classmethod
    def legacy_info(cls, old: dict, options: dict, fact: Callable[..., Any]) -> DataInfo:
        """Old token infos: the tokenizer's ``pitch_range`` [low, high) and ``vocab_size``."""
        pitch_range = fact("pitch range", (), ("pitch_range",))
        return DataInfo(representation=cls.name, repr_config=options,
                        pitch_low=int(pitch_range[0]), pitch_high=int(pitch_range[1]) - 1,
                        vocab_size=int(fact("vocab_size", ("vocab_size",))))

    @classmethod
    def describe(cls, info: DataInfo, pieces: Sequence) -> list[str | SummaryTable]:
        lengths = pieces.lengths() if hasattr(pieces, "lengths") else [len(p) for p in pieces]
        return [f"vocabulary {info.vocab_size} tokens; {sum(lengths)} tokens in all"]
