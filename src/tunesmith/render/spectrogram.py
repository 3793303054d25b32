"""Spectrogram images of audio: a log-mel spectrogram (:func:`tunesmith.audio.features.log_mel`)
written as a PNG, beside every WAV the audio commands write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tunesmith.audio.features import log_mel


def spectrogram_png(audio: np.ndarray, sample_rate: int, path, title: str = "") -> None:
    """Write a log-mel spectrogram of mono ``audio`` as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mel = log_mel(torch.as_tensor(np.asarray(audio, np.float32)), sample_rate).numpy()
    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    seconds = len(audio) / sample_rate
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma",
              extent=(0, seconds, 0, mel.shape[0]))
    ax.set_xlabel("seconds")
    ax.set_ylabel("mel bin")
    ax.set_title(title or f"log-mel spectrogram ({sample_rate} Hz)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_wav_and_png(path_stem: str | Path, audio: np.ndarray, sample_rate: int,
                      title: str = "") -> list[Path]:
    """``STEM.wav`` (16-bit mono) and ``STEM.png`` (its log-mel spectrogram)."""
    from tunesmith.audio.io import write_audio

    stem = Path(path_stem)  # "bwv108.6-synth": the suffix is appended, never replaced
    wav = write_audio(stem.parent / f"{stem.name}.wav", audio, sample_rate)
    png = stem.parent / f"{stem.name}.png"
    spectrogram_png(audio, sample_rate, png, title or stem.name)
    return [wav, png]
