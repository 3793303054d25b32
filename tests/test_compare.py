"""Set-level comparisons: JS divergence, KDE likelihood, Yang & Lerch overlap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from tunesmith.evaluation import compare as C


def test_js_divergence_known_values():
    assert C.js_divergence([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-12)
    assert C.js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    # p = (1, 0), q = (.5, .5), m = (.75, .25)
    expected = 0.5 * math.log2(1 / 0.75) + 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5)
    assert C.js_divergence([1, 0], [0.5, 0.5]) == pytest.approx(expected)
    assert math.isnan(C.js_divergence([0, 0], [1, 0]))


def test_pitch_class_js_identical_sets_is_zero():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 20, (15, 12)).astype(float)
    result = C.pitch_class_js(counts, counts)
    assert result["pooled"] == pytest.approx(0.0, abs=1e-12)
    assert result["per_piece_mean"] == pytest.approx(result["reference_per_piece_mean"])
    shifted = C.pitch_class_js(np.roll(counts, 6, axis=1), counts)
    assert shifted["pooled"] > 0


def test_kde_log_likelihood_equals_mixture_of_gaussians():
    rng = np.random.default_rng(1)
    fit = rng.normal(size=(30, 3))
    points = rng.normal(size=(5, 3))
    bandwidth = fit.std(axis=0) * 30 ** (-1 / 7)  # Scott, d = 3
    expected = [
        math.log(np.mean([multivariate_normal.pdf(x, mean=y, cov=np.diag(bandwidth**2))
                          for y in fit]))
        for x in points
    ]
    np.testing.assert_allclose(C.kde_log_likelihood(fit, points), expected, rtol=1e-9)
    loo = C.kde_log_likelihood(fit, fit, leave_one_out=True)
    first = math.log(np.mean([multivariate_normal.pdf(fit[0], mean=y, cov=np.diag(bandwidth**2))
                              for y in fit[1:]]))
    assert loo[0] == pytest.approx(first)


def _features(rng, n, shift=0.0):
    return [{"a": float(rng.normal(shift)), "b": float(rng.normal(2 * shift)),
             "constant": 1.0, "undefined": math.nan} for _ in range(n)]


def test_indirect_likelihood_prefers_the_closer_set():
    rng = np.random.default_rng(2)
    reference = _features(rng, 80)
    close = _features(rng, 80)
    far = _features(rng, 80, shift=3.0)
    names = ["a", "b", "constant", "undefined"]
    near = C.indirect_likelihood(close, reference, names)
    away = C.indirect_likelihood(far, reference, names)
    assert near["features"] == ["a", "b"]  # constant and undefined features dropped
    assert near["generated_under_reference"] > away["generated_under_reference"]
    assert near["reference_under_generated"] > away["reference_under_generated"]


def test_distribution_overlap_extremes():
    rng = np.random.default_rng(3)
    x = rng.normal(size=500)
    same = C.distribution_overlap(x, x)
    assert same["oa"] == pytest.approx(1.0, abs=1e-9) and same["kl"] == pytest.approx(0, abs=1e-9)
    apart = C.distribution_overlap(x, x + 100)
    assert apart["oa"] < 1e-6 and apart["kl"] > 5
    constant = C.distribution_overlap(np.zeros(10), np.zeros(20))
    assert constant["oa"] == pytest.approx(1.0)


def test_yang_lerch_set_against_itself_overlaps():
    rng = np.random.default_rng(4)
    features = {"pitch_range": rng.integers(20, 40, 60).astype(float),
                "entropy": rng.normal(3, 0.2, 60),
                "histogram": rng.dirichlet(np.ones(12), 60)}
    result = C.yang_lerch(features, features)
    for name, values in result.items():
        assert values["oa_generated"] > 0.95, name
        assert values["oa_reference"] == values["oa_generated"]
    shifted = {"pitch_range": features["pitch_range"] + 30, "entropy": features["entropy"] + 2,
               "histogram": features["histogram"]}
    apart = C.yang_lerch(shifted, features)
    assert apart["pitch_range"]["oa_generated"] < 0.2
    assert apart["entropy"]["oa_generated"] < 0.2


def test_overlap_matches_scipy_gaussian_kde():
    from scipy.stats import gaussian_kde

    rng = np.random.default_rng(5)
    x, y = rng.normal(size=400), rng.normal(0.5, 1.2, size=300)
    result = C.distribution_overlap(x, y)
    grid = result["grid"]
    p, q = gaussian_kde(x, "scott")(grid), gaussian_kde(y, "scott")(grid)
    assert result["oa"] == pytest.approx(np.trapezoid(np.minimum(p, q), grid), abs=1e-3)
    assert result["kl"] == pytest.approx(np.trapezoid(p * np.log(p / q), grid), abs=1e-3)


# ----------------------------------------------------------------------------- held-out band


def test_mean_band_holds_a_set_like_the_data_and_rejects_a_shifted_one():
    within, shifted = [], []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        train, test = rng.normal(size=300), rng.normal(size=40)
        within.append(C.mean_band(rng.normal(size=100), train, test, seed=seed,
                                  resamples=500)["within"])
        shifted.append(C.mean_band(rng.normal(0.7, 1, size=100), train, test, seed=seed,
                                   resamples=500)["within"])
    # a generator as good as the data is within band nearly always (~95 % quantile);
    # one whose mean is 0.7 standard deviations off nearly never
    assert np.mean(within) >= 0.85
    assert np.mean(shifted) <= 0.15


def test_mean_band_values():
    train = np.array([0.0, 2.0, 1.0, 1.0])  # mean 1
    test = np.array([3.0, 3.0, 3.0])  # constant: every resampled mean is 3
    band = C.mean_band([1.5, np.nan, 2.5], train, test)
    assert band["train"] == 1.0 and band["test"] == 3.0 and band["samples"] == 2.0
    assert band["radius"] == pytest.approx(2.0) and band["test_distance"] == 2.0
    assert (band["low"], band["high"]) == pytest.approx((-1.0, 3.0))
    assert band["within"] is True and band["n_samples"] == 2  # the NaN is left out
    assert C.mean_band([3.5], train, test)["within"] is False
    # a smaller sample set gets a wider band: its mean is noisier
    rng = np.random.default_rng(0)
    test = rng.normal(size=50)
    narrow = C.mean_band(np.zeros(200), np.zeros(10), test)["radius"]
    wide = C.mean_band(np.zeros(10), np.zeros(10), test)["radius"]
    assert wide > 2 * narrow
    assert C.mean_band([1.0], train, [2.0])["within"] is None  # one test piece: no verdict
    assert C.mean_band([np.nan], train, test)["within"] is None


def test_distance_band_on_pitch_class_counts():
    rng = np.random.default_rng(1)
    major = np.array([5, 0, 3, 0, 4, 3, 0, 5, 0, 3, 0, 2], float)
    train = rng.poisson(major * 10, (200, 12))
    test = rng.poisson(major * 10, (30, 12))
    same = C.distance_band(rng.poisson(major * 10, (40, 12)), train, test)
    assert same["within"] is True and same["low"] == 0.0
    assert same["test"] == pytest.approx(C.js_divergence(test.sum(0), train.sum(0)))
    shifted = C.distance_band(rng.poisson(np.roll(major, 1) * 10, (40, 12)), train, test)
    assert shifted["within"] is False and shifted["samples"] > 0.1


def test_accuracy_band():
    held_out = {"accuracy": 0.52, "pieces": [49, 200]}
    high = 0.52 + 1.6448536 * math.sqrt(1 / (4 * 100))  # 100 pieces classified
    told_apart = C.accuracy_band({"accuracy": 0.8, "pieces": [50, 50]}, held_out)
    assert told_apart["high"] == pytest.approx(high) and told_apart["within"] is False
    assert C.accuracy_band({"accuracy": 0.55, "pieces": [50, 50]}, held_out)["within"] is True
    # below chance on the real split: the band starts from 50 %
    low = C.accuracy_band({"accuracy": 0.55, "pieces": [50, 50]},
                          {"accuracy": 0.4, "pieces": [49, 200]})
    assert low["high"] == pytest.approx(high - 0.02)


def _summary(rng, n, names=("Soprano", "Bass"), silent_share=0.0):
    """SetSummary of ``n`` two-voice random pieces; each voice rests on about
    ``silent_share`` of its quarter notes."""
    from symusic import Note, Score, Track

    from tunesmith.evaluation.reference import summarise_scores

    scores = []
    for i in range(n):
        score = Score(4)
        for name, low in zip(names, (60, 40), strict=True):
            track = Track(name, 0, False)
            for step in range(0, 64, 4):
                if rng.random() >= silent_share:
                    track.notes.append(Note(step, 4, int(low + rng.integers(0, 12)), 80))
            if not len(track.notes):
                track.notes.append(Note(0, 4, low, 80))
            score.tracks.append(track)
        scores.append((f"p{i}", score))
    return summarise_scores(scores)


def test_held_out_band_rows_and_voice_matching():
    from tunesmith.evaluation.metrics import FEATURE_NAMES

    rng = np.random.default_rng(2)
    train, test = _summary(rng, 60), _summary(rng, 20)
    good = C.held_out_band(_summary(rng, 20), train, test)
    assert list(good["rows"])[:len(FEATURE_NAMES)] == list(FEATURE_NAMES)
    assert {"voice_activity[Soprano]", "voice_activity[Bass]", "pitch_class_js"} <= set(
        good["rows"])
    assert good["track_matching"] == "name"
    assert good["rows"]["voice_activity[Bass]"]["samples"] == 1.0
    # drum_pattern_consistency is NaN everywhere: no verdict, not counted
    assert good["rows"]["drum_pattern_consistency"]["within"] is None
    assert good["n_judged"] == sum(r["within"] is not None for r in good["rows"].values())
    sparse = C.held_out_band(_summary(rng, 20, ("Track 1", "Track 2"), 0.4), train, test)
    assert sparse["track_matching"] == "index"
    row = sparse["rows"]["voice_activity[track 1]"]
    assert row["samples"] < 0.75 and row["within"] is False
    assert sparse["rows"]["voice_activity"]["within"] is False
    assert sparse["n_within"] < good["n_within"]
