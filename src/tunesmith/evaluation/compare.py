"""Set-level comparisons of generated pieces against a reference corpus.

Everything here works on per-piece summaries (feature dicts from
:func:`tunesmith.evaluation.metrics.feature_vector`, pitch-class count histograms), so a
reference set's summaries can be cached and reused:

* :func:`pitch_class_js` — Jensen–Shannon divergence of pitch-class histograms;
* :func:`indirect_likelihood` — the log-likelihood of one set under a Gaussian kernel
  density fitted on the other (Theis, van den Oord & Bethge, ICLR 2016, §3.2 "Parzen
  window" estimates), in both directions;
* :func:`yang_lerch` — Yang & Lerch (2020), *On the evaluation of generative models in
  music* (Neural Computing and Applications 32): per feature, the distributions of
  intra-set and inter-set distances between pieces, smoothed by KDE, compared by
  Kullback–Leibler divergence and overlapping area;
* :func:`held_out_band` — every metric of the generated set beside the same metric of the
  corpus's held-out test split, both measured against the training split, with a
  within-band verdict per metric (rules in :func:`mean_band`, :func:`distance_band`,
  :func:`accuracy_band`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import logsumexp

from tunesmith.evaluation import plagiarism
from tunesmith.evaluation.metrics import FEATURE_NAMES
from tunesmith.evaluation.two_sample import c2st, null_upper

# ----------------------------------------------------------------------------- pitch classes


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence in bits, in [0, 1]: ``½KL(p‖m) + ½KL(q‖m)``, ``m = (p+q)/2``.

    ``p`` and ``q`` are histograms (normalised here); NaN if either is all zeros.
    """
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return math.nan
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nonzero = a > 0
        return float(np.sum(a[nonzero] * np.log2(a[nonzero] / m[nonzero])))

    return max(0.0, 0.5 * kl(p) + 0.5 * kl(q))


def pitch_class_js(generated_counts: np.ndarray, reference_counts: np.ndarray) -> dict:
    """Pitch-class JS divergences between two sets of ``(pieces, 12)`` note-count histograms.

    Returns ``pooled``: JS between the two pooled histograms (sum of counts over pieces);
    ``per_piece``: each generated piece's JS to the reference's pooled histogram (list);
    ``per_piece_mean``; and ``reference_per_piece_mean``: the same for the reference's own
    pieces, the value a generated set "as varied as the reference" would get.
    Identical sets give ``pooled == 0``.
    """
    generated_counts = np.asarray(generated_counts, np.float64).reshape(-1, 12)
    reference_counts = np.asarray(reference_counts, np.float64).reshape(-1, 12)
    pooled_ref = reference_counts.sum(axis=0)
    per_piece = [js_divergence(h, pooled_ref) for h in generated_counts]
    ref_per_piece = [js_divergence(h, pooled_ref) for h in reference_counts]
    return {
        "pooled": js_divergence(generated_counts.sum(axis=0), pooled_ref),
        "per_piece": per_piece,
        "per_piece_mean": _nanmean(per_piece),
        "reference_per_piece_mean": _nanmean(ref_per_piece),
        "generated_pooled_histogram": _normalised(generated_counts.sum(axis=0)).tolist(),
        "reference_pooled_histogram": _normalised(pooled_ref).tolist(),
    }


def _normalised(h: np.ndarray) -> np.ndarray:
    total = h.sum()
    return h / total if total > 0 else h


def _nanmean(values) -> float:
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan


# ----------------------------------------------------------------------------- features


def feature_matrix(
    features: Sequence[Mapping[str, float]], names: Sequence[str]
) -> np.ndarray:
    """``(pieces, len(names))`` float array of the named features (NaN where missing)."""
    return np.array(
        [[float(f.get(n, math.nan)) for n in names] for f in features], np.float64
    ).reshape(len(features), len(names))


