"""``tunesmith data``: list corpora, prepare them (cached), inspect what was prepared."""

from __future__ import annotations

import typer

from tunesmith.representations.adapter import SummaryTable, get_representation

REPR_HELP = "representation: pianoroll | melody | events | drums"


def parse_settings(settings: list[str] | None) -> dict:
    """``["resolution=8", "onset=true"]`` -> ``{"resolution": 8, "onset": True}``
    (:func:`tunesmith.cli.options.parse_assignments`)."""
    from tunesmith.cli.options import parse_assignments

    return parse_assignments(settings)


def parse_pitch_range(text: str) -> tuple[int, int]:
    """``"21-108"`` -> ``(21, 108)`` (inclusive)."""
    from tunesmith.errors import ConfigError

    low, sep, high = text.partition("-")
    try:
        if not sep:
            raise ValueError
        return int(low), int(high)
    except ValueError:
        raise ConfigError(f"--pitch-range expects LOW-HIGH MIDI numbers, got {text!r}") from None


def repr_options(representation: str, resolution: int | None, pitch_range: str | None,
                 settings: list[str] | None) -> dict:
    """The representation options from the CLI flags (the adapter names them)."""
    adapter = get_representation(representation)
    options = {}
    if resolution is not None:
        options[adapter.resolution_option] = resolution
    if pitch_range is not None:
        options.update(adapter.pitch_range_options(*parse_pitch_range(pitch_range)))
    options.update(parse_settings(settings))
    return options


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def print_summary(prepared, console, full: bool = False) -> None:
    """Pieces per split and duration; with ``full``, tracks, pitch range, keys, skipped."""
    from collections import Counter

    from rich.table import Table

    from tunesmith.data.corpora import SPLITS
    from tunesmith.data.prepare import print_skipped

    info = prepared.info
    title = f"{prepared.corpus} ({prepared.representation})"
    table = Table(title=title, title_justify="left")
    unit = get_representation(prepared.representation).unit
    for column in ("split", "pieces", unit, "quarter notes", "duration (h:mm:ss)"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split in (*SPLITS, None):
        meta = prepared.meta(split)
        steps = sum(prepared.pieces(split).lengths())
        quarters = sum(m.get("quarters") or 0 for m in meta)
        seconds = [m.get("seconds") for m in meta]
        timed = bool(seconds) and all(s is not None for s in seconds)
        table.add_row(
            split or "[bold]all", str(len(meta)), str(steps), f"{quarters:.0f}",
            _duration(sum(seconds)) if timed else ("-" if not meta else "n/a (no tempo)"),
        )
    console.print(table)
    console.print(f"cache: {prepared.cache_dir}", highlight=False)
    if not full:
        if prepared.skipped:
            print_skipped(prepared.skipped, console, limit=20)
        return

    for part in get_representation(prepared.representation).describe(info, prepared.pieces()):
        if isinstance(part, SummaryTable):
            table = Table(title=part.title, title_justify="left")
            for column in part.columns:
                table.add_column(column)
            for row in part.rows:
                table.add_row(*row)
            console.print(table)
        else:
            console.print(part)

    keys = Counter(m.get("key") for m in prepared.piece_meta if m.get("key"))
    if keys:
        title = "estimated keys (Krumhansl-Schmuckler)" + (
            " before transposing to C" if prepared.transpose_to_c else "")
        key_table = Table(title=title, title_justify="left", min_width=len(title))
        key_table.add_column("key")
        key_table.add_column("pieces", justify="right")
        for key, count in keys.most_common(12):
            key_table.add_row(key, str(count))
        if len(keys) > 12:
            key_table.add_row(f"{len(keys) - 12} other keys",
                              str(sum(c for _, c in keys.most_common()[12:])))
        console.print(key_table)
    if prepared.skipped:
        print_skipped(prepared.skipped, console)
    else:
        console.print("no piece skipped")


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Corpora: list, prepare (cached), inspect.", no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("list")
    def list_command() -> None:
        """List the corpora tunesmith knows (all offline)."""
        from rich.console import Console
        from rich.table import Table

        from tunesmith.data.corpora import CORPORA

        table = Table(title="corpora")
        table.add_column("name")
        table.add_column("description")
        for name, description in CORPORA.items():
            table.add_row(name, description)
        Console().print(table)

    @data_app.command("prepare")
    def prepare_command(
        corpus: str = typer.Argument(..., help="corpus name (see `tunesmith data list`), "
                                     "folder:PATH, or a folder"),
        representation: str = typer.Option("pianoroll", "--repr", help=REPR_HELP),
        path: str = typer.Option(None, "--path", help="where the corpus's files are"),
        resolution: int = typer.Option(None, "--resolution", help="steps per quarter note"),
        pitch_range: str = typer.Option(None, "--pitch-range", help="MIDI LOW-HIGH, e.g. 21-108"),
        workers: int = typer.Option(None, "--workers", help="parsing processes (default: CPUs)"),
        refresh: bool = typer.Option(False, "--refresh", help="rebuild even if cached"),
        transpose_to_c: bool = typer.Option(False, "--transpose-to-c",
                                            help="move every piece to C major / A minor"),
        limit: int = typer.Option(None, "--limit", help="only the first N pieces"),
        settings: list[str] = typer.Option(None, "--set", help="representation option key=value"),
        max_seconds: float = typer.Option(
            None, "--max-seconds", help="skip pieces longer than this "
            "(default: $TUNESMITH_MAX_PIECE_SECONDS or 7200, two hours)"),
        time_limit: float = typer.Option(
            60.0, "--time-limit", help="skip a file that takes longer to read (seconds)"),
    ) -> None:
        """Parse a corpus into a representation and cache it; print a summary."""
        import time

        from rich.console import Console

        from tunesmith.data.prepare import prepare

        started = time.perf_counter()
        prepared = prepare(
            corpus, representation, repr_options(representation, resolution, pitch_range,
                                                 settings),
            path=path, workers=workers, transpose_to_c=transpose_to_c, refresh=refresh,
            limit=limit, report=False, max_seconds=max_seconds, time_limit=time_limit,
        )
        console = Console()
        print_summary(prepared, console)
        console.print(f"prepared in {time.perf_counter() - started:.1f} s")

    @data_app.command("inspect")
    def inspect_command(
        corpus: str = typer.Argument(..., help="corpus name, folder:PATH, or a folder"),
        representation: str = typer.Option("pianoroll", "--repr", help=REPR_HELP),
        path: str = typer.Option(None, "--path", help="where the corpus's files are"),
        resolution: int = typer.Option(None, "--resolution", help="steps per quarter note"),
        pitch_range: str = typer.Option(None, "--pitch-range", help="MIDI LOW-HIGH"),
        workers: int = typer.Option(None, "--workers", help="parsing processes (default: CPUs)"),
        transpose_to_c: bool = typer.Option(False, "--transpose-to-c",
                                            help="move every piece to C major / A minor"),
        limit: int = typer.Option(None, "--limit", help="only the first N pieces"),
        settings: list[str] = typer.Option(None, "--set", help="representation option key=value"),
    ) -> None:
        """Pieces per split, duration, tracks, pitch range, keys, skipped files
        (prepares the corpus first when it is not cached)."""
        from rich.console import Console

        from tunesmith.data.prepare import prepare

        prepared = prepare(
            corpus, representation, repr_options(representation, resolution, pitch_range,
                                                 settings),
            path=path, workers=workers, transpose_to_c=transpose_to_c, limit=limit,
            report=False,
        )
        print_summary(prepared, Console(), full=True)
