"""Audio corpora: prepare (decode, resample, cache) and serve windows to the trainer.

Two kinds of spec:

* ``folder:PATH``: every WAV/FLAC/OGG file under PATH (recursively), read with soundfile,
  mixed to mono and resampled with soxr (:func:`tunesmith.audio.io.load_audio`). A
  corrupt, empty, silent or unsupported file is skipped with its reason (the same
  treatment as a bad MIDI file) and reported at the end; the rest is kept.
* ``rendered:CORPUS``: a symbolic corpus (``rendered:bach-chorales``...) prepared as a
  merged piano-roll with onsets, decoded at 120 quarter notes a minute and rendered
  through the bundled General MIDI SoundFont (:mod:`tunesmith.audio.synth`). Each piece
  gives an aligned pair: audio and its piano-roll, one roll frame every
  :attr:`AudioData.hop` samples (sample_rate · 60 / (120 · resolution): 2,000 at 16 kHz
  and sixteenth notes). The corpus's own splits are kept.

Splits are deterministic (a hash of the piece id, or the corpus's split). The cache lives
under ``$TUNESMITH_CACHE/audio/<spec>-<hash>/`` (``data.npz``: int16 PCM and uint8 rolls
concatenated with offsets, read with ``allow_pickle=False``; ``meta.json``;
``skipped.json``); its hash covers the files (names, sizes, mtimes) or the symbolic
cache, the rate and the options.

Batches (:func:`audio_loader`) are dicts: ``audio`` (B, T) float32 in [-1, 1], ``mask``
(B, T) bool (False past a short piece's end), ``corpus_id`` (B,) long and, for rendered
data, ``roll`` (B, T / hop, 2K) float 0/1 (K keys sounding, then K onsets).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tunesmith import __version__
from tunesmith.audio.io import load_audio
from tunesmith.data.corpora import SPLITS, split_of
from tunesmith.data.datasets import EpochSampler
from tunesmith.data.prepare import cache_root, prepare, print_skipped
from tunesmith.errors import ConfigError, TunesmithError

CACHE_FORMAT = 1
RENDER_QPM = 120.0  # quarter notes per minute the rendered pieces play at
PCM_SCALE = 32767.0


@dataclass
class AudioData:
    """A prepared audio corpus: mono int16 PCM per piece (+ aligned piano-rolls)."""

    spec: str
    sample_rate: int
    ids: list[str]
    splits: list[str]
    pcm: np.ndarray = field(repr=False)  # (total samples,) int16, pieces concatenated
    offsets: np.ndarray = field(repr=False)  # (n + 1,) piece i = pcm[o[i]:o[i+1]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cache_dir: Path | None = None
    rolls: np.ndarray | None = field(default=None, repr=False)  # (frames, 2K) uint8
    roll_offsets: np.ndarray | None = field(default=None, repr=False)
    hop: int = 0  # samples per roll frame (rendered data), 0 without rolls
    roll_info: dict = field(default_factory=dict)  # pitch_low, keys, resolution, qpm
    max_seconds: float | None = None  # the cuts it was prepared with (prepare_audio's)
    limit: int | None = None

    @property
    def has_rolls(self) -> bool:
        return self.rolls is not None

    @property
    def roll_channels(self) -> int:
        return 0 if self.rolls is None else int(self.rolls.shape[1])

    def indices(self, split: str | None = None) -> list[int]:
        if split is not None and split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return [i for i, s in enumerate(self.splits) if split is None or s == split]

    def audio(self, index: int) -> np.ndarray:
        """Piece ``index`` as float32 (samples,) in [-1, 1]."""
        o = self.offsets
        return self.pcm[o[index] : o[index + 1]].astype(np.float32) / PCM_SCALE

    def roll(self, index: int) -> np.ndarray:
        """Piece ``index``'s piano-roll (frames, 2K) uint8: K sounding keys, K onsets."""
        if self.rolls is None or self.roll_offsets is None:
            raise ConfigError(f"{self.spec} has no piano-rolls (only rendered: corpora do)")
        o = self.roll_offsets
        return self.rolls[o[index] : o[index + 1]]

    def seconds(self, split: str | None = None) -> float:
        o = self.offsets
        return float(sum(o[i + 1] - o[i] for i in self.indices(split))) / self.sample_rate

    def describe(self) -> dict:
        """What a checkpoint records about its data."""
        return {"spec": self.spec, "sample_rate": self.sample_rate, "hop": self.hop,
                "roll_info": self.roll_info, "max_seconds": self.max_seconds,
                "limit": self.limit,
                "pieces": {s: len(self.indices(s)) for s in SPLITS},
                "seconds": {s: round(self.seconds(s), 1) for s in SPLITS}}