def usable_features(
    generated: np.ndarray, reference: np.ndarray, names: Sequence[str],
    min_defined: float = 0.95,
) -> list[int]:
    """Columns defined (finite) in at least ``min_defined`` of the pieces of each set and
    not constant over both sets together."""
    keep = []
    for j in range(len(names)):
        g, r = generated[:, j], reference[:, j]
        if not len(g) or not len(r):
            continue
        if np.isfinite(g).mean() < min_defined or np.isfinite(r).mean() < min_defined:
            continue
        both = np.concatenate([g[np.isfinite(g)], r[np.isfinite(r)]])
        if np.ptp(both) > 0:
            keep.append(j)
    return keep


def _impute(x: np.ndarray, fill: np.ndarray) -> np.ndarray:
    x = x.copy()
    rows, cols = np.nonzero(~np.isfinite(x))
    x[rows, cols] = fill[cols]
    return x


def kde_log_likelihood(
    fit: np.ndarray, evaluate: np.ndarray, leave_one_out: bool = False,
    min_bandwidth: float = 1e-2,
) -> np.ndarray:
    """Log-density of each row of ``evaluate`` under a diagonal Gaussian KDE of ``fit``.

    Bandwidth per dimension: Scott's rule ``h_d = σ_d · n^(-1/(d+4))`` (σ of ``fit``),
    floored at ``min_bandwidth`` (inputs are standardised, so this is in standard
    deviations). ``log p(x) = logsumexp_i(-½ Σ_d ((x_d - y_id)/h_d)²) - log n
    - Σ_d log(h_d √(2π))``. With ``leave_one_out`` (``evaluate is fit``), each point's
    own kernel is left out.
    """
    n, d = fit.shape
    factor = n ** (-1.0 / (d + 4))
    bandwidth = np.maximum(fit.std(axis=0) * factor, min_bandwidth)  # (d,)
    z_fit = fit / bandwidth  # (n, d)
    z_eval = evaluate / bandwidth  # (m, d)
    squared = (
        (z_eval**2).sum(1)[:, None] + (z_fit**2).sum(1)[None, :] - 2 * z_eval @ z_fit.T
    )  # (m, n)
    exponent = -0.5 * np.maximum(squared, 0)
    count = n
    if leave_one_out:
        np.fill_diagonal(exponent, -np.inf)
        count = n - 1
    log_norm = math.log(count) + float(np.log(bandwidth * math.sqrt(2 * math.pi)).sum())
    return logsumexp(exponent, axis=1) - log_norm


def indirect_likelihood(
    generated: Sequence[Mapping[str, float]],
    reference: Sequence[Mapping[str, float]],
    names: Sequence[str],
) -> dict:
    """Indirect sampling likelihood of feature vectors, both directions.

    Features defined in ≥95 % of the pieces of both sets and not constant are kept;
    remaining NaNs take the reference median; all are standardised by the mean and
    standard deviation of the two sets pooled. Then ``generated_under_reference`` is the
    mean log-density of generated pieces under a KDE fitted on the reference (how
    plausible the samples are), ``reference_under_generated`` the converse (how much of
    the reference the samples cover), and ``reference_under_reference`` the
    leave-one-out value of the reference under itself, the scale to read both against.
    Needs at least two pieces in each set (else NaN).
    """
    g = feature_matrix(generated, names)
    r = feature_matrix(reference, names)
    columns = usable_features(g, r, names)
    result = {
        "features": [names[j] for j in columns],
        "generated_under_reference": math.nan,
        "reference_under_generated": math.nan,
        "reference_under_reference": math.nan,
    }
    if len(g) < 2 or len(r) < 2 or not columns:
        return result
    g, r = g[:, columns], r[:, columns]
    median = np.nanmedian(r, axis=0)
    g, r = _impute(g, median), _impute(r, median)
    both = np.concatenate([g, r])
    mean, std = both.mean(0), both.std(0)
    g, r = (g - mean) / std, (r - mean) / std
    result["generated_under_reference"] = float(kde_log_likelihood(r, g).mean())
    result["reference_under_generated"] = float(kde_log_likelihood(g, r).mean())
    result["reference_under_reference"] = float(
        kde_log_likelihood(r, r, leave_one_out=True).mean()
    )
    return result


