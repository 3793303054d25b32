"""SoundFont synthesis of a Score: symusic's synthesizer (the audio layer's).

symusic 0.5.8's :class:`symusic.Synthesizer` renders a Score in ticks (tempo changes and
General MIDI programs honoured) to float samples; the default SoundFont is the General
MIDI ``TimGM6mb.sf2`` that pretty_midi ships, so nothing is downloaded. The peak is
normalised to 0.9 of full scale. It lives in the audio layer because the data layer
renders symbolic corpora to audio (``rendered:CORPUS``) with it;
:mod:`tunesmith.render.audio` writes the WAV files of the symbolic commands.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from symusic import Score

from tunesmith.errors import ConfigError

SAMPLE_RATE = 44100
PEAK = 0.9  # normalised peak, a little below full scale


def default_soundfont() -> Path:
    """pretty_midi's bundled General MIDI SoundFont ``TimGM6mb.sf2``."""
    import pretty_midi

    path = Path(os.path.dirname(pretty_midi.__file__)) / "TimGM6mb.sf2"
    if not path.is_file():
        raise ConfigError(f"{path}: pretty_midi's SoundFont is missing; pass --soundfont PATH")
    return path


@functools.lru_cache(maxsize=4)
def _synthesizer(soundfont: str, sample_rate: int):
    from symusic import Synthesizer

    return Synthesizer(soundfont, sample_rate, 0)


def check_soundfont(soundfont: str | Path | None) -> Path:
    """The SoundFont file to use (default: TimGM6mb); a ConfigError when it is unusable."""
    path = Path(soundfont) if soundfont is not None else default_soundfont()
    if not path.is_file():
        raise ConfigError(f"{path}: no such SoundFont file")
    if path.suffix.lower() not in (".sf2", ".sf3"):
        raise ConfigError(f"{path}: a SoundFont must be a .sf2 or .sf3 file")
    return path


def synthesize(score: Score, soundfont: str | Path | None = None,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Render a Score to float32 audio of shape (2, samples), peak-normalised to 0.9."""
    path = check_soundfont(soundfont)
    if score.note_num() == 0:
        return np.zeros((2, sample_rate // 10), np.float32)  # a tenth of a second of silence
    try:
        audio = np.asarray(_synthesizer(str(path), int(sample_rate)).render(score, True))
    except Exception as exc:  # the C++ side reports a bad SoundFont tersely
        raise ConfigError(f"{path}: cannot synthesise with this SoundFont ({exc})") from exc
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0:
        audio = audio * (PEAK / peak)
    return audio.astype(np.float32)
