"""What the studio page does, without the web: models, pieces, and the operations on them.

:class:`Studio` holds the checkpoints it may sample from (pretrained names and run
folders, fixed when the server starts: the page never names a path), loads each model
once, and keeps the pieces it made in memory under random ids. Every operation returns a
JSON-ready dict describing one piece (its notes for the piano-roll, the URLs of its MIDI
and WAV files, its length) and writes its files under ``out_dir/pieces/<id>.{mid,wav}``,
never anywhere else: file names are the server's own random hex ids, an upload is stored
as ``out_dir/uploads/<id><suffix>`` with a suffix from a fixed list, and every path is
checked to lie inside ``out_dir`` before it is written or read.

Two browser tabs never share a piece: each request names the piece it works on and gets
a new one back. Model calls are serialised per model (a lock), so two tabs generating at
once each get their own result, one after the other.

Operations, by family:

* generate: every family (MidiNet over a chord progression, MusicVAE one phrase from the
  prior, the rest ``bars`` bars; a WaveNet trained with a pitch-histogram condition
  takes a key);
* continue: families that continue a prime (not MusicVAE or the GANs);
* regenerate bars: families on a time grid that continue a prime, by
  :func:`tunesmith.generation.infill.resample_range` (both sides kept); event-token
  Transformers by :func:`tunesmith.generation.infill.resample_token_range`; MusicVAE by
  :func:`tunesmith.generation.infill.vae_regenerate` (latent interpolation);
* evaluate: the piece's pitch-class histogram, voice activity and pitch-class JS
  divergence beside the corpus band (test split vs train), and the plagiarism search
  against the training split (:mod:`tunesmith.evaluation`).
"""

from __future__ import annotations

import math
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.errors import ConfigError, MusicFileError, TunesmithError
from tunesmith.generation.generate import (
    DEFAULT_QPM,
    array_to_score,
    check_length,
    file_to_array,
    grid_facts,
    length_in_steps,
)
from tunesmith.generation.infill import (
    DEFAULT_CANDIDATES,
    can_score,
    continue_array,
    resample_range,
    resample_token_range,
    vae_regenerate,
)
from tunesmith.models.sampling import SamplingControls
from tunesmith.representations.adapter import get_representation
from tunesmith.training.checkpoint import checkpoint_data_info

#: the most bytes an uploaded primer may have (a long MIDI file is ~100 KB)
MAX_UPLOAD_BYTES = 2_000_000
#: suffixes an upload may have (the loader's formats); the stored file keeps only this
UPLOAD_SUFFIXES = (".mid", ".midi", ".abc", ".xml", ".mxl", ".musicxml", ".krn")
#: the longest piece the page makes or continues, in bars
MAX_STUDIO_BARS = 64
#: pieces kept in memory (oldest dropped first; their files stay on disk)
MAX_PIECES = 200
#: extra audio kept after the last bar, for the notes' release
AUDIO_TAIL_SECONDS = 1.0
PIECE_ID = re.compile(r"^[0-9a-f]{32}$")
FILE_KINDS = {"mid": "audio/midi", "wav": "audio/wav"}


class StudioError(TunesmithError):
    """A request the studio refuses; the message is shown on the page."""


@dataclass
class ModelEntry:
    """A checkpoint the page offers; the model is loaded on first use."""

    key: str  # what the page sends back: "pretrained:NAME" or the run folder's name
    spec: str  # what load_checkpoint takes
    model: Any = None  # a GenerativeModel once loaded
    meta: dict = field(default_factory=dict)  # its checkpoint metadata once loaded
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Piece:
    id: str
    model_key: str
    array: np.ndarray  # in the checkpoint's representation
    note: str = ""  # what made it, for the page


def _new_id() -> str:
    return secrets.token_hex(16)


