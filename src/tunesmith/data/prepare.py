"""Turn a corpus into arrays once, in parallel, and cache them.

``prepare("bach-chorales", "pianoroll")`` lists the corpus's pieces, parses them in
worker processes (music21 formats take ~0.15 s a file, MIDI well under 1 ms), encodes
each with the chosen representation and writes a compact cache under
``$TUNESMITH_CACHE`` (default ``~/.cache/tunesmith``)::

    prepared/<corpus>-<representation>-<hash>/
        data.npz      concatenated arrays + offsets (read with allow_pickle=False);
                      0/1 piano-rolls bit-packed along the keys (np.packbits)
        meta.json     piece ids, split of each piece, tracks, per-piece facts, info
        skipped.json  [[piece id, reason], ...]

The hash covers the corpus's content (file names, sizes, mtimes), the representation
and its options, and the tunesmith version, so a second run with the same inputs only
reads the cache. A piece that cannot be used is skipped with its reason, reported at
the end, and never costs the others.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import shutil
import sys
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith import __version__
from tunesmith.data.corpora import SPLITS, Corpus, PieceSource, get_corpus
from tunesmith.errors import ConfigError, MusicFileError, TunesmithError

REPRESENTATIONS = ("pianoroll", "melody", "events")
#: bump when the cache layout or the encoding pipeline changes
CACHE_FORMAT = 3


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
    info: dict
    skipped: list[tuple[str, str]]
    cache_dir: Path
    piece_ids: list[str] = field(repr=False)
    piece_splits: list[str] = field(repr=False)
    piece_meta: list[dict] = field(repr=False)  # per piece: quarters, seconds, notes, key...
    data: np.ndarray = field(repr=False)  # all pieces concatenated along axis 0
    offsets: np.ndarray = field(repr=False)  # (n_pieces + 1,) piece i = data[o[i]:o[i+1]]
    onset_data: np.ndarray | None = field(default=None, repr=False)  # like data (pianoroll)

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
    """Read a cache folder written by :func:`prepare` (no pickle involved)."""
    cache_dir = Path(cache_dir)
    try:
        meta = json.loads((cache_dir / "meta.json").read_text())
        skipped = json.loads((cache_dir / "skipped.json").read_text())
        with np.load(cache_dir / "data.npz", allow_pickle=False) as arrays:
            offsets = arrays["offsets"]
            if "n_columns" in arrays.files:  # 0/1 piano-rolls are stored 8 cells a byte
                columns = int(arrays["n_columns"])
                data = np.unpackbits(arrays["data"], axis=1, count=columns)
                onset_data = (np.unpackbits(arrays["onsets"], axis=1, count=columns)
                              if "onsets" in arrays.files else None)
            else:
                data = arrays["data"]
                onset_data = arrays["onsets"] if "onsets" in arrays.files else None
    except (OSError, ValueError, KeyError) as exc:
        raise TunesmithError(f"{cache_dir}: unreadable prepared-data cache ({exc})") from exc
    return PreparedData(
        corpus=meta["corpus"],
        representation=meta["representation"],
        repr_config=meta["repr_config"],
        info=meta["info"],
        skipped=[(str(i), str(r)) for i, r in skipped],
        cache_dir=cache_dir,
        piece_ids=meta["ids"],
        piece_splits=meta["splits"],
        piece_meta=meta["pieces"],
        data=data,
        offsets=offsets,
        onset_data=onset_data,
    )


# --------------------------------------------------------------------------- encoders


def _config_from(cls, options: dict, what: str):
    from tunesmith.config import config_from_dict

    return config_from_dict(cls, options, what)


def _drop_drums(score):
    from tunesmith.music.transforms import select_tracks

    if not any(track.is_drum for track in score.tracks):
        return score  # most files: nothing to drop, no copy
    return select_tracks(score, drums=False)


class PianorollEncoder:
    """Score -> ``(steps, tracks * pitches)`` grid. Options: PianorollConfig's fields,
    plus ``merge_tracks`` (default: True unless the corpus has a fixed track layout)."""

    name = "pianoroll"
    data_options = ("merge_tracks",)

    def __init__(self, options: dict, corpus: Corpus):
        from tunesmith.representations.pianoroll import PianorollConfig

        options = dict(options)
        self.merge = bool(options.pop("merge_tracks", corpus.track_layout is None))
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
        from tunesmith.music.transforms import merge_tracks

        score = _drop_drums(score)
        if self.merge:
            score = merge_tracks(score, name=self.cfg.track_names[0], program=self.cfg.programs[0])
        if len(score.tracks) != self.n_tracks:
            raise MusicFileError("", f"has {len(score.tracks)} tracks, expected {self.n_tracks}")
        return score

    def encode(self, score) -> dict[str, np.ndarray]:
        """``{"data": (steps, tracks * pitches)}`` (+ ``"onsets"``) of the selected tracks."""
        from tunesmith.representations import pianoroll

        score = _drop_drums(score)
        if not self.merge and len(score.tracks) != self.n_tracks:
            raise MusicFileError("", f"has {len(score.tracks)} tracks, expected {self.n_tracks}")
        frames, onsets = pianoroll.encode_with_onsets(score, self.cfg, merge=self.merge)
        out = {"data": _flatten_tracks(frames)}
        if self.cfg.onset:
            out["onsets"] = _flatten_tracks(onsets)
        return out

    def encode_roll(self, roll: np.ndarray, steps_per_quarter: int) -> dict[str, np.ndarray]:
        """A benchmark ``(frames, 88)`` roll (MIDI 21-108) on this grid, without a Score."""
        from tunesmith.data.polyphonic import LOWEST_PITCH

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

    def info(self, facts: list[dict] | None = None) -> dict:
        cfg = self.cfg
        return {
            "n_tracks": self.n_tracks,
            "n_pitches": cfg.n_pitches,
            "keys": self.n_tracks * cfg.n_pitches,
            "track_names": list(cfg.track_names),
            "programs": list(cfg.programs),
            "steps_per_quarter": cfg.resolution,
            "pitch_low": cfg.pitch_low,
            "pitch_high": cfg.pitch_high,
            "onset": cfg.onset,
        }


def _flatten_tracks(grid: np.ndarray) -> np.ndarray:
    """``(tracks, steps, pitches)`` -> ``(steps, tracks * pitches)``, track-major."""
    tracks, steps, pitches = grid.shape
    return np.ascontiguousarray(grid.transpose(1, 0, 2)).reshape(steps, tracks * pitches)


class MelodyEncoder:
    """Score -> ``(steps,)`` int16 melody events (:mod:`tunesmith.representations.melody`).

    Option ``track``: the name of the track holding the melody (chorales: Soprano);
    by default the representation picks from the whole score.
    """

    name = "melody"
    data_options = ("track",)

    def __init__(self, options: dict, corpus: Corpus):
        from tunesmith.representations import melody

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
            from tunesmith.music.transforms import select_tracks

            score = select_tracks(score, names=[self.track])
            if not len(score.tracks):
                raise MusicFileError("", f"has no track named {self.track!r}")
        events = np.asarray(self.module.encode(score, self.cfg), dtype=np.int16)  # (steps,)
        return {"data": events}

    def info(self, facts: list[dict] | None = None) -> dict:
        """Vocabulary and grid; ``steps_per_bar`` is the most common bar of the pieces."""
        from collections import Counter

        cfg = self.cfg
        bars = Counter(f.get("steps_per_bar") for f in facts or [] if f.get("steps_per_bar"))
        return {
            "vocab_size": int(cfg.vocab_size),
            "steps_per_quarter": int(cfg.steps_per_quarter),
            "steps_per_bar": bars.most_common(1)[0][0] if bars else 4 * cfg.steps_per_quarter,
            "min_pitch": cfg.min_pitch,
            "max_pitch": cfg.max_pitch,
        }


class EventsEncoder:
    """Score -> ``(n,)`` int32 tokens (:mod:`tunesmith.representations.events`)."""

    name = "events"
    data_options = ()

    def __init__(self, options: dict, corpus: Corpus):
        from tunesmith.representations import events

        self.cfg = _config_from(events.EventsConfig, dict(options), "events")
        self.module = events

    def options(self) -> dict:
        return _asdict(self.cfg)

    def encode(self, score) -> dict[str, np.ndarray]:
        tokens = np.asarray(self.module.encode(_drop_drums(score), self.cfg), dtype=np.int32)
        return {"data": tokens}

    def info(self, facts: list[dict] | None = None) -> dict:
        return {"vocab_size": int(self.module.vocab_size(self.cfg)), "tokenizer": _asdict(self.cfg)}


def _asdict(cfg) -> dict:
    import dataclasses

    return cfg.to_dict() if hasattr(cfg, "to_dict") else dataclasses.asdict(cfg)


ENCODERS = {"pianoroll": PianorollEncoder, "melody": MelodyEncoder, "events": EventsEncoder}


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
    from tunesmith.data.polyphonic import LOWEST_PITCH
    from tunesmith.music.keys import key_from_histogram

    per_pitch = roll.sum(axis=0).astype(np.float64)  # (88,)
    classes = (np.arange(roll.shape[1]) + LOWEST_PITCH) % 12
    return key_from_histogram(np.bincount(classes, weights=per_pitch, minlength=12))


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


def _encode_one(corpus: Corpus, encoder, source: PieceSource, transpose_to_c: bool):
    """(arrays, facts) of one piece; raises MusicFileError/TunesmithError when unusable."""
    from tunesmith.music import keys

    if corpus.kind == "rolls" and encoder.name == "pianoroll" and not transpose_to_c:
        roll = corpus.roll(source)
        facts = {"notes": None, "quarters": roll.shape[0] / corpus.steps_per_quarter,
                 "seconds": None, "key": _key_name(_roll_key(roll))}
        return encoder.encode_roll(roll, corpus.steps_per_quarter), facts
    score = corpus.load(source)
    facts = _piece_facts(score)
    # None when the piece has no pitched notes or a flat histogram
    key = keys.key_from_histogram(keys.pitch_class_histogram(score))
    facts["key"] = _key_name(key)
    if encoder.name == "melody":
        facts["steps_per_bar"] = _steps_per_bar(score, encoder.cfg.steps_per_quarter)
    if transpose_to_c:
        if key is None:
            raise MusicFileError(source.path, "no key can be estimated to transpose to C")
        score, facts["transposed_by"] = keys.normalize_key(score, key)
    arrays = encoder.encode(score)
    if arrays["data"].shape[0] == 0:
        raise MusicFileError(source.path, "no notes left after encoding (all out of range?)")
    return arrays, facts


def _steps_per_bar(score, steps_per_quarter: int) -> int | None:
    from tunesmith.music.transforms import steps_per_bar

    try:
        return steps_per_bar(score, steps_per_quarter)
    except TunesmithError:  # a bar that is not a whole number of steps
        return None


_worker_state: dict[str, Any] = {}


def _worker_context(job: dict):
    """(corpus, encoder) for a job, built once per worker process."""
    key = json.dumps(job, sort_keys=True)
    if _worker_state.get("key") != key:
        corpus = get_corpus(job["corpus"], job["path"])
        encoder = make_encoder(job["representation"], job["options"], corpus)
        _worker_state.update(key=key, corpus=corpus, encoder=encoder)
    return _worker_state["corpus"], _worker_state["encoder"]


def process_chunk(job: dict, sources: Sequence[PieceSource]) -> list[tuple]:
    """Encode a chunk of pieces; each result is ``(id, arrays, facts)`` or ``(id, None,
    reason)``. Never raises for a bad piece (runs in a worker process)."""
    corpus, encoder = _worker_context(job)
    results = []
    for source in sources:
        try:
            arrays, facts = _encode_one(corpus, encoder, source, job["transpose_to_c"])
        except ConfigError:
            raise  # a wrong option fails every piece: stop the job
        except MusicFileError as exc:
            results.append((source.id, None, exc.reason))
        except TunesmithError as exc:  # e.g. RepresentationError: this piece cannot be encoded
            results.append((source.id, None, str(exc)))
        except Exception as exc:  # any parser failure: skip the piece, keep the batch
            results.append((source.id, None, f"{type(exc).__name__}: {exc}"))
        else:
            results.append((source.id, arrays, facts))
    return results


# --------------------------------------------------------------------------- driver


def _cache_key(corpus: Corpus, representation: str, options: dict, transpose_to_c: bool,
               limit: int | None) -> str:
    payload = {
        "format": CACHE_FORMAT,
        "tunesmith": __version__,
        "corpus": corpus.name,
        "content": corpus.fingerprint(),
        "representation": representation,
        "options": options,
        "transpose_to_c": transpose_to_c,
        "limit": limit,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _slug(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.split("/")[-1] or name)
    return keep.strip("-")[:40] or "corpus"


def _pool_context():
    # fork starts workers in milliseconds and they inherit imported modules
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return None


def _run_chunks(job: dict, sources: list[PieceSource], workers: int, progress: bool) -> list:
    """Encode all pieces in ``workers`` processes, with a progress bar."""
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
    results: list = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(f"preparing {job['corpus']}", total=len(sources))
        if workers <= 1:
            for chunk in chunks:
                results += process_chunk(job, chunk)
                bar.advance(task, len(chunk))
            return results
        crashed: list[PieceSource] = []
        with ProcessPoolExecutor(workers, mp_context=_pool_context()) as pool:
            pending = {pool.submit(process_chunk, job, chunk): chunk for chunk in chunks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    chunk = pending.pop(future)
                    try:
                        results += future.result()
                    except BrokenProcessPool:
                        crashed += chunk  # a parser crashed the worker: retry one by one
                    bar.advance(task, len(chunk))
        for source in crashed:
            results += _isolated(job, source)
    return results


def _isolated(job: dict, source: PieceSource) -> list:
    """Encode one piece in its own process; a crash there skips only this piece."""
    with ProcessPoolExecutor(1, mp_context=_pool_context()) as pool:
        try:
            return pool.submit(process_chunk, job, [source]).result()
        except BrokenProcessPool:
            return [(source.id, None, "the parser crashed on this file")]


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
) -> PreparedData:
    """Prepare (or read from the cache) a corpus in a representation.

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
    """
    corpus = get_corpus(corpus_spec, path)
    encoder = make_encoder(representation, repr_options or {}, corpus)
    options = encoder.options()
    key = _cache_key(corpus, representation, options, transpose_to_c, limit)
    cache_dir = cache_root() / "prepared" / f"{_slug(corpus.name)}-{representation}-{key[:16]}"
    if not refresh and (cache_dir / "meta.json").is_file():
        try:
            return load_prepared(cache_dir)
        except TunesmithError:
            pass  # a damaged cache is rebuilt

    sources, skipped = corpus.sources()
    if limit is not None:
        sources = sources[:limit]
    job = {"corpus": corpus_spec, "path": None if path is None else str(path),
           "representation": representation, "options": repr_options or {},
           "transpose_to_c": transpose_to_c}
    workers = max(1, workers or os.cpu_count() or 1)
    if corpus.kind == "rolls" and representation == "pianoroll" and not transpose_to_c:
        workers = 1  # slicing arrays already in memory: processes would only cost
    results = _run_chunks(job, sources, min(workers, max(1, len(sources))), progress)

    split_by_id = {s.id: corpus.split(s) for s in sources}
    results.sort(key=lambda r: r[0])
    kept = [r for r in results if r[1] is not None]
    skipped = sorted(skipped + [(r[0], r[2]) for r in results if r[1] is None])
    if not kept:
        raise TunesmithError(
            f"no usable piece in {corpus.name} ({len(skipped)} skipped"
            + (f", e.g. {skipped[0][0]}: {skipped[0][1]}" if skipped else "") + ")"
        )
    info = {
        "corpus": corpus.name,
        "representation": representation,
        "repr_config": options,
        **encoder.info([r[2] for r in kept]),
        "n_pieces": {split: sum(split_by_id[r[0]] == split for r in kept) for split in SPLITS},
        "n_skipped": len(skipped),
        "transpose_to_c": transpose_to_c,
        "split_source": "published" if corpus.kind == "rolls" else "hash of piece id (80/10/10)",
    }
    meta = {
        "corpus": corpus.name,
        "representation": representation,
        "repr_config": options,
        "info": info,
        "ids": [r[0] for r in kept],
        "splits": [split_by_id[r[0]] for r in kept],
        "pieces": [r[2] for r in kept],
        "cache_key": key,
    }
    lengths = np.array([len(r[1]["data"]) for r in kept], dtype=np.int64)
    arrays = {
        "data": np.concatenate([r[1]["data"] for r in kept], axis=0),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
    }
    if "onsets" in kept[0][1]:
        arrays["onsets"] = np.concatenate([r[1]["onsets"] for r in kept], axis=0)
    if representation == "pianoroll" and not options["velocity"]:
        arrays["n_columns"] = np.array(arrays["data"].shape[1])
        arrays["data"] = np.packbits(arrays["data"], axis=1)
        if "onsets" in arrays:
            arrays["onsets"] = np.packbits(arrays["onsets"], axis=1)
    _write_cache(cache_dir, arrays, meta, skipped)
    if report and skipped:
        print_skipped(skipped)
    return load_prepared(cache_dir)


def _write_cache(cache_dir: Path, arrays: dict, meta: dict, skipped: list) -> None:
    """Write into a temporary folder, then move it into place (never a half cache)."""
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir.with_name(f"{cache_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    np.savez(tmp / "data.npz", **arrays)  # 0/1 rolls come bit-packed: no zlib time
    (tmp / "meta.json").write_text(json.dumps(meta))
    (tmp / "skipped.json").write_text(json.dumps([list(s) for s in skipped], indent=0))
    shutil.rmtree(cache_dir, ignore_errors=True)
    os.replace(tmp, cache_dir)


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
