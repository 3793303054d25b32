"""Turn a corpus into arrays once, in parallel, and cache them.

``prepare("bach-chorales", "pianoroll")`` lists the corpus's pieces, parses them in
worker processes (music21 formats take ~0.15 s a file, MIDI well under 1 ms), encodes
each with the chosen representation and writes a compact cache under
``$TUNESMITH_CACHE`` (default ``~/.cache/tunesmith``)::

    prepared/<corpus>-<representation>-<hash>/
        shards/shard-00000.data.npy    a few thousand pieces' arrays, stacked along the
        shards/shard-00000.onsets.npy  rows, in the order their workers finished (0/1
        shards/shard-00000.json        piano-rolls bit-packed along the keys); the JSON:
        ...                            their ids, rows, facts, and the pieces skipped
        meta.json     piece ids (sorted), split of each piece, per-piece facts and
                      place (shard, first row, end row), the representation's DataInfo
        skipped.json  [[piece id, reason], ...]

Shards are written as worker chunks finish (:class:`ShardWriter`), into
``<name>.partial/``, which becomes the cache folder once meta.json is written: the
parent holds one shard's arrays at a time, whatever the corpus's size, and a prepare
that is interrupted resumes from the shards already written (a shard counts once its
JSON is in place). :func:`load_prepared` memory-maps the shards (``np.load(mmap_mode="r")``,
no pickle) and the datasets read a piece, unpacking its bits, only when it is asked for.
Caches of the older single-file layout (``data.npz``) still load, into memory.

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
import hashlib
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
from tunesmith.data.corpora import (
    SPLITS,
    Corpus,
    PieceSource,
    PolyphonicBenchmark,
    get_corpus,
)
from tunesmith.data.polyphonic import LOWEST_PITCH
from tunesmith.errors import ConfigError, MusicFileError, TunesmithError
from tunesmith.music import keys
from tunesmith.music.io import MIDI_SUFFIXES, TIME_LIMIT, max_piece_seconds
from tunesmith.music.keys import key_from_histogram
from tunesmith.music.note_arrays import note_arrays
from tunesmith.music.transforms import steps_per_bar
from tunesmith.representations import pianoroll
from tunesmith.representations.adapter import RepresentationAdapter, get_representation, one_by_one
from tunesmith.representations.info import DataInfo

#: bump when the encoding pipeline changes (4: ``info`` is a DataInfo); part of the cache key
CACHE_FORMAT = 4
#: how the arrays are stored (meta.json's ``storage``): 2 = .npy shards (1 = data.npz)
STORAGE_VERSION = 2
#: a shard holds this many pieces, or fewer when their arrays pass SHARD_BYTES
SHARD_PIECES = 2048
SHARD_BYTES = 256 * 2**20
SHARDS_DIR = "shards"


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
    # pieces in memory (None when ``store`` is given): all concatenated along axis 0, and
    # offsets (n_pieces + 1,): piece i = data[o[i]:o[i+1]]
    data: np.ndarray | None = field(repr=False)
    offsets: np.ndarray | None = field(repr=False)
    onset_data: np.ndarray | None = field(default=None, repr=False)  # like data (pianoroll)
    transpose_to_c: bool = False  # every piece was moved to C major / A minor
    split_source: str = ""  # how pieces were split: "published" or a hash of their id
    store: PieceStore | None = field(default=None, repr=False)  # where pieces are read

    def __post_init__(self):
        if self.store is None:
            self.store = PieceStore.in_memory(self.data, self.offsets, self.onset_data)

    @property
    def n_pieces(self) -> dict[str, int]:
        """Pieces of each split."""
        return {split: self.piece_splits.count(split) for split in SPLITS}

    def _store(self) -> PieceStore:
        assert self.store is not None  # set by __post_init__
        return self.store

    def _indices(self, split: str | None) -> list[int]:
        if split is not None and split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return [i for i, s in enumerate(self.piece_splits) if split is None or s == split]

    def ids(self, split: str | None = None) -> list[str]:
        """Piece ids of a split (all pieces when None), in cache order."""
        return [self.piece_ids[i] for i in self._indices(split)]

    def pieces(self, split: str | None = None) -> PieceList:
        """The arrays of a split's pieces, each read when asked for (views into the
        cache's memory maps, or unpacked copies; do not modify)."""
        return PieceList(self._store(), "data", self._indices(split))

    def onsets(self, split: str | None = None) -> PieceList | None:
        """Piano-roll onset grids like :meth:`pieces`, when prepared with ``onset=True``."""
        if not self._store().has("onsets"):
            return None
        return PieceList(self._store(), "onsets", self._indices(split))

    def meta(self, split: str | None = None) -> list[dict]:
        return [self.piece_meta[i] for i in self._indices(split)]

    def __len__(self) -> int:
        return len(self.piece_ids)


