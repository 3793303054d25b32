"""DataInfo: what prepared data says about its arrays, the one contract between data and models.

Each representation's adapter writes it (``get_representation(name)(options).info()``,
:mod:`tunesmith.representations.adapter`) and says what it must hold;
``data.prepare`` stores it in the cache's ``meta.json``, every checkpoint stores it in its
``config.json``, and every model family reads it in ``config_for_data(config, info)``
through attributes. One spelling per idea: ``pitch_low``/``pitch_high`` (inclusive) for
every representation, ``n_tracks``/``n_pitches``/``keys`` derived, never stored twice.

:meth:`DataInfo.to_dict`/:meth:`DataInfo.from_dict` are its JSON form (with a
``version``); ``from_dict`` checks every type and refuses unknown or missing keys.
Checkpoints and caches written before DataInfo hold a plain dict with other spellings
(``n_tracks``/``tracks``, ``pitch_low``/``lowest_pitch``, ``min_pitch``/``max_pitch``
exclusive...): :meth:`DataInfo.from_legacy_dict` converts them, :meth:`DataInfo.read`
picks the right reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunesmith.config import check_json_keys
from tunesmith.errors import ConfigError
from tunesmith.representations.adapter import get_representation, representation_names

#: version of the JSON form written by :meth:`DataInfo.to_dict`
VERSION = 1


@dataclass(frozen=True)
class DataInfo:
    """The facts a model needs about prepared data (see the module docstring).

    Piano-roll frames have ``keys = n_tracks * n_pitches`` columns, track-major: column
    ``t * n_pitches + p`` is MIDI pitch ``pitch_low + p`` of track ``t``. Melody events
    and event tokens are ids below ``vocab_size``. Drums are (steps, 27) hits, velocities
    and offsets of 9 drum classes (:mod:`tunesmith.representations.drums`). The tracks
    (one entry per track in ``track_names``, ``programs``, ``is_drum``) are a frame's, the
    melody's one track (the drum kit's), or none for event tokens, whose Program tokens
    carry their own.
    """

    representation: str  # "pianoroll" | "melody" | "events" | "drums"
    repr_config: dict[str, Any]  # the options the data was encoded with (rebuild the codec)
    pitch_low: int  # lowest MIDI pitch the data can hold (inclusive)
    pitch_high: int  # highest MIDI pitch the data can hold (inclusive)
    steps_per_quarter: int | None = None  # grid resolution; None for event tokens
    steps_per_bar: int | None = None  # most common bar where measured, else 4/4; None: tokens
    track_names: tuple[str, ...] = ()  # name of each track
    programs: tuple[int, ...] = ()  # General MIDI program of each track
    is_drum: tuple[bool, ...] = ()  # drum flag of each track
    onsets: bool = False  # piano-roll: an onset grid is stored beside the frames
    vocab_size: int = 0  # melody events / event tokens; 0 for piano-rolls

    def __post_init__(self):
        for name in ("track_names", "programs", "is_drum"):  # JSON lists -> tuples
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.repr_config, dict):
            object.__setattr__(self, "repr_config", dict(self.repr_config))
        for name, expected in _FIELD_TYPES.items():
            _check_type(name, getattr(self, name), expected)
        self._check()

    # ---- derived sizes ---------------------------------------------------------------
    @property
    def n_tracks(self) -> int:
        return len(self.track_names)

    @property
    def n_pitches(self) -> int:
        """Pitches per track, ``pitch_low`` to ``pitch_high``."""
        return self.pitch_high - self.pitch_low + 1

    @property
    def keys(self) -> int:
        """Columns of a piano-roll frame: ``n_tracks * n_pitches``."""
        return self.n_tracks * self.n_pitches

    # ---- checks ----------------------------------------------------------------------
    def _check(self) -> None:
        """The checks every DataInfo passes; what differs by representation is read from
        its adapter's class attributes (:mod:`tunesmith.representations.adapter`)."""
        def refuse(reason: str):
            raise ConfigError(f"data info: {reason}")

        try:
            adapter = get_representation(self.representation)
        except ConfigError as exc:
            refuse(str(exc))
        if not 0 <= self.pitch_low <= self.pitch_high <= 127:
            refuse(f"pitch range must satisfy 0 <= low <= high <= 127, got "
                   f"{self.pitch_low}..{self.pitch_high}")
        for name in ("steps_per_quarter", "steps_per_bar"):
            value = getattr(self, name)
            if adapter.grid and (value is None or value < 1):
                refuse(f"{name} must be >= 1 for {self.representation} data, got {value}")
            if not adapter.grid and value is not None:
                refuse(f"{name} must be null for {self.representation} data, got {value}")
        if not len(self.track_names) == len(self.programs) == len(self.is_drum):
            refuse(f"track_names, programs and is_drum must have one entry per track, got "
                   f"{len(self.track_names)}, {len(self.programs)} and {len(self.is_drum)}")
        if adapter.grid and not self.track_names:
            refuse(f"{self.representation} data needs at least one track")
        if adapter.one_track and self.n_tracks != 1:
            refuse(f"{self.representation} data has one track, got {self.n_tracks}")
        if not all(0 <= p <= 127 for p in self.programs):
            refuse(f"programs must lie in 0..127, got {list(self.programs)}")
        if not adapter.vocabulary:
            if self.vocab_size:
                refuse(f"{self.representation} data has no vocabulary, got vocab_size "
                       f"{self.vocab_size}")
        elif self.vocab_size < 1:
            refuse(f"{self.representation} data needs vocab_size >= 1, got {self.vocab_size}")
        if not adapter.onset_grid and self.onsets:
            refuse(f"{self.representation} data stores no onset grid")
        adapter.check_info(self, refuse)

    # ---- JSON ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON form (lists for tuples), with the format ``version``."""
        out: dict[str, Any] = {"version": VERSION}
        for name in _FIELD_TYPES:
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        out["repr_config"] = dict(self.repr_config)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> DataInfo:
        """Read :meth:`to_dict`'s form; wrong types, unknown or missing keys raise ConfigError."""
        check_json_keys(data, {"version", *_FIELD_TYPES}, "data info")
        if data["version"] != VERSION:
            raise ConfigError(f"data info: version {data['version']!r} is not {VERSION} "
                              "(written by another tunesmith version)")
        return cls(**{name: data[name] for name in _FIELD_TYPES})

    @classmethod
    def read(cls, data: Any) -> DataInfo:
        """A stored info: :meth:`to_dict`'s form (it has a ``version``), or an older dict
        converted by :meth:`from_legacy_dict`."""
        if isinstance(data, dict) and "version" not in data:
            return cls.from_legacy_dict(data)
        return cls.from_dict(data)

    @classmethod
    def from_legacy_dict(cls, old: dict[str, Any]) -> DataInfo:
        """Convert the ``info`` dict of a cache or checkpoint written before DataInfo.

        Each fact is taken from the old info's keys (every spelling they used), else from
        its ``repr_config``; a fact found in neither raises ConfigError, never a guessed
        default (a guessed pitch range is how a model got the wrong keys). Corpus facts
        of old caches (``n_pieces``, ``split_source``...) are not data info: ignored.
        """
        if not isinstance(old, dict):
            raise ConfigError(f"old data info: expected a JSON object, got {type(old).__name__}")
        representation = old.get("representation")
        if representation not in representation_names():
            raise ConfigError(f"old data info: unknown representation {representation!r}")
        options = old.get("repr_config") or old.get("tokenizer") or {}
        if not isinstance(options, dict):
            raise ConfigError("old data info: repr_config must be a JSON object")

        def fact(what: str, keys: tuple[str, ...], option_keys: tuple[str, ...] = (),
                 required: bool = True):
            """The first value recorded under ``keys`` in the info, else ``option_keys``
            in its repr_config."""
            for where, names in ((old, keys), (options, option_keys)):
                for name in names:
                    if where.get(name) is not None:
                        return where[name]
            if required:
                raise ConfigError(f"old data info: no {what} recorded")
            return None

        return get_representation(representation).legacy_info(old, options, fact)


#: the stored fields and their JSON types (bool is never taken for an int)
_FIELD_TYPES: dict[str, Any] = {
    "representation": str,
    "repr_config": dict,
    "pitch_low": int,
    "pitch_high": int,
    "steps_per_quarter": (int, None),
    "steps_per_bar": (int, None),
    "track_names": (tuple, str),
    "programs": (tuple, int),
    "is_drum": (tuple, bool),
    "onsets": bool,
    "vocab_size": int,
}


def _is(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _check_type(name: str, value: Any, expected: Any) -> None:
    if isinstance(expected, tuple) and expected[0] is tuple:
        ok = isinstance(value, tuple) and all(_is(v, expected[1]) for v in value)
        wanted = f"a list of {expected[1].__name__}"
    elif isinstance(expected, tuple):  # (int, None)
        ok = value is None or _is(value, expected[0])
        wanted = f"{expected[0].__name__} or null"
    else:
        ok = _is(value, expected)
        wanted = expected.__name__
    if not ok:
        raise ConfigError(f"data info: {name} must be {wanted}, got {value!r}")