# ------------------------------------------------------------------------------ prepare


def prepare_audio(spec: str, sample_rate: int = 16000, *, max_seconds: float | None = None,
                  limit: int | None = None, refresh: bool = False, progress: bool = True,
                  report: bool = True, resolution: int = 4) -> AudioData:
    """Prepare (or read from the cache) ``folder:PATH`` or ``rendered:CORPUS`` audio.

    ``max_seconds`` keeps only the first seconds of each piece (rendered pieces are cut
    at a whole roll frame); ``limit`` keeps the first pieces by id; ``resolution`` is the
    roll's steps per quarter note for rendered corpora.
    """
    if sample_rate < 1000 or sample_rate > 192000:
        raise ConfigError(f"sample_rate must be in 1000..192000 Hz, got {sample_rate}")
    if max_seconds is not None and not max_seconds > 0:
        raise ConfigError(f"max_seconds must be > 0, got {max_seconds}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be >= 1, got {limit}")
    if spec.startswith("folder:"):
        root = Path(spec[len("folder:"):]).expanduser()
        if not root.is_dir():
            raise ConfigError(f"{root}: no such folder")
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        fingerprint = [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                       for p in files]
        key_source: dict[str, Any] = {"kind": "folder", "root": str(root.resolve()),
                                      "files": fingerprint}
    elif spec.startswith("rendered:"):
        corpus = spec[len("rendered:"):]
        symbolic = prepare(corpus, "pianoroll", {"merge_tracks": True, "onset": True,
                                                 "resolution": resolution},
                           progress=progress, report=report, limit=limit)
        key_source = {"kind": "rendered", "symbolic": str(symbolic.cache_dir.name)}
    else:
        raise ConfigError(f"unknown audio data {spec!r}; expected folder:PATH or "
                          "rendered:CORPUS (e.g. rendered:bach-chorales)")
    key_source.update(rate=sample_rate, max_seconds=max_seconds, limit=limit,
                      format=CACHE_FORMAT, version=__version__)
    key = hashlib.sha256(json.dumps(key_source, sort_keys=True).encode()).hexdigest()[:16]
    slug = "".join(c if c.isalnum() else "-" for c in spec.split(":", 1)[1])[-40:].strip("-")
    cache_dir = cache_root() / "audio" / f"{spec.split(':')[0]}-{slug}-{sample_rate}-{key}"
    if not refresh and (cache_dir / "meta.json").is_file():
        try:
            data = load_audio_cache(cache_dir)
            data.max_seconds, data.limit = max_seconds, limit
            return data
        except (TunesmithError, OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt
    if spec.startswith("folder:"):
        data = _prepare_folder(spec, root, files, sample_rate, max_seconds, limit, progress)
    else:
        data = _prepare_rendered(spec, symbolic, sample_rate, max_seconds, progress)
    _write_cache(cache_dir, data)
    data.cache_dir = cache_dir
    data.max_seconds, data.limit = max_seconds, limit
    if report and data.skipped:
        print_skipped(data.skipped)
    return data


def _progress(progress: bool, total: int, what: str):
    from rich.progress import Progress

    bar = Progress(disable=not progress, transient=True)
    return bar, bar.add_task(what, total=total)


def _prepare_folder(spec, root: Path, files, sample_rate, max_seconds, limit,
                    progress) -> AudioData:
    ids: list[str] = []
    splits: list[str] = []
    pieces: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    bar, task = _progress(progress, len(files), f"reading {root}")
    with bar:
        for path in files:
            bar.advance(task)
            piece_id = str(path.relative_to(root))
            if limit is not None and len(ids) >= limit:
                break
            try:
                audio = load_audio(path, sample_rate)
            except TunesmithError as exc:
                skipped.append((piece_id, getattr(exc, "reason", str(exc))))
                continue
            if max_seconds is not None:
                audio = audio[: int(max_seconds * sample_rate)]
            ids.append(piece_id)
            splits.append(split_of(piece_id))
            pieces.append(_pcm(audio))
    if not ids:
        reasons = "".join(f"\n  {i}: {r}" for i, r in skipped)
        raise TunesmithError(f"no usable audio file in {root}; {len(skipped)} skipped"
                             + (":" if skipped else "") + reasons)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64)
    return AudioData(spec, sample_rate, ids, splits, np.concatenate(pieces), offsets, skipped)


