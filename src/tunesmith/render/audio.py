"""Audio from a Score: symusic's SoundFont synthesizer, written as 16-bit WAV.

symusic 0.5.8's :class:`symusic.Synthesizer` renders a Score in ticks (tempo changes and
General MIDI programs honoured) to float samples; the default SoundFont is the General
MIDI ``TimGM6mb.sf2`` that pretty_midi ships, so nothing is downloaded. The peak is
normalised (to 0.9 of full scale) and the file is written with the stdlib ``wave``
module at 44.1 kHz, 16 bits, stereo. The synthesiser itself is
:mod:`tunesmith.audio.synth` (the data layer renders corpora with it too).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from symusic import Score

from tunesmith.audio.synth import (  # noqa: F401 (the synthesiser's names, used from here)
    PEAK,
    SAMPLE_RATE,
    check_soundfont,
    default_soundfont,
    synthesize,
)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write (channels, samples) float audio in [-1, 1] as a 16-bit PCM WAV file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")  # (channels, samples)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(pcm.shape[0])
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(np.ascontiguousarray(pcm.T).tobytes())  # interleaved frames
    return path


def render_wav(score: Score, path: str | Path, soundfont: str | Path | None = None,
               sample_rate: int = SAMPLE_RATE) -> Path:
    """Synthesise ``score`` and write it to ``path`` as WAV; returns the path."""
    return write_wav(path, synthesize(score, soundfont, sample_rate), sample_rate)


def wav_facts(path: str | Path) -> dict:
    """Duration (s), peak (fraction of full scale), channels and rate of a 16-bit WAV."""
    with wave.open(str(path), "rb") as f:
        frames = f.readframes(f.getnframes())
        channels, rate = f.getnchannels(), f.getframerate()
        samples = np.frombuffer(frames, dtype="<i2")
    return {
        "seconds": len(samples) / channels / rate,
        "peak": float(np.abs(samples.astype(np.int32)).max() / 32767) if len(samples) else 0.0,
        "channels": channels,
        "sample_rate": rate,
    }
