"""Turn a corpus into arrays once, in parallel, and cache them.

``prepare("bach-chorales", "pianoroll")`` lists the corpus's pieces, parses them in
worker processes (music21 formats take ~0.15 s a file, MIDI well under 1 ms), encodes
each with the chosen representation and writes a compact cache under
``$TUNESMITH_CACHE`` (default ``~/.cache/tunesmith``)::

    prepared/<corpus>-<representation>-<hash>/
        data.npz      concatenated arrays + offsets (read with allow_pickle=False);
                      0/1 piano-rolls bit-packed along the keys (np.packbits)
        meta.json     piece ids, split of each piece, per-piece facts, the
                      representation's DataInfo (``info``)
        skipped.json  [[piece id, reason], ...]

A worker loads its chunk of pieces one by one, then reads all their notes with one symusic
call (:func:`~tunesmith.music.note_arrays.note_arrays`) and estimates the keys and encodes
merged piano-rolls of the whole chunk at once; it sends back the chunk's arrays stacked
(0/1 grids bit-packed), not one Python object per piece.

The hash covers the corpus's content (file names, sizes, mtimes), the representation
and its options, the limits and the tunesmith version, so a second run with the same
inputs only reads the cache. A piece that cannot be used is skipped with its reason,
reported at the end, and never costs the others: files are parsed in worker processes
even with one worker, so a parser that crashes (signal 11...) or runs past the per-file
time limit (60 s by default) costs its file, and a piece longer than the length limit
(2 hours by default, :func:`tunesmith.music.io.max_piece_seconds`) is refused before
any encoder allocates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tunesmith import __version__
from tunesmith.config import config_from_dict
from tunesmith.data.corpora import SPLITS, Corpus, PieceSource, get_corpus
from tunesmith.data.polyphonic import LOWEST_PITCH
from tunesmith.errors import ConfigError, MusicFileError, TunesmithError
from tunesmith.music import keys
from tunesmith.music.io import MIDI_SUFFIXES, TIME_LIMIT, max_piece_seconds
from tunesmith.music.keys import key_from_histogram
from tunesmith.music.note_arrays import NoteArrays, note_arrays
from tunesmith.music.transforms import merge_tracks, select_tracks, steps_per_bar
from tunesmith.representations import events, melody, pianoroll
from tunesmith.representations.info import DataInfo
from tunesmith.representations.pianoroll import PianorollConfig

REPRESENTATIONS = ("pianoroll", "melody", "events", "drums")
#: bump when the cache layout or the encoding pipeline changes (4: ``info`` is a DataInfo)
CACHE_FORMAT = 4


def cache_root() -> Path:
    """``$TUNESMITH_CACHE`` or ``~/.cache/tunesmith``."""
    return Path(os.environ.get("TUNESMITH_CACHE") or Path.home() / ".cache" / "tunesmith")


# --------------------------------------------------------------------------- prepared data


@dataclass
class PreparedData:
    """A prepared corpus: one array per piece, its id and split, and what models need.

    Piano-roll pieces are ``(steps, tracks * pitches)`` uint8, track-major (column
    ``t * n_pitches + p`` is pitch ``pitch_low + p`` of track ``t``); melody pieces are
    ``(steps,)`` int16 events; event pieces are ``(n,)`` int32 tokens.
    """

    corpus: str
    representation: str
    repr_config: dict
    info: DataInfo  # what models need: tracks, pitch range, grid, vocabulary
    skipped: list[tuple[str, str]]
    cache_dir: Path
    piece_ids: list[str] = field(repr=False)
    piece_splits: list[str] = field(repr=False)
    piece_meta: list[dict] = field(repr=False)  # per piece: quarters, seconds, notes, key...
    data: np.ndarray = field(repr=False)  # all pieces concatenated along axis 0
    offsets: np.ndarray = field(repr=False)  # (n_pieces + 1,) piece i = data[o[i]:o[i+1]]
    onset_data: np.ndarray | None = field(default=None, repr=False)  # like data (pianoroll)
    transpose_to_c: bool = False  # every piece was moved to C major / A minor
    split_source: str = ""  # how pieces were split: "published" or a hash of their id

    @property
    def n_pieces(self) -> dict[str, int]:
        """Pieces of each split."""
        return {split: self.piece_splits.count(split) for split in SPLITS}

    def _indices(self, split: str | None) -> list[int]:
        if split is not None and split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return [i for i, s in enumerate(self.piece_splits) if split is None or s == split]

    def ids(self, split: str | None = None) -> list[str]:
        """Piece ids of a split (all pieces when None), in cache order."""
        return [self.piece_ids[i] for i in self._indices(split)]

    def pieces(self, split: str | None = None) -> list[np.ndarray]:
        """The arrays of a split's pieces (views into the cache; do not modify)."""
        o = self.offsets
        return [self.data[o[i] : o[i + 1]] for i in self._indices(split)]

    def onsets(self, split: str | None = None) -> list[np.ndarray] | None:
        """Piano-roll onset grids like :meth:`pieces`, when prepared with ``onset=True``."""
        if self.onset_data is None:
            return None
        o = self.offsets
        return [self.onset_data[o[i] : o[i + 1]] for i in self._indices(split)]

    def meta(self, split: str | None = None) -> list[dict]:
        return [self.piece_meta[i] for i in self._indices(split)]

    def __len__(self) -> int:
        return len(self.piece_ids)


