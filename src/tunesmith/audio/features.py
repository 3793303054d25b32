"""STFT magnitudes and log-mel spectrograms from ``torch.stft`` (no torchaudio).

The mel filterbank is Slaney's (librosa's default, ``htk=False``, area-normalised
triangles): linear below 1 kHz, logarithmic above (Slaney 1998, Auditory Toolbox).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

#: the (FFT size, hop) pairs of the multi-resolution STFT (Yamamoto et al. 2020)
MULTI_RESOLUTION = ((512, 128), (1024, 256), (2048, 512))


def hz_to_mel(hz):
    """Slaney mel scale: linear 3 / 200 mel per Hz below 1 kHz, log above."""
    hz = np.asarray(hz, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(hz < min_log_hz, hz / f_sp,
                    min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep)


def mel_to_hz(mel):
    mel = np.asarray(mel, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(mel < min_log_mel, mel * f_sp,
                    min_log_hz * np.exp(logstep * (mel - min_log_mel)))


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = 80,
                   f_min: float = 0.0, f_max: float | None = None) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) Slaney-normalised triangular filters."""
    f_max = sample_rate / 2 if f_max is None else f_max
    fft_hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_hz = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    widths = np.diff(mel_hz)  # (n_mels + 1,)
    ramps = mel_hz[:, None] - fft_hz[None, :]  # (n_mels + 2, F)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))  # (n_mels, F)
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]  # equal area
    return torch.tensor(weights, dtype=torch.float32)


def stft_magnitude(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """(..., samples) -> (..., n_fft // 2 + 1, frames) magnitudes, Hann window, centred."""
    shape = audio.shape
    flat = audio.reshape(-1, shape[-1])
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(flat, n_fft, hop, window=window, center=True, pad_mode="reflect"
                      if shape[-1] > n_fft // 2 else "constant", return_complex=True)
    return spec.abs().reshape(*shape[:-1], *spec.shape[-2:])


def log_mel(audio: torch.Tensor, sample_rate: int, n_fft: int = 1024, hop: int = 256,
            n_mels: int = 80, eps: float = 1e-5) -> torch.Tensor:
    """(..., samples) -> (..., n_mels, frames) natural-log mel magnitudes."""
    magnitude = stft_magnitude(audio, n_fft, hop)
    bank = mel_filterbank(int(sample_rate), n_fft, n_mels).to(audio.device, audio.dtype)
    return torch.log(torch.matmul(bank, magnitude).clamp(min=eps))


def multi_resolution_stft_loss(estimate: torch.Tensor, target: torch.Tensor,
                               resolutions=MULTI_RESOLUTION) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over resolutions (Yamamoto et al.
    2020, "Parallel WaveGAN", eq. 4-6); (B, samples) each -> scalar."""
    total = estimate.new_zeros(())
    for n_fft, hop in resolutions:
        est, ref = stft_magnitude(estimate, n_fft, hop), stft_magnitude(target, n_fft, hop)
        convergence = torch.linalg.norm(ref - est) / torch.linalg.norm(ref).clamp(min=1e-7)
        log_l1 = (torch.log(est.clamp(min=1e-7)) - torch.log(ref.clamp(min=1e-7))).abs().mean()
        total = total + convergence + log_l1
    return total / len(resolutions)
