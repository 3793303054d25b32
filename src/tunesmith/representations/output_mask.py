"""OutputMask: what a model may emit, the outputs its training data ever holds.

A model trained briefly still gives some probability to every output it has: a GPT over
REMI tokens can draw ``Program_112`` (Tinkle Bell) after two minutes on four-voice
chorales, a piano-roll model a key no voice ever sang. The mask records, from the
**train split**, which outputs occur:

* ``allowed``: the ids (event tokens, melody events) or piano-roll frame columns
  (``t * n_pitches + p``, track-major) that occur at least once; every other one is
  never drawn;
* ``max_programs`` (event tokens with ``Program`` tokens): the most distinct programs one
  training piece holds, so a sample never has more tracks than a piece of the data.

Samplers apply it before temperature, top-k and top-p (token logits set to -inf, key
probabilities to 0): see :mod:`tunesmith.models.sampling`. Every checkpoint stores it
as JSON beside its DataInfo (``output_mask`` in ``config.json``); checkpoints written
before it hold none, and their models may emit everything, as they always did.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunesmith.config import check_json_keys
from tunesmith.errors import ConfigError
from tunesmith.representations.adapter import get_representation, representation_names
from tunesmith.representations.events import program_of_ids
from tunesmith.representations.info import DataInfo

#: version of the JSON form written by :meth:`OutputMask.to_dict`
VERSION = 1


@dataclass(frozen=True)
class OutputMask:
    """The outputs a model may emit (see the module docstring)."""

    representation: str  # a registered representation with discrete outputs
    size: int  # outputs of the representation: frame columns, or vocabulary ids
    allowed: tuple[int, ...]  # sorted ids / columns that occur in the train split
    max_programs: int = 0  # events: most distinct programs in one training piece (0: no limit)
    split: str = "train"  # the split it was computed from

    def __post_init__(self):
        if isinstance(self.allowed, (list, np.ndarray)):
            object.__setattr__(self, "allowed", tuple(int(i) for i in self.allowed))
        if self.representation not in representation_names():
            raise ConfigError(f"output mask: unknown representation {self.representation!r}")
        for name in ("size", "max_programs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"output mask: {name} must be an integer >= 0, got {value!r}")
        if not isinstance(self.split, str):
            raise ConfigError(f"output mask: split must be a string, got {self.split!r}")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in self.allowed):
            raise ConfigError("output mask: allowed must be a list of integers")
        if list(self.allowed) != sorted(set(self.allowed)):
            raise ConfigError("output mask: allowed must be sorted, without repeats")
        if self.allowed and not 0 <= self.allowed[0] <= self.allowed[-1] < self.size:
            raise ConfigError(f"output mask: allowed outputs must lie in 0..{self.size - 1}")

    # ---- building ----------------------------------------------------------------------
    @classmethod
    def from_pieces(cls, info: DataInfo, pieces: Iterable[np.ndarray],
                    split: str = "train") -> OutputMask | None:
        """The mask of prepared pieces of ``info``'s representation (None without pieces).

        Pieces are a prepared cache's arrays (:class:`tunesmith.data.prepare.PreparedData`);
        the representation's adapter says which outputs each one holds.
        """
        if not isinstance(pieces, Sequence):  # read twice below; a Sequence (a prepared
            pieces = list(pieces)  # cache's PieceList) gives one piece at a time
        adapter = get_representation(info.representation)
        size = adapter.outputs(info)
        if not len(pieces) or not size:  # no discrete outputs (drums): no mask
            return None
        seen = adapter.seen_outputs(info, pieces, split)  # (size,) bool
        return cls(info.representation, size, tuple(np.flatnonzero(seen).tolist()),
                   max_programs=adapter.max_programs(info, pieces), split=split)

    # ---- reading -----------------------------------------------------------------------
    def array(self) -> np.ndarray:
        """(size,) bool: True for the outputs a sampler may draw."""
        out = np.zeros(self.size, dtype=bool)
        out[list(self.allowed)] = True
        return out

    def pitch_ranges(self, info: DataInfo) -> list[tuple[int, int] | None]:
        """Piano-roll: the lowest and highest MIDI pitch each track sounds (None: silent)."""
        if not get_representation(self.representation).frames:
            raise ConfigError("pitch ranges per track belong to piano-roll masks")
        ranges: list[tuple[int, int] | None] = []
        columns = np.asarray(self.allowed, dtype=np.int64)
        for track in range(info.n_tracks):
            mine = columns[columns // info.n_pitches == track] % info.n_pitches
            ranges.append((info.pitch_low + int(mine.min()), info.pitch_low + int(mine.max()))
                          if len(mine) else None)
        return ranges

    # ---- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, "representation": self.representation, "size": self.size,
                "allowed": list(self.allowed), "max_programs": self.max_programs,
                "split": self.split}

    @classmethod
    def from_dict(cls, data: Any) -> OutputMask:
        """Read :meth:`to_dict`'s form; wrong types, unknown or missing keys raise ConfigError."""
        check_json_keys(data, {"version", "representation", "size", "allowed", "max_programs",
                               "split"}, "output mask")
        if data["version"] != VERSION:
            raise ConfigError(f"output mask: version {data['version']!r} is not {VERSION}")
        if not isinstance(data["allowed"], list):
            raise ConfigError("output mask: allowed must be a list of integers")
        return cls(representation=data["representation"], size=data["size"],
                   allowed=tuple(data["allowed"]), max_programs=data["max_programs"],
                   split=data["split"])


__all__ = ["OutputMask", "program_of_ids"]  # program_of_ids: events, kept importable here
