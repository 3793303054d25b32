"""Per-piece summaries of a set of pieces, and the cached summaries of a reference corpus.

Evaluation never needs a reference piece itself, only its summary: the feature vector
(:func:`tunesmith.evaluation.metrics.feature_vector`), the pitch-class note counts, the
plagiarism event sequence (:func:`tunesmith.evaluation.plagiarism.note_events`), each
track's label and voice activity (:func:`tunesmith.evaluation.metrics.voice_activity`)
and the notes on the sixteenth grid for the two-sample test
(:func:`tunesmith.evaluation.two_sample.roll_notes`).

**Where reference Scores come from.** The reference pieces are loaded by the data
layer's own corpus objects (:func:`tunesmith.data.get_corpus`): the same Scores that
:func:`tunesmith.data.prepare` encodes (chorales as their four SATB tracks, benchmark
rolls decoded at their published frame rate), and the same split (``corpus.split``).
We re-load the source files rather than decode the prepared arrays because a
piano-roll grid loses timing finer than its resolution, velocities, tempo and repeated
notes; the cost (~0.2 s per music21 file, in parallel worker processes) is paid once,
since the summaries are cached as JSON + npz (no pickle) under
``$TUNESMITH_CACHE/reference/<corpus>-<split>-<hash>/``, keyed by the corpus content
fingerprint, the split and :data:`SUMMARY_FORMAT`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunesmith.data import cache_root, get_corpus
from tunesmith.errors import ConfigError, TunesmithError
from tunesmith.evaluation import metrics, plagiarism, two_sample

#: bump when a metric or the event coding changes (invalidates cached summaries)
SUMMARY_FORMAT = 2
SPLIT_CHOICES = ("train", "valid", "test", "all")
#: the held-out splits that may set the band: test (the default, what a report shows) or
#: valid (to choose sampling controls without looking at test)
BAND_SPLITS = ("test", "valid")


@dataclass
class SetSummary:
    """Summaries of a set of pieces, one entry per usable piece."""

    names: list[str] = field(default_factory=list)
    features: list[dict[str, float]] = field(default_factory=list)
    pitch_class_counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 12)))  # (P, 12)
    events: list[np.ndarray] = field(default_factory=list)  # per piece (N_i,) int64
    tracks: list[list[str]] = field(default_factory=list)  # per piece, a label per track
    activity: list[list[float]] = field(default_factory=list)  # per piece, per track
    rolls: list[np.ndarray] = field(default_factory=list)  # per piece (K_i, 3) int32
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)

    def __len__(self) -> int:
        return len(self.names)

    def column(self, name: str) -> np.ndarray:
        """``(P,)`` values of one feature."""
        return np.array([f.get(name, math.nan) for f in self.features], np.float64)

    def save(self, directory: Path, extra: dict | None = None) -> None:
        """Write ``summary.json`` + ``arrays.npz`` into ``directory`` (atomically)."""
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        np.savez_compressed(
            tmp / "arrays.npz",
            pitch_class_counts=np.asarray(self.pitch_class_counts, np.float64).reshape(-1, 12),
            events=_concat(self.events, (0,), np.int64),
            offsets=_offsets(self.events),
            rolls=_concat(self.rolls, (0, 3), np.int32),
            roll_offsets=_offsets(self.rolls),
        )
        meta = {
            "format": SUMMARY_FORMAT,
            "names": self.names,
            # JSON has no NaN: store None
            "features": [{k: (v if math.isfinite(v) else None) for k, v in f.items()}
                         for f in self.features],
            "skipped": [list(s) for s in self.skipped],
            "tracks": self.tracks,
            "activity": [[v if math.isfinite(v) else None for v in a] for a in self.activity],
            **(extra or {}),
        }
        (tmp / "summary.json").write_text(json.dumps(meta))
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(tmp, directory)

    @classmethod
    def load(cls, directory: Path) -> SetSummary:
        try:
            meta = json.loads((directory / "summary.json").read_text())
            with np.load(directory / "arrays.npz", allow_pickle=False) as arrays:
                counts = arrays["pitch_class_counts"]
                events = arrays["events"]
                offsets = arrays["offsets"]
                rolls = arrays["rolls"]
                roll_offsets = arrays["roll_offsets"]
        except (OSError, ValueError, KeyError) as exc:
            raise TunesmithError(f"{directory}: unreadable reference summary ({exc})") from exc
        return cls(
            names=list(meta["names"]),
            features=[{k: (math.nan if v is None else float(v)) for k, v in f.items()}
                      for f in meta["features"]],
            pitch_class_counts=counts,
            events=[events[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)],
            skipped=[(str(a), str(b)) for a, b in meta["skipped"]],
            tracks=[[str(n) for n in names] for names in meta["tracks"]],
            activity=[[math.nan if v is None else float(v) for v in a]
                      for a in meta["activity"]],
            rolls=[rolls[roll_offsets[i]:roll_offsets[i + 1]]
                   for i in range(len(roll_offsets) - 1)],
        )


def _concat(arrays: list[np.ndarray], empty_shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(empty_shape, dtype)


def _offsets(arrays: list[np.ndarray]) -> np.ndarray:
    """Start of each array in their concatenation, and the total at the end."""
    return np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)


def summarise(score) -> tuple:
    """One Score's summary: ``(feature dict, (12,) pitch-class counts, event sequence,
    track labels, per-track voice activity, (K, 3) grid notes)``."""
    table = metrics.NoteTable.of(score)
    if len(table.pitch) and (table.pitch.min() < 0 or table.pitch.max() > 127):
        raise ValueError(f"pitches outside MIDI's 0-127 "
                         f"({int(table.pitch.min())}..{int(table.pitch.max())})")
    if len(table.time) and table.time.min() < 0:
        raise ValueError("notes before the start (negative times)")
    return (
        metrics.feature_vector(table),
        metrics.pitch_class_histogram(table, normalize=False),
        plagiarism.note_events(table),
        metrics.track_labels(table),
        [float(v) for v in metrics.voice_activity(table)],
        two_sample.roll_notes(table),
    )


def skip_reason(exc: Exception) -> str:
    """Why a piece was skipped, in words: a MusicFileError's reason, else the exception."""
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason)
    if isinstance(exc, ValueError):
        return f"cannot be measured: {exc}"
    return f"cannot be measured ({type(exc).__name__}: {exc})"


