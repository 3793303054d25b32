"""Generation from a checkpoint: length in bars or seconds, priming, conditioning, outputs.

:func:`generate_from_checkpoint` rebuilds a model from its checkpoint folder (safetensors +
JSON, :func:`tunesmith.training.checkpoint.load_checkpoint`), converts the requested length
to the representation's steps with the data's grid (steps per quarter, 4/4 bars unless the
data says otherwise, the representation's tempo), encodes an optional primer file with the
checkpoint's own representation config (the primer stays unchanged at the start), samples,
decodes each sample to a Score and writes ``sample_N.mid`` (+ ``.wav``, ``.png``).

The helpers that turn music files into a checkpoint's arrays and back
(:func:`file_to_array`, :func:`array_to_score`, :func:`write_outputs`) are shared with the
``tunesmith vae`` and ``tunesmith gan`` commands.

A piece that decodes to no note at all is still written (what was asked for), but an
:class:`EmptyPieceWarning` names its file and the likely cause (a threshold above every
note's probability, the temperature, a model trained too briefly); the CLI shows these
warnings and counts the empty pieces in its summary.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from tunesmith.errors import ConfigError, MusicFileError
from tunesmith.models.heads import head_reads_onsets
from tunesmith.models.sampling import SamplingControls
from tunesmith.music import keys, load, save_midi
from tunesmith.render import render_png, render_wav
from tunesmith.representations.adapter import RepresentationAdapter, get_representation
from tunesmith.training.checkpoint import (
    checkpoint_data_info,
    load_checkpoint,
    sampling_defaults,
)

#: tempo (quarter notes per minute) of representations that store none
DEFAULT_QPM = 120.0
#: event tokens budgeted per 4/4 bar when a length is asked of a token model (REMI-like
#: streams of 4-voice music use ~30-60 tokens a bar); the decoded piece is cut to length
EVENT_TOKENS_PER_BAR = 64
#: the longest piece generate() writes: two hours, the longest piece the loader reads
#: (in bars: two hours of 4/4 at 120 quarters a minute)
MAX_SECONDS = 2 * 3600
MAX_BARS = 3600
#: the most pieces in one call, and the most memory their sampled arrays may take
MAX_PIECES = 1000
MAX_SAMPLE_BYTES = 4 * 2**30


# ---------------------------------------------------------------------- checkpoint facts


def repr_options(meta: dict) -> dict:
    """The representation options a checkpoint's data was prepared with (a copy)."""
    if meta.get("repr_config"):
        return dict(meta["repr_config"])

    info = checkpoint_data_info(meta)
    return dict(info.repr_config) if info else {}


def grid_facts(meta: dict) -> dict:
    """Steps per quarter, steps per bar and tempo of a checkpoint's representation.

    Grids come from the data info (4/4 unless the data recorded its most common bar);
    event tokens have no grid (``steps_per_quarter`` is None).
    """
    info = checkpoint_data_info(meta)
    options = repr_options(meta)
    if not get_representation(meta.get("representation")).grid:
        return {"steps_per_quarter": None, "steps_per_bar": None, "qpm": DEFAULT_QPM}
    if info is not None:
        per_quarter, per_bar = info.steps_per_quarter, info.steps_per_bar
    else:  # a checkpoint without data: the representation's options
        per_quarter = int(options.get("resolution") or options.get("steps_per_quarter") or 4)
        per_bar = 4 * per_quarter
    qpm = float(options.get("tempo") or DEFAULT_QPM)
    return {"steps_per_quarter": per_quarter, "steps_per_bar": per_bar, "qpm": qpm}


#: bars a generated piece has when no length is given
DEFAULT_BARS = 8


def length_in_steps(meta: dict, bars: float | None = None, seconds: float | None = None,
                    default_bars: float = DEFAULT_BARS) -> int:
    """Steps (or event tokens) of ``bars`` bars or ``seconds`` seconds of a checkpoint's music."""
    check_length(bars, seconds)
    facts = grid_facts(meta)
    if facts["steps_per_quarter"] is None:  # event tokens: a budget per bar
        quarters = seconds * facts["qpm"] / 60 if seconds is not None else \
            4 * (bars if bars is not None else default_bars)
        return max(2, math.ceil(quarters / 4 * EVENT_TOKENS_PER_BAR))
    if seconds is not None:
        return max(1, math.ceil(seconds * facts["qpm"] / 60 * facts["steps_per_quarter"]))
    return max(1, math.ceil((bars if bars is not None else default_bars) * facts["steps_per_bar"]))