def load_prepared(cache_dir: str | Path) -> PreparedData:
    """Read a cache folder written by :func:`prepare` (no pickle involved); caches of
    older formats, whose ``info`` is a plain dict, still load."""
    cache_dir = Path(cache_dir)
    try:
        meta = json.loads((cache_dir / "meta.json").read_text())
        info = DataInfo.read(meta["info"])
        skipped = json.loads((cache_dir / "skipped.json").read_text())
        with np.load(cache_dir / "data.npz", allow_pickle=False) as arrays:
            offsets = arrays["offsets"]
            if "n_columns" in arrays.files:  # 0/1 piano-rolls are stored 8 cells a byte
                columns = int(arrays["n_columns"])
                data = unpack_rows(arrays["data"], columns)
                onset_data = (unpack_rows(arrays["onsets"], columns)
                              if "onsets" in arrays.files else None)
            else:
                data = arrays["data"]
                onset_data = arrays["onsets"] if "onsets" in arrays.files else None
    except (OSError, ValueError, KeyError, ConfigError) as exc:
        raise TunesmithError(f"{cache_dir}: unreadable prepared-data cache ({exc})") from exc
    return PreparedData(
        corpus=meta["corpus"],
        representation=meta["representation"],
        repr_config=meta["repr_config"],
        info=info,
        skipped=[(str(i), str(r)) for i, r in skipped],
        cache_dir=cache_dir,
        piece_ids=meta["ids"],
        piece_splits=meta["splits"],
        piece_meta=meta["pieces"],
        data=data,
        offsets=offsets,
        onset_data=onset_data,
        **_corpus_facts(meta),
    )


def _corpus_facts(meta: dict) -> dict[str, Any]:
    """transpose_to_c and split_source of a meta.json (old caches kept them in ``info``)."""
    facts = meta if "split_source" in meta else meta["info"]
    return {"transpose_to_c": bool(facts.get("transpose_to_c", False)),
            "split_source": str(facts.get("split_source", ""))}