def _collect(summary: SetSummary, names: list[str], summaries: list[tuple]) -> SetSummary:
    """Fill ``summary`` with one :func:`summarise` tuple per piece."""
    summary.names = list(names)
    summary.features = [s[0] for s in summaries]
    summary.pitch_class_counts = np.array([s[1] for s in summaries], np.float64).reshape(-1, 12)
    summary.events = [np.asarray(s[2], np.int64) for s in summaries]
    summary.tracks = [list(s[3]) for s in summaries]
    summary.activity = [list(s[4]) for s in summaries]
    summary.rolls = [np.asarray(s[5], np.int32).reshape(-1, 3) for s in summaries]
    return summary


def summarise_scores(named_scores, skipped=None) -> SetSummary:
    """A SetSummary of ``(name, Score)`` pairs (in the given order); a piece whose
    summary fails is skipped with its reason, the others are kept."""
    skipped = list(skipped or [])
    names, summaries = [], []
    for name, score in named_scores:
        try:
            summaries.append(summarise(score))
        except Exception as exc:  # one bad piece never costs the whole set
            skipped.append((name, skip_reason(exc)))
            continue
        names.append(name)
    return _collect(SetSummary(skipped=skipped), names, summaries)


# ----------------------------------------------------------------------------- reference


def parse_reference(spec: str) -> tuple[str, str]:
    """``"bach-chorales:test"`` -> ``("bach-chorales", "test")``; the split defaults to
    train (``folder:PATH:all`` keeps every piece of a folder)."""
    corpus, sep, split = spec.rpartition(":")
    if sep and split in SPLIT_CHOICES and corpus:
        return corpus, split
    return spec, "train"