def check_length(bars: float | None = None, seconds: float | None = None,
                 n: int | None = None) -> None:
    """Refuse a length or a number of pieces that is not positive, not finite or beyond
    :data:`MAX_BARS` / :data:`MAX_SECONDS` / :data:`MAX_PIECES`."""
    if bars is not None and seconds is not None:
        raise ConfigError("give a length in bars or in seconds, not both")
    if bars is not None and not 0 < bars <= MAX_BARS:  # NaN fails too
        raise ConfigError(f"bars must be > 0 and at most {MAX_BARS}, got {bars}")
    if seconds is not None and not 0 < seconds <= MAX_SECONDS:
        raise ConfigError(f"seconds must be > 0 and at most {MAX_SECONDS} (two hours), "
                          f"got {seconds}")
    if n is not None and not 1 <= n <= MAX_PIECES:
        raise ConfigError(f"n must be >= 1 and at most {MAX_PIECES}, got {n}")


def check_sample_size(meta: dict, n: int, steps: int) -> None:
    """Refuse a request whose sampled arrays would exceed :data:`MAX_SAMPLE_BYTES`."""
    info = checkpoint_data_info(meta)
    # float32 frames of K keys, or one int64 event/token
    frames = get_representation(meta.get("representation")).frames
    per_step = 4 * (info.keys if info is not None else 1) if frames else 8
    needed = n * steps * per_step
    if needed > MAX_SAMPLE_BYTES:
        raise ConfigError(
            f"{n} pieces of {steps} steps need {needed / 2**30:.1f} GiB of samples (at most "
            f"{MAX_SAMPLE_BYTES // 2**30} GiB); ask for fewer pieces or a shorter length")


# ---------------------------------------------------------------------- files <-> arrays


def codec(meta: dict) -> RepresentationAdapter:
    """The representation adapter of a checkpoint's data, rebuilt from its options."""
    return get_representation(meta.get("representation"))(repr_options(meta))


def file_to_array(path: str | Path, meta: dict) -> np.ndarray:
    """A music file in the checkpoint's representation, ready to be continued
    (:meth:`~tunesmith.representations.adapter.RepresentationAdapter.primer`).

    -> melody ``(T,)`` events, piano-roll ``(T, K)`` frames (K = tracks × pitches,
    track-major; ``(T, 2K)`` frames ‖ onsets for a model whose head models onsets),
    event ``(n,)`` tokens (without the closing EOS, ready to continue) or drums
    ``(T, 27)``.
    """
    path = Path(path)
    return codec(meta).primer(load(path), path, with_onsets=reads_onsets(meta))


def array_to_score(array, meta: dict):
    """A generated melody ``(T,)``, piano-roll ``(T, K)``, token ``(n,)`` or drums
    ``(T, 27)`` array -> Score, with the data's track names, programs and tempo. A model
    whose head models onsets gives ``(T, 2K)`` frames ‖ onsets: a note starts at each
    onset, so repeated notes stay repeated."""
    return codec(meta).decode(np.asarray(array), with_onsets=reads_onsets(meta))


def reads_onsets(meta: dict) -> bool:
    """Whether a piano-roll checkpoint's model reads and writes frames ‖ onsets (T, 2K)."""
    return head_reads_onsets(str((meta.get("model_config") or {}).get("head", "")))


def write_score(score, path: Path, wav: bool = False, png: bool = False,
                soundfont: str | Path | None = None, title: str | None = None) -> list[Path]:
    """Write ``score`` as MIDI at ``path`` (+ ``.wav``, ``.png`` beside it); returns the paths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [save_midi(score, path)]
    if wav:
        written.append(render_wav(score, path.with_suffix(".wav"), soundfont))
    if png:
        written.append(render_png(score, path.with_suffix(".png"), title=title or path.stem))
    return written


class GenerationWarning(UserWarning):
    """What a user should know about the pieces generated (``tunesmith generate`` prints
    each as a warning line)."""


class EmptyPieceWarning(GenerationWarning):
    """A generated piece holds no notes; the message names its file and the likely cause."""


class UnlearnedOpeningWarning(GenerationWarning):
    """An unprimed sample from a checkpoint that never learned a piece's first frame."""


def learned_opening(meta: dict) -> bool:
    """Whether a checkpoint was trained on the first frame of its pieces: False for a
    ``bench nll`` run (the protocol's frames 2..T) without ``train_first_frame``."""
    training = meta.get("training") or {}
    settings = training.get("settings") or {}
    return not (settings.get("objective") == "frame_nll"
                and not settings.get("train_first_frame", False))


def empty_piece_cause(meta: dict, controls: SamplingControls | None = None) -> str:
    """The likely reasons a checkpoint's sample came out silent, for a warning."""
    causes = []
    frames = get_representation(meta.get("representation")).frames  # drawn key by key
    threshold = controls.threshold if controls is not None else None
    if frames and threshold is not None and threshold > 0:
        causes.append(f"the threshold {threshold} is above every note's probability "
                      "(try a lower threshold)")
    elif not frames:
        causes.append("the model ended the piece or drew only rests before any note")
    if controls is not None and controls.temperature != 1:
        causes.append(f"temperature {controls.temperature:g} (try 1.0)")
    training = meta.get("training") or {}
    steps = training.get("global_step", (training.get("run") or {}).get("global_step"))
    trained = f", {steps} training steps" if isinstance(steps, int) else ""
    causes.append(f"the model may be undertrained{trained}")
    return "; ".join(causes)


