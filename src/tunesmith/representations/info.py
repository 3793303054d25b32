"""DataInfo: what prepared data says about its arrays, the one contract between data and models.

Each representation writes it (:func:`tunesmith.representations.pianoroll.info`,
:func:`~tunesmith.representations.melody.info`, :func:`~tunesmith.representations.events.info`);
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

REPRESENTATIONS = ("pianoroll", "melody", "events", "drums")
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
        def refuse(reason: str):
            raise ConfigError(f"data info: {reason}")

        if self.representation not in REPRESENTATIONS:
            refuse(f"unknown representation {self.representation!r}; expected one of "
                   f"{', '.join(REPRESENTATIONS)}")
        if not 0 <= self.pitch_low <= self.pitch_high <= 127:
            refuse(f"pitch range must satisfy 0 <= low <= high <= 127, got "
                   f"{self.pitch_low}..{self.pitch_high}")
        grid = self.representation != "events"
        for name in ("steps_per_quarter", "steps_per_bar"):
            value = getattr(self, name)
            if grid and (value is None or value < 1):
                refuse(f"{name} must be >= 1 for {self.representation} data, got {value}")
            if not grid and value is not None:
                refuse(f"{name} must be null for event tokens, got {value}")
        if not len(self.track_names) == len(self.programs) == len(self.is_drum):
            refuse(f"track_names, programs and is_drum must have one entry per track, got "
                   f"{len(self.track_names)}, {len(self.programs)} and {len(self.is_drum)}")
        if grid and not self.track_names:
            refuse(f"{self.representation} data needs at least one track")
        if self.representation == "melody" and self.n_tracks != 1:
            refuse(f"a melody has one track, got {self.n_tracks}")
        if not all(0 <= p <= 127 for p in self.programs):
            refuse(f"programs must lie in 0..127, got {list(self.programs)}")
        if self.representation in ("pianoroll", "drums"):
            if self.vocab_size:
                refuse(f"{self.representation} data has no vocabulary, got vocab_size "
                       f"{self.vocab_size}")
        elif self.vocab_size < 1:
            refuse(f"{self.representation} data needs vocab_size >= 1, got {self.vocab_size}")
        if self.representation != "pianoroll" and self.onsets:
            refuse("onset grids are a piano-roll option")

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
        if representation not in REPRESENTATIONS:
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

        common = {"representation": representation, "repr_config": options}
        if representation == "events":
            pitch_range = fact("pitch range", (), ("pitch_range",))
            return cls(**common, pitch_low=int(pitch_range[0]),
                       pitch_high=int(pitch_range[1]) - 1,
                       vocab_size=int(fact("vocab_size", ("vocab_size",))))
        per_quarter = int(fact("steps_per_quarter", ("steps_per_quarter",),
                               ("resolution", "steps_per_quarter")))
        per_bar = int(fact("steps_per_bar", ("steps_per_bar",), required=False)
                      or 4 * per_quarter)  # 4/4: what every family assumed
        if representation == "melody":
            return cls(**common,
                       pitch_low=int(fact("lowest pitch", ("min_pitch",), ("min_pitch",))),
                       pitch_high=int(fact("highest pitch", ("max_pitch",), ("max_pitch",))) - 1,
                       steps_per_quarter=per_quarter, steps_per_bar=per_bar,
                       track_names=(str(options.get("track") or "Melody"),), programs=(0,),
                       is_drum=(False,), vocab_size=int(fact("vocab_size", ("vocab_size",))))
        # piano-roll: n_tracks/tracks, n_pitches/pitches, pitch_low/lowest_pitch
        low = int(fact("lowest pitch", ("pitch_low", "lowest_pitch"), ("pitch_low",)))
        n_pitches = fact("pitch count", ("n_pitches", "pitches"), required=False)
        high = int(low + int(n_pitches) - 1 if n_pitches is not None else
                   fact("highest pitch", ("pitch_high",), ("pitch_high",)))
        names = list(fact("track names", ("track_names",), ("track_names",), False) or [])
        n_tracks = fact("track count", ("n_tracks", "tracks"), required=False)
        if n_tracks is None and names:
            n_tracks = len(names)
        if n_tracks is None and old.get("keys") is not None:
            n_tracks = int(old["keys"]) // (high - low + 1)
        if n_tracks is None:
            raise ConfigError("old data info: no track count recorded")
        n_tracks = int(n_tracks)
        names = [str(n) for n in names[:n_tracks]]
        names += [f"Track {t + 1}" for t in range(len(names), n_tracks)]  # as decode() names
        programs = [int(p) for p in fact("programs", ("programs",), ("programs",), False) or []]
        drums = [bool(d) for d in fact("drum flags", (), ("is_drum",), False) or []]
        info = cls(**common, pitch_low=low, pitch_high=high, steps_per_quarter=per_quarter,
                   steps_per_bar=per_bar, track_names=tuple(names),
                   programs=tuple((programs + [0] * n_tracks)[:n_tracks]),
                   is_drum=tuple((drums + [False] * n_tracks)[:n_tracks]),
                   onsets=bool(fact("onset flag", ("onset",), ("onset",), False)))
        if old.get("keys") is not None and int(old["keys"]) != info.keys:
            raise ConfigError(f"old data info: keys {old['keys']} is not {info.n_tracks} "
                              f"tracks x {info.n_pitches} pitches")
        return info


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