def pack_rows(grid: np.ndarray) -> np.ndarray:
    """``np.packbits(grid, axis=1)`` of a (rows, columns) 0/1 grid, ~9x faster.

    Packing the flat array is the same when a row is a whole number of bytes; other
    widths are first padded with zero columns, as packbits pads each row's last byte.
    """
    rows, columns = grid.shape
    if columns % 8:
        padded = np.zeros((rows, columns + 8 - columns % 8), np.uint8)
        padded[:, :columns] = grid
        grid = padded
    return np.packbits(np.ascontiguousarray(grid).reshape(-1)).reshape(rows, grid.shape[1] // 8)


def unpack_rows(packed: np.ndarray, columns: int) -> np.ndarray:
    """``np.unpackbits(packed, axis=1, count=columns)``: the inverse of :func:`pack_rows`."""
    rows, width = packed.shape
    grid = np.unpackbits(np.ascontiguousarray(packed).reshape(-1)).reshape(rows, width * 8)
    return grid if grid.shape[1] == columns else np.ascontiguousarray(grid[:, :columns])


# --------------------------------------------------------------------------- encoders


def _config_from(cls, options: dict, what: str):
    return config_from_dict(cls, options, what)


def _drop_drums(score):
    if not any(track.is_drum for track in score.tracks):
        return score  # most files: nothing to drop, no copy
    return select_tracks(score, drums=False)


class _ScoreEncoder:
    """What an encoder does unless it knows better: encode a batch one Score at a time,
    and store its arrays as they are (no bit packing)."""

    def encode(self, score) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def encode_many(self, scores: list, notes: NoteArrays) -> list[dict | Exception]:
        return _one_by_one(self.encode, scores)

    def packs_bits(self) -> bool:
        return False


class PianorollEncoder(_ScoreEncoder):
    """Score -> ``(steps, tracks * pitches)`` grid. Options: PianorollConfig's fields,
    plus ``merge_tracks`` (default: True unless the corpus has a fixed track layout)."""

    name = "pianoroll"
    data_options = ("merge_tracks",)

    def __init__(self, options: dict, corpus: Corpus):
        options = dict(options)
        self.merge = options.pop("merge_tracks", corpus.track_layout is None)
        if not isinstance(self.merge, bool):  # "False" or "maybe" would be truthy
            raise ConfigError(f"merge_tracks expects true or false, got {self.merge!r}")
        if not self.merge and corpus.track_layout is None:
            raise ConfigError(
                f"merge_tracks=false needs a corpus with a fixed set of tracks; "
                f"{corpus.name} has pieces with different tracks"
            )
        if corpus.kind == "rolls":
            options.setdefault("resolution", corpus.steps_per_quarter)
            if options["resolution"] % corpus.steps_per_quarter:
                raise ConfigError(
                    f"{corpus.name} has {corpus.steps_per_quarter} frame(s) per quarter; "
                    f"resolution must be a multiple of it, got {options['resolution']}"
                )
        if self.merge:
            options.setdefault("track_names", ["Piano"])
            options.setdefault("programs", [0])
        else:
            options.setdefault("track_names", list(corpus.track_layout))
            options.setdefault("programs", list(corpus.track_programs))
        options.setdefault("is_drum", [False] * len(options["track_names"]))
        self.cfg = _config_from(PianorollConfig, options, "pianoroll")
        self.n_tracks = len(self.cfg.track_names)

    def options(self) -> dict:
        return {**self.cfg.to_dict(), "merge_tracks": self.merge}

    def _tracks(self, score):
        score = _drop_drums(score)
        if self.merge:
            score = merge_tracks(score, name=self.cfg.track_names[0], program=self.cfg.programs[0])
        if len(score.tracks) != self.n_tracks:
            raise MusicFileError("", f"has {len(score.tracks)} tracks, expected {self.n_tracks}")
        return score

    def encode(self, score) -> dict[str, np.ndarray]:
        """``{"data": (steps, tracks * pitches)}`` (+ ``"onsets"``) of the selected tracks."""
        score = _drop_drums(score)
        if not self.merge and len(score.tracks) != self.n_tracks:
            raise MusicFileError("", f"has {len(score.tracks)} tracks, expected {self.n_tracks}")
        frames, onsets = pianoroll.encode_with_onsets(score, self.cfg, merge=self.merge)
        out = {"data": _flatten_tracks(frames)}
        if self.cfg.onset:
            out["onsets"] = _flatten_tracks(onsets)
        return out

    def encode_many(self, scores: list, notes: NoteArrays) -> list[dict | Exception]:
        """:meth:`encode` of each score (``notes``: theirs); merged tracks in one pass."""
        if not self.merge:
            return _one_by_one(self.encode, scores)
        frames, onsets, steps = pianoroll.encode_merged_many(
            notes.select(~notes.drum), self.cfg, with_onsets=self.cfg.onset)
        bounds = np.concatenate([[0], np.cumsum(steps)]).tolist()
        out: list[dict | Exception] = []
        for start, end in itertools.pairwise(bounds):
            piece = {"data": frames[start:end]}  # (steps, 1 * pitches)
            if self.cfg.onset:
                piece["onsets"] = onsets[start:end]
            out.append(piece)
        return out

    def packs_bits(self) -> bool:
        """0/1 grids are stored 8 cells a byte."""
        return not self.cfg.velocity

    def encode_roll(self, roll: np.ndarray, steps_per_quarter: int) -> dict[str, np.ndarray]:
        """A benchmark ``(frames, 88)`` roll (MIDI 21-108) on this grid, without a Score."""
        repeat = self.cfg.resolution // steps_per_quarter
        roll = np.repeat(roll, repeat, axis=0) if repeat > 1 else roll
        grid = np.zeros((roll.shape[0], self.cfg.n_pitches), np.uint8)  # (steps, pitches)
        low = max(self.cfg.pitch_low, LOWEST_PITCH)
        high = min(self.cfg.pitch_high, LOWEST_PITCH + roll.shape[1] - 1)
        if low <= high:
            grid[:, low - self.cfg.pitch_low : high - self.cfg.pitch_low + 1] = roll[
                :, low - LOWEST_PITCH : high - LOWEST_PITCH + 1
            ]
        out = {"data": grid}
        if self.cfg.onset:  # the benchmark merges repeated notes: onsets where a cell turns on
            previous = np.concatenate([np.zeros((1, grid.shape[1]), np.uint8), grid[:-1]])
            out["onsets"] = ((grid > 0) & (previous == 0)).astype(np.uint8)
        return out

    def info(self, facts: list[dict] | None = None) -> DataInfo:
        return dataclasses.replace(pianoroll.info(self.cfg), repr_config=self.options())


def _flatten_tracks(grid: np.ndarray) -> np.ndarray:
    """``(tracks, steps, pitches)`` -> ``(steps, tracks * pitches)``, track-major."""
    tracks, steps, pitches = grid.shape
    return np.ascontiguousarray(grid.transpose(1, 0, 2)).reshape(steps, tracks * pitches)


class MelodyEncoder(_ScoreEncoder):
    """Score -> ``(steps,)`` int16 melody events (:mod:`tunesmith.representations.melody`).

    Option ``track``: the name of the track holding the melody (chorales: Soprano);
    by default the representation picks from the whole score.
    """

    name = "melody"
    data_options = ("track",)

    def __init__(self, options: dict, corpus: Corpus):
        options = dict(options)
        default_track = "Soprano" if corpus.track_layout and "Soprano" in corpus.track_layout \
            else None
        self.track = options.pop("track", default_track)
        self.cfg = _config_from(melody.MelodyConfig, options, "melody")
        self.module = melody

    def options(self) -> dict:
        return {**_asdict(self.cfg), "track": self.track}

    def encode(self, score) -> dict[str, np.ndarray]:
        score = _drop_drums(score)
        if self.track is not None:
            score = select_tracks(score, names=[self.track])
            if not len(score.tracks):
                raise MusicFileError("", f"has no track named {self.track!r}")
        events = np.asarray(self.module.encode(score, self.cfg), dtype=np.int16)  # (steps,)
        return {"data": events}

    def info(self, facts: list[dict] | None = None) -> DataInfo:
        """Vocabulary and grid; ``steps_per_bar`` is the most common bar of the pieces."""
        from collections import Counter

        bars = Counter(f.get("steps_per_bar") for f in facts or [] if f.get("steps_per_bar"))
        per_bar = bars.most_common(1)[0][0] if bars else None  # None: 4/4
        info = self.module.info(self.cfg, steps_per_bar=per_bar, track=self.track)
        return dataclasses.replace(info, repr_config=self.options())


class EventsEncoder(_ScoreEncoder):
    """Score -> ``(n,)`` int32 tokens (:mod:`tunesmith.representations.events`)."""

    name = "events"
    data_options = ()

    def __init__(self, options: dict, corpus: Corpus):
        self.cfg = _config_from(events.EventsConfig, dict(options), "events")
        self.module = events

    def options(self) -> dict:
        return _asdict(self.cfg)

    def encode(self, score) -> dict[str, np.ndarray]:
        tokens = np.asarray(self.module.encode(_drop_drums(score), self.cfg), dtype=np.int32)
        return {"data": tokens}

    def info(self, facts: list[dict] | None = None) -> DataInfo:
        return dataclasses.replace(self.module.info(self.cfg), repr_config=self.options())


class DrumsEncoder:
    """Score -> ``(steps, 27)`` float32 hits | velocities | offsets of the 9 drum classes
    (:mod:`tunesmith.representations.drums`); 4/4 only, the drum tracks of the score."""

    name = "drums"
    data_options = ()

    def __init__(self, options: dict, corpus: Corpus):
        from tunesmith.representations import drums

        self.cfg = _config_from(drums.DrumsConfig, dict(options), "drums")
        self.module = drums

    def options(self) -> dict:
        return self.cfg.to_dict()

    def encode(self, score) -> dict[str, np.ndarray]:
        return {"data": self.module.encode(score, self.cfg)}

    def encode_many(self, scores: list, notes: NoteArrays) -> list[dict | Exception]:
        return _one_by_one(self.encode, scores)

    def packs_bits(self) -> bool:
        return False

    def info(self, facts: list[dict] | None = None) -> DataInfo:
        return self.module.info(self.cfg)


def _one_by_one(function, items: Sequence) -> list:
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


def _asdict(cfg) -> dict:
    import dataclasses

    return cfg.to_dict() if hasattr(cfg, "to_dict") else dataclasses.asdict(cfg)


ENCODERS = {"pianoroll": PianorollEncoder, "melody": MelodyEncoder, "events": EventsEncoder,
            "drums": DrumsEncoder}


def make_encoder(representation: str, options: dict, corpus: Corpus):
    if representation not in ENCODERS:
        raise ConfigError(
            f"unknown representation {representation!r}; expected one of {', '.join(ENCODERS)}"
        )
    return ENCODERS[representation](options, corpus)


# --------------------------------------------------------------------------- worker side


def _key_name(key) -> str | None:
    return None if key is None else key.name


def _roll_key(roll: np.ndarray):
    """Key of a benchmark roll (MIDI 21-108), each sounding cell weighing one frame."""
    return key_from_histogram(pianoroll.pitch_class_counts(roll, roll.shape[1], LOWEST_PITCH))


def _piece_facts(score) -> dict[str, Any]:
    tpq = score.ticks_per_quarter
    facts: dict[str, Any] = {
        "notes": int(score.note_num()),
        "quarters": round(float(score.end()) / tpq, 4),
    }
    try:
        facts["seconds"] = round(float(score.to("second").end()), 3)
    except Exception:  # a score symusic cannot time (no tempo): duration in quarters only
        facts["seconds"] = None
    return facts


def _skip_reason(exc: Exception) -> str:
    """What the skipped-pieces report says about a piece that raised ``exc``."""
    if isinstance(exc, MusicFileError):
        return exc.reason
    if isinstance(exc, TunesmithError):  # e.g. RepresentationError: cannot be encoded
        return str(exc)
    return f"{type(exc).__name__}: {exc}"  # any parser failure


def _encode_roll(corpus: Corpus, encoder, source: PieceSource):
    """(arrays, facts) of a benchmark roll, without a Score."""
    roll = corpus.roll(source)
    facts = {"notes": None, "quarters": roll.shape[0] / corpus.steps_per_quarter,
             "seconds": None, "key": _key_name(_roll_key(roll))}
    return encoder.encode_roll(roll, corpus.steps_per_quarter), facts


def _encode_scores(corpus: Corpus, encoder, sources: Sequence[PieceSource],
                   transpose_to_c: bool, max_seconds: float | None = None,
                   time_limit: float = TIME_LIMIT,
                   at: _Progress | None = None) -> list[tuple | Exception]:
    """(arrays, facts) of each piece, or the exception that makes it unusable.

    Pieces are loaded one by one; their notes are then read once for the whole chunk
    (:func:`note_arrays`), and the keys and (merged) piano-rolls computed for all at once.
    ``at``, when given, is told the index of each piece before it is loaded, then
    ``len(sources)`` before the chunk is encoded (the driver's time limit watches it).
    """
    def load(index: int):
        if at is not None:
            at.value = index
        return corpus.load(sources[index], max_seconds, time_limit)

    results: list = _one_by_one(load, range(len(sources)))
    if at is not None:
        at.value = len(sources)
    usable = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
    scores = [results[i] for i in usable]
    notes = note_arrays(scores)
    # None when a piece has no pitched notes or a flat histogram
    piece_keys = keys.keys_from_histograms(keys.pitch_class_histograms(notes))

    def facts_of(index: int) -> dict[str, Any]:
        score = scores[index]
        piece_facts = _piece_facts(score)
        piece_facts["key"] = _key_name(piece_keys[index])
        if encoder.name == "melody":
            piece_facts["steps_per_bar"] = _steps_per_bar(score, encoder.cfg.steps_per_quarter)
        return piece_facts

    facts = _one_by_one(facts_of, range(len(scores)))
    if any(isinstance(f, Exception) for f in facts):  # rare: drop those pieces
        for i, f in zip(usable, facts, strict=True):
            if isinstance(f, Exception):
                results[i] = f
        good = [k for k, f in enumerate(facts) if not isinstance(f, Exception)]
        usable, facts = [usable[k] for k in good], [facts[k] for k in good]
        piece_keys, scores = [piece_keys[k] for k in good], [scores[k] for k in good]
        notes = note_arrays(scores)
    if transpose_to_c:
        moved = []
        for i, score, key, piece_facts in zip(usable, scores, piece_keys, facts, strict=True):
            if key is None:
                results[i] = MusicFileError(sources[i].path,
                                            "no key can be estimated to transpose to C")
                continue
            try:
                score, piece_facts["transposed_by"] = keys.normalize_key(score, key)
            except ConfigError:
                raise
            except Exception as exc:
                results[i] = exc
                continue
            moved.append((i, score, piece_facts))
        usable = [i for i, _, _ in moved]
        scores = [score for _, score, _ in moved]
        facts = [piece_facts for _, _, piece_facts in moved]
        notes = note_arrays(scores)
    encoded = encoder.encode_many(scores, notes)
    for i, arrays, piece_facts in zip(usable, encoded, facts, strict=True):
        if isinstance(arrays, Exception):
            results[i] = arrays
        elif arrays["data"].shape[0] == 0:
            results[i] = MusicFileError(sources[i].path,
                                        "no notes left after encoding (all out of range?)")
        else:
            results[i] = (arrays, piece_facts)
    return results


def _steps_per_bar(score, steps_per_quarter: int) -> int | None:
    try:
        return steps_per_bar(score, steps_per_quarter)
    except TunesmithError:  # a bar that is not a whole number of steps
        return None


_worker_state: dict[str, Any] = {}


class _Progress(Protocol):
    """Where a worker is in its chunk: a shared integer between processes."""

    value: int


def _reads_no_files(corpus: Corpus, encoder, transpose_to_c: bool) -> bool:
    """Benchmark rolls straight to piano-rolls: arrays already in memory, no parser."""
    return corpus.kind == "rolls" and encoder.name == "pianoroll" and not transpose_to_c


def _worker_context(job: dict):
    """(corpus, encoder) for a job, built once per worker process."""
    key = json.dumps(job, sort_keys=True)
    if _worker_state.get("key") != key:
        corpus = get_corpus(job["corpus"], job["path"])
        encoder = make_encoder(job["representation"], job["options"], corpus)
        _worker_state.update(key=key, corpus=corpus, encoder=encoder)
    return _worker_state["corpus"], _worker_state["encoder"]


def process_chunk(job: dict, sources: Sequence[PieceSource],
                  at: _Progress | None = None) -> dict[str, Any]:
    """Encode a chunk of pieces (in a worker process); never raises for a bad piece.

    Returns compact data, cheap to send back: ``ids``, ``facts`` and ``lengths`` (rows)
    of the usable pieces in chunk order, their arrays stacked along the rows in
    ``arrays`` (0/1 piano-rolls bit-packed along the keys), and ``skipped``
    ``[(id, reason)]``. ``at``: see :func:`_encode_scores`.
    """
    corpus, encoder = _worker_context(job)
    if _reads_no_files(corpus, encoder, job["transpose_to_c"]):
        results = _one_by_one(lambda source: _encode_roll(corpus, encoder, source), sources)
    else:
        results = _encode_scores(corpus, encoder, sources, job["transpose_to_c"],
                                 job.get("max_seconds"), job.get("time_limit", TIME_LIMIT), at)
    kept = [(source.id, r) for source, r in zip(sources, results, strict=True)
            if not isinstance(r, Exception)]
    arrays, columns = {}, None
    if kept:
        for name in kept[0][1][0]:
            stacked = np.concatenate([r[0][name] for _, r in kept], axis=0)
            columns = stacked.shape[1] if stacked.ndim == 2 else None
            arrays[name] = pack_rows(stacked) if encoder.packs_bits() else stacked
    return {
        "ids": [piece_id for piece_id, _ in kept],
        "facts": [r[1] for _, r in kept],
        "lengths": [len(r[0]["data"]) for _, r in kept],
        "arrays": arrays,
        "columns": columns,  # of the unpacked 2-D arrays
        "skipped": [(source.id, _skip_reason(r)) for source, r in zip(sources, results,
                                                                      strict=True)
                    if isinstance(r, Exception)],
    }


# --------------------------------------------------------------------------- driver


def _cache_key(corpus: Corpus, representation: str, options: dict, transpose_to_c: bool,
               limit: int | None, max_seconds: float, time_limit: float) -> str:
    payload = {
        "format": CACHE_FORMAT,
        "tunesmith": __version__,
        "corpus": corpus.name,
        "content": corpus.fingerprint(),
        "representation": representation,
        "options": options,
        "transpose_to_c": transpose_to_c,
        "limit": limit,
        "max_seconds": max_seconds,
        "time_limit": time_limit,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _slug(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.split("/")[-1] or name)
    return keep.strip("-")[:40] or "corpus"


def _pool_context():
    # fork starts workers in milliseconds and they inherit imported modules
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _worker_main(conn, at) -> None:
    """A worker process: encode the chunks it is sent until it is sent None.

    ``at`` (a shared integer) says which piece of the chunk it is on, so the driver can
    tell which file ran past the time limit or crashed the process.
    """
    while (task := conn.recv()) is not None:
        job, sources = task
        try:
            conn.send(("done", process_chunk(job, sources, at)))
        except BaseException as exc:  # a ConfigError or a bug: the driver raises it
            import traceback

            exc.add_note("in a data-preparation worker:\n" + traceback.format_exc())
            try:
                conn.send(("error", exc))
            except Exception:  # an exception that does not pickle
                conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))