def _number(params: dict, name: str, default, kind=float, low=None, high=None):
    """``params[name]`` as ``kind`` within [low, high], else a one-line StudioError."""
    value = params.get(name, default)
    if value is None or value == "":
        return default
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise StudioError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise StudioError(f"{name} must be finite, got {value}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise StudioError(f"{name} must be between {low} and {high}, got {value}")
    return value


class Studio:
    """Models, pieces and operations of one studio server."""

    def __init__(self, checkpoints: list[str], out_dir: str | Path,
                 max_upload_bytes: int = MAX_UPLOAD_BYTES, soundfont: str | None = None):
        from tunesmith.training.checkpoint import (
            PRETRAINED_PREFIX,
            read_checkpoint_config,
            resolve_checkpoint,
        )

        if not checkpoints:
            raise ConfigError("the studio needs at least one checkpoint")
        self.out_dir = Path(out_dir).resolve()
        (self.out_dir / "pieces").mkdir(parents=True, exist_ok=True)
        (self.out_dir / "uploads").mkdir(parents=True, exist_ok=True)
        self.max_upload_bytes = int(max_upload_bytes)
        self.soundfont = soundfont
        self.models: dict[str, ModelEntry] = {}
        for spec in checkpoints:
            read_checkpoint_config(spec)  # a one-line error for a wrong name or folder
            folder = resolve_checkpoint(spec)
            key = spec if str(spec).startswith(PRETRAINED_PREFIX) else Path(folder).name
            if key in self.models:
                key = f"{key} ({len(self.models) + 1})"
            self.models[key] = ModelEntry(key, str(spec))
        self.pieces: OrderedDict[str, Piece] = OrderedDict()
        self._pieces_lock = threading.Lock()
        self._reference: dict[tuple, tuple] = {}
        self._reference_lock = threading.Lock()

    # ---- models ----------------------------------------------------------------------
    def entry(self, key) -> ModelEntry:
        if key not in self.models:
            raise StudioError(f"unknown model {key!r}; this studio serves "
                              f"{', '.join(self.models)}")
        entry = self.models[key]
        if entry.model is None:
            from tunesmith.training.checkpoint import load_checkpoint

            with entry.lock:
                if entry.model is None:
                    entry.model, entry.meta = load_checkpoint(entry.spec)
        return entry

    def describe(self, key: str) -> dict:
        """What the page shows about a model: family, corpus, tracks, controls."""
        from tunesmith.models.gan import GANModel
        from tunesmith.models.midinet import MidiNet
        from tunesmith.models.music_vae import MusicVAE
        from tunesmith.models.transformer_blocks import TokenTransformer

        entry = self.entry(key)
        model, meta = entry.model, entry.meta
        info = meta.get("data_info") or {}
        facts = grid_facts(meta)
        corpus = (meta.get("corpus") or {}).get("corpus") if isinstance(
            meta.get("corpus"), dict) else meta.get("corpus")
        tracks = info.get("track_names") or (repr_tracks(meta) or ["Melody"])
        controls = []
        if getattr(model.config, "pitch_histogram_cond", False):
            controls.append("key")
        if isinstance(model, MidiNet):
            controls.append("chords")
        regenerate = None
        if isinstance(model, MusicVAE) and meta.get("representation") == "drums":
            regenerate = None  # GrooVAE: its own infill (tunesmith groove infill), not here
        elif isinstance(model, MusicVAE):
            regenerate, controls = "interpolation", [*controls, "amount"]
        elif isinstance(model, TokenTransformer):
            regenerate = "conditional"  # cut in the decoded music (resample_token_range)
        elif facts["steps_per_bar"] and not isinstance(model, GANModel):
            regenerate = "conditional" if can_score(model) else "left-context"
        fixed = getattr(model.config, "steps", None)
        fixed_bars = fixed / facts["steps_per_bar"] if isinstance(fixed, int) and \
            facts["steps_per_bar"] else None
        return {
            "key": key,
            "family": meta.get("model_name") or meta.get("family"),
            "representation": meta.get("representation"),
            "corpus": corpus,
            "tracks": list(tracks),
            "parameters": meta.get("n_parameters"),
            "steps_per_bar": facts["steps_per_bar"],
            "qpm": facts["qpm"],
            "controls": controls,
            "can_continue": not isinstance(model, MusicVAE | GANModel),
            "regenerate": regenerate,
            "fixed_bars": fixed_bars,
            # the controls the model is drawn with unless the page changes them (its card's)
            "sampling": {"temperature": 1.0, "top_p": 1.0, **self.sampling(entry)},
        }

    def list_models(self) -> list[dict]:
        return [self.describe(key) for key in self.models]

    # ---- pieces ----------------------------------------------------------------------
    def piece(self, piece_id) -> Piece:
        if not isinstance(piece_id, str) or not PIECE_ID.match(piece_id):
            raise StudioError(f"not a piece id: {str(piece_id)[:40]!r}")
        with self._pieces_lock:
            piece = self.pieces.get(piece_id)
        if piece is None:
            raise StudioError(f"no piece {piece_id} in this studio (it may have been dropped; "
                              "generate again)")
        return piece

    def file_path(self, piece_id: str, kind: str) -> Path:
        """The file of a piece (``kind`` mid or wav), checked to lie in the output folder."""
        if kind not in FILE_KINDS:
            raise StudioError(f"no such file kind {kind!r}")
        if not isinstance(piece_id, str) or not PIECE_ID.match(piece_id):
            raise StudioError(f"not a piece id: {str(piece_id)[:40]!r}")
        return self._inside(self.out_dir / "pieces" / f"{piece_id}.{kind}")

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if not resolved.is_relative_to(self.out_dir):
            raise StudioError(f"{path.name}: outside the studio's folder")
        return resolved

    def _store(self, model_key: str, array: np.ndarray, note: str) -> dict:
        from tunesmith.music import save_midi
        from tunesmith.render.audio import SAMPLE_RATE, synthesize, write_wav

        entry = self.models[model_key]
        piece = Piece(_new_id(), model_key, np.asarray(array), note)
        score = array_to_score(piece.array, entry.meta)
        seconds = self.seconds(entry.meta, piece.array, score)
        save_midi(score, self.file_path(piece.id, "mid"))
        audio = synthesize(score, self.soundfont)  # (2, samples)
        wanted = round(seconds * SAMPLE_RATE)
        if audio.shape[1] < wanted:  # silence to the last bar line: the player shows the bars
            audio = np.pad(audio, ((0, 0), (0, wanted - audio.shape[1])))
        audio = audio[:, : wanted + round(AUDIO_TAIL_SECONDS * SAMPLE_RATE)]
        write_wav(self.file_path(piece.id, "wav"), audio, SAMPLE_RATE)
        with self._pieces_lock:
            self.pieces[piece.id] = piece
            while len(self.pieces) > MAX_PIECES:
                self.pieces.popitem(last=False)
        return self.view(piece, score, seconds, audio.shape[1] / SAMPLE_RATE)

    @staticmethod
    def seconds(meta: dict, array: np.ndarray, score) -> float:
        """The piece's length in seconds: its steps on the grid (tokens: its last note)."""
        facts = grid_facts(meta)
        if facts["steps_per_quarter"]:
            return len(array) / facts["steps_per_quarter"] * 60 / facts["qpm"]
        end = score.end() / score.ticks_per_quarter if score.note_num() else 0
        return end * 60 / (facts["qpm"] or DEFAULT_QPM)

    def view(self, piece: Piece, score, seconds: float, audio_seconds: float) -> dict:
        """The JSON the page draws: notes in quarters, tracks, bars, file URLs."""
        meta = self.models[piece.model_key].meta
        facts = grid_facts(meta)
        tpq = score.ticks_per_quarter
        tracks, notes = [], []
        for index, track in enumerate(score.tracks):
            tracks.append({"name": track.name or f"Track {index + 1}",
                           "program": int(track.program), "drum": bool(track.is_drum)})
            for note in track.notes:
                notes.append([index, int(note.pitch), note.time / tpq, note.duration / tpq])
        quarters_per_bar = facts["steps_per_bar"] / facts["steps_per_quarter"] \
            if facts["steps_per_quarter"] else 4.0
        quarters = seconds * (facts["qpm"] or DEFAULT_QPM) / 60
        return {
            "id": piece.id,
            "model": piece.model_key,
            "note": piece.note,
            "tracks": tracks,
            "notes": notes,
            "quarters": quarters,
            "quarters_per_bar": quarters_per_bar,
            "bars": quarters / quarters_per_bar,
            "seconds": seconds,
            "audio_seconds": audio_seconds,
            "midi": f"/api/file/{piece.id}.mid",
            "wav": f"/api/file/{piece.id}.wav",
        }

    # ---- controls ----------------------------------------------------------------------
    @staticmethod
    def sampling(entry: ModelEntry) -> dict:
        """The model's own sampling defaults (a shipped model's card), {} for none."""
        from tunesmith.training.checkpoint import sampling_defaults

        return sampling_defaults(entry.spec)

    def controls(self, params: dict, entry: ModelEntry) -> SamplingControls:
        """The page's temperature, top-p and seed over the model's own defaults (its card's
        sampling: also its note limits, which the page does not show)."""
        defaults = self.sampling(entry)
        seed = params.get("seed")
        seed = None if seed in (None, "") else _number(params, "seed", None, int, 0, 2**31 - 1)
        try:
            return SamplingControls(**{
                **defaults,
                "temperature": _number(params, "temperature", defaults.get("temperature", 1.0),
                                       float, 0.01, 10.0),
                "top_p": _number(params, "top_p", defaults.get("top_p", 1.0), float, 0.01, 1.0),
                "seed": seed,
            })
        except ConfigError as exc:
            raise StudioError(str(exc)) from None

    @staticmethod
    def key_condition(entry: ModelEntry, params: dict):
        key = (params.get("key") or "").strip()
        if not key:
            return None
        if not getattr(entry.model.config, "pitch_histogram_cond", False):
            raise StudioError(f"{entry.key} was not trained with a key (pitch-histogram) "
                              "condition; leave the key empty")
        return key

    # ---- operations --------------------------------------------------------------------
    def generate(self, params: dict) -> dict:
        from tunesmith.models.gan import GANModel
        from tunesmith.models.midinet import MidiNet, generate_with_chords
        from tunesmith.models.music_vae import MusicVAE, sample_prior

        entry = self.entry(params.get("model"))
        model, meta = entry.model, entry.meta
        bars = _number(params, "bars", 8, float, 1, MAX_STUDIO_BARS)
        check_length(bars=bars)
        controls = self.controls(params, entry)
        with entry.lock:
            if isinstance(model, MusicVAE):
                array = sample_prior(model, 1, controls)[0].cpu().numpy()
                note = f"a {model.config.steps}-step phrase from the prior"
            elif isinstance(model, MidiNet):
                chords = (params.get("chords") or "C G Am F").strip()
                controls.threshold = 0.0  # MidiNet's own binarisation: the top pitch a step
                array = generate_with_chords(model, chords, int(bars), 1, controls)[0].numpy()
                note = f"{int(bars)} bars over {chords}"
            elif isinstance(model, GANModel):
                controls.threshold = 0.5
                steps = int(bars) * int(model.config.steps_per_bar)  # type: ignore[attr-defined]
                array = model.generate(1, steps, controls)[0].cpu().numpy()
                note = f"{int(bars)} bars"
            else:
                steps = length_in_steps(meta, bars=bars)
                array = continue_array(model, meta, empty_array(meta), steps, controls,
                                       self.key_condition(entry, params))
                note = f"{bars:g} bars"
        return self._store(entry.key, array, note)

    def continue_piece(self, params: dict) -> dict:
        piece = self.piece(params.get("piece"))
        entry = self.entry(piece.model_key)
        info = self.describe(entry.key)
        if not info["can_continue"]:
            raise StudioError(f"{info['family']} does not continue a piece; generate or "
                              "regenerate bars instead")
        bars = _number(params, "bars", 4, float, 1, MAX_STUDIO_BARS)
        steps = length_in_steps(entry.meta, bars=bars)
        per_bar = info["steps_per_bar"]
        if per_bar and (len(piece.array) + steps) / per_bar > MAX_STUDIO_BARS:
            raise StudioError(f"the piece would be longer than {MAX_STUDIO_BARS} bars")
        with entry.lock:
            array = continue_array(entry.model, entry.meta, piece.array, steps,
                                   self.controls(params, entry),
                                   self.key_condition(entry, params))
        return self._store(entry.key, array,
                           f"continued by {bars:g} bar{'' if bars == 1 else 's'}")

    def regenerate(self, params: dict) -> dict:
        from tunesmith.models.music_vae import MusicVAE

        piece = self.piece(params.get("piece"))
        entry = self.entry(piece.model_key)
        info = self.describe(entry.key)
        if info["regenerate"] is None:
            why = ("regenerate drum voices with `tunesmith groove infill`"
                   if info["representation"] == "drums"
                   else "it has no time grid or does not continue a prime")
            raise StudioError(f"{info['family']} ({info['representation']}) cannot regenerate "
                              f"bars here: {why}")
        per_bar = info["steps_per_bar"]
        if per_bar:
            n_bars = math.ceil(len(piece.array) / per_bar)
        else:  # event tokens: 4/4 bars of the decoded music
            score = array_to_score(piece.array, entry.meta)
            n_bars = max(1, math.ceil(self.seconds(entry.meta, piece.array, score)
                                      * info["qpm"] / 60 / 4))
        first = _number(params, "from_bar", 1, int, 1, n_bars)
        last = _number(params, "to_bar", first, int, first, n_bars)
        controls = self.controls(params, entry)
        candidates = _number(params, "candidates", DEFAULT_CANDIDATES, int, 1, 64)
        if not per_bar:
            with entry.lock:
                array, facts = resample_token_range(entry.model, entry.meta, piece.array,
                                                    (first - 1) * 4.0, last * 4.0, controls,
                                                    candidates)
            return self._store(entry.key, array, _resampled_note(first, last, facts))
        start, end = (first - 1) * per_bar, min(last * per_bar, len(piece.array))
        with entry.lock:
            if isinstance(entry.model, MusicVAE):
                amount = _number(params, "amount", 0.5, float, 0.0, 1.0)
                array = vae_regenerate(entry.model, piece.array, start, end, amount, controls)
                note = f"bars {first}-{last} interpolated {amount:g} of the way to a new phrase"
            else:
                array, facts = resample_range(entry.model, entry.meta, piece.array, start, end,
                                              controls, candidates,
                                              self.key_condition(entry, params))
                note = _resampled_note(first, last, facts)
        return self._store(entry.key, array, note)

    def upload(self, model_key, filename: str, data: bytes) -> dict:
        """A primer file -> a piece in the model's representation (the loader's errors
        name the uploaded file's own name)."""
        entry = self.entry(model_key)
        name = Path(str(filename or "upload").replace("\\", "/")).name[:120] or "upload"
        if len(data) > self.max_upload_bytes:
            raise StudioError(f"{name}: the file is {len(data):,} bytes, uploads are limited to "
                              f"{self.max_upload_bytes:,}")
        suffix = Path(name).suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise StudioError(f"{name}: not a MIDI, ABC, MusicXML or kern file "
                              f"(expected one of {', '.join(UPLOAD_SUFFIXES)})")
        if not data:
            raise StudioError(f"{name}: the file is empty")
        stored = self._inside(self.out_dir / "uploads" / f"{_new_id()}{suffix}")
        stored.write_bytes(data)
        try:
            array = file_to_array(stored, entry.meta)
        except (MusicFileError, ConfigError) as exc:
            reason = getattr(exc, "reason", None) or str(exc).replace(str(stored), name)
            raise StudioError(f"{name}: {reason}") from None
        finally:
            stored.unlink(missing_ok=True)
        if len(array) == 0:
            raise StudioError(f"{name}: holds no notes in the model's range")
        per_bar = grid_facts(entry.meta)["steps_per_bar"]
        note = f"primer {name}"
        if per_bar and len(array) > MAX_STUDIO_BARS * per_bar:
            array = array[: MAX_STUDIO_BARS * per_bar]
            note += f" (first {MAX_STUDIO_BARS} bars)"
        return self._store(entry.key, array, note)

    # ---- evaluation --------------------------------------------------------------------
    def reference(self, corpus: str, path: str | None = None) -> tuple:
        """(train summary, test summary, plagiarism index) of a corpus (its files at
        ``path`` when the checkpoint recorded one), computed once."""
        from tunesmith.evaluation.plagiarism import TrainingIndex
        from tunesmith.evaluation.reference import reference_summary

        with self._reference_lock:
            if (corpus, path) not in self._reference:
                # one worker: the pool would fork this multi-threaded server process
                train, _, _ = reference_summary(corpus, "train", path, workers=1,
                                                progress=False)
                test, _, _ = reference_summary(corpus, "test", path, workers=1, progress=False)
                self._reference[corpus, path] = (train, test, TrainingIndex(train.events))
            return self._reference[corpus, path]

    def evaluate(self, params: dict) -> dict:
        from tunesmith.evaluation.compare import distance_band, mean_band
        from tunesmith.evaluation.metrics import pitch_class_histogram, track_labels, voice_activity
        from tunesmith.evaluation.plagiarism import note_events, search

        piece = self.piece(params.get("piece"))
        entry = self.entry(piece.model_key)
        corpus = self.describe(entry.key)["corpus"]
        if not corpus:
            raise StudioError(f"{entry.key} does not say which corpus it was trained on")
        recorded = entry.meta.get("corpus")
        path = recorded.get("path") if isinstance(recorded, dict) else None
        train, test, index = self.reference(corpus, path)
        score = array_to_score(piece.array, entry.meta)
        counts = pitch_class_histogram(score, normalize=False)
        histogram = pitch_class_histogram(score)
        train_pc, test_pc = (_normalised(s.pitch_class_counts.sum(0)) for s in (train, test))
        js = distance_band(counts[None], train.pitch_class_counts, test.pitch_class_counts)
        activity = []
        for label, value in zip(track_labels(score), voice_activity(score), strict=True):
            row = mean_band([value], _track_column(train, label), _track_column(test, label))
            activity.append({"track": label, **_clean(row)})
        plag = search({"piece": note_events(score)}, index, train.names)[0].to_dict()
        return {
            "piece": piece.id,
            "corpus": corpus,
            "train_pieces": len(train),
            "test_pieces": len(test),
            "pitch_classes": {"piece": histogram.tolist(), "train": train_pc.tolist(),
                              "test": test_pc.tolist()},
            "pitch_class_js": _clean(js),
            "voice_activity": activity,
            "plagiarism": _clean(plag),
        }


def _resampled_note(first: int, last: int, facts: dict) -> str:
    if facts["candidates"] > 1:
        return (f"bars {first}-{last} resampled given both sides ({facts['candidates']} "
                f"candidates, {facts['effective_candidates']:.1f} effective)")
    return f"bars {first}-{last} resampled given the bars before them"


def empty_array(meta: dict) -> np.ndarray:
    """A zero-step array of the checkpoint's representation (nothing to continue)."""
    info = checkpoint_data_info(meta)
    if get_representation(meta.get("representation")).frames:
        return np.zeros((0, info.keys if info is not None else 0), np.float32)
    return np.zeros((0,), np.int64)


def repr_tracks(meta: dict) -> list[str]:
    options = meta.get("repr_config") or {}
    return list(options.get("track_names") or [])


def _normalised(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else counts


def _track_column(summary, label: str) -> list[float]:
    values = []
    for names, activity in zip(summary.tracks, summary.activity, strict=True):
        values += [v for n, v in zip(names, activity, strict=True) if n == label]
    return values


def _clean(row: dict) -> dict:
    """JSON has no NaN: None instead."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in row.items()}