def _prepare_rendered(spec, symbolic, sample_rate, max_seconds, progress) -> AudioData:
    from tunesmith.audio.synth import synthesize
    from tunesmith.representations.pianoroll import PianorollConfig, decode

    options = {k: v for k, v in symbolic.repr_config.items() if k != "merge_tracks"}
    cfg = PianorollConfig.from_dict({**options, "tempo": RENDER_QPM})
    resolution = cfg.resolution
    frame_seconds = 60.0 / (RENDER_QPM * resolution)
    hop = frame_seconds * sample_rate
    if abs(hop - round(hop)) > 1e-9:
        raise ConfigError(f"a roll frame ({frame_seconds} s) is not a whole number of samples "
                          f"at {sample_rate} Hz; choose another sample rate or resolution")
    hop = round(hop)
    ids, splits, pieces, rolls, skipped = [], [], [], [], list(symbolic.skipped)
    all_rolls = symbolic.pieces()
    all_onsets = symbolic.onsets()
    bar, task = _progress(progress, len(all_rolls), f"rendering {spec}")
    with bar:
        for i, piece_id in enumerate(symbolic.piece_ids):
            bar.advance(task)
            roll, onsets = all_rolls[i], all_onsets[i]
            if max_seconds is not None:
                frames = max(1, int(max_seconds / frame_seconds))
                roll, onsets = roll[:frames], onsets[:frames]
            if not roll.any():
                skipped.append((piece_id, "no notes to render"))
                continue
            score = decode(roll, cfg, onsets)
            stereo = synthesize(score, sample_rate=sample_rate)  # (2, samples), peak 0.9
            audio = np.zeros(len(roll) * hop, np.float32)  # cut or pad to the roll's length
            mono = stereo.mean(axis=0)[: len(audio)]
            audio[: len(mono)] = mono
            ids.append(piece_id)
            splits.append(symbolic.piece_splits[i])
            pieces.append(_pcm(audio))
            rolls.append(np.concatenate([roll, onsets], axis=1).astype(np.uint8))
    if not ids:
        raise TunesmithError(f"no piece of {spec} could be rendered")
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64)
    roll_offsets = np.concatenate([[0], np.cumsum([len(r) for r in rolls])]).astype(np.int64)
    roll_info = {"pitch_low": cfg.pitch_low, "keys": cfg.n_pitches, "resolution": resolution,
                 "qpm": RENDER_QPM}
    return AudioData(spec, sample_rate, ids, splits, np.concatenate(pieces), offsets, skipped,
                     rolls=np.concatenate(rolls), roll_offsets=roll_offsets, hop=hop,
                     roll_info=roll_info)


def _pcm(audio: np.ndarray) -> np.ndarray:
    return np.round(np.clip(audio, -1.0, 1.0) * PCM_SCALE).astype(np.int16)