# ----------------------------------------------------------------------------- Yang & Lerch


def _pairwise_distances(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Euclidean distances: all pairs i<j within ``a`` (b None), or all of a × b."""
    if b is None:
        i, j = np.triu_indices(len(a), k=1)
        return np.linalg.norm(a[i] - a[j], axis=-1)
    return np.linalg.norm(a[:, None] - b[None, :], axis=-1).reshape(-1)


def _gaussian_kde_on_grid(samples: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """1-D Gaussian KDE on an even ``grid``, renormalised to integrate to 1 there.

    Linear binning onto the grid, then a convolution with the Gaussian kernel (the
    standard fast KDE, e.g. Silverman 1982): exact up to the binning, whose error is
    second order in the grid step, and the step is at most half the bandwidth here.
    """
    step = grid[1] - grid[0]
    position = (samples - grid[0]) / step
    left = np.clip(np.floor(position).astype(np.int64), 0, len(grid) - 2)
    weight_right = np.clip(position - left, 0.0, 1.0)
    counts = np.bincount(left, 1 - weight_right, minlength=len(grid))
    counts += np.bincount(left + 1, weight_right, minlength=len(grid))
    reach = min(len(grid) - 1, int(np.ceil(5 * bandwidth / step)))
    offsets = np.arange(-reach, reach + 1) * step
    kernel = np.exp(-0.5 * (offsets / bandwidth) ** 2)
    density = np.convolve(counts, kernel)[reach:reach + len(grid)]  # centred, (G,)
    area = np.trapezoid(density, grid)
    return density / area if area > 0 else density


def _scott_bandwidth(samples: np.ndarray) -> float:
    return float(samples.std() * len(samples) ** (-1 / 5)) if len(samples) > 1 else 0.0


def distribution_overlap(
    p_samples: np.ndarray, q_samples: np.ndarray, grid_points: int = 512
) -> dict:
    """KDE-smoothed PDFs of two samples and their KL divergence and overlapping area.

    ``KL(p‖q) = ∫ p log(p/q)`` and ``OA = ∫ min(p, q)`` on a shared grid spanning both
    samples ± 3 bandwidths (Yang & Lerch 2020 §3.3). Bandwidths follow Scott's rule,
    floored at two grid steps so narrow (even constant) distributions are resolved; each
    PDF is renormalised on the grid. (The reference code, mgeval, evaluates the two PDFs
    on different grids for the KL; we use one grid.) ``q`` is floored at 1e-12 in the KL.
    """
    p_samples = np.asarray(p_samples, np.float64)
    q_samples = np.asarray(q_samples, np.float64)
    p_samples = p_samples[np.isfinite(p_samples)]
    q_samples = q_samples[np.isfinite(q_samples)]
    if not len(p_samples) or not len(q_samples):
        return {"kl": math.nan, "oa": math.nan, "grid": [], "p": [], "q": []}
    h_p, h_q = _scott_bandwidth(p_samples), _scott_bandwidth(q_samples)
    low = min(p_samples.min(), q_samples.min()) - 3 * max(h_p, h_q)
    high = max(p_samples.max(), q_samples.max()) + 3 * max(h_p, h_q)
    if high - low <= 0:
        low, high = low - 1.0, high + 1.0
    grid = np.linspace(low, high, grid_points)
    step = grid[1] - grid[0]
    p = _gaussian_kde_on_grid(p_samples, grid, max(h_p, 2 * step))
    q = _gaussian_kde_on_grid(q_samples, grid, max(h_q, 2 * step))
    with np.errstate(divide="ignore", invalid="ignore"):
        integrand = np.where(p > 0, p * np.log(p / np.maximum(q, 1e-12)), 0.0)
    return {
        "kl": float(max(0.0, np.trapezoid(integrand, grid))),
        "oa": float(min(1.0, np.trapezoid(np.minimum(p, q), grid))),
        "grid": grid,
        "p": p,
        "q": q,
    }


def yang_lerch(
    generated: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    max_pairs: int = 5000,
    seed: int = 0,
) -> dict[str, dict]:
    """Yang & Lerch (2020) intra/inter-set distance analysis, per feature.

    ``generated[name]`` and ``reference[name]`` are ``(pieces,)`` scalars or ``(pieces,
    D)`` vectors (e.g. the pitch-class histogram) of one feature. For each feature:
    intra-set distances (every pair of pieces within a set), inter-set distances (every
    generated × reference pair), Euclidean; at most ``max_pairs`` of each, a seeded random
    subset. Returned per feature: ``kl_generated`` = KL(intra-generated ‖ inter),
    ``oa_generated`` = their overlapping area, ``kl_reference`` / ``oa_reference`` the
    same for the reference's intra-set distances, and the mean/std of each distance set.
    A set compared with itself gets OA close to 1. Pieces where the feature is NaN are
    left out of that feature.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, dict] = {}
    for name in generated:
        if name not in reference:
            continue
        g = _finite_rows(np.asarray(generated[name], np.float64))
        r = _finite_rows(np.asarray(reference[name], np.float64))
        if len(g) < 2 or len(r) < 2:
            continue
        intra_g = _subsample(_pairwise_distances(g, None), max_pairs, rng)
        intra_r = _subsample(_pairwise_distances(r, None), max_pairs, rng)
        inter = _subsample(_pairwise_distances(g, r), max_pairs, rng)
        gen_vs_inter = distribution_overlap(intra_g, inter)
        ref_vs_inter = distribution_overlap(intra_r, inter)
        out[name] = {
            "kl_generated": gen_vs_inter["kl"],
            "oa_generated": gen_vs_inter["oa"],
            "kl_reference": ref_vs_inter["kl"],
            "oa_reference": ref_vs_inter["oa"],
            "intra_generated_mean": float(intra_g.mean()),
            "intra_generated_std": float(intra_g.std()),
            "intra_reference_mean": float(intra_r.mean()),
            "intra_reference_std": float(intra_r.std()),
            "inter_mean": float(inter.mean()),
            "inter_std": float(inter.std()),
            "_curves": {
                "grid": gen_vs_inter["grid"],
                "intra_generated": gen_vs_inter["p"],
                "inter": gen_vs_inter["q"],
                "grid_reference": ref_vs_inter["grid"],
                "intra_reference": ref_vs_inter["p"],
            },
        }
    return out