class PieceStore:
    """Where the pieces' arrays are: per array name (``data``, ``onsets``) a list of
    shards, each ``(rows, columns)`` or ``(rows,)``, memory-mapped from ``.npy`` files or
    in memory; piece ``i`` is rows ``where[i, 1]:where[i, 2]`` of shard ``where[i, 0]``.

    ``columns``: the width of bit-packed 0/1 rows once unpacked (None: stored as they are).
    A store read from files pickles as their paths (a DataLoader worker started with
    ``spawn`` maps them again rather than receiving a copy of the data).
    """

    def __init__(self, shards: dict[str, list[np.ndarray]], where: np.ndarray,
                 columns: int | None = None, files: dict[str, list[Path]] | None = None):
        self.shards = shards
        self.where = np.asarray(where, dtype=np.int64).reshape(-1, 3)  # (pieces, 3)
        self.columns = columns
        self.files = files

    @classmethod
    def in_memory(cls, data: np.ndarray | None, offsets: np.ndarray | None,
                  onset_data: np.ndarray | None = None) -> PieceStore:
        """One in-memory shard of unpacked pieces: piece i = ``data[o[i]:o[i+1]]``."""
        if data is None or offsets is None:
            raise ValueError("PreparedData needs data and offsets, or a store")
        offsets = np.asarray(offsets, dtype=np.int64)
        where = np.stack([np.zeros(len(offsets) - 1, np.int64), offsets[:-1], offsets[1:]], 1)
        shards = {"data": [data]}
        if onset_data is not None:
            shards["onsets"] = [onset_data]
        return cls(shards, where)

    @classmethod
    def open(cls, files: dict[str, list[Path]], where: np.ndarray, columns: int | None,
             rows: list[int], dtypes: dict[str, str]) -> PieceStore:
        """Memory-map shard files, each checked against the rows and dtype meta.json
        records; a damaged one is a :class:`TunesmithError` naming it."""
        shards: dict[str, list[np.ndarray]] = {}
        for name, paths in files.items():
            shards[name] = [_map_shard(path, n, dtypes[name], columns)
                            for path, n in zip(paths, rows, strict=True)]
        return cls(shards, where, columns, files)

    def has(self, name: str) -> bool:
        return name in self.shards

    def piece(self, name: str, index: int) -> np.ndarray:
        shard, start, stop = self.where[index]
        rows = self.shards[name][shard][start:stop]
        return unpack_rows(rows, self.columns) if self.columns is not None else rows

    def length(self, index: int) -> int:
        """Rows (steps, tokens) of piece ``index``, without reading it."""
        return int(self.where[index, 2] - self.where[index, 1])

    def __getstate__(self):
        if self.files is None:
            return self.__dict__
        return {**self.__dict__, "shards": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.shards is None:  # map the files again
            self.shards = {name: [np.load(path, mmap_mode="r", allow_pickle=False)
                                  for path in paths] for name, paths in self.files.items()}


def _map_shard(path: Path, rows: int, dtype: str, columns: int | None) -> np.ndarray:
    """``path`` memory-mapped, refused unless it holds ``rows`` rows of ``dtype``."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise TunesmithError(f"{path}: corrupt or missing prepared-data shard "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__});"
                             f" prepare the corpus again with refresh (--refresh)") from exc
    width = None if columns is None else (columns + 7) // 8
    problem = None
    if array.shape[:1] != (rows,):
        problem = f"{array.shape[0] if array.ndim else 0} rows, meta.json says {rows}"
    elif str(array.dtype) != dtype:
        problem = f"dtype {array.dtype}, meta.json says {dtype}"
    elif width is not None and (array.ndim != 2 or array.shape[1] != width):
        problem = f"shape {array.shape}, expected {width} bytes a row"
    if problem:
        raise TunesmithError(f"{path}: corrupt prepared-data shard ({problem}); prepare "
                             "the corpus again with refresh (--refresh)")
    return array


class PieceList(Sequence):
    """Some pieces of a :class:`PieceStore`, read one at a time when indexed (a sequence
    of arrays: ``len``, indexing, slicing, iteration)."""

    def __init__(self, store: PieceStore, name: str, indices: Sequence[int]):
        self.store, self.name = store, name
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return PieceList(self.store, self.name, self.indices[item])
        return self.store.piece(self.name, int(self.indices[item]))

    def lengths(self) -> list[int]:
        """Each piece's rows, without reading the pieces."""
        where = self.store.where[self.indices]
        return (where[:, 2] - where[:, 1]).tolist()


def load_prepared(cache_dir: str | Path) -> PreparedData:
    """Read a cache folder written by :func:`prepare` (no pickle involved): the shards are
    memory-mapped. Caches of the older single-file layout (``data.npz``) load into memory,
    and those of older formats, whose ``info`` is a plain dict, still load."""
    cache_dir = Path(cache_dir)
    try:
        meta = json.loads((cache_dir / "meta.json").read_text())
        info = DataInfo.read(meta["info"])
        skipped = json.loads((cache_dir / "skipped.json").read_text())
        if "shards" in meta:
            store = _open_shards(cache_dir, meta)
            data = offsets = onset_data = None
        else:
            store = None
            data, offsets, onset_data = _read_single_file(cache_dir / "data.npz")
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
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
        store=store,
        **_corpus_facts(meta),
    )