@dataclass
class _Task:
    sources: list[PieceSource]
    started: float = 0.0  # when the driver last saw the worker move on in this task
    seen: int = -1  # the worker's place in the task when last seen


class _Workers:
    """Worker processes, each busy with one chunk at a time, watched for crashes and for
    pieces that run past the time limit (the worker is killed and replaced).

    A crash or a timeout costs the piece being read: it is skipped with the reason, and
    the rest of its chunk is sent again. A crash or timeout while a chunk is being
    encoded (after all its pieces were read) sends each of its pieces again alone.
    """

    def __init__(self, job: dict, count: int, time_limit: float):
        self.job, self.count, self.time_limit = job, count, time_limit
        # music21 parses stop themselves at time_limit (a clean MusicFileError in the
        # worker); the driver kills a worker stuck in C code a little later
        self.grace = min(5.0, time_limit / 4)
        self.context = _pool_context()
        self.idle: list = []  # (process, connection, shared place)
        self.busy: dict = {}  # connection -> (process, connection, shared place, _Task)

    def _start(self):
        parent, child = self.context.Pipe()
        at = self.context.RawValue("q", -1)
        process = self.context.Process(target=_worker_main, args=(child, at), daemon=True)
        process.start()
        child.close()
        return process, parent, at

    def run(self, chunks: list[list[PieceSource]], advance) -> list[dict]:
        """:func:`process_chunk` of every chunk (split where pieces were lost), calling
        ``advance(n)`` as pieces are done."""
        from multiprocessing.connection import wait

        queue, results = list(reversed(chunks)), []  # a stack: requeued pieces go next
        poll = min(1.0, self.time_limit / 4)
        try:
            while queue or self.busy:
                while queue and (self.idle or len(self.busy) < self.count):
                    process, conn, at = self.idle.pop() if self.idle else self._start()
                    task = _Task(queue.pop(), time.monotonic())
                    at.value = -1
                    conn.send((self.job, task.sources))
                    self.busy[conn] = (process, conn, at, task)
                ready = wait([*self.busy, *(entry[0].sentinel for entry in self.busy.values())],
                             timeout=poll)
                for conn, (process, _, at, task) in list(self.busy.items()):
                    if conn in ready or process.sentinel in ready:
                        try:
                            kind, payload = conn.recv()
                        except (EOFError, OSError):  # the process died
                            kind, payload = "crash", None
                        if kind == "error":
                            raise payload
                        if kind == "done":
                            del self.busy[conn]
                            if process.is_alive():
                                self.idle.append((process, conn, at))
                            else:
                                _stop(process, conn)
                            results.append(payload)
                            advance(len(task.sources))
                            continue
                        process.join(5.0)
                        crash = _exit_status(process)
                    else:  # still at work: on the same piece for too long?
                        now = time.monotonic()
                        if at.value != task.seen:
                            task.seen, task.started = at.value, now
                        if now - task.started < self.time_limit + self.grace:
                            continue
                        crash = None
                    del self.busy[conn]
                    _stop(process, conn)
                    results += self._lost(task, at.value, crash, queue, advance)
        finally:
            for _, conn, _ in self.idle:
                with contextlib.suppress(OSError):
                    conn.send(None)
            for process, conn, _ in self.idle:
                _stop(process, conn, wait=1.0)
            for process, conn, *_ in self.busy.values():
                _stop(process, conn)
        return results

    def _lost(self, task: _Task, place: int, crash: str | None, queue: list,
              advance) -> list[dict]:
        """What is left of a task whose worker crashed (``crash``: how) or ran past the
        time limit (``crash`` None) at ``place``: the piece it was reading is skipped and
        the others sent again; in the chunk's encoding, each piece is sent again alone."""
        sources = task.sources
        reading = 0 <= place < len(sources)
        if not reading and len(sources) > 1:
            queue.extend([source] for source in sources)
            return []
        source = sources[place] if reading else sources[0]
        if reading and len(sources) > 1:
            queue.append(sources[:place] + sources[place + 1:])
        if crash is None:
            why = (f"{'reading' if reading else 'encoding'} it took more than "
                   f"{self.time_limit:g} s (the per-file time limit)")
        elif reading:
            parser = "the MIDI parser" if source.path.lower().endswith(MIDI_SUFFIXES) \
                else "the parser"
            why = f"{parser} crashed ({crash})"
        else:
            why = f"the worker crashed while encoding it ({crash})"
        advance(1)
        return [{"ids": [], "facts": [], "lengths": [], "arrays": {}, "columns": None,
                 "skipped": [(source.id, why)]}]


