"""Audio metrics: exact values on tiny signals, NaN where undefined, and the baselines."""

from __future__ import annotations

import math

import numpy as np

from tunesmith.evaluation.audio import (
    codebook_stats,
    log_mel_distance,
    lpc_bits,
    mu_law_codec,
    multi_resolution_stft_distance,
    si_sdr,
    unigram_bits,
)


def tone(hz, seconds=0.5, rate=16000, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_si_sdr_is_scale_invariant_and_exact_for_known_noise():
    s = tone(440)
    assert si_sdr(3 * s, s) > 100  # a scaled copy: no distortion
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(s)).astype(np.float32)
    noise -= noise.mean()
    noise -= (noise @ s) / (s @ s) * s  # orthogonal to s
    noise *= np.linalg.norm(s) / np.linalg.norm(noise) / math.sqrt(10)  # 10 dB below s
    assert abs(si_sdr(s + noise, s) - 10.0) < 0.05
    assert math.isnan(si_sdr(s, np.zeros_like(s)))


def test_spectral_distances_are_zero_on_identity_and_grow_with_change():
    s = tone(440)
    assert log_mel_distance(s, s, 16000) == 0
    assert multi_resolution_stft_distance(s, s) < 1e-5
    near, far = tone(450), tone(2000)
    assert 0 < log_mel_distance(near, s, 16000) < log_mel_distance(far, s, 16000)
    assert math.isnan(multi_resolution_stft_distance(s, np.zeros_like(s)))
    assert math.isnan(log_mel_distance(s[:100], s[:100], 16000))  # too short


def test_codebook_stats_exact():
    stats = codebook_stats([0, 1, 2, 3], 8)
    assert stats["usage"] == 0.5 and abs(stats["perplexity"] - 4) < 1e-9
    assert codebook_stats([5, 5, 5], 8)["perplexity"] == 1.0


def test_baselines_order_on_a_predictable_signal():
    train = [tone(220 * k, 0.5) for k in (1, 2, 3)]
    test = [tone(330, 0.5)]
    unigram = unigram_bits(train, test)
    lpc = lpc_bits(train, test, order=8)
    assert 0 < lpc < unigram < 8  # a sinusoid is linearly predictable
    out = mu_law_codec(test[0], 16000, 4000, 8)
    assert out.shape == test[0].shape and si_sdr(out, test[0]) > 20


def test_wav_and_png_keep_dotted_stems(tmp_path):
    import soundfile

    from tunesmith.render.spectrogram import write_wav_and_png

    paths = write_wav_and_png(tmp_path / "bwv108.6-synth", tone(440), 16000)
    assert [p.name for p in paths] == ["bwv108.6-synth.wav", "bwv108.6-synth.png"]
    audio, rate = soundfile.read(paths[0])
    assert rate == 16000 and len(audio) == 8000 and paths[1].stat().st_size > 1000