def _write_cache(cache_dir: Path, data: AudioData) -> None:
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir.with_name(f"{cache_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    arrays = {"pcm": data.pcm, "offsets": data.offsets}
    if data.rolls is not None and data.roll_offsets is not None:
        arrays.update(rolls=data.rolls, roll_offsets=data.roll_offsets)
    np.savez(tmp / "data.npz", **arrays)  # type: ignore[arg-type]  # numpy's stub: arrays
    meta = {"format": CACHE_FORMAT, "spec": data.spec, "sample_rate": data.sample_rate,
            "ids": data.ids, "splits": data.splits, "hop": data.hop, "roll_info": data.roll_info}
    (tmp / "meta.json").write_text(json.dumps(meta))
    (tmp / "skipped.json").write_text(json.dumps([list(s) for s in data.skipped], indent=0))
    shutil.rmtree(cache_dir, ignore_errors=True)
    os.replace(tmp, cache_dir)


def load_audio_cache(cache_dir: str | Path) -> AudioData:
    """Read a cache folder written by :func:`prepare_audio` (no pickle)."""
    cache_dir = Path(cache_dir)
    meta = json.loads((cache_dir / "meta.json").read_text())
    if meta.get("format") != CACHE_FORMAT:
        raise TunesmithError(f"{cache_dir}: audio cache format {meta.get('format')!r}")
    with np.load(cache_dir / "data.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    skipped = [(str(i), str(r)) for i, r in json.loads((cache_dir / "skipped.json").read_text())]
    return AudioData(meta["spec"], int(meta["sample_rate"]), list(meta["ids"]),
                     list(meta["splits"]), arrays["pcm"], arrays["offsets"], skipped, cache_dir,
                     rolls=arrays.get("rolls"), roll_offsets=arrays.get("roll_offsets"),
                     hop=int(meta["hop"]), roll_info=dict(meta["roll_info"]))


# ------------------------------------------------------------------------------ windows


class AudioWindows(Dataset):
    """Fixed windows of ``window`` samples over a split's pieces, in piece order.

    Item k is window ``k`` of the split: piece by piece, non-overlapping, starting at
    sample 0 of each piece (with the rolls of rendered data, ``window`` must be a multiple
    of the hop, so each window holds whole roll frames). The last, partial window of a piece is
    padded with silence and masked; ``windows_per_piece`` caps the windows a piece gives.
    """

    def __init__(self, data: AudioData, split: str, window: int,
                 windows_per_piece: int | None = None, corpus_id: int = 0,
                 rolls: bool = True):
        if window < 2:
            raise ConfigError(f"window must be >= 2 samples, got {window}")
        self.rolls = rolls and data.has_rolls
        if self.rolls and window % data.hop:
            raise ConfigError(f"window ({window}) must be a multiple of the roll hop "
                              f"({data.hop} samples) for {data.spec}")
        self.data, self.window, self.corpus_id = data, window, corpus_id
        self.items: list[tuple[int, int]] = []  # (piece index, start sample)
        for index in data.indices(split):
            length = int(data.offsets[index + 1] - data.offsets[index])
            count = max(1, -(-length // window))
            if windows_per_piece is not None:
                count = min(count, windows_per_piece)
            self.items += [(index, k * window) for k in range(count)]
        if not self.items:
            raise ConfigError(f"{data.spec} has no {split} pieces")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        index = key[0] if isinstance(key, tuple) else key  # EpochSampler yields (i, epoch)
        piece, start = self.items[index]
        audio = self.data.audio(piece)[start : start + self.window]
        out = np.zeros(self.window, np.float32)
        out[: len(audio)] = audio
        mask = np.zeros(self.window, bool)
        mask[: len(audio)] = True
        item = {"audio": torch.from_numpy(out), "mask": torch.from_numpy(mask),
                "corpus_id": torch.tensor(self.corpus_id)}
        if self.rolls:
            hop = self.data.hop
            frames = self.window // hop
            roll = self.data.roll(piece)[start // hop : start // hop + frames]
            padded = np.zeros((frames, self.data.roll_channels), np.float32)
            padded[: len(roll)] = roll
            item["roll"] = torch.from_numpy(padded)
        return item


def audio_loader(data: AudioData, split: str, window: int, batch_size: int, *,
                 shuffle: bool = True, seed: int = 0,
                 windows_per_piece: int | None = None, rolls: bool = True) -> DataLoader:
    """A DataLoader of window batches (with the rolls of rendered data unless ``rolls``
    is False); its :class:`EpochSampler` orders each epoch by (seed, epoch) alone, so the
    trainer's exact resume works as for symbolic data."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    dataset = AudioWindows(data, split, window, windows_per_piece, rolls=rolls)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size,
                      sampler=EpochSampler(len(dataset), shuffle=shuffle, seed=seed),
                      generator=generator)