def _open_shards(cache_dir: Path, meta: dict) -> PieceStore:
    """The memory-mapped :class:`PieceStore` of a sharded cache's meta.json."""
    shards = meta["shards"]
    where = np.asarray(meta["where"], dtype=np.int64).reshape(-1, 3)
    rows = [int(shard["rows"]) for shard in shards]
    if len(where) != len(meta["ids"]) or (len(where) and (
            where[:, 0].min() < 0 or where[:, 0].max() >= len(shards)
            or (where[:, 1] < 0).any() or (where[:, 2] <= where[:, 1]).any()
            or (where[:, 2] > np.asarray(rows)[where[:, 0]]).any())):
        raise ValueError("meta.json's piece places do not fit its shards")
    names = meta["arrays"]
    files = {name: [cache_dir / SHARDS_DIR / f"{shard['name']}.{name}.npy" for shard in shards]
             for name in names}
    return PieceStore.open(files, where, meta.get("n_columns"), rows, names)


def _read_single_file(path: Path) -> tuple:
    """(data, offsets, onset_data) of a single-file cache (``data.npz``), in memory."""
    with np.load(path, allow_pickle=False) as arrays:
        offsets = arrays["offsets"]
        if "n_columns" in arrays.files:  # 0/1 piano-rolls are stored 8 cells a byte
            columns = int(arrays["n_columns"])
            data = unpack_rows(arrays["data"], columns)
            onset_data = (unpack_rows(arrays["onsets"], columns)
                          if "onsets" in arrays.files else None)
        else:
            data = arrays["data"]
            onset_data = arrays["onsets"] if "onsets" in arrays.files else None
    return data, offsets, onset_data


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


def make_encoder(representation: str, options: dict, corpus: Corpus) -> RepresentationAdapter:
    """The representation's adapter (its codec) for ``options``, with ``corpus``'s defaults."""
    return get_representation(representation)(options, corpus)


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


def _encode_roll(corpus: Corpus, encoder: RepresentationAdapter, source: PieceSource):
    """(arrays, facts) of a benchmark roll, without a Score."""
    assert isinstance(corpus, PolyphonicBenchmark)  # the one corpus of kind "rolls"
    roll = corpus.roll(source)
    facts = {"notes": None, "quarters": roll.shape[0] / corpus.steps_per_quarter,
             "seconds": None, "key": _key_name(_roll_key(roll))}
    return encoder.encode_roll(roll, corpus.steps_per_quarter, LOWEST_PITCH), facts


