"""Audio checkpoints -> waveforms: MIDI-to-audio synthesis, sampling, encode/decode.

A roll-conditioned :class:`~tunesmith.models.audio_wavenet.AudioWaveNet` trained on
``rendered:CORPUS`` renders any MIDI file: the file's pitched notes are merged to one
track and written to the same grid as the training data (sounding keys + onsets, the
checkpoint's pitch range and resolution, played at the data's 120 quarters a minute),
then the model samples ``frames × hop`` samples conditioned on it. The SoundFont
rendering of exactly that grid is the reference the synthesis is compared with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tunesmith.audio.synth import synthesize
from tunesmith.errors import ConfigError
from tunesmith.models.sampling import SamplingControls
from tunesmith.music.io import load
from tunesmith.music.transforms import merge_tracks, pitched_tracks
from tunesmith.representations.pianoroll import (
    PianorollConfig,
    decode,
    encode_with_onsets,
)


def roll_config(meta: dict) -> PianorollConfig:
    """The grid of a checkpoint's rendered training data (from its ``corpus`` record)."""
    info = (meta.get("corpus") or {}).get("roll_info") or {}
    if not info:
        raise ConfigError("the checkpoint was not trained on rendered: data (no piano-roll "
                          "grid recorded); it cannot synthesise MIDI")
    return PianorollConfig(resolution=int(info["resolution"]), pitch_low=int(info["pitch_low"]),
                           pitch_high=int(info["pitch_low"]) + int(info["keys"]) - 1,
                           onset=True, track_names=["Piano"], programs=[0],
                           tempo=float(info["qpm"]))


def midi_roll(path: str | Path, meta: dict, max_seconds: float | None = None) -> np.ndarray:
    """A music file as the checkpoint's conditioning grid (frames, 2K) float32."""
    cfg = roll_config(meta)
    score = pitched_tracks(load(path))
    if not score.tracks or score.note_num() == 0:
        raise ConfigError(f"{path}: no pitched notes to synthesise")
    score = merge_tracks(score, name="Piano", program=0)
    frames, onsets = encode_with_onsets(score, cfg)  # (1, steps, K) each
    roll = np.concatenate([frames[0], onsets[0]], axis=1).astype(np.float32)
    if max_seconds is not None:
        roll = roll[: max(1, int(max_seconds * cfg.tempo / 60 * cfg.resolution))]
    return roll


def soundfont_rendering(roll: np.ndarray, meta: dict, sample_rate: int) -> np.ndarray:
    """The SoundFont rendering (mono, frames × hop samples) of a (frames, 2K) grid."""
    cfg = roll_config(meta)
    keys = cfg.n_pitches
    score = decode(roll[:, :keys] > 0, cfg, roll[:, keys:] > 0)
    hop = round(sample_rate * 60 / (cfg.tempo * cfg.resolution))
    out = np.zeros(len(roll) * hop, np.float32)
    mono = synthesize(score, sample_rate=sample_rate).mean(axis=0)[: len(out)]
    out[: len(mono)] = mono
    return out


def synthesize_roll(model, roll: np.ndarray,
                    controls: SamplingControls | None = None) -> np.ndarray:
    """Sample audio (frames × hop,) from a roll-conditioned audio WaveNet."""
    if not model.config.local_channels:
        raise ConfigError("this audio WaveNet is not conditioned on a piano-roll; train it "
                          "with --set roll_conditioned=true on rendered: data")
    if roll.shape[1] != model.config.local_channels:
        raise ConfigError(f"the roll has {roll.shape[1]} channels, the model "
                          f"{model.config.local_channels}")
    steps = len(roll) * model.config.local_hop
    audio = model.generate(1, steps, controls, condition={"roll": torch.tensor(roll)[None]})
    return audio[0].cpu().numpy()