def warn_if_empty(score, path: Path, meta: dict,
                  controls: SamplingControls | None = None) -> bool:
    """Warn (:class:`EmptyPieceWarning`) when ``score``, written at ``path``, has no
    notes; returns whether it was empty."""
    if score.note_num() > 0:
        return False
    warnings.warn(EmptyPieceWarning(f"{path}: the generated piece holds no notes; "
                                    f"{empty_piece_cause(meta, controls)}"), stacklevel=2)
    return True


def write_outputs(arrays, meta: dict, out_dir: Path, stem: str, wav: bool, png: bool,
                  soundfont: str | Path | None = None,
                  controls: SamplingControls | None = None) -> list[Path]:
    """Write each array as ``out_dir/stem-ii.mid`` (+ .wav / .png); returns the MIDI paths.

    A piece without notes is written too, with an :class:`EmptyPieceWarning` (the
    sampling ``controls`` help name its cause)."""
    out_dir = Path(out_dir)
    paths = []
    for i, array in enumerate(arrays):
        score = array_to_score(array, meta)
        paths.append(write_score(score, out_dir / f"{stem}-{i:02d}.mid", wav, png, soundfont)[0])
        warn_if_empty(score, paths[-1], meta, controls)
    return paths


def crop_score(score, quarters: float):
    """Notes that start before ``quarters`` quarter notes, cut to end there."""
    end = round(quarters * score.ticks_per_quarter)
    for track in score.tracks:
        kept = [n for n in track.notes if n.time < end]
        for note in kept:
            note.duration = max(1, min(note.duration, end - note.time))
        track.notes.clear()
        track.notes.extend(kept)
    return score


# ---------------------------------------------------------------------- generation