def _encode_scores(corpus: Corpus, encoder: RepresentationAdapter, sources: Sequence[PieceSource],
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

    results: list = one_by_one(load, range(len(sources)))
    if at is not None:
        at.value = len(sources)
    usable = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
    scores = [results[i] for i in usable]
    notes = note_arrays(scores)
    # None when a piece has no pitched notes or a flat histogram
    piece_keys = keys.keys_from_histograms(keys.pitch_class_histograms(notes))

    per_quarter = encoder.info().steps_per_quarter if encoder.bar_facts else None

    def facts_of(index: int) -> dict[str, Any]:
        score = scores[index]
        piece_facts = _piece_facts(score)
        piece_facts["key"] = _key_name(piece_keys[index])
        if per_quarter is not None:  # the data's bar, for its DataInfo
            piece_facts["steps_per_bar"] = _steps_per_bar(score, per_quarter)
        return piece_facts

    facts = one_by_one(facts_of, range(len(scores)))
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


def _reads_no_files(corpus: Corpus, encoder: RepresentationAdapter, transpose_to_c: bool) -> bool:
    """Benchmark rolls straight to piano-rolls: arrays already in memory, no parser."""
    return corpus.kind == "rolls" and encoder.frames and not transpose_to_c


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
        results = one_by_one(lambda source: _encode_roll(corpus, encoder, source), sources)
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
    tell which file ran past the time limit or crashed the process. A worker whose
    driver was killed (its connection never closes: forked workers hold both ends)
    notices within a second and exits.
    """
    driver = os.getppid()
    while True:
        while not conn.poll(1.0):
            if os.getppid() != driver:
                return
        if (task := conn.recv()) is None:
            break
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

    def run(self, chunks: list[list[PieceSource]], advance, emit) -> None:
        """Hands ``emit`` the :func:`process_chunk` result of every chunk (split where
        pieces were lost) as it comes, calling ``advance(n)`` as pieces are done."""
        from multiprocessing.connection import wait

        queue = list(reversed(chunks))  # a stack: requeued pieces go next
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
                            emit(payload)
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
                    for result in self._lost(task, at.value, crash, queue, advance):
                        emit(result)
        finally:
            for _, conn, _ in self.idle:
                with contextlib.suppress(OSError):
                    conn.send(None)
            for process, conn, _ in self.idle:
                _stop(process, conn, wait=1.0)
            for process, conn, *_ in self.busy.values():
                _stop(process, conn)

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
                time_limit: float, emit, in_process: bool = False, done: int = 0) -> None:
    """Encode all pieces in ``workers`` processes (even one: a parser crash then costs one
    file, never the run), with a progress bar (``done`` pieces done before); ``emit``
    is handed the :func:`process_chunk` results as they come. ``in_process``: no file is
    parsed (benchmark rolls), work here."""
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
        task = bar.add_task(f"preparing {job['corpus']}", total=len(sources) + done,
                            completed=done)

        def advance(n: int) -> None:
            bar.advance(task, n)

        if in_process:
            for chunk in chunks:
                emit(process_chunk(job, chunk))
                advance(len(chunk))
        elif chunks:
            _Workers(job, min(workers, len(chunks)), time_limit).run(chunks, advance, emit)


class ShardWriter:
    """Writes the results of :func:`process_chunk` to ``.npy`` shards in ``folder`` as
    they come (a shard's arrays first, then its JSON, each moved into place whole), and
    reads back the shards an interrupted run left there.

    A shard is written once it holds ``shard_pieces`` pieces or SHARD_BYTES of arrays, so
    at most one shard's arrays are held here; what a shard's JSON lists (kept and skipped
    pieces) is what a resumed run need not encode again.
    """

    def __init__(self, folder: Path, key: str, packed: bool,
                 shard_pieces: int = SHARD_PIECES):
        self.folder = folder
        self.packed = packed
        self.shard_dir = folder / SHARDS_DIR
        self.shard_pieces = shard_pieces
        self.shards: list[dict] = []  # the JSON of each shard written
        self._pending: list[dict] = []
        self._pieces = self._bytes = 0
        marker = folder / "job.json"
        if folder.is_dir():
            try:
                same = json.loads(marker.read_text()).get("cache_key") == key
            except (OSError, ValueError, AttributeError):
                same = False
            if not same:
                shutil.rmtree(folder)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"cache_key": key, "storage": STORAGE_VERSION}))
        self._read_back()

    def _read_back(self) -> None:
        """Keep the complete shards of an earlier run (JSON and arrays whole); remove the
        rest, which that run was writing when it stopped."""
        complete: set[str] = set()
        for path in sorted(self.shard_dir.glob("shard-*.json")):
            try:
                shard = json.loads(path.read_text())
                for name, dtype in shard["arrays"].items():
                    _map_shard(self.shard_dir / f"{shard['name']}.{name}.npy", shard["rows"],
                               dtype, shard["columns"] if shard["packed"] else None)
            except (OSError, ValueError, KeyError, TypeError, TunesmithError):
                continue
            self.shards.append(shard)
            complete.add(shard["name"])
        for path in self.shard_dir.iterdir():
            if path.name.split(".")[0] not in complete:
                path.unlink()

    def done(self) -> set[str]:
        """Ids of the pieces the shards hold or skipped."""
        return {piece_id for shard in self.shards
                for piece_id in [*shard["ids"], *(s[0] for s in shard["skipped"])]}

    def add(self, result: dict) -> None:
        """One chunk's result; writes a shard when enough are pending."""
        self._pending.append(result)
        self._pieces += len(result["ids"])
        self._bytes += sum(a.nbytes for a in result["arrays"].values())
        if self._pieces >= self.shard_pieces or self._bytes >= SHARD_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the pending results as one shard (nothing when none is pending)."""
        pending = self._pending
        if not pending:
            return
        self._pending, self._pieces, self._bytes = [], 0, 0
        name = f"shard-{len(self.shards):05d}"
        with_rows = [r for r in pending if r["ids"]]
        arrays = {key: np.concatenate([r["arrays"][key] for r in with_rows], axis=0)
                  for key in (with_rows[0]["arrays"] if with_rows else ())}
        for key, array in arrays.items():
            _replace_with(self.shard_dir / f"{name}.{key}.npy",
                          lambda f, a=array: np.save(f, a, allow_pickle=False))
        shard = {
            "name": name,
            "ids": [i for r in pending for i in r["ids"]],
            "lengths": [n for r in pending for n in r["lengths"]],
            "facts": [f for r in pending for f in r["facts"]],
            "skipped": [list(s) for r in pending for s in r["skipped"]],
            "rows": int(sum(n for r in pending for n in r["lengths"])),
            "columns": next((r["columns"] for r in with_rows), None),
            "packed": self.packed,
            "arrays": {key: str(array.dtype) for key, array in arrays.items()},
        }
        text = json.dumps(shard)
        _replace_with(self.shard_dir / f"{name}.json", lambda f: f.write(text.encode()))
        self.shards.append(shard)


def _replace_with(path: Path, write) -> None:
    """Write a file through ``write(binary file)`` beside ``path``, then move it there."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


@contextlib.contextmanager
def _cache_lock(cache_dir: Path):
    """Hold ``<cache_dir>.lock`` while preparing: a second process that prepares the same
    corpus (each of a DDP run's processes under torchrun) waits, then reads the cache."""
    import fcntl

    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(cache_dir.with_name(cache_dir.name + ".lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError:  # a filesystem without locks (some network ones): go on unlocked
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
    shard_pieces: int = SHARD_PIECES,
) -> PreparedData:
    """Prepare (or read from the cache) a corpus in a representation.

    Files are parsed in worker processes, even with ``workers=1``: a parser that crashes
    or runs past ``time_limit`` costs its file (skipped, with the reason), never the run.

    Args:
        corpus_spec: a name from :data:`tunesmith.data.corpora.CORPORA` or ``folder:PATH``.
        representation: a registered representation (``"pianoroll"``, ``"melody"``,
            ``"events"``, ``"drums"``: :func:`~tunesmith.representations.get_representation`).
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
        shard_pieces: pieces a cache shard holds (how the arrays are stored, not what
            they are: not part of the cache key).
    """
    check_counts(limit=limit, workers=workers, shard_pieces=shard_pieces)
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
        with contextlib.suppress(TunesmithError):  # (a cache that others only read: no lock)
            return load_prepared(cache_dir)
    with _cache_lock(cache_dir):  # another process may have prepared it while this waited
        if not refresh and (cache_dir / "meta.json").is_file():
            try:
                return load_prepared(cache_dir)
            except TunesmithError as exc:
                _note(f"{exc}; preparing it again")
        partial = cache_dir.with_name(cache_dir.name + ".partial")
        if refresh:
            shutil.rmtree(partial, ignore_errors=True)
        return _prepare_into(cache_dir, partial, key, corpus, encoder, corpus_spec,
                             representation, repr_options, path, workers, transpose_to_c,
                             limit, progress, report, max_seconds, time_limit, shard_pieces)


def _prepare_into(cache_dir: Path, partial: Path, key: str, corpus: Corpus, encoder,
                  corpus_spec: str, representation: str, repr_options: dict | None, path,
                  workers: int | None, transpose_to_c: bool, limit: int | None,
                  progress: bool, report: bool, max_seconds: float, time_limit: float,
                  shard_pieces: int) -> PreparedData:
    """:func:`prepare`'s work once the cache is known to be missing: encode the pieces no
    shard in ``partial`` holds yet, write them as shards, then meta.json, and move
    ``partial`` to ``cache_dir``."""
    sources, skipped = corpus.sources()
    skipped = list(skipped)
    if limit is not None:
        sources = sources[:limit]
    writer = ShardWriter(partial, key, encoder.packs_bits(), shard_pieces)
    done = writer.done()
    todo = [s for s in sources if s.id not in done]
    if done:
        _note(f"{cache_dir.name}: resuming an interrupted prepare; {len(sources) - len(todo)} "
              f"piece(s) are in {len(writer.shards)} shard(s) already")
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
    _run_chunks(job, todo, min(workers, max(1, len(todo))), progress, time_limit,
                writer.add, in_process, done=len(sources) - len(todo))
    writer.flush()

    # every usable piece: (id, shard, first row in the shard, end row, facts)
    wanted = {s.id for s in sources}
    kept: list[tuple[str, int, int, int, dict]] = []
    shards = [shard for shard in writer.shards if shard["rows"]]
    for index, shard in enumerate(shards):
        rows = np.concatenate([[0], np.cumsum(shard["lengths"], dtype=np.int64)]).tolist()
        kept += [(piece_id, index, rows[k], rows[k + 1], facts)
                 for k, (piece_id, facts) in enumerate(zip(shard["ids"], shard["facts"],
                                                           strict=True))
                 if piece_id in wanted]
    skipped += [(str(i), str(r)) for shard in writer.shards for i, r in shard["skipped"]
                if i in wanted]
    kept.sort(key=lambda piece: piece[0])
    skipped = sorted(skipped)
    if not kept:  # every skipped piece, one a line: the user needs each reason
        reasons = "".join(f"\n  {piece_id}: {reason}" for piece_id, reason in skipped)
        raise TunesmithError(f"no usable piece in {corpus.name}; {len(skipped)} skipped"
                             + (":" if skipped else "") + reasons)
    split_by_id = {s.id: corpus.split(s) for s in sources}
    meta = {
        "format": CACHE_FORMAT,
        "storage": STORAGE_VERSION,
        "corpus": corpus.name,
        "representation": representation,
        "repr_config": encoder.options(),
        "info": encoder.info([piece[4] for piece in kept]).to_dict(),
        "transpose_to_c": transpose_to_c,
        "split_source": corpus.split_method,
        "ids": [piece[0] for piece in kept],
        "splits": [split_by_id[piece[0]] for piece in kept],
        "pieces": [piece[4] for piece in kept],
        "cache_key": key,
        "shards": [{"name": shard["name"], "rows": shard["rows"]} for shard in shards],
        "arrays": shards[0]["arrays"],
        "n_columns": shards[0]["columns"] if encoder.packs_bits() else None,
        "where": [list(piece[1:4]) for piece in kept],  # shard, first row, end row
    }
    (partial / "meta.json").write_text(json.dumps(meta))
    (partial / "skipped.json").write_text(json.dumps([list(s) for s in skipped], indent=0))
    (partial / "job.json").unlink()
    shutil.rmtree(cache_dir, ignore_errors=True)
    os.replace(partial, cache_dir)
    if report and skipped:
        print_skipped(skipped)
    return load_prepared(cache_dir)


def _note(message: str) -> None:
    """A one-line note on stderr."""
    print(f"note: {message}", file=sys.stderr)


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
