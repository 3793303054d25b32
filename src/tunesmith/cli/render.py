"""``tunesmith render``: a music file as WAV audio (SoundFont) and a PNG piano-roll."""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.cli.options import check_out_folder


def render_file(path: Path, out_dir: Path | None = None,
                soundfont: Path | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.wav`` and ``<stem>.png`` of a music file (beside it by default)."""
    from tunesmith.music import load
    from tunesmith.render import render_png, render_wav

    score = load(path)
    out_dir = Path(out_dir) if out_dir is not None else path.parent
    wav = render_wav(score, out_dir / f"{path.stem}.wav", soundfont)
    png = render_png(score, out_dir / f"{path.stem}.png", title=path.name)
    return wav, png


def register(app: typer.Typer) -> None:
    @app.command("render")
    def render_command(
        file: Path = typer.Argument(..., help="A MIDI/ABC/MusicXML file."),
        out: Path = typer.Option(None, "--out", "-o", help="Folder (default: beside FILE)."),
        soundfont: Path = typer.Option(None, help="SoundFont (default: pretty_midi's TimGM6mb)."),
    ) -> None:
        """Render a file to WAV (SoundFont synthesis) and a PNG piano-roll."""
        from rich.console import Console

        from tunesmith.render.audio import check_soundfont, wav_facts

        check_out_folder(out)
        check_soundfont(soundfont)

        wav, png = render_file(file, out, soundfont)
        facts = wav_facts(wav)
        Console().print(f"wrote {wav} ({facts['seconds']:.1f} s, peak {facts['peak']:.2f}) "
                        f"and {png}")
