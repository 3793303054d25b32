"""GrooVAE on the Groove MIDI Dataset's test split, beside its baselines, in one run.

Gillick et al. (ICML 2019) evaluate humanisation, infilling and drumify; this script does
the same with a GrooVAE checkpoint (default: the shipped ``pretrained:groove``) on the
non-overlapping 2-bar windows of GMD's **test** performances (4/4, beats and fills). The
baselines are computed from the **train** split.

* **Humanise**: each test window's quantised score (hits only) goes in; MAE of the
  offsets (ms, at the performance's own tempo) and of the velocities (0-127) over the
  real hits, against (a) zero offsets and each voice's median training velocity, and
  (b) the training mean offset and velocity of each voice at each 16th position of the
  bar (a template). Also a two-sample classifier test (C2ST): a small 1-D convolutional
  classifier, 5-fold cross-validated, tells real windows from humanised ones (50 %:
  indistinguishable); the same for the baselines.
* **Infill of hi-hats**: closed and open hi-hats of windows that have any are removed
  and regenerated; hit F1 (per step and voice) and velocity MAE (0-127, on the hits both
  have) against the real hi-hats; baseline: the most common 2-bar hi-hat pattern of the
  training windows of the piece's style (with the mean velocities of those windows).
* **Drumify**: each test window's tap (:func:`~tunesmith.representations.drums.flatten_to_tap`)
  goes in; reports the share of kick/snare onsets that fall on a tap step, the share of
  taps covered by some hit, and style consistency: the nearest-style-centroid classifier
  (trained on the training windows' per-voice, per-step hit and velocity features and
  GMD's style labels) gives the output the style of its source window. Baselines: a
  random training window (chance), and the real windows (the classifier's ceiling).
* **Sampling**: windows from the prior, each metric of
  :func:`tunesmith.evaluation.metrics.feature_vector` (those that vary on real drums) plus the
  representation's own (hits per bar of each voice, velocity mean, |offset| mean) beside
  the held-out band of :func:`tunesmith.evaluation.compare.mean_band` (train vs test), and
  the C2ST of as many prior samples as test windows against those.
* **Latent use**: per task, the active units of μ on the test windows and the
  teacher-forced hit accuracy with each window's own μ against another window's.

Usage::

    PYTHONPATH=src python benchmarks/groove.py [--checkpoint pretrained:groove]
        [--path ../shared/datasets/groove] [--samples 512] [--out benchmarks/results/groove.json]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from tunesmith.data import prepare
from tunesmith.data.corpora import get_corpus
from tunesmith.models import groove_vae as g
from tunesmith.models.sampling import SamplingControls
from tunesmith.representations import drums
from tunesmith.training.checkpoint import load_checkpoint

HIHATS = list(drums.VOICE_GROUPS["hihat"])
KICK_SNARE = [0, 1]


# --------------------------------------------------------------------------- data


def split_windows(prepared, split: str, rows: dict, hop_bars: int):
    """(windows (W, 32, 27), ms per step (W,), style (W,)) of a split's performances."""
    cfg = drums.DrumsConfig(hop_bars=hop_bars)
    out, ms, styles = [], [], []
    for piece_id, piece in zip(prepared.ids(split), prepared.pieces(split), strict=True):
        row = rows[piece_id]
        for w in drums.windows(piece, cfg):
            out.append(np.asarray(w, np.float32))
            ms.append(60000.0 / float(row["bpm"]) / 4)
            styles.append(row["style"].split("/")[0])
    return np.stack(out), np.array(ms), np.array(styles)


# --------------------------------------------------------------------------- humanise


def template_baselines(train: np.ndarray):
    """(a) per-voice median velocity; (b) mean velocity and offset per voice and 16th
    position of the bar, over the training hits. -> (median (9,), vel (16, 9), off (16, 9))."""
    hits = train[..., drums.HITS] > 0.5  # (W, 32, 9)
    vel, off = train[..., drums.VELOCITIES], train[..., drums.OFFSETS]
    median = np.array([np.median(vel[..., v][hits[..., v]]) for v in range(9)])
    position = np.arange(32) % 16
    mean_vel, mean_off = np.zeros((16, 9)), np.zeros((16, 9))
    for p in range(16):
        at = position == p
        h = hits[:, at]  # (W, 2, 9)
        count = h.sum((0, 1))
        mean_vel[p] = np.where(count > 0, (vel[:, at] * h).sum((0, 1)) / np.maximum(count, 1),
                               median)
        mean_off[p] = (off[:, at] * h).sum((0, 1)) / np.maximum(count, 1)
    return median, mean_vel, mean_off


