"""``tunesmith evaluate``: measure generated pieces against a reference corpus."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from tunesmith.cli.options import check_out_folder
from tunesmith.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_command(
        generated: Path = typer.Argument(
            ..., help="Folder of generated MIDI/ABC/MusicXML files, or a checkpoint folder "
                 "(or pretrained:NAME)."),
        reference: str = typer.Option(
            ..., "--reference", "-r",
            help="CORPUS[:split] to compare with, e.g. bach-chorales:train (default split: "
                 "train; 'all' for every piece)."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for report.md/.json + PNGs."),
        path: Path = typer.Option(None, "--path", help="Where the corpus's files are."),
        samples: int = typer.Option(100, "--samples", "-n",
                                    help="Pieces to generate when GENERATED is a checkpoint."),
        lcs_threshold: float = typer.Option(
            0.8, help="Flag a piece whose LCS with a training piece reaches this share."),
        span_threshold: int = typer.Option(
            32, help="Flag a piece copying this many consecutive notes verbatim."),
        workers: int = typer.Option(None, help="Processes to summarise the reference."),
        refresh: bool = typer.Option(False, help="Recompute the cached reference summary."),
        seed: int = typer.Option(
            0, help="Seed for sampling from a checkpoint, the band and the two-sample test."),
        plots: bool = typer.Option(True, help="Write the PNG plots."),
        band: bool = typer.Option(
            True, help="With CORPUS:train, measure the test split too: the held-out band."),
        two_sample: bool = typer.Option(
            True, help="Classifier two-sample test on 4-bar windows (a few seconds)."),
        bars: float = typer.Option(
            None, "--bars", help="Length of each piece generated when GENERATED is a "
                                 "checkpoint (default 8); metrics that grow with length "
                                 "(pitch range, pitches used) compare fairly only with pieces "
                                 "about as long as the reference's."),
        band_split: str = typer.Option(
            "test", "--band-split",
            help="The held-out split that sets the band: test, or valid to choose sampling "
                 "controls without looking at test."),
    ) -> None:
        """Metrics with their held-out band, two-sample test, pitch-class JS, likelihood,
        Yang & Lerch and plagiarism vs a corpus."""
        check_out_folder(out)
        shipped = str(generated).startswith("pretrained:")  # resolved by run_evaluation
        if not shipped and not generated.exists():
            raise ConfigError(f"{generated}: no such file or folder")
        if not 0 < lcs_threshold <= 1:  # NaN fails too
            raise ConfigError(f"--lcs-threshold must be in (0, 1], got {lcs_threshold}")
        if span_threshold < 1:
            raise ConfigError(f"--span-threshold must be >= 1 notes, got {span_threshold}")
        if samples < 1:
            raise ConfigError(f"--samples must be >= 1, got {samples}")
        if bars is not None and not 0 < bars < math.inf:  # NaN fails too
            raise ConfigError(f"--bars must be > 0, got {bars}")
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")

        from tunesmith.data.corpora import get_corpus
        from tunesmith.evaluation.reference import BAND_SPLITS, parse_reference

        if band_split not in BAND_SPLITS:
            raise ConfigError(f"--band-split must be one of {', '.join(BAND_SPLITS)}, "
                              f"got {band_split!r}")

        get_corpus(parse_reference(reference)[0], path)  # an unknown corpus fails at once

        from rich.console import Console

        from tunesmith.evaluation.report import print_summary, run_evaluation

        results, paths = run_evaluation(
            generated, reference, out, path=path, samples=samples,
            lcs_threshold=lcs_threshold, span_threshold=span_threshold, workers=workers,
            refresh=refresh, seed=seed, plots=plots, band=band, two_sample=two_sample,
            band_split=band_split, bars=bars,
        )
        console = Console()
        print_summary(results, console)
        for name, reason in results["skipped_generated"]:
            console.print(f"[yellow]skipped[/] {name}: {reason}", highlight=False)
        console.print(f"report: {paths['markdown']}  ({paths['json'].name}, "
                      f"{', '.join(p.name for k, p in paths.items() if p.suffix == '.png')})")