def _finite_rows(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1)  # (pieces, D)
    return x[np.isfinite(x).all(axis=1)]


def _subsample(x: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= limit else rng.choice(x, limit, replace=False)


# ----------------------------------------------------------------------------- held-out band

#: Quantile of the held-out distances that bounds the band, and bootstrap resamples.
BAND_LEVEL = 0.95
BAND_RESAMPLES = 2000


def _band_row(kind: str, samples: float, test: float, low: float, high: float,
              n_samples: int, n_test: int, **extra) -> dict:
    if math.isfinite(samples) and math.isfinite(low) and math.isfinite(high):
        slack = 1e-9 * max(1.0, abs(low), abs(high))  # float noise on equal values
        within = bool(low - slack <= samples <= high + slack)
    else:
        within = None  # undefined: no verdict
    return {"kind": kind, "samples": samples, "test": test, "low": low, "high": high,
            "within": within, "n_samples": n_samples, "n_test": n_test, **extra}


def mean_band(samples, train, test, level: float = BAND_LEVEL,
              resamples: int = BAND_RESAMPLES, seed: int = 0) -> dict:
    """Band of a per-piece metric: is the samples' mean as close to train's as held-out
    real music of the same size gets?

    Distance of a set from train: ``|mean(set) - mean(train)|``. The test split is one
    draw of held-out real pieces, and its distance mixes any true difference between
    the splits with the noise of a finite set, which grows as the set shrinks. So the
    radius of the band is the ``level`` quantile of the distance from train of
    ``resamples`` sets of the samples' size drawn with replacement from the test
    pieces (a bootstrap of the test split): the band is ``mean(train) ± radius``, and
    the samples are within band when their mean lies inside it. With the test mean
    itself far from train the radius is at least about that distance, so "within band"
    means "no further from train than the test split is", up to the noise of a set of
    that size. NaN values (metric undefined on a piece) are left out; fewer than two
    test values, or no sample value, give no verdict (``within`` None).
    """
    s, r, t = (_finite(v) for v in (samples, train, test))
    m_s = float(s.mean()) if len(s) else math.nan
    m_r = float(r.mean()) if len(r) else math.nan
    m_t = float(t.mean()) if len(t) else math.nan
    radius = math.nan
    if len(s) and len(t) >= 2 and len(r):
        rng = np.random.default_rng(seed)
        means = t[rng.integers(0, len(t), (resamples, len(s)))].mean(axis=1)  # (resamples,)
        radius = float(np.quantile(np.abs(means - m_r), level))
    return _band_row("mean", m_s, m_t, m_r - radius, m_r + radius, len(s), len(t),
                     train=m_r, test_distance=abs(m_t - m_r), radius=radius)


def distance_band(samples_counts, train_counts, test_counts, level: float = BAND_LEVEL,
                  resamples: int = BAND_RESAMPLES, seed: int = 0) -> dict:
    """Band of the pitch-class JS divergence from the training split's pooled histogram.

    ``samples`` is ``JS(pooled samples, pooled train)`` (bits); the band is ``[0,
    radius]`` with radius the ``level`` quantile of the same divergence for sets of the
    samples' size drawn with replacement from the test pieces (as :func:`mean_band`).
    """
    g = np.asarray(samples_counts, np.float64).reshape(-1, 12)
    r = np.asarray(train_counts, np.float64).reshape(-1, 12)
    t = np.asarray(test_counts, np.float64).reshape(-1, 12)
    pooled_r = r.sum(axis=0)
    value = js_divergence(g.sum(axis=0), pooled_r) if len(g) else math.nan
    test = js_divergence(t.sum(axis=0), pooled_r) if len(t) else math.nan
    radius = math.nan
    if len(g) and len(t) >= 2:
        rng = np.random.default_rng(seed)
        pools = t[rng.integers(0, len(t), (resamples, len(g)))].sum(axis=1)  # (resamples, 12)
        radius = float(np.quantile([js_divergence(p, pooled_r) for p in pools], level))
    return _band_row("distance", value, test, 0.0, radius, len(g), len(t), radius=radius)


def accuracy_band(samples: dict, held_out: dict, level: float = BAND_LEVEL) -> dict:
    """Band of the two-sample test (:func:`tunesmith.evaluation.two_sample.c2st`).

    ``samples`` is the C2ST of generated vs test pieces, ``held_out`` that of test vs
    train pieces (real vs real: about 50 %). The band is ``[0, max(held-out accuracy,
    0.5) + z·√(1/(4n))]``: no better told apart than the test split is from train, up to
    the one-sided ``level`` noise of a guessing classifier on the ``n`` pieces the
    samples' test classified (:func:`~tunesmith.evaluation.two_sample.null_upper`).
    """
    accuracy = float(samples.get("accuracy", math.nan))
    test = float(held_out.get("accuracy", math.nan))
    n_pieces = int(sum(samples.get("pieces", [0, 0])))
    high = max(test, 0.5) + null_upper(n_pieces, level) - 0.5 if math.isfinite(test) else math.nan
    return _band_row("accuracy", accuracy, test, 0.0, high, samples["pieces"][1],
                     held_out.get("pieces", [0, 0])[0])


def _finite(values) -> np.ndarray:
    values = np.asarray(values, np.float64).reshape(-1)
    return values[np.isfinite(values)]


def track_activity(summary, by: str = "name") -> dict[str, np.ndarray]:
    """Voice activity per track of a SetSummary: ``label -> (pieces,)``, NaN for pieces
    without that track. ``by="name"`` keys tracks by label, ``"index"`` by position
    (``track 1``, ``track 2``...)."""
    labels = [names if by == "name" else [f"track {i + 1}" for i in range(len(names))]
              for names in summary.tracks]
    order = list(dict.fromkeys(label for names in labels for label in names))
    columns = {label: np.full(len(labels), math.nan) for label in order}
    for piece, (names, values) in enumerate(zip(labels, summary.activity, strict=True)):
        for label, value in zip(names, values, strict=True):
            columns[label][piece] = value
    return columns


def activity_matching(generated, reference) -> str:
    """``"name"`` when every generated track label occurs in the reference (SATB against
    SATB), else ``"index"``: generated tracks are then compared by position."""
    known = {label for names in reference.tracks for label in names}
    wanted = {label for names in generated.tracks for label in names}
    return "name" if wanted and wanted <= known else "index"


def held_out_band(generated, reference, held_out, two_sample: dict | None = None,
                  seed: int = 0) -> dict:
    """Every metric of the generated set beside its held-out band (test split vs train).

    ``generated``, ``reference`` (the training split) and ``held_out`` (the test split)
    are SetSummaries. Rows, in report order: every scalar metric of
    :data:`~tunesmith.evaluation.metrics.FEATURES` and the voice activity of each track
    (:func:`mean_band`), the pooled pitch-class JS divergence (:func:`distance_band`)
    and, when ``two_sample`` holds the C2ST results, the two-sample accuracy
    (:func:`accuracy_band`). Returns ``{"rows": {name: row}, "n_within", "n_judged",
    "level", "track_matching"}``; a row's ``within`` is None when undefined.
    """
    rows = {}
    for name in FEATURE_NAMES:
        rows[name] = mean_band(generated.column(name), reference.column(name),
                               held_out.column(name), seed=seed)
    matching = activity_matching(generated, reference)
    columns = [track_activity(s, matching) for s in (generated, reference, held_out)]
    for label, values in columns[0].items():
        rows[f"voice_activity[{label}]"] = mean_band(
            values, columns[1].get(label, []), columns[2].get(label, []), seed=seed)
    rows["pitch_class_js"] = distance_band(generated.pitch_class_counts,
                                           reference.pitch_class_counts,
                                           held_out.pitch_class_counts, seed=seed)
    if two_sample and two_sample.get("band"):
        rows["two_sample_accuracy"] = accuracy_band(two_sample["samples"], two_sample["band"])
    judged = [r["within"] for r in rows.values() if r["within"] is not None]
    return {"rows": rows, "n_within": int(sum(judged)), "n_judged": len(judged),
            "level": BAND_LEVEL, "track_matching": matching}


# ----------------------------------------------------------------------------- everything


def _stats(values: np.ndarray) -> dict:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {"mean": math.nan, "std": math.nan, "median": math.nan, "n": 0}
    return {"mean": float(finite.mean()), "std": float(finite.std()),
            "median": float(np.median(finite)), "n": len(finite)}


def compare_sets(
    generated,
    reference,
    lcs_threshold: float = 0.8,
    span_threshold: int = 32,
    progress=None,
    held_out=None,
    two_sample: bool = True,
    seed: int = 0,
    held_out_split: str = "test",
) -> dict:
    """Every set-level comparison of two :class:`~tunesmith.evaluation.reference.SetSummary`.

    Returns a dict (JSON-able apart from the ``_curves`` arrays of ``yang_lerch``):
    per-metric statistics of both sets, per-track voice activity, pitch-class JS
    divergences, indirect sampling likelihoods, the Yang & Lerch analysis (metrics plus
    the pitch-class histogram as a 12-D feature) and the plagiarism search of every
    generated piece against every reference piece. ``progress`` is called once per
    generated piece searched.

    With ``held_out`` (the corpus's test split, or the split named ``held_out_split``,
    when ``reference`` is its training split) it adds ``band`` (:func:`held_out_band`).
    With ``two_sample`` it adds the classifier two-sample test of generated against
    held-out pieces (against the reference when there is no held-out set) and, with
    ``held_out``, of held-out against reference pieces as its band.
    """
    import time

    timings = {}
    start = time.perf_counter()
    metric_stats = {
        name: {"generated": _stats(generated.column(name)),
               "reference": _stats(reference.column(name))}
        for name in FEATURE_NAMES
    }
    matching = activity_matching(generated, reference)
    activity = [track_activity(s, matching) for s in (generated, reference)]
    voice_activity = {
        "track_matching": matching,
        "tracks": {label: {"generated": _stats(values),
                           "reference": _stats(activity[1].get(label, np.zeros(0)))}
                   for label, values in activity[0].items()},
    }
    js = pitch_class_js(generated.pitch_class_counts, reference.pitch_class_counts)
    isl = indirect_likelihood(generated.features, reference.features, FEATURE_NAMES)
    timings["metrics_js_isl_s"] = time.perf_counter() - start

    start = time.perf_counter()

    def columns(summary) -> dict[str, np.ndarray]:
        data = {name: summary.column(name) for name in FEATURE_NAMES}
        counts = np.asarray(summary.pitch_class_counts, np.float64).reshape(-1, 12)
        totals = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            data["pitch_class_histogram"] = np.where(totals > 0, counts / totals, np.nan)
        return data

    yl = yang_lerch(columns(generated), columns(reference))
    timings["yang_lerch_s"] = time.perf_counter() - start

    start = time.perf_counter()
    index = plagiarism.TrainingIndex(reference.events)
    found = plagiarism.search(
        dict(zip(generated.names, generated.events, strict=True)), index, reference.names,
        lcs_threshold=lcs_threshold, span_threshold=span_threshold, progress=progress,
    )
    timings["plagiarism_s"] = time.perf_counter() - start

    c2st_results = None
    if two_sample:
        start = time.perf_counter()
        real = held_out if held_out is not None else reference
        c2st_results = {
            "real": f"held-out {held_out_split} split" if held_out is not None else "reference",
            "samples": c2st(real.rolls, generated.rolls, seed=seed),
            "band": c2st(held_out.rolls, reference.rolls, seed=seed)
            if held_out is not None else None,
        }
        timings["two_sample_s"] = time.perf_counter() - start
    band = None
    if held_out is not None:
        start = time.perf_counter()
        band = held_out_band(generated, reference, held_out, c2st_results, seed=seed)
        band["n_test"] = len(held_out)  # pieces of the held-out split (test or valid)
        band["split"] = held_out_split
        timings["band_s"] = time.perf_counter() - start
    oa = [v["oa_generated"] for v in yl.values() if np.isfinite(v["oa_generated"])]
    kl = [v["kl_generated"] for v in yl.values() if np.isfinite(v["kl_generated"])]
    return {
        "n_generated": len(generated),
        "n_reference": len(reference),
        "skipped_generated": [list(s) for s in generated.skipped],
        "band": band,
        "metrics": metric_stats,
        "voice_activity": voice_activity,
        "two_sample": c2st_results,
        "per_piece": dict(zip(generated.names, generated.features, strict=True)),
        "pitch_class_js": js,
        "indirect_likelihood": isl,
        "yang_lerch": yl,
        "yang_lerch_mean_oa": float(np.mean(oa)) if oa else math.nan,
        "yang_lerch_mean_kl": float(np.mean(kl)) if kl else math.nan,
        "plagiarism": {
            "lcs_threshold": lcs_threshold,
            "span_threshold": span_threshold,
            "n_flagged": sum(r.flagged for r in found),
            "pieces": [r.to_dict() for r in found],
        },
        "timings": timings,
    }
