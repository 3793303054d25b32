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