@contextmanager
def sampling_threads(n: int = 1):
    """Run step-by-step sampling on ``n`` torch threads (one is fastest for small steps)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def prime_tensor(array: np.ndarray, representation: str, n: int) -> torch.Tensor:
    """A primer array -> the batch-shaped prime the models take: (n, P, ...), long for
    ids, float for frames and drums."""
    dtype = torch.long if get_representation(representation).integer_data else torch.float32
    tensor = torch.as_tensor(np.asarray(array), dtype=dtype)[None]  # (1, P, ...)
    return tensor.expand(n, *tensor.shape[1:]).clone()


def pitch_histogram_from_spec(spec: str) -> torch.Tensor:
    """For ``--pitch-histogram``: a key name ("C major": its Aarden profile,
    :func:`tunesmith.music.keys.key_profile`) or a music file's path (its duration-weighted
    pitch-class histogram, each note at least one tick; uniform without pitched notes)
    -> (12,) float32."""
    if Path(spec).suffix and Path(spec).exists():
        histogram = keys.pitch_class_histogram(load(spec), min_duration=1)
        if not histogram.any():
            return torch.full((12,), 1 / 12)
        return torch.tensor(histogram, dtype=torch.float32)
    return torch.tensor(keys.key_profile(spec), dtype=torch.float32)


def condition_tensors(model, pitch_histogram, n: int) -> dict | None:
    """The ``condition`` dict of a pitch-histogram request for ``n`` pieces (None: none)."""
    if pitch_histogram is None:
        return None
    if not getattr(model.config, "pitch_histogram_cond", False):
        raise ConfigError(
            f"this {type(model).__name__} was not trained with a pitch-histogram condition "
            "(model option pitch_histogram_cond=true); drop --pitch-histogram"
        )
    if isinstance(pitch_histogram, (str, Path)):
        histogram = pitch_histogram_from_spec(str(pitch_histogram))
    else:
        histogram = torch.as_tensor(pitch_histogram, dtype=torch.float32)
    if histogram.shape != (12,):
        raise ConfigError(f"a pitch histogram has 12 bins, got shape {tuple(histogram.shape)}")
    return {"pitch_histogram": histogram[None].expand(n, -1).clone()}  # (n, 12)


def sample_arrays(
    model, meta: dict, n: int, steps: int, controls: SamplingControls,
    prime: str | Path | None = None, pitch_histogram=None,
) -> tuple[list[np.ndarray], int]:
    """Sample ``n`` arrays of ``steps`` new steps after an optional primer file.

    Returns the arrays (primer + continuation) and the primer's length in steps.
    """
    representation = meta.get("representation") or type(model).representation
    primed, n_prime = None, 0
    if prime is not None:
        array = file_to_array(prime, meta)
        n_prime = int(array.shape[0])
        if n_prime == 0:
            raise MusicFileError(prime, "holds no notes in the model's range")
        primed = prime_tensor(array, representation, n)
    condition = condition_tensors(model, pitch_histogram, n)
    if controls.seed is not None:
        torch.manual_seed(int(controls.seed))  # families drawing from the global RNG too
    with sampling_threads(1), torch.no_grad():
        out = model.generate(n, n_prime + steps, controls, prime=primed,
                             condition=condition)
    out = out.detach().cpu().numpy()
    return [out[i] for i in range(out.shape[0])], n_prime


def generate_from_checkpoint(
    checkpoint: str | Path,
    n: int = 4,
    bars: float | None = None,
    seconds: float | None = None,
    controls: SamplingControls | None = None,
    prime: str | Path | None = None,
    pitch_histogram=None,
    out_dir: str | Path = "generated",
    wav: bool = True,
    png: bool = True,
    soundfont: str | Path | None = None,
    seed: int | None = None,
    stem: str = "sample",
) -> list[Path]:
    """Sample ``n`` pieces from a checkpoint folder and write them; returns the MIDI paths.

    Args:
        checkpoint: a run folder (``model.safetensors`` + ``config.json``).
        n: pieces to write, ``out_dir/{stem}_1.mid`` ... ``{stem}_n.mid``.
        bars, seconds: length of the new music after the primer (default 8 bars); bars
            are 4/4 unless the data recorded another bar, seconds use the
            representation's tempo. Token models get a budget of
            :data:`EVENT_TOKENS_PER_BAR` tokens a bar and are cut to the length.
        controls: :class:`SamplingControls` (temperature, top-k/p, threshold, note limits);
            None: the checkpoint's own defaults (a shipped model's card, ``sampling``;
            :func:`~tunesmith.training.checkpoint.sampling_defaults`), else the class's.
        prime: a MIDI/ABC/MusicXML file whose encoding starts every piece, unchanged.
        pitch_histogram: a key name ("C major"), a music file, or 12 weights; only for
            models trained with a pitch-histogram condition (WaveNet
            ``pitch_histogram_cond``).
        wav, png: also render audio (SoundFont ``soundfont``, default TimGM6mb) and a
            piano-roll picture beside each MIDI file.
        seed: overrides ``controls.seed``.

    A piece that holds no notes is written too, with an :class:`EmptyPieceWarning`.
    """
    check_length(bars, seconds, n)
    controls = controls or SamplingControls(**sampling_defaults(checkpoint))
    if seed is not None:
        controls = SamplingControls(**{**controls.to_dict(), "seed": int(seed)})
    model, meta = load_checkpoint(checkpoint)
    if prime is None and not learned_opening(meta):
        warnings.warn(UnlearnedOpeningWarning(
            f"{checkpoint}: trained on the benchmark protocol's frames 2..T, it never learned "
            "how a piece opens, so an unprimed sample may start in silence; give --prime "
            f"FILE, fine-tune it on whole pieces (tunesmith train --init-from {checkpoint} "
            "--set train.window=null), or train with --set train.train_first_frame=true"),
            stacklevel=2)
    fixed = getattr(model.config, "steps", None)  # phrase models (MusicVAE) have one length
    if isinstance(fixed, int) and bars is None and seconds is None and prime is None:
        steps = fixed
    else:
        steps = length_in_steps(meta, bars, seconds)
    check_sample_size(meta, n, steps)
    arrays, n_prime = sample_arrays(model, meta, n, steps, controls, prime, pitch_histogram)
    out_dir = Path(out_dir)
    facts = grid_facts(meta)
    paths = []
    for i, array in enumerate(arrays, start=1):
        score = array_to_score(array, meta)
        if facts["steps_per_quarter"] is None and (bars is not None or seconds is not None):
            quarters = 4 * bars if bars is not None else seconds * facts["qpm"] / 60
            if n_prime == 0:  # a primed token stream keeps all of its primer
                score = crop_score(score, quarters)
        path = out_dir / f"{stem}_{i}.mid"
        write_score(score, path, wav, png, soundfont, title=f"{meta['model_name']}: {path.stem}")
        warn_if_empty(score, path, meta, controls)
        paths.append(path)
    return paths


__all__: Sequence[str] = [
    "EmptyPieceWarning",
    "GenerationWarning",
    "UnlearnedOpeningWarning",
    "array_to_score",
    "check_length",
    "check_sample_size",
    "codec",
    "condition_tensors",
    "empty_piece_cause",
    "file_to_array",
    "generate_from_checkpoint",
    "grid_facts",
    "learned_opening",
    "length_in_steps",
    "prime_tensor",
    "sample_arrays",
    "warn_if_empty",
    "write_outputs",
    "write_score",
]
