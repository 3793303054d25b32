"""Evaluation reports: ``report.md``, ``report.json``, PNG plots and a console table.

Takes the dict of :func:`tunesmith.evaluation.compare.compare_sets` plus the two
:class:`~tunesmith.evaluation.reference.SetSummary` it came from (for the per-piece
distributions in the plots).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from tunesmith.errors import MusicFileError, TunesmithError
from tunesmith.evaluation.metrics import FEATURE_NAMES
from tunesmith.evaluation.reference import (
    held_out_split,
    parse_reference,
    reference_summary,
    summarise_scores,
)
from tunesmith.music import is_music_file, load_all
from tunesmith.representations.adapter import get_representation

PITCH_CLASS_NAMES = ("C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B")


def _jsonable(value):
    """NaN/inf -> None, numpy -> Python, private keys (``_curves``) dropped."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# ----------------------------------------------------------------------------- plots


def _compact(fig, axes, yticks: bool = True) -> None:
    """Fixed spacing and few ticks: ``tight_layout`` on a grid of panels costs seconds."""
    from matplotlib.ticker import MaxNLocator

    for ax in axes.flat:
        if yticks:
            ax.yaxis.set_major_locator(MaxNLocator(4))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.tick_params(axis="both", labelsize=6)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.06, top=0.9, wspace=0.3, hspace=0.6)


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend (reports are PNGs, never windows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metric_distributions(generated, reference, path: Path) -> Path:
    """Violins of every metric, generated vs reference, one panel per metric."""
    plt = _pyplot()

    def varies(name: str) -> bool:
        values = np.concatenate([generated.column(name), reference.column(name)])
        values = values[np.isfinite(values)]
        return len(values) > 0 and np.ptp(values) > 0

    names = [n for n in FEATURE_NAMES if varies(n)]  # constant metrics: see the tables
    cols = 4
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        data, labels = [], []
        for label, summary in (("generated", generated), ("reference", reference)):
            values = summary.column(name)
            values = values[np.isfinite(values)]
            data.append(values if len(values) else np.array([np.nan]))
            labels.append(label)
        for position, values in enumerate(data, start=1):
            if len(values) > 1 and np.ptp(values) > 0:
                parts = ax.violinplot(values, [position], showmedians=True, widths=0.8)
                color = "tab:orange" if position == 1 else "tab:blue"
                for body in parts["bodies"]:
                    body.set_facecolor(color)
                    body.set_alpha(0.6)
                for key in ("cmedians", "cmins", "cmaxes", "cbars"):
                    parts[key].set_color("black")
                    parts[key].set_linewidth(0.8)
            elif len(values) and np.isfinite(values).any():
                ax.plot([position] * len(values), values, "_", markersize=20,
                        color="tab:orange" if position == 1 else "tab:blue")
        ax.set_xlim(0.4, 2.6)
        ax.set_xticks([1, 2], labels, fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("metric distributions: generated (orange) vs reference (blue)")
    _compact(fig, axes)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_pitch_classes(results: dict, path: Path) -> Path:
    """Pooled pitch-class histograms side by side."""
    plt = _pyplot()

    js = results["pitch_class_js"]
    x = np.arange(12)
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(x - 0.2, js["generated_pooled_histogram"], 0.4, label="generated", color="tab:orange")
    ax.bar(x + 0.2, js["reference_pooled_histogram"], 0.4, label="reference", color="tab:blue")
    ax.set_xticks(x, PITCH_CLASS_NAMES)
    ax.set_ylabel("share of notes")
    ax.set_title(f"pitch classes (pooled JS divergence {_fmt(js['pooled'], 4)} bits)")
    ax.legend()
    fig.subplots_adjust(left=0.11, right=0.98, bottom=0.18, top=0.85, wspace=0.25)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_plagiarism(results: dict, path: Path) -> Path:
    """Per generated piece: LCS ratio and longest copied span, with the flag thresholds."""
    plt = _pyplot()

    info = results["plagiarism"]
    pieces = info["pieces"]
    ratio = np.array([p["lcs_ratio"] for p in pieces], float)
    span = np.array([p["copied_span"] for p in pieces], float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
    left.hist(ratio[np.isfinite(ratio)], bins=20, range=(0, 1), color="tab:orange")
    left.axvline(info["lcs_threshold"], color="red", linestyle="--", label="flag threshold")
    left.set_xlabel("LCS / piece length (closest training piece)")
    left.set_ylabel("generated pieces")
    left.legend(fontsize=8)
    top = max(float(span.max(initial=0)), info["span_threshold"]) + 2
    right.hist(span, bins=min(30, int(top)), range=(0, top), color="tab:orange")
    right.axvline(info["span_threshold"], color="red", linestyle="--")
    right.set_xlabel("longest verbatim copied span (notes)")
    fig.suptitle(f"plagiarism: {info['n_flagged']} of {len(pieces)} pieces flagged")
    fig.subplots_adjust(left=0.11, right=0.98, bottom=0.18, top=0.85, wspace=0.25)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_yang_lerch(results: dict, path: Path) -> Path:
    """KDE curves of intra-set (generated, reference) and inter-set distances per feature."""
    plt = _pyplot()

    analysis = {k: v for k, v in results["yang_lerch"].items()
                if "_curves" in v and v["inter_std"] > 0}
    names = list(analysis)
    cols = 4
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        curves = analysis[name]["_curves"]
        ax.plot(curves["grid"], curves["intra_generated"], color="tab:orange", label="intra gen")
        ax.plot(curves["grid_reference"], curves["intra_reference"], color="tab:blue",
                label="intra ref")
        ax.plot(curves["grid"], curves["inter"], color="black", linestyle="--", label="inter")
        ax.set_title(f"{name}\nOA {_fmt(analysis[name]['oa_generated'], 2)}", fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if names:
        axes.flat[0].legend(fontsize=6)
    fig.suptitle("Yang & Lerch (2020): distance PDFs")
    _compact(fig, axes, yticks=False)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_band(results: dict, path: Path) -> Path:
    """Each metric's distance from the training split in band radii: the grey band is
    the held-out band, orange dots the samples (red outside), blue ticks the test split."""
    plt = _pyplot()

    rows = [(name, row) for name, row in results["band"]["rows"].items()
            if row["within"] is not None and row["high"] > row["low"]]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(rows) + 1.2))
    limit = 4.0
    for y, (_, row) in enumerate(rows):
        if row["kind"] == "mean":  # band: train ± radius -> [-1, 1]
            centre, scale, band = row["train"], row["radius"], (-1.0, 1.0)
        else:  # distances and accuracies: [0, high] -> [0, 1]
            centre, scale, band = row["low"], row["high"] - row["low"], (0.0, 1.0)
        ax.plot(band, [y, y], color="0.8", linewidth=7, solid_capstyle="butt")
        test = (row["test"] - centre) / scale
        if math.isfinite(test):
            ax.plot(np.clip(test, -limit, limit), y, "|", color="tab:blue", markersize=10)
        sample = float(np.clip((row["samples"] - centre) / scale, -limit, limit))
        ax.plot(sample, y, "o", color="tab:orange" if row["within"] else "tab:red",
                markersize=5)
    ax.set_yticks(range(len(rows)), [name for name, _ in rows], fontsize=7)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(-limit - 0.2, limit + 0.2)
    ax.axvline(0, color="0.5", linewidth=0.5)
    ax.set_xlabel(f"distance from the train split in band radii (clipped at ±{limit:g})",
                  fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    band = results["band"]
    ax.set_title(f"within band on {band['n_within']} of {band['n_judged']}: grey = band, "
                 "blue = test split, dot = samples (red: outside)", fontsize=8)
    fig.subplots_adjust(left=0.32, right=0.97, bottom=0.6 / (0.28 * len(rows) + 1.2),
                        top=1 - 0.45 / (0.28 * len(rows) + 1.2))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- text


def _band_cells(row: dict | None, split: str = "test") -> tuple[str, str, str]:
    """(samples, band, within) cells of one band row; ``split`` names the held-out split."""
    if row is None:
        return "–", "–", "–"
    if not math.isfinite(row["high"]):
        return _fmt(row["samples"]), "–", "–"
    verdict = {True: "yes", False: "**no**", None: "–"}[row["within"]]
    if row["kind"] == "accuracy":
        return (_percent(row["samples"]),
                f"≤ {_percent(row['high'])} ({split} vs train {_percent(row['test'])})", verdict)
    if row["kind"] == "distance":
        return (_fmt(row["samples"], 4),
                f"≤ {_fmt(row['high'], 4)} ({split} {_fmt(row['test'], 4)})", verdict)
    return (_fmt(row["samples"]),
            f"{_fmt(row['low'])} – {_fmt(row['high'])} ({split} {_fmt(row['test'])})", verdict)


def _percent(value) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.1f} %"


def band_table(results: dict, context: dict) -> list[str]:
    """The report's leading table: metric, samples, held-out band (the test split's unless
    the band was measured on valid), within band."""
    band = results.get("band")
    split = band.get("split", "test") if band else "test"
    two = results.get("two_sample")
    lines = ["## Sample quality against the held-out band", ""]
    explain = []
    if band is None:
        lines += [f"No held-out band: {context.get('band_note', 'not computed')}.", ""]
        rows = {name: None for name in results["metrics"]}
    else:
        rows = band["rows"]
        lines += [f"**Within band on {band['n_within']} of {band['n_judged']} metrics.**", ""]
        explain = [
            f"The band is where held-out real music lands: the corpus's {split} split "
            f"({band['n_test']} pieces) measured against its training split. For a "
            f"per-piece metric it is the train mean ± the {100 * band['level']:.0f} % "
            "quantile of the distance from the train mean of the means of sets of the "
            "samples' size resampled from the test pieces; for the pitch-class JS "
            "divergence from the pooled training histogram, the same quantile of that "
            f"divergence; for the two-sample accuracy, the {split} split's own accuracy "
            "against train plus the one-sided noise of a guessing classifier. Samples: "
            "mean over the generated pieces. Voice-activity tracks are matched by "
            f"{band['track_matching']}.",
            "",
        ]
    lines += [f"| metric | samples | {split}-split band | within band |", "|---|---|---|---|"]
    for name, row in rows.items():
        cells = _band_cells(row, split)
        if row is None and name in results["metrics"]:
            cells = (_fmt(results["metrics"][name]["generated"]["mean"]), "–", "–")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    if band is None:
        for label, stats in results["voice_activity"]["tracks"].items():
            value = _fmt(stats["generated"]["mean"])
            lines.append(f"| voice_activity[{label}] | {value} | – | – |")
        if two and two.get("samples"):
            value = _percent(two["samples"]["accuracy"])
            lines.append(f"| two_sample_accuracy | {value} | – | – |")
    lines += ["", *explain]
    if two and two.get("samples"):
        c = two["samples"]
        lines.append(
            f"Two-sample test (Lopez-Paz & Oquab 2017): a 1-D CNN told {c['windows'][1]} "
            f"generated {c['window_steps']}-step windows (16 quarter notes, sixteenth steps) "
            f"from {c['windows'][0]} of the {two['real']}, {c['folds']}-fold cross-validated "
            f"by piece: balanced accuracy {_percent(c['accuracy'])} (50 % = "
            f"indistinguishable){'; ' + c['note'] if c['note'] else ''}."
        )
        lines.append("")
    if band is not None:
        lines += ["![held-out band](band.png)", ""]
    return lines


def markdown(results: dict, context: dict) -> str:
    """The human-readable report."""
    lines = [
        "# tunesmith evaluation report",
        "",
        f"- generated: `{context.get('generated', '')}` — {results['n_generated']} pieces"
        + (f" of {context['bars']:g} bars, sampled from the checkpoint" if "bars" in context
           else "")
        + (f" ({len(results['skipped_generated'])} skipped)"
           if results["skipped_generated"] else ""),
        f"- reference: `{context.get('reference', '')}` — {results['n_reference']} pieces",
    ]
    if context.get("nll") is not None:
        nll = context["nll"]
        lines.append(f"- held-out NLL on the reference test split: {_fmt(nll.get('value'), 4)} "
                     f"({nll.get('note', '')})")
    js = results["pitch_class_js"]
    isl = results["indirect_likelihood"]
    plag = results["plagiarism"]
    lines += ["", *band_table(results, context)]
    lines += [
        "## Summary",
        "",
        "| measure | value | read against |",
        "|---|---|---|",
        f"| pitch-class JS divergence, pooled (bits) | {_fmt(js['pooled'], 4)} | 0 = same |",
        f"| pitch-class JS, per piece vs reference pool (mean) | {_fmt(js['per_piece_mean'], 4)}"
        f" | reference pieces: {_fmt(js['reference_per_piece_mean'], 4)} |",
        f"| log-likelihood of generated under reference KDE | "
        f"{_fmt(isl['generated_under_reference'], 2)} | reference (leave-one-out): "
        f"{_fmt(isl['reference_under_reference'], 2)} |",
        f"| log-likelihood of reference under generated KDE | "
        f"{_fmt(isl['reference_under_generated'], 2)} | same scale |",
        f"| Yang & Lerch mean overlap area (intra-gen vs inter) | "
        f"{_fmt(results['yang_lerch_mean_oa'])} | 1 = indistinguishable |",
        f"| Yang & Lerch mean KL (intra-gen ‖ inter) | {_fmt(results['yang_lerch_mean_kl'])}"
        " | 0 = indistinguishable |",
        f"| pieces flagged as copies | {plag['n_flagged']} / {len(plag['pieces'])} | "
        f"LCS ratio ≥ {plag['lcs_threshold']} or copied span ≥ {plag['span_threshold']} notes |",
        "",
        f"Indirect likelihood uses features: {', '.join(isl['features']) or '(none)'}.",
        "",
        "## Metrics (mean ± std; median)",
        "",
        "| metric | generated | reference |",
        "|---|---|---|",
    ]
    for name, stats in results["metrics"].items():
        g, r = stats["generated"], stats["reference"]
        lines.append(
            f"| {name} | {_fmt(g['mean'])} ± {_fmt(g['std'])}; {_fmt(g['median'])} "
            f"| {_fmt(r['mean'])} ± {_fmt(r['std'])}; {_fmt(r['median'])} |"
        )
    lines += ["", "## Voice activity (share of sixteenth steps each track sounds)", "",
              "| track | generated | reference |", "|---|---|---|"]
    for label, stats in results["voice_activity"]["tracks"].items():
        g, r = stats["generated"], stats["reference"]
        lines.append(f"| {label} | {_fmt(g['mean'])} ± {_fmt(g['std'])} "
                     f"| {_fmt(r['mean'])} ± {_fmt(r['std'])} |")
    lines += [
        "",
        "![metric distributions](metrics.png)",
        "",
        "## Pitch classes",
        "",
        "![pitch classes](pitch_classes.png)",
        "",
        "## Yang & Lerch (2020) intra/inter-set distances",
        "",
        "| feature | KL(intra-gen ‖ inter) | OA gen | KL(intra-ref ‖ inter) | OA ref |",
        "|---|---|---|---|---|",
    ]
    for name, v in results["yang_lerch"].items():
        lines.append(f"| {name} | {_fmt(v['kl_generated'])} | {_fmt(v['oa_generated'])} | "
                     f"{_fmt(v['kl_reference'])} | {_fmt(v['oa_reference'])} |")
    lines += [
        "",
        "![Yang & Lerch](yang_lerch.png)",
        "",
        "## Plagiarism",
        "",
        "Event sequence: non-drum notes in onset order as (pitch, onset delta in 1/12 "
        "quarter, capped at 4 quarters). LCS = longest common subsequence with the closest "
        "training piece; span = longest verbatim copied run.",
        "",
        "![plagiarism](plagiarism.png)",
        "",
        "| piece | notes | LCS | LCS ratio | closest | copied span | from | flagged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ordered = sorted(plag["pieces"], key=lambda p: -(p["lcs_ratio"] or 0))
    for p in ordered[:25]:
        lines.append(
            f"| {p['piece']} | {p['n_events']} | {p['lcs']} | {_fmt(p['lcs_ratio'])} | "
            f"{p['lcs_match']} | {p['copied_span']} | {p['copied_span_match']} | "
            f"{'**yes**' if p['flagged'] else 'no'} |"
        )
    if len(ordered) > 25:
        lines.append(f"| ... {len(ordered) - 25} more in report.json | | | | | | | |")
    if results["skipped_generated"]:
        lines += ["", "## Skipped generated files", ""]
        lines += [f"- `{name}`: {reason}" for name, reason in results["skipped_generated"]]
    lines += ["", "Timings (s): " + ", ".join(
        f"{k} {v:.2f}" for k, v in context.get("timings", {}).items())]
    return "\n".join(lines) + "\n"


def write_report(results: dict, generated, reference, out_dir: str | Path,
                 context: dict | None = None, plots: bool = True) -> dict[str, Path]:
    """Write report.md, report.json and (with ``plots``) the PNGs into ``out_dir``;
    returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    context = dict(context or {})
    paths = {}
    if plots:
        paths = {
            "metrics": plot_metric_distributions(generated, reference, out / "metrics.png"),
            "pitch_classes": plot_pitch_classes(results, out / "pitch_classes.png"),
            "plagiarism": plot_plagiarism(results, out / "plagiarism.png"),
            "yang_lerch": plot_yang_lerch(results, out / "yang_lerch.png"),
        }
        if results.get("band"):
            paths["band"] = plot_band(results, out / "band.png")
    (out / "report.json").write_text(
        json.dumps(_jsonable({**results, "context": context}), indent=1, allow_nan=False)
    )
    (out / "report.md").write_text(markdown(results, context))
    paths["json"] = out / "report.json"
    paths["markdown"] = out / "report.md"
    return paths


def print_summary(results: dict, console=None) -> None:
    """A rich table of the headline numbers and the metrics."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    js = results["pitch_class_js"]
    isl = results["indirect_likelihood"]
    plag = results["plagiarism"]
    head = Table(title="evaluation", title_justify="left")
    head.add_column("measure")
    head.add_column("value", justify="right")
    head.add_column("reference scale", justify="right")
    head.add_row("pieces (generated / reference)",
                 f"{results['n_generated']} / {results['n_reference']}", "")
    head.add_row("pitch-class JS, pooled (bits)", _fmt(js["pooled"], 4), "0")
    head.add_row("pitch-class JS per piece (mean)", _fmt(js["per_piece_mean"], 4),
                 _fmt(js["reference_per_piece_mean"], 4))
    head.add_row("log-lik generated | reference KDE", _fmt(isl["generated_under_reference"], 2),
                 _fmt(isl["reference_under_reference"], 2))
    head.add_row("log-lik reference | generated KDE", _fmt(isl["reference_under_generated"], 2),
                 "")
    head.add_row("Yang & Lerch mean OA", _fmt(results["yang_lerch_mean_oa"]), "1")
    head.add_row("flagged as copies", f"{plag['n_flagged']} / {len(plag['pieces'])}", "0")
    two = results.get("two_sample")
    band = results.get("band")
    split = band.get("split", "test") if band else "test"
    if two and two.get("samples"):
        scale = two["band"]["accuracy"] if two.get("band") else 0.5
        head.add_row("two-sample accuracy", _percent(two["samples"]["accuracy"]),
                     _percent(scale))
    if band:
        head.add_row("within held-out band", f"{band['n_within']} / {band['n_judged']}",
                     f"{band['n_judged']} / {band['n_judged']}")
    if results["skipped_generated"]:
        head.add_row("skipped generated files", str(len(results["skipped_generated"])), "")
    console.print(head)
    table = Table(title="metrics (mean ± std)", title_justify="left")
    table.add_column("metric")
    table.add_column("generated", justify="right")
    table.add_column("reference", justify="right")
    if band:
        table.add_column(f"{split}-split band", justify="right")
        table.add_column("within", justify="center")
    for name, stats in results["metrics"].items():
        g, r = stats["generated"], stats["reference"]
        cells = [name, f"{_fmt(g['mean'])} ± {_fmt(g['std'])}",
                 f"{_fmt(r['mean'])} ± {_fmt(r['std'])}"]
        if band:
            _, interval, verdict = _band_cells(band["rows"].get(name), split)
            cells += [interval, verdict.replace("**", "")]
        table.add_row(*cells)
    for label, stats in results["voice_activity"]["tracks"].items():
        g, r = stats["generated"], stats["reference"]
        cells = [f"voice_activity[{label}]", f"{_fmt(g['mean'])} ± {_fmt(g['std'])}",
                 f"{_fmt(r['mean'])} ± {_fmt(r['std'])}"]
        if band:
            _, interval, verdict = _band_cells(band["rows"].get(f"voice_activity[{label}]"),
                                               split)
            cells += [interval, verdict.replace("**", "")]
        table.add_row(*cells)
    console.print(table)


# ----------------------------------------------------------------------------- the whole run


def is_checkpoint(path: Path) -> bool:
    """A checkpoint folder holds ``config.json`` and ``model.safetensors``."""
    return path.is_dir() and (path / "config.json").is_file() and (
        path / "model.safetensors").is_file()


def load_generated(path: str | Path):
    """Summaries of every music file under ``path`` (a folder or one file).

    Unreadable files are skipped with their reason (``summary.skipped``), never fatal.
    """
    path = Path(path)
    if path.is_file():
        files, root = [path], path.parent
    elif path.is_dir():
        files, root = sorted(p for p in path.rglob("*") if p.is_file() and is_music_file(p)), path
    else:
        raise TunesmithError(f"{path}: no such file or folder")
    named, skipped = [], []
    for file in files:
        name = str(file.relative_to(root))
        try:
            scores = load_all(file)
        except MusicFileError as exc:
            skipped.append((name, exc.reason))
            continue
        except Exception as exc:  # any reader failure: skip this file, keep the others
            skipped.append((name, f"{type(exc).__name__}: {exc}"))
            continue
        for i, score in enumerate(scores):
            named.append((name if len(scores) == 1 else f"{name}#{i + 1}", score))
    summary = summarise_scores(named, skipped)  # a piece it cannot measure is skipped too
    if not len(summary):
        listed = "; ".join(f"{name}: {reason}" for name, reason in summary.skipped[:10])
        if len(summary.skipped) > 10:
            listed += f"; and {len(summary.skipped) - 10} more"
        raise TunesmithError(f"{path}: no readable music file to evaluate"
                             f" ({len(summary.skipped)} skipped{': ' + listed if listed else ''})")
    return summary


def generate_samples(checkpoint: Path, n: int, out_dir: Path, seed: int = 0,
                     bars: float | None = None) -> Path:
    """Generate ``n`` pieces of ``bars`` bars (None: the generator's default, 8) (MIDI
    only: only they are evaluated) from a checkpoint into ``out_dir``; returns the folder."""
    # torch and the models load only when samples are generated: evaluating a folder of
    # MIDI files needs neither
    from tunesmith.generation.generate import generate_from_checkpoint

    generate_from_checkpoint(checkpoint, n=n, bars=bars, seed=seed, out_dir=out_dir, wav=False,
                             png=False)
    return out_dir


def held_out_nll(checkpoint: Path, corpus: str, path=None, batch_size: int = 16) -> dict:
    """Mean ``model.loss`` over the reference corpus's test split, prepared the way the
    checkpoint's model reads it; on a polyphonic benchmark (published split) with a
    piano-roll model, the benchmark's frame-level NLL instead
    (:func:`~tunesmith.evaluation.likelihood.checkpoint_nll`), the figure ``bench nll``
    reports. Returns ``{"value": float|None, "note": str}``."""
    try:
        import torch  # torch and the checkpoint load only when a checkpoint is scored

        from tunesmith.data import make_dataloader, prepare
        from tunesmith.data.corpora import get_corpus
        from tunesmith.training.checkpoint import load_checkpoint

        model, meta = load_checkpoint(checkpoint)
        frames = get_representation(meta.get("representation")).frames
        if frames and get_corpus(corpus, path).kind == "rolls":
            from tunesmith.evaluation.likelihood import checkpoint_nll

            scored = checkpoint_nll(checkpoint, "test", corpus=corpus, path=path)
            return {"value": scored["value"],
                    "note": f"benchmark frame-level NLL in nats per frame: frames 2..T of "
                            f"{scored['pieces']} test pieces, {scored['frames']} frames"}
        options = dict(meta.get("repr_config") or {})
        prepared = prepare(corpus, meta["representation"], options, path=path, report=False,
                           progress=False)
        loader = make_dataloader(prepared, "test", batch_size=batch_size, shuffle=False)
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in loader:
                size = next(iter(batch.values())).shape[0]
                total += float(model.loss(batch)["loss"]) * size
                count += size
        if not count:
            return {"value": None, "note": "the test split is empty"}
        return {"value": total / count, "note": f"mean model loss over {count} test pieces"}
    except Exception as exc:  # NLL is an extra: report why it is missing, keep the report
        return {"value": None, "note": f"not available ({type(exc).__name__}: {exc})"}


def run_evaluation(
    generated: str | Path,
    reference: str,
    out_dir: str | Path,
    path: str | Path | None = None,
    samples: int = 100,
    lcs_threshold: float = 0.8,
    span_threshold: int = 32,
    workers: int | None = None,
    refresh: bool = False,
    progress: bool = True,
    seed: int = 0,
    plots: bool = True,
    band: bool = True,
    two_sample: bool = True,
    band_split: str = "test",
    bars: float | None = None,
) -> tuple[dict, dict[str, Path]]:
    """Evaluate a folder of generated pieces (or a checkpoint) against ``CORPUS[:split]``.

    When the reference is a training split and ``band`` is set, the corpus's test split
    (or ``band_split="valid"``: its valid split, to choose sampling controls without
    looking at test) is summarised too (cached like the reference) and sets the held-out
    band of every metric; ``two_sample`` runs the classifier two-sample test. ``bars``: the
    length of the pieces generated from a checkpoint (default 8). Returns ``(results,
    written paths)``; see :func:`write_report`.
    """
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from tunesmith.evaluation.compare import compare_sets  # scipy
    from tunesmith.training.checkpoint import resolve_checkpoint  # torch

    out = Path(out_dir)
    generated = resolve_checkpoint(generated)  # pretrained:NAME -> its folder
    timings: dict[str, float] = {}
    corpus, split = parse_reference(reference)
    context: dict = {"generated": str(generated), "reference": f"{corpus}:{split}"}
    start = time.perf_counter()
    if is_checkpoint(generated):
        from tunesmith.generation.generate import DEFAULT_BARS

        samples_dir = generate_samples(generated, samples, out / "samples", seed=seed,
                                       bars=bars)
        context["bars"] = bars if bars is not None else DEFAULT_BARS
        timings["generation_s"] = time.perf_counter() - start
        context["nll"] = held_out_nll(generated, corpus, path)
        generated_set = load_generated(samples_dir)
    else:
        generated_set = load_generated(generated)
    timings["load_generated_s"] = time.perf_counter() - start

    start = time.perf_counter()
    reference_set, cache_dir, cached = reference_summary(
        corpus, split, path, workers=workers, refresh=refresh, progress=progress)
    timings["reference_s"] = time.perf_counter() - start
    context["reference_cache"] = str(cache_dir)
    context["reference_from_cache"] = cached
    held_out_set = None
    held_split = held_out_split(split, band_split) if band else None
    if held_split is None:
        context["band_note"] = ("turned off (--no-band)" if not band else
                                f"the reference is the {split!r} split; the band needs "
                                f"{corpus}:train, whose {band_split} split was never trained "
                                f"on")
    else:
        start = time.perf_counter()
        try:
            held_out_set, _, _ = reference_summary(
                corpus, held_split, path, workers=workers, refresh=refresh, progress=progress)
        except TunesmithError as exc:  # e.g. a small folder without test pieces
            context["band_note"] = f"no usable {held_split} split ({exc})"
        else:
            context["band"] = f"{corpus}:{held_split} ({len(held_out_set)} pieces)"
        timings["held_out_s"] = time.perf_counter() - start

    start = time.perf_counter()
    with Progress("[bold]plagiarism search", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), disable=not progress) as bar:
        task = bar.add_task("", total=len(generated_set))
        results = compare_sets(generated_set, reference_set, lcs_threshold, span_threshold,
                               progress=lambda: bar.advance(task), held_out=held_out_set,
                               two_sample=two_sample, seed=seed,
                               held_out_split=held_split or "test")
    timings["compare_s"] = time.perf_counter() - start
    start = time.perf_counter()
    context["timings"] = timings
    paths = write_report(results, generated_set, reference_set, out, context, plots=plots)
    timings["report_s"] = time.perf_counter() - start
    results["timings"] = {**timings, **results["timings"]}
    return results, paths