def held_out_split(split: str, band_split: str = "test") -> str | None:
    """The split that sets the reference band when comparing with ``split``: the held-out
    ``band_split`` (test by default, or valid to tune sampling without seeing test) when the
    reference is the training split (the model never saw either), else None."""
    if band_split not in BAND_SPLITS:
        raise ConfigError(f"unknown band split {band_split!r}; expected one of "
                          f"{', '.join(BAND_SPLITS)}")
    return band_split if split == "train" else None


def reference_cache_dir(corpus, split: str) -> Path:
    payload = {"format": SUMMARY_FORMAT, "corpus": corpus.name,
               "content": corpus.fingerprint(), "split": split}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in corpus.name)[-40:].strip("-")
    return cache_root() / "reference" / f"{slug or 'corpus'}-{split}-{key[:16]}"


def _summarise_sources(corpus_spec: str, path: str | None, sources: list) -> list[tuple]:
    """Worker: ``(id, summary tuple)`` or ``(id, None, reason)`` per source."""
    corpus = get_corpus(corpus_spec, path)
    out: list[tuple] = []
    for source in sources:
        try:
            summary = summarise(corpus.load(source))
        except Exception as exc:  # a bad piece is skipped with its reason
            out.append((source.id, None, skip_reason(exc)))
        else:
            out.append((source.id, summary))
    return out


def reference_summary(
    corpus_spec: str,
    split: str = "train",
    path: str | Path | None = None,
    workers: int | None = None,
    refresh: bool = False,
    progress: bool = True,
) -> tuple[SetSummary, Path, bool]:
    """The summaries of a corpus split: ``(summary, cache folder, read from cache)``.

    Computed once in ``workers`` processes (default: CPU count), then read from the cache.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    if split not in SPLIT_CHOICES:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_CHOICES)}")
    corpus = get_corpus(corpus_spec, path)
    cache_dir = reference_cache_dir(corpus, split)
    if not refresh and (cache_dir / "summary.json").is_file():
        try:
            return SetSummary.load(cache_dir), cache_dir, True
        except TunesmithError:
            pass  # damaged cache: rebuild
    sources, skipped = corpus.sources()
    if split != "all":
        sources = [s for s in sources if corpus.split(s) == split]
    if not sources:
        raise TunesmithError(f"{corpus.name} has no piece in split {split!r}")
    workers = max(1, min(workers or os.cpu_count() or 1, len(sources)))
    size = max(1, math.ceil(len(sources) / (workers * 8)))
    chunks = [sources[i:i + size] for i in range(0, len(sources), size)]
    path_arg = None if path is None else str(path)
    results: list[tuple] = []
    with Progress("[bold]summarising reference", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), disable=not progress) as bar:
        task = bar.add_task("", total=len(sources))
        if workers == 1:
            for chunk in chunks:
                results += _summarise_sources(corpus_spec, path_arg, chunk)
                bar.advance(task, len(chunk))
        else:
            import multiprocessing

            context = multiprocessing.get_context("fork") if sys.platform.startswith(
                "linux") else None
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = {pool.submit(_summarise_sources, corpus_spec, path_arg, c): c
                           for c in chunks}
                for future in as_completed(futures):
                    results += future.result()
                    bar.advance(task, len(futures[future]))
    results.sort(key=lambda r: r[0])
    summary = SetSummary(skipped=list(skipped) + [(r[0], r[2]) for r in results if r[1] is None])
    kept = [r for r in results if r[1] is not None]
    if not kept:
        raise TunesmithError(f"no usable piece in {corpus.name}:{split}")
    _collect(summary, [r[0] for r in kept], [r[1] for r in kept])
    summary.save(cache_dir, extra={"corpus": corpus.name, "split": split})
    return summary, cache_dir, False
