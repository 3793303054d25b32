"""One adapter per representation, chosen by name: what every layer above asks of an encoding.

A representation is one file under ``representations/`` holding its config dataclass, its
``encode``/``decode``/``info`` functions and a :class:`RepresentationAdapter` subclass
registered under its name (:func:`register`). Every caller (``data.prepare``, the
datasets, ``generation``, the output mask, ``DataInfo``'s checks, ``tunesmith data``,
the checkpoint code) asks :func:`get_representation` for the class and calls it; none
of them names a representation. Adding a representation means adding one file and its
import in ``representations/__init__.py`` (which loads every adapter, so the registry
is full as soon as any ``tunesmith.representations`` module is imported).

An adapter *instance* is a codec for one set of options (``adapter(options, corpus)``):
:meth:`~RepresentationAdapter.encode` a Score into the arrays a cache stores,
:meth:`~RepresentationAdapter.decode` arrays back into a Score,
:meth:`~RepresentationAdapter.info` the :class:`~tunesmith.representations.info.DataInfo`
of what it encodes. The *class* answers what needs only a DataInfo (batches, output
masks, augmentation, the checks DataInfo makes, summaries), as classmethods, so prepared
caches and checkpoints need no codec rebuilt to be read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

import numpy as np

from tunesmith.errors import ConfigError

if TYPE_CHECKING:  # annotations only: info.py imports this module
    from symusic import Score

    from tunesmith.music.note_arrays import NoteArrays
    from tunesmith.representations.info import DataInfo


class CorpusLayout(Protocol):
    """What an adapter reads of a corpus to pick its defaults (a
    :class:`tunesmith.data.corpora.Corpus` is one): ``kind`` ("scores" or "rolls"),
    ``track_layout`` (the fixed track names, or None), and, where set, ``track_programs``
    and the rolls' ``steps_per_quarter``."""

    name: str
    kind: str
    track_layout: tuple[str, ...] | None


