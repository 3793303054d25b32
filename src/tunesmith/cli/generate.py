"""``tunesmith generate``: sample pieces from a checkpoint (MIDI + WAV + PNG)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from tunesmith.cli.options import check_checkpoint, check_file, check_out_folder


@contextmanager
def empty_pieces() -> Iterator[list[str]]:
    """Collect the :class:`~tunesmith.generation.generate.GenerationWarning` messages of
    the generation inside, each shown as a console warning line; other warnings pass on
    as usual. Yields the list of empty-piece messages (one per empty piece)."""
    from rich.console import Console

    from tunesmith.generation.generate import EmptyPieceWarning, GenerationWarning

    console = Console(stderr=True)
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GenerationWarning)
        yield messages
    for warning in caught:
        if issubclass(warning.category, GenerationWarning):
            if issubclass(warning.category, EmptyPieceWarning):
                messages.append(str(warning.message))
            console.print(f"[bold yellow]warning:[/] {warning.message}", highlight=False,
                          soft_wrap=True)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)


def empty_summary(n_empty: int, n_written: int) -> str | None:
    """The summary line for empty pieces (None when none was empty)."""
    if not n_empty:
        return None
    return f"{n_empty} of {n_written} generated pieces hold no notes (see the warnings)"


def print_outputs(paths: list[Path], title: str = "generated", n_empty: int = 0) -> None:
    """A rich table of the written files (MIDI, WAV, PNG) and how to listen, and how many
    of them are empty."""
    from rich.console import Console
    from rich.table import Table

    from tunesmith.render.audio import wav_facts

    folders = sorted({str(p.parent) for p in paths})
    table = Table(title=title, caption=f"in {', '.join(folders)}")
    for column in ("MIDI", "audio (WAV)", "seconds", "picture (PNG)"):
        table.add_column(column)
    for midi in paths:
        wav, png = midi.with_suffix(".wav"), midi.with_suffix(".png")
        seconds = f"{wav_facts(wav)['seconds']:.1f}" if wav.is_file() else "-"
        table.add_row(midi.name, wav.name if wav.is_file() else "-", seconds,
                      png.name if png.is_file() else "-")
    console = Console()
    console.print(table)
    summary = empty_summary(n_empty, len(paths))
    if summary:
        console.print(f"[bold yellow]{summary}[/]", highlight=False)
    wavs = [p.with_suffix(".wav") for p in paths if p.with_suffix(".wav").is_file()]
    if wavs:
        console.print(f"listen: aplay {wavs[0]}  (MIDI files open in MuseScore or a DAW)")


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate_command(
        checkpoint: Path = typer.Option(
            ..., "--checkpoint", "-c",
            help="A run folder, or pretrained:NAME (see tunesmith models --pretrained)."),
        n: int = typer.Option(4, "--n", "-n", help="Number of pieces (at most 1000)."),
        bars: float = typer.Option(None, "--bars", help="Length in bars (default 8; at most "
                                   "3600, two hours of 4/4 at 120 bpm)."),
        seconds: float = typer.Option(None, "--seconds",
                                      help="Length in seconds (at most 7200)."),
        temperature: float = typer.Option(
            None, help="Divide logits by this (<1 sharper; default: the model card's, else 1)."),
        top_k: int = typer.Option(
            None, help="Keep the k most likely events (0 = all; default: the card's, else 0)."),
        top_p: float = typer.Option(
            None, help="Nucleus sampling mass (1 = all; default: the card's, else 1)."),
        threshold: float = typer.Option(
            None, help="Piano-rolls: note on where p > threshold (default: Bernoulli draws)."),
        max_notes_per_step: int = typer.Option(
            None, help="Piano-rolls: at most this many notes per track and step (0 = any; "
                       "default: the card's, else 0)."),
        max_sustain: int = typer.Option(
            None, "--max-sustain", help="Piano-rolls: release notes held this many steps "
                                        "(0 = never; default: the card's, else 0)."),
        prime: Path = typer.Option(None, "--prime",
                                   help="MIDI/ABC/MusicXML file to continue (kept as is)."),
        pitch_histogram: str = typer.Option(
            None, "--pitch-histogram",
            help='Condition on a key ("C major") or a file\'s pitch classes (models trained '
                 "with pitch_histogram_cond)."),
        seed: int = typer.Option(None, help="Random seed."),
        out: Path = typer.Option(Path("generated"), "--out", "-o", help="Output folder."),
        soundfont: Path = typer.Option(None, help="SoundFont for the WAVs (default TimGM6mb)."),
        wav: bool = typer.Option(True, help="Render WAV audio."),
        png: bool = typer.Option(True, help="Draw PNG piano-rolls."),
    ) -> None:
        """Generate pieces from a trained checkpoint."""
        check_checkpoint(checkpoint)
        check_out_folder(out)
        check_file(prime, "--prime")
        if wav:
            from tunesmith.render.audio import check_soundfont

            check_soundfont(soundfont)

        from tunesmith.generation.generate import generate_from_checkpoint
        from tunesmith.models.sampling import SamplingControls
        from tunesmith.training.checkpoint import sampling_defaults

        given = {"temperature": temperature, "top_k": top_k, "top_p": top_p,
                 "threshold": threshold, "max_notes_per_step": max_notes_per_step,
                 "max_sustain_steps": max_sustain}
        # what is not given comes from the checkpoint's card (a shipped model's sampling)
        controls = SamplingControls(**{**sampling_defaults(checkpoint),
                                       **{k: v for k, v in given.items() if v is not None}},
                                    seed=seed)
        with empty_pieces() as empty:
            paths = generate_from_checkpoint(
                checkpoint, n=n, bars=bars, seconds=seconds, controls=controls, prime=prime,
                pitch_histogram=pitch_histogram, out_dir=out, wav=wav, png=png,
                soundfont=soundfont)
        print_outputs(paths, n_empty=len(empty))