def _exit_status(process) -> str:
    """How a worker process ended: 'signal 11, SIGSEGV', 'exit code 1'..."""
    code = process.exitcode
    if code is None or code >= 0:
        return f"exit code {code}"
    try:
        return f"signal {-code}, {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


def _stop(process, conn, wait: float = 0.0) -> None:
    """End a worker: let it exit for ``wait`` seconds, then kill it."""
    if wait:
        process.join(wait)
    if process.is_alive():
        process.kill()
        process.join()
    conn.close()


def _run_chunks(job: dict, sources: list[PieceSource], workers: int, progress: bool,
                time_limit: float, in_process: bool = False) -> list:
    """Encode all pieces in ``workers`` processes (even one: a parser crash then costs one
    file, never the run), with a progress bar; the :func:`process_chunk` results.
    ``in_process``: no file is parsed (benchmark rolls), work here."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    # a few chunks per worker balance slow and fast files while keeping per-task cost low
    size = max(1, min(256, math.ceil(len(sources) / (workers * 8))))
    chunks = [sources[i : i + size] for i in range(0, len(sources), size)]
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(f"preparing {job['corpus']}", total=len(sources))

        def advance(n: int) -> None:
            bar.advance(task, n)

        if in_process:
            results = []
            for chunk in chunks:
                results.append(process_chunk(job, chunk))
                advance(len(chunk))
            return results
        return _Workers(job, min(workers, len(chunks)), time_limit).run(chunks, advance)


def check_counts(**counts: Any) -> None:
    """Refuse a count (``limit``, ``workers``) that is given but is not a whole number >= 1
    (``limit=-1`` would silently drop the last piece)."""
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")


def prepare(
    corpus_spec: str,
    representation: str = "pianoroll",
    repr_options: dict | None = None,
    path: str | Path | None = None,
    workers: int | None = None,
    transpose_to_c: bool = False,
    refresh: bool = False,
    limit: int | None = None,
    progress: bool = True,
    report: bool = True,
    max_seconds: float | None = None,
    time_limit: float = TIME_LIMIT,
) -> PreparedData:
    """Prepare (or read from the cache) a corpus in a representation.

    Files are parsed in worker processes, even with ``workers=1``: a parser that crashes
    or runs past ``time_limit`` costs its file (skipped, with the reason), never the run.

    Args:
        corpus_spec: a name from :data:`tunesmith.data.corpora.CORPORA` or ``folder:PATH``.
        representation: ``"pianoroll"``, ``"melody"`` or ``"events"``.
        repr_options: the representation's config fields (e.g. ``resolution``,
            ``pitch_low``) and data options (``merge_tracks`` for piano-rolls, ``track``
            for melodies).
        path: where the corpus's files are (benchmark folder / ``.mat``, chorale folder).
        workers: parsing processes (default: the CPU count).
        transpose_to_c: move every piece to C major / A minor before encoding.
        refresh: rebuild the cache even if it exists.
        limit: keep only the first ``limit`` pieces (by id), for quick looks and tests.
        progress: show a progress bar while parsing.
        report: print the table of skipped pieces at the end.
        max_seconds: skip pieces longer than this (default:
            :func:`~tunesmith.music.io.max_piece_seconds`, 2 hours).
        time_limit: skip a file whose reading takes longer than this many seconds.
    """
    check_counts(limit=limit, workers=workers)
    if max_seconds is None:
        max_seconds = max_piece_seconds()
    if not max_seconds > 0:
        raise ConfigError(f"max_seconds must be > 0, got {max_seconds}")
    if not time_limit > 0:
        raise ConfigError(f"time_limit must be > 0 seconds, got {time_limit}")
    corpus = get_corpus(corpus_spec, path)
    encoder = make_encoder(representation, repr_options or {}, corpus)
    options = encoder.options()
    key = _cache_key(corpus, representation, options, transpose_to_c, limit, max_seconds,
                     time_limit)
    cache_dir = cache_root() / "prepared" / f"{_slug(corpus.name)}-{representation}-{key[:16]}"
    if not refresh and (cache_dir / "meta.json").is_file():
        try:
            return load_prepared(cache_dir)
        except TunesmithError:
            pass  # a damaged cache is rebuilt

    sources, skipped = corpus.sources()
    skipped = list(skipped)
    if limit is not None:
        sources = sources[:limit]
    job = {"corpus": corpus_spec, "path": None if path is None else str(path),
           "representation": representation, "options": repr_options or {},
           "transpose_to_c": transpose_to_c, "max_seconds": max_seconds,
           "time_limit": time_limit}
    workers = max(1, workers or os.cpu_count() or 1)
    # slicing benchmark arrays already in memory: no parser, processes would only cost
    in_process = _reads_no_files(corpus, encoder, transpose_to_c)
    # forked workers inherit the corpus (its file listing), the encoder and the modules
    # they use, instead of building and importing them again each

    _worker_state.update(key=json.dumps(job, sort_keys=True), corpus=corpus, encoder=encoder)
    chunks = _run_chunks(job, sources, min(workers, max(1, len(sources))), progress,
                         time_limit, in_process)

    # every usable piece: (id, chunk, first row in the chunk's arrays, rows, facts)
    kept: list[tuple[str, int, int, int, dict]] = []
    for index, chunk in enumerate(chunks):
        rows = np.concatenate([[0], np.cumsum(chunk["lengths"], dtype=np.int64)]).tolist()
        kept += [(piece_id, index, rows[k], rows[k + 1] - rows[k], facts)
                 for k, (piece_id, facts) in enumerate(zip(chunk["ids"], chunk["facts"],
                                                           strict=True))]
        skipped += chunk["skipped"]
    kept.sort(key=lambda piece: piece[0])
    skipped = sorted(skipped)
    if not kept:  # every skipped piece, one a line: the user needs each reason
        reasons = "".join(f"\n  {piece_id}: {reason}" for piece_id, reason in skipped)
        raise TunesmithError(f"no usable piece in {corpus.name}; {len(skipped)} skipped"
                             + (":" if skipped else "") + reasons)
    split_by_id = {s.id: corpus.split(s) for s in sources}
    meta = {
        "format": CACHE_FORMAT,
        "corpus": corpus.name,
        "representation": representation,
        "repr_config": options,
        "info": encoder.info([piece[4] for piece in kept]).to_dict(),
        "transpose_to_c": transpose_to_c,
        "split_source": corpus.split_method,
        "ids": [piece[0] for piece in kept],
        "splits": [split_by_id[piece[0]] for piece in kept],
        "pieces": [piece[4] for piece in kept],
        "cache_key": key,
    }
    lengths = np.array([piece[3] for piece in kept], dtype=np.int64)
    first_chunk = chunks[kept[0][1]]
    arrays = {  # the chunks' arrays (0/1 piano-rolls come bit-packed), in piece id order
        name: np.concatenate([chunks[c]["arrays"][name][row : row + rows]
                              for _, c, row, rows, _ in kept], axis=0)
        for name in first_chunk["arrays"]
    }
    arrays["offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    if encoder.packs_bits():
        arrays["n_columns"] = np.array(first_chunk["columns"])
    meta_text = _write_cache(cache_dir, arrays, meta, skipped)
    if report and skipped:
        print_skipped(skipped)
    return _prepared_in_memory(cache_dir, arrays, json.loads(meta_text), skipped)


def _prepared_in_memory(cache_dir: Path, arrays: dict, meta: dict,
                        skipped: list) -> PreparedData:
    """What :func:`load_prepared` reads back from the cache just written, without reading."""
    data, onset_data = arrays["data"], arrays.get("onsets")
    if "n_columns" in arrays:  # unpack as load_prepared does
        columns = int(arrays["n_columns"])
        data = unpack_rows(data, columns)
        onset_data = None if onset_data is None else unpack_rows(onset_data, columns)
    return PreparedData(
        corpus=meta["corpus"],
        representation=meta["representation"],
        repr_config=meta["repr_config"],
        info=DataInfo.from_dict(meta["info"]),
        skipped=[(str(i), str(r)) for i, r in skipped],
        cache_dir=cache_dir,
        piece_ids=meta["ids"],
        piece_splits=meta["splits"],
        piece_meta=meta["pieces"],
        data=data,
        offsets=arrays["offsets"],
        onset_data=onset_data,
        **_corpus_facts(meta),
    )


def _write_cache(cache_dir: Path, arrays: dict, meta: dict, skipped: list) -> str:
    """Write into a temporary folder, then move it into place (never a half cache).
    Returns the text of meta.json."""
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir.with_name(f"{cache_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    np.savez(tmp / "data.npz", **arrays)  # 0/1 rolls come bit-packed: no zlib time
    meta_text = json.dumps(meta)
    (tmp / "meta.json").write_text(meta_text)
    (tmp / "skipped.json").write_text(json.dumps([list(s) for s in skipped], indent=0))
    shutil.rmtree(cache_dir, ignore_errors=True)
    os.replace(tmp, cache_dir)
    return meta_text


def print_skipped(skipped: Sequence[tuple[str, str]], console=None, limit: int = 50) -> None:
    """A table of skipped pieces and why (the first ``limit``)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True)
    table = Table(title=f"skipped {len(skipped)} piece(s)", title_justify="left")
    table.add_column("piece")
    table.add_column("reason", overflow="fold")
    for piece_id, reason in list(skipped)[:limit]:
        table.add_row(piece_id, reason)
    if len(skipped) > limit:
        table.add_row(f"... {len(skipped) - limit} more", "see skipped.json in the cache folder")
    console.print(table)