def apply_template(windows: np.ndarray, velocity: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Hits of ``windows`` with velocity (32, 9) and offset (32, 9) where they hit."""
    hits = (windows[..., drums.HITS] > 0.5).astype(np.float32)
    out = np.zeros_like(windows)
    out[..., drums.HITS] = hits
    out[..., drums.VELOCITIES] = hits * velocity
    out[..., drums.OFFSETS] = hits * offset
    return out


def humanise_errors(real: np.ndarray, guess: np.ndarray, ms: np.ndarray) -> dict:
    """MAE over the real hits: offsets in ms, velocities in MIDI units."""
    hits = real[..., drums.HITS] > 0.5
    d_off = np.abs(real[..., drums.OFFSETS] - guess[..., drums.OFFSETS]) * ms[:, None, None]
    d_vel = np.abs(real[..., drums.VELOCITIES] - guess[..., drums.VELOCITIES]) * 127
    return {"offset_mae_ms": float(d_off[hits].mean()), "velocity_mae": float(d_vel[hits].mean())}


def c2st(real: np.ndarray, other: np.ndarray, folds: int = 5, epochs: int = 15,
         seed: int = 0) -> float:
    """Cross-validated accuracy of a 1-D conv classifier telling real windows (W, 32, 27)
    from ``other`` (paired: window i of both sets shares a fold)."""
    from torch import nn

    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(real)) % folds
    x = torch.as_tensor(np.concatenate([real, other]), dtype=torch.float32)
    y = torch.cat([torch.ones(len(real)), torch.zeros(len(other))])
    fold_of = np.concatenate([fold, fold])
    correct = 0
    for f in range(folds):
        torch.manual_seed(seed + f)
        net = nn.Sequential(nn.Conv1d(27, 32, 3, padding=1), nn.ReLU(),
                            nn.Conv1d(32, 32, 3, padding=1), nn.ReLU(),
                            nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(32, 1))
        optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
        train_idx = np.flatnonzero(fold_of != f)
        test_idx = np.flatnonzero(fold_of == f)
        for _ in range(epochs):
            for batch in np.array_split(rng.permutation(train_idx), max(1, len(train_idx) // 64)):
                logits = net(x[batch].transpose(1, 2))[:, 0]
                loss = nn.functional.binary_cross_entropy_with_logits(logits, y[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        with torch.no_grad():
            predicted = net(x[test_idx].transpose(1, 2))[:, 0] > 0
        correct += int((predicted == (y[test_idx] > 0.5)).sum())
    return correct / len(x)


# --------------------------------------------------------------------------- infill


def hihat_templates(train: np.ndarray, styles: np.ndarray) -> dict:
    """style (and None: all styles) -> the most common 2-bar hi-hat (hits (32, 2),
    mean velocities (32, 2)) of the training windows with hi-hats."""
    out = {}
    for style in [None, *sorted(set(styles))]:
        chosen = train[(styles == style) if style is not None else slice(None)]
        hits = chosen[..., HIHATS] > 0.5  # (W, 32, 2)
        chosen, hits = chosen[hits.any((1, 2))], hits[hits.any((1, 2))]
        if not len(chosen):
            continue
        keys = [h.tobytes() for h in hits]
        best = Counter(keys).most_common(1)[0][0]
        same = np.array([k == best for k in keys])
        velocity = chosen[same][..., [9 + v for v in HIHATS]].mean(0)
        out[style] = (hits[same][0].astype(np.float32), velocity)
    return out


def hihat_scores(real: np.ndarray, guess: np.ndarray) -> dict:
    """Hit F1 and velocity MAE (on hits both have) of the hi-hats."""
    r, p = real[..., HIHATS] > 0.5, guess[..., HIHATS] > 0.5
    tp, fp, fn = int((r & p).sum()), int((~r & p).sum()), int((r & ~p).sum())
    both = r & p
    d_vel = np.abs(real[..., [9 + v for v in HIHATS]] - guess[..., [9 + v for v in HIHATS]])
    return {"hit_f1": 2 * tp / max(2 * tp + fp + fn, 1),
            "velocity_mae": float(d_vel[both].mean() * 127) if both.any() else math.nan,
            "hits_real": int(r.sum()), "hits_generated": int(p.sum())}


# --------------------------------------------------------------------------- drumify


def style_features(windows: np.ndarray) -> np.ndarray:
    """(W, 32·9·2): hits and velocities of every voice at every step."""
    return np.concatenate([windows[..., drums.HITS].reshape(len(windows), -1),
                           windows[..., drums.VELOCITIES].reshape(len(windows), -1)], 1)


class NearestStyle:
    """Nearest-centroid style classifier on standardised :func:`style_features`."""

    def __init__(self, windows: np.ndarray, styles: np.ndarray):
        f = style_features(windows)
        self.mean, self.std = f.mean(0), f.std(0) + 1e-6
        z = (f - self.mean) / self.std
        self.labels = np.array(sorted(set(styles)))
        self.centroids = np.stack([z[styles == s].mean(0) for s in self.labels])

    def predict(self, windows: np.ndarray) -> np.ndarray:
        z = (style_features(windows) - self.mean) / self.std
        d = ((z[:, None, :] - self.centroids[None]) ** 2).sum(-1)
        return self.labels[d.argmin(1)]


def tap_agreement(tap_source: np.ndarray, kit: np.ndarray) -> dict:
    """Share of kick/snare onsets on a tap step, and of tap steps with any hit."""
    taps = drums.flatten_to_tap(tap_source)[..., 0] > 0.5  # (W, 32)
    ks = kit[..., KICK_SNARE] > 0.5  # (W, 32, 2)
    on_tap = (ks & taps[..., None]).sum()
    any_hit = (kit[..., drums.HITS] > 0.5).any(-1)
    return {"kick_snare_on_taps": float(on_tap / max(ks.sum(), 1)),
            "taps_covered": float((taps & any_hit).sum() / max(taps.sum(), 1)),
            "kick_snare_per_window": float(ks.sum() / len(kit))}


# --------------------------------------------------------------------------- sampling


def drum_metrics(windows: np.ndarray) -> dict[str, np.ndarray]:
    """Per-window metrics: feature_vector's on the decoded Score (120 qpm), and the
    representation's own."""
    from tunesmith.evaluation.metrics import feature_vector

    rows = [feature_vector(drums.decode(w)) for w in windows]
    out = {name: np.array([r[name] for r in rows]) for name in rows[0]}
    hits = windows[..., drums.HITS] > 0.5
    for v, name in enumerate(drums.CLASSES):
        out[f"{name}_hits_per_bar"] = hits[..., v].sum(1) / 2
    with np.errstate(invalid="ignore"):
        out["velocity_mean"] = np.array([w[..., drums.VELOCITIES][h].mean() * 127 if h.any()
                                         else np.nan for w, h in zip(windows, hits, strict=True)])
        out["offset_abs_mean"] = np.array([np.abs(w[..., drums.OFFSETS][h]).mean() if h.any()
                                           else np.nan for w, h in zip(windows, hits,
                                                                       strict=True)])
    return out


def sampling_band(samples: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict:
    from tunesmith.evaluation.compare import mean_band

    s, r, t = drum_metrics(samples), drum_metrics(train), drum_metrics(test)
    # metrics constant on real drums (the pitch metrics, which skip drum tracks) say nothing
    informative = [name for name in s if np.nanstd(r[name]) > 0]
    rows = {name: mean_band(s[name], r[name], t[name]) for name in informative}
    judged = {k: v for k, v in rows.items() if v["within"] is not None}
    return {"within": sum(v["within"] for v in judged.values()), "judged": len(judged),
            "metrics": rows}


# --------------------------------------------------------------------------- latent use


@torch.no_grad()
def latent_use(model, windows: np.ndarray, seed: int = 0) -> dict:
    """Per task: active units of μ (Burda et al. 2016: Cov_x E[z_d|x] > 0.01) and the
    teacher-forced hit accuracy with each window's own μ and with the μ of another window
    (equal accuracies: the decoder ignores z)."""
    from tunesmith.models.music_vae import active_units

    x = torch.as_tensor(windows)
    generator = torch.Generator().manual_seed(seed)
    shuffle = torch.randperm(len(x), generator=generator)
    kept = torch.ones(len(x), 9, dtype=torch.bool)
    kept[:, HIHATS] = False
    out = {}
    for index, task in enumerate(g.TASKS):
        encoder_input, control = g.make_controls(x, torch.full((len(x),), index), kept)
        mu, _ = model.encode(encoder_input)

        def accuracy(z, control=control):
            hits = model.decode_controlled(z, x, control)[..., :9] > 0
            return float((hits == (x[..., :9] > 0.5)).float().mean())

        out[task] = {"active_units": active_units(mu)[0], "latent_dim": int(mu.shape[1]),
                     "hit_accuracy_own_z": accuracy(mu),
                     "hit_accuracy_shuffled_z": accuracy(mu[shuffle])}
    return out


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="pretrained:groove")
    parser.add_argument("--path", default=None, help="the GMD folder (info.csv)")
    parser.add_argument("--samples", type=int, default=512, help="prior samples to measure")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/groove.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()

    model, _ = load_checkpoint(args.checkpoint)
    if not isinstance(model, g.GrooVAE):
        raise SystemExit(f"{args.checkpoint} is not a GrooVAE checkpoint")
    corpus = get_corpus("groove", args.path)
    rows = {r["midi_filename"].removesuffix(".mid"): r for r in corpus.rows()}
    prepared = prepare("groove", "drums", path=args.path, progress=False)
    train, _, train_styles = split_windows(prepared, "train", rows, hop_bars=1)
    test, test_ms, test_styles = split_windows(prepared, "test", rows, hop_bars=2)
    print(f"{len(train)} train windows (1-bar hop), {len(test)} test windows (2-bar hop)")
    results: dict = {"checkpoint": args.checkpoint, "windows": {"train": len(train),
                                                                 "test": len(test)}}

    # humanise
    median, mean_vel, mean_off = template_baselines(train)
    quantised = drums.quantise(test)
    grooved = g.humanize(model, quantised.reshape(-1, 27)).reshape(test.shape)
    assert np.array_equal(grooved[..., drums.HITS], quantised[..., drums.HITS])
    zero = apply_template(test, np.tile(median, (32, 1)), np.zeros((32, 9)))
    template = apply_template(test, np.tile(mean_vel, (2, 1)), np.tile(mean_off, (2, 1)))
    results["humanize"] = {
        name: {**humanise_errors(test, guess, test_ms), "c2st_accuracy": c2st(test, guess)}
        for name, guess in (("groovae", grooved), ("zero_offsets_median_velocity", zero),
                            ("voice_position_template", template))}
    print("humanize", json.dumps(results["humanize"], indent=1))

    # infill of hi-hats
    has_hihat = (test[..., HIHATS] > 0.5).any((1, 2))
    subject, subject_styles = test[has_hihat], test_styles[has_hihat]
    controls = SamplingControls(seed=0)
    infilled = {
        "groovae_greedy": g.infill(model, subject.reshape(-1, 27), HIHATS,
                                   greedy=True).reshape(subject.shape),
        "groovae_sampled": g.infill(model, subject.reshape(-1, 27), HIHATS,
                                    controls).reshape(subject.shape),
    }
    kept = [v for v in range(9) if v not in HIHATS]
    kept_columns = [b * 9 + v for b in range(3) for v in kept]
    for out in infilled.values():
        assert np.array_equal(out[..., kept_columns], subject[..., kept_columns])
    templates = hihat_templates(train, train_styles)
    base = subject.copy()
    for i, style in enumerate(subject_styles):
        hits, velocity = templates.get(style, templates[None])
        base[i, :, HIHATS] = hits.T
        base[i, :, [9 + v for v in HIHATS]] = (hits * velocity).T
        base[i, :, [18 + v for v in HIHATS]] = 0
    infilled["style_mode_pattern"] = base
    results["infill_hihat"] = {name: hihat_scores(subject, out) for name, out in
                               infilled.items()}
    results["infill_hihat"]["windows"] = int(has_hihat.sum())
    print("infill", json.dumps(results["infill_hihat"], indent=1))

    # drumify
    classifier = NearestStyle(train, train_styles)
    taps = drums.flatten_to_tap(test)
    kits = {"groovae_greedy": g.drumify(model, taps.reshape(-1, 3), greedy=True),
            "groovae_sampled": g.drumify(model, taps.reshape(-1, 3), controls)}
    kits = {k: v.reshape(test.shape) for k, v in kits.items()}
    rng = np.random.default_rng(0)
    kits["random_training_window"] = train[rng.integers(0, len(train), len(test))]
    kits["real_window"] = test
    results["drumify"] = {
        name: {**tap_agreement(test, kit),
               "style_consistency": float((classifier.predict(kit) == test_styles).mean())}
        for name, kit in kits.items()}
    results["drumify"]["styles"] = len(classifier.labels)
    print("drumify", json.dumps(results["drumify"], indent=1))

    # sampling
    samples = g.sample(model, args.samples, SamplingControls(seed=0))
    band = sampling_band(samples, train[rng.permutation(len(train))[:4000]], test)
    band["c2st_accuracy"] = c2st(test, g.sample(model, len(test), SamplingControls(seed=1)))
    results["sampling"] = band
    print(f"sampling: {band['within']}/{band['judged']} metrics within band, C2ST "
          f"{band['c2st_accuracy']:.3f}")
    for name, row in band["metrics"].items():
        if row["within"] is not None:
            print(f"  {name:28s} samples {row['samples']:.3f}  test {row['test']:.3f}  "
                  f"band [{row['low']:.3f}, {row['high']:.3f}]  {row['within']}")

    results["latent"] = latent_use(model, test)
    print("latent", json.dumps(results["latent"], indent=1))

    results["seconds"] = round(time.time() - started, 1)
    results["machine"] = {"platform": platform.platform(), "torch": torch.__version__,
                          "threads": args.threads}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {args.out} in {results['seconds']} s")


if __name__ == "__main__":
    main()
