"""Read and write audio files: soundfile for I/O, soxr for resampling, mixed to mono.

:func:`load_audio` checks a file before libsndfile sees it (exists, a known suffix,
non-empty, the container's magic bytes), then decodes it, mixes it to mono and resamples
it to the rate asked with soxr's high-quality resampler. A corrupt, empty, silent or
unsupported file raises :class:`AudioFileError` naming the file and the reason, as a bad
MIDI file raises :class:`~tunesmith.errors.MusicFileError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunesmith.errors import MusicFileError

#: suffix -> the bytes its container starts with (checked before libsndfile parses it)
AUDIO_SUFFIXES = {".wav": (b"RIFF", b"RF64"), ".flac": (b"fLaC",), ".ogg": (b"OggS",)}
#: a peak below this (−80 dBFS) is silence
SILENCE_PEAK = 1e-4
#: the longest file read (seconds), like music.io's length limit
MAX_SECONDS = 2 * 3600


class AudioFileError(MusicFileError):
    """An audio file that cannot be used: missing, corrupt, empty, silent or unsupported."""


def check_audio_file(path: str | Path) -> Path:
    """The path when it names a readable WAV/FLAC/OGG file, else AudioFileError."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(path, "no such file")
    suffix = path.suffix.lower()
    if suffix not in AUDIO_SUFFIXES:
        raise AudioFileError(path, f"unsupported audio format {suffix or '(no suffix)'!r}; "
                             f"expected one of {', '.join(AUDIO_SUFFIXES)}")
    if path.stat().st_size == 0:
        raise AudioFileError(path, "empty file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in AUDIO_SUFFIXES[suffix]:
        raise AudioFileError(path, f"not a {suffix[1:].upper()} file (starts with {head!r})")
    return path


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Mono float32 ``audio`` (samples,) from ``rate_in`` to ``rate_out`` Hz (soxr, HQ)."""
    if rate_in == rate_out:
        return np.asarray(audio, np.float32)
    import soxr

    return soxr.resample(np.asarray(audio, np.float32), rate_in, rate_out, quality="HQ")


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(samples,) or (samples, channels) or (channels, samples) with channels ≤ 8 -> mean."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 1:
        return audio
    if audio.shape[0] <= 8 and audio.shape[1] > audio.shape[0]:
        audio = audio.T  # (channels, samples) -> (samples, channels)
    return audio.mean(axis=1)


def load_audio(path: str | Path, sample_rate: int, allow_silent: bool = False) -> np.ndarray:
    """Read an audio file as mono float32 (samples,) at ``sample_rate`` Hz.

    Raises AudioFileError for a missing, unsupported, corrupt, empty or (unless
    ``allow_silent``) silent file, or one longer than :data:`MAX_SECONDS`.
    """
    import soundfile

    path = check_audio_file(path)
    try:
        info = soundfile.info(str(path))
        if info.frames > MAX_SECONDS * info.samplerate:
            raise AudioFileError(path, f"longer than {MAX_SECONDS} s "
                                 f"({info.frames / info.samplerate:.0f} s)")
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except AudioFileError:
        raise
    except Exception as exc:  # libsndfile's LibsndfileError, RuntimeError, ValueError...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AudioFileError(path, f"corrupt or unreadable audio ({reason})") from exc
    if audio.shape[0] == 0:
        raise AudioFileError(path, "holds no samples")
    if not np.isfinite(audio).all():
        raise AudioFileError(path, "holds NaN or infinite samples")
    mono = resample(audio.mean(axis=1), int(rate), int(sample_rate))
    if not allow_silent and float(np.abs(mono).max(initial=0.0)) < SILENCE_PEAK:
        raise AudioFileError(path, "silent (peak below -80 dBFS)")
    return mono


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono (samples,) or (channels, samples) float audio as 16-bit PCM (WAV/FLAC by
    suffix), clipped to [-1, 1]; returns the path."""
    import soundfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 2:
        audio = audio.T  # soundfile wants (samples, channels)
    soundfile.write(str(path), np.clip(audio, -1.0, 1.0), int(sample_rate), subtype="PCM_16")
    return path
