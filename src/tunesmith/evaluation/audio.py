"""Audio metrics and reference codecs, as pure functions of waveforms.

* :func:`log_mel_distance` — mean absolute difference of natural-log mel spectrograms
  (80 bands, 1024-point FFT, hop 256), as in the HiFi-GAN / EnCodec evaluations.
* :func:`multi_resolution_stft_distance` — spectral convergence + log-magnitude L1 over
  three resolutions (Yamamoto et al. 2020, "Parallel WaveGAN").
* :func:`si_sdr` — scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019,
  "SDR — half-baked or well done?"): the target scaled by ⟨ŝ, s⟩/‖s‖² against the rest.
* :func:`codebook_stats` — fraction of codes used and the perplexity exp(H) of their use.
* :func:`unigram_bits` and :func:`lpc_bits` — the likelihood baselines of a μ-law
  WaveNet in bits per sample: the training distribution of μ-law bins, and an order-p
  linear predictor (fitted on training audio by the autocorrelation method, Makhoul 1975)
  whose Laplace residual (backward-adaptive scale) is integrated over each μ-law bin's
  interval, a proper 2^bits-way distribution over the same bins the WaveNet's softmax
  covers.
* :func:`mu_law_codec` — a μ-law codec at a lower rate: resample, quantise, resample back.

Every function returns NaN where the value is undefined (silence for SI-SDR...).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tunesmith.audio.features import log_mel, multi_resolution_stft_loss
from tunesmith.audio.io import resample
from tunesmith.audio.mulaw import mu_law_decode, mu_law_encode


def _pair(estimate, target) -> tuple[torch.Tensor, torch.Tensor]:
    estimate = torch.as_tensor(np.asarray(estimate, np.float32)).reshape(-1)
    target = torch.as_tensor(np.asarray(target, np.float32)).reshape(-1)
    n = min(len(estimate), len(target))
    return estimate[:n], target[:n]


def log_mel_distance(estimate, target, sample_rate: int) -> float:
    """Mean |log mel(ŝ) − log mel(s)| (nats), over equal lengths; NaN if too short."""
    estimate, target = _pair(estimate, target)
    if len(target) < 1024:
        return math.nan
    return float((log_mel(estimate, sample_rate) - log_mel(target, sample_rate)).abs().mean())


#: a target whose peak is below this (−80 dBFS) is silence: relative measures are undefined
SILENCE = 1e-4


def multi_resolution_stft_distance(estimate, target) -> float:
    """Spectral convergence + log-STFT L1, averaged over 3 resolutions; NaN if too short
    or the target is silent (spectral convergence divides by its norm)."""
    estimate, target = _pair(estimate, target)
    if len(target) < 2048 or float(target.abs().max()) < SILENCE:
        return math.nan
    return float(multi_resolution_stft_loss(estimate[None], target[None]))


def si_sdr(estimate, target) -> float:
    """Scale-invariant SDR in dB; NaN for a silent target."""
    estimate, target = _pair(estimate, target)
    if len(target) == 0 or float(target.abs().max()) < SILENCE:
        return math.nan
    estimate, target = estimate.double() - estimate.double().mean(), target.double()
    target = target - target.mean()
    energy = float(target @ target)
    if energy == 0:
        return math.nan
    scaled = (estimate @ target) / energy * target
    noise = estimate - scaled
    return float(10 * torch.log10((scaled @ scaled) / (noise @ noise).clamp(min=1e-20)))


def codebook_stats(codes, size: int) -> dict[str, float]:
    """``usage``: fraction of the ``size`` codes used at least once; ``perplexity``:
    exp of the entropy of the code histogram (``size`` when all are used equally)."""
    counts = np.bincount(np.asarray(codes).reshape(-1), minlength=size).astype(np.float64)
    if counts.sum() == 0:
        return {"usage": math.nan, "perplexity": math.nan}
    p = counts / counts.sum()
    entropy = -(p[p > 0] * np.log(p[p > 0])).sum()
    return {"usage": float((counts > 0).mean()), "perplexity": float(np.exp(entropy))}


def unigram_bits(train_audio: list[np.ndarray], test_audio: list[np.ndarray],
                 bits: int = 8) -> float:
    """Bits per test sample under the training histogram of μ-law bins (add-one)."""
    classes = 2**bits
    counts = np.ones(classes)
    for audio in train_audio:
        counts += np.bincount(mu_law_encode(audio, bits), minlength=classes)
    log_p = np.log2(counts / counts.sum())
    total = sum(float(-log_p[mu_law_encode(a, bits)].sum()) for a in test_audio)
    return total / sum(len(a) for a in test_audio)


def fit_lpc(train_audio: list[np.ndarray], order: int = 32) -> np.ndarray:
    """Order-p LPC coefficients a (x̂_t = Σ_k a_k x_{t−k}) by the autocorrelation method
    over the training pieces (Levinson-Durbin via scipy's Toeplitz solver)."""
    from scipy.linalg import solve_toeplitz

    r = np.zeros(order + 1)
    for audio in train_audio:
        x = np.asarray(audio, np.float64)
        for k in range(order + 1):
            r[k] += x[: len(x) - k] @ x[k:]
    r[0] *= 1 + 1e-9  # white-noise correction keeps the system well conditioned
    return solve_toeplitz(r[:order], r[1 : order + 1])


def lpc_predict(audio: np.ndarray, a: np.ndarray) -> np.ndarray:
    """x̂_t = Σ_k a_k x_{t−k} from the samples before t (zeros before the start)."""
    from scipy.signal import lfilter

    x = np.asarray(audio, np.float64)
    return lfilter(np.r_[0.0, a], [1.0], x)  # predicts x_t from x_{t-1}, …, x_{t-p}


def _lpc_piece_bits(audio, a, gain, edges, bits, decay, floor) -> float:
    """Total bits of one piece under the backward-adaptive Laplace LPC model."""
    from scipy.signal import lfilter

    prediction = lpc_predict(audio, a)
    residual = np.abs(np.asarray(audio, np.float64) - prediction)
    smoothed = lfilter([1 - decay], [1, -decay], residual)  # EMA of |r| up to t
    scale = gain * np.r_[0.0, smoothed[:-1]] + floor  # from samples before t only
    b = mu_law_encode(audio, bits)

    def cdf(z):  # Laplace(0, scale) CDF, elementwise
        z = z / scale
        return np.where(z < 0, 0.5 * np.exp(np.minimum(z, 0)), 1 - 0.5 * np.exp(-np.maximum(z, 0)))

    p = cdf(edges[b + 1] - prediction) - cdf(edges[b] - prediction)
    return float(-np.log2(np.maximum(p, 1e-300)).sum())


def lpc_bits(train_audio: list[np.ndarray], test_audio: list[np.ndarray], order: int = 32,
             bits: int = 8, decay: float = 0.99) -> float:
    """Bits per test sample of an order-p LPC whose residual is Laplace with a backward-
    adaptive scale (gain × an exponential average of the past |residual|, as ADPCM adapts
    its step; the gain and floor are picked on the training audio), integrated over each
    μ-law bin's x-interval: a proper distribution over the 2^bits bins."""
    a = fit_lpc(train_audio, order)
    classes = 2**bits
    # x-edges of each bin: decode of bin ± 1/2, the outer edges at ±∞
    edges = np.r_[-np.inf, mu_law_decode(np.arange(classes - 1) + 0.5, bits), np.inf]
    fit_on = train_audio[: max(1, min(len(train_audio), 20))]
    _, gain, floor = min(  # the first of the lowest totals
        ((sum(_lpc_piece_bits(x, a, gain, edges, bits, decay, floor) for x in fit_on),
          gain, floor)
         for gain in (0.5, 0.75, 1.0, 1.5, 2.0) for floor in (1e-5, 1e-4, 1e-3)),
        key=lambda row: row[0])
    total = sum(_lpc_piece_bits(x, a, gain, edges, bits, decay, floor) for x in test_audio)
    return total / sum(len(x) for x in test_audio)


def mu_law_codec(audio: np.ndarray, sample_rate: int, codec_rate: int, bits: int) -> np.ndarray:
    """``audio`` through a ``bits``-bit μ-law codec at ``codec_rate`` Hz: soxr down,
    quantise, decode, soxr back up; same length as the input."""
    low = resample(audio, sample_rate, codec_rate) if codec_rate != sample_rate else audio
    decoded = mu_law_decode(mu_law_encode(np.clip(low, -1, 1), bits), bits)
    back = resample(decoded, codec_rate, sample_rate) if codec_rate != sample_rate else decoded
    out = np.zeros(len(audio), np.float32)
    out[: min(len(out), len(back))] = back[: len(out)]
    return out


# ------------------------------------------------------------------------------ reports


def _test_pieces(data, seconds: float, pieces: int | None):
    indices = data.indices("test") or data.indices(None)
    return indices[:pieces] if pieces else indices, int(seconds * data.sample_rate)


@torch.no_grad()
def wavenet_report(model, data, seconds: float = 4.0, pieces: int | None = None,
                   speed_samples: int = 2000) -> dict:
    """Test NLL (bits per sample) over the first ``seconds`` of each test piece, the μ-law
    unigram beside it, and cached sampling speed (samples per second, one stream)."""
    import time

    indices, n = _test_pieces(data, seconds, pieces)
    total, count, test_audio = 0.0, 0, []
    for i in indices:
        audio = torch.tensor(data.audio(i)[:n])[None]
        test_audio.append(audio[0].numpy())
        condition = {}
        if model.config.local_channels:
            frames = -(-audio.shape[1] // data.hop)
            condition["roll"] = torch.tensor(data.roll(i)[:frames], dtype=torch.float32)[None]
        total += float(model.sample_nll(audio, condition).sum()) / math.log(2)
        count += audio.shape[1]
    train = [data.audio(i) for i in data.indices("train")[:100]] or test_audio
    speed_condition = None
    if model.config.local_channels:
        speed_condition = {"roll": torch.tensor(data.roll(indices[0]),
                                                dtype=torch.float32)[None]}
        speed_samples = min(speed_samples, len(data.roll(indices[0])) * data.hop)
    start = time.perf_counter()
    model.generate(1, speed_samples, condition=speed_condition)
    elapsed = time.perf_counter() - start
    return {"test pieces": len(indices), "test samples": count,
            "test NLL (bits per sample)": total / count,
            "mu-law unigram (bits per sample)": unigram_bits(train, test_audio,
                                                             model.config.bits),
            "sampling speed (samples/s, 1 stream)": speed_samples / elapsed}


@torch.no_grad()
def vqvae_report(model, data, seconds: float = 4.0, pieces: int | None = None) -> dict:
    """Reconstruction distances of the test pieces' first ``seconds``, codebook usage
    and perplexity of their codes, and the bitrate."""
    indices, n = _test_pieces(data, seconds, pieces)
    rows: list[tuple[float, float, float]] = []  # per piece: STFT, log-mel, SI-SDR
    codes: list[list[np.ndarray]] = [[] for _ in range(1 + bool(model.config.top_strides))]
    for i in indices:
        audio = torch.tensor(data.audio(i)[:n])[None]
        level_codes = model.encode(audio)
        for level, c in enumerate(level_codes):
            codes[level].append(c.reshape(-1).numpy())
        recon = model.decode(level_codes, audio.shape[1])[0].numpy()
        target = audio[0].numpy()
        rows.append((multi_resolution_stft_distance(recon, target),
                     log_mel_distance(recon, target, data.sample_rate), si_sdr(recon, target)))
    mean = np.nanmean(np.array(rows), axis=0)
    report = {"test pieces": len(indices), "bitrate (bits/s)": model.config.bitrate,
              "multi-resolution STFT distance": float(mean[0]),
              "log-mel distance": float(mean[1]), "SI-SDR (dB)": float(mean[2])}
    for level, level_codes in enumerate(codes):
        stats = codebook_stats(np.concatenate(level_codes), model.config.codebook_size)
        name = "bottom" if level == 0 else "top"
        report[f"{name} codes used (fraction)"] = stats["usage"]
        report[f"{name} code perplexity"] = stats["perplexity"]
    return report