class SummaryTable(NamedTuple):
    """A table of a prepared corpus's summary (the CLI draws it)."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]


class RepresentationAdapter:
    """Base of every representation's adapter (see the module docstring).

    Class attributes say what the encoding is; :class:`DataInfo` checks an info against
    them, the datasets and samplers read them instead of the representation's name.
    """

    name: ClassVar[str] = ""  # registry name, e.g. "pianoroll"
    # ---- what a DataInfo of this representation holds ---------------------------------
    grid: ClassVar[bool] = True  # a time grid (steps per quarter/bar); False: free tokens
    one_track: ClassVar[bool] = False  # exactly one track (a melody)
    vocabulary: ClassVar[bool] = False  # pieces are ids below ``info.vocab_size``
    onset_grid: ClassVar[bool] = False  # may store an onset grid beside its frames
    # ---- arrays and batches ------------------------------------------------------------
    frames: ClassVar[bool] = False  # (T, K) 0/1 frames, K track-major keys, drawn per key
    integer_data: ClassVar[bool] = False  # ids (batched as long) rather than float arrays
    batch_key: ClassVar[str] = "data"  # the batch entry models read (models/base.py)
    unit: ClassVar[str] = "steps"  # what a piece's rows are, for summaries
    resolution_option: ClassVar[str] = "steps_per_quarter"  # the option --resolution sets
    bar_facts: ClassVar[bool] = False  # prepare records each piece's bar (steps_per_bar)
    transposable: ClassVar[bool] = False  # the datasets may transpose its pieces

    def __init__(self, options: dict | None = None, corpus: CorpusLayout | None = None):
        """The codec of ``options`` (its config's fields, plus the representation's data
        options); ``corpus`` gives defaults where the options leave them out. Stored
        options (a cache's or a checkpoint's ``repr_config``) rebuild it without one."""
        raise NotImplementedError

    # ---- codec -------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """The options to store (``repr_config``): rebuild this codec from them."""
        raise NotImplementedError

    def encode(self, score: Score) -> dict[str, np.ndarray]:
        """Score -> ``{"data": array}`` (+ ``"onsets"`` where the encoding keeps them),
        the arrays a prepared cache stores for one piece."""
        raise NotImplementedError

    def encode_many(self, scores: list, notes: NoteArrays) -> list[dict | Exception]:
        """:meth:`encode` of each score (``notes``: theirs, for vectorised encoders), or
        the exception that makes it unusable; one by one unless the encoding knows better."""
        return one_by_one(self.encode, scores)

    def packs_bits(self) -> bool:
        """Whether its arrays are 0/1 and may be stored 8 cells a byte."""
        return False

    def encode_roll(self, roll: np.ndarray, steps_per_quarter: int,
                    lowest_pitch: int) -> dict[str, np.ndarray]:
        """A benchmark ``(frames, pitches)`` roll, column 0 MIDI ``lowest_pitch``, without
        a Score (frame encodings only)."""
        raise ConfigError(f"{self.name} data cannot be read from benchmark piano-rolls")

    def info(self, facts: list[dict] | None = None) -> DataInfo:
        """The DataInfo of what this codec encodes (``facts``: the prepared pieces')."""
        raise NotImplementedError

    def decode(self, array: np.ndarray, with_onsets: bool = False) -> Score:
        """One generated or prepared piece (a cache's ``data`` array) -> Score.
        ``with_onsets``: the array is ``data ‖ onsets`` (a model that writes onsets);
        only representations with an onset grid (:attr:`onset_grid`) accept it."""
        raise NotImplementedError

    def primer(self, score: Score, where: str | Any = "", with_onsets: bool = False) -> np.ndarray:
        """A music file's Score as the beginning of a piece to continue (a primer):
        the ``data`` array (``data ‖ onsets`` with ``with_onsets``), ready to be continued.
        ``where`` names the file in errors."""
        self.refuse_onsets(with_onsets)
        return np.asarray(self.encode(score)["data"])

    def refuse_onsets(self, with_onsets: bool) -> None:
        """Raise ConfigError when onsets are asked of a representation without them."""
        if with_onsets and not self.onset_grid:
            raise ConfigError(f"the {self.name} representation has no onsets")

    @classmethod
    def pitch_range_options(cls, low: int, high: int) -> dict[str, int]:
        """The options that keep MIDI pitches ``low`` to ``high`` (inclusive)."""
        return {"pitch_low": low, "pitch_high": high}

    # ---- what needs only a DataInfo ------------------------------------------------------
    @classmethod
    def open(cls, array: np.ndarray) -> np.ndarray:
        """A piece made ready to be continued (event tokens drop their end)."""
        return array

    @classmethod
    def items(cls, info: DataInfo, pieces: Sequence, ids: list[str]) -> tuple[Sequence, list[str]]:
        """The training items of a split's pieces and their ids: the pieces themselves,
        unless the encoding trains on parts of them."""
        return pieces, ids

    @classmethod
    def draw_shift(cls, info: DataInfo, data: np.ndarray, shifts: tuple[int, int],
                   rng: np.random.Generator) -> int:
        """A transposition in semitones drawn from ``shifts`` (low, high) that keeps
        every note of ``data`` in range (0 when none does)."""
        return 0

    @classmethod
    def shift(cls, info: DataInfo, data: np.ndarray, semitones: int) -> np.ndarray:
        """``data`` (or its onsets) transposed by a shift :meth:`draw_shift` gave."""
        return np.asarray(data)

    @classmethod
    def pitch_class_counts(cls, info: DataInfo, piece: np.ndarray) -> np.ndarray | None:
        """(12,) sounding steps per pitch class of a piece; None when the encoding
        cannot tell them."""
        return None

    @classmethod
    def outputs(cls, info: DataInfo) -> int:
        """How many discrete outputs a model of this data draws from (frame keys or
        vocabulary ids); 0 when its outputs are not discrete."""
        return info.vocab_size if cls.vocabulary else 0

    @classmethod
    def seen_outputs(cls, info: DataInfo, pieces: Sequence, split: str) -> np.ndarray:
        """(outputs,) bool: the outputs that occur in ``pieces`` (vocabulary ids here)."""
        seen = np.zeros(info.vocab_size, dtype=bool)
        for piece in pieces:
            ids = np.asarray(piece, dtype=np.int64).reshape(-1)
            if len(ids) and (ids.min() < 0 or ids.max() >= info.vocab_size):
                raise ConfigError(f"output mask: ids outside the vocabulary of "
                                  f"{info.vocab_size} in the {split} split")
            seen[ids] = True
        return seen

    @classmethod
    def max_programs(cls, info: DataInfo, pieces: Sequence) -> int:
        """The most distinct programs one piece holds, where the encoding writes
        programs as outputs (0: no limit to keep)."""
        return 0

    @classmethod
    def check_info(cls, info: DataInfo, refuse: Callable[[str], None]) -> None:
        """Anything more than the class attributes that a DataInfo of this encoding must
        satisfy; ``refuse(reason)`` raises."""

    @classmethod
    def legacy_info(cls, old: dict, options: dict, fact: Callable[..., Any]) -> DataInfo:
        """The DataInfo of a cache or checkpoint written before DataInfo
        (:meth:`DataInfo.from_legacy_dict`); ``fact(what, keys, option_keys, required)``
        reads one recorded fact."""
        raise ConfigError(f"old data info: no {cls.name} data was written before DataInfo")

    @classmethod
    def describe(cls, info: DataInfo, pieces: Sequence) -> list[str | SummaryTable]:
        """Lines and tables about a prepared corpus (``tunesmith data inspect``)."""
        return []


_REGISTRY: dict[str, type[RepresentationAdapter]] = {}


def register(cls: type[RepresentationAdapter]) -> type[RepresentationAdapter]:
    """Class decorator: make an adapter available under ``cls.name``."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"representation adapter name {cls.name!r} is empty or taken")
    _REGISTRY[cls.name] = cls
    return cls


def representation_names() -> tuple[str, ...]:
    """The registered representations, in registration order."""
    return tuple(_REGISTRY)


def get_representation(name: Any) -> type[RepresentationAdapter]:
    """The adapter class of a representation name; ConfigError naming the known ones."""
    adapter = _REGISTRY.get(name) if isinstance(name, str) else None
    if adapter is None:
        raise ConfigError(f"unknown representation {name!r}; expected one of "
                          f"{', '.join(_REGISTRY)}")
    return adapter


def one_by_one(function: Callable, items: Sequence) -> list:
    """``function(item)`` of each item, or the exception it raised (a ConfigError, which
    would fail every piece alike, is raised at once)."""
    out = []
    for item in items:
        try:
            out.append(function(item))
        except ConfigError:
            raise
        except Exception as exc:
            out.append(exc)
    return out


def pitch_label(pitch: int) -> str:
    """MIDI pitch -> "Eb4 (63)", for summaries."""
    names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
    return f"{names[int(pitch) % 12]}{int(pitch) // 12 - 1} ({int(pitch)})"
