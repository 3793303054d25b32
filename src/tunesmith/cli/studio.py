"""``tunesmith studio``: serve the local web page over one or more checkpoints."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from tunesmith.cli.options import check_checkpoint, check_out_folder


def register(app: typer.Typer) -> None:
    @app.command("studio")
    def studio_command(
        checkpoint: list[str] = typer.Option(
            None, "--checkpoint", metavar="DIR|pretrained:NAME",
            help="A run folder or pretrained:NAME to offer (repeatable; default: every "
                 "shipped model)."),
        port: int = typer.Option(8765, "--port", help="Port to listen on (0: a free one)."),
        host: str = typer.Option(
            "127.0.0.1", "--host",
            help="Address to listen on. Anything but a loopback address lets other machines "
                 "use the studio and write files on this one."),
        out: Path = typer.Option(Path("studio-out"), "--out",
                                 help="The only folder the studio writes: pieces and uploads."),
        max_upload_mb: float = typer.Option(2.0, "--max-upload-mb",
                                            help="Largest primer file accepted, in MB."),
        soundfont: Path = typer.Option(None, help="SoundFont (default: pretty_midi's TimGM6mb)."),
    ) -> None:
        """Serve a local page to generate, continue, regenerate bars, listen and download."""
        from rich.console import Console

        from tunesmith.errors import ConfigError

        console = Console()
        check_out_folder(out)
        for spec in checkpoint or []:
            check_checkpoint(spec)  # before torch loads: a wrong path is said at once
        if not 0 <= port <= 65535:
            raise ConfigError(f"--port must be in 0..65535, got {port}")
        if not 0 < max_upload_mb <= 100:
            raise ConfigError(f"--max-upload-mb must be in (0, 100], got {max_upload_mb}")

        from tunesmith import pretrained
        from tunesmith.render.audio import check_soundfont
        from tunesmith.studio.server import bind, is_loopback, serve
        from tunesmith.studio.session import Studio

        check_soundfont(soundfont)
        specs = list(checkpoint or []) or [f"pretrained:{n}" for n in pretrained.names()]
        studio = Studio(specs, out, max_upload_bytes=int(max_upload_mb * 1_000_000),
                        soundfont=str(soundfont) if soundfont else None)
        if not is_loopback(host):
            console.print(f"[bold yellow]warning:[/] listening on {host}: other machines can "
                          "reach this studio, run its models and write files under "
                          f"{studio.out_dir}", highlight=False)
        sock = bind(host, port)
        bound_port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        console.print(f"tunesmith studio: http://{shown}:{bound_port}/  "
                      f"({len(studio.models)} models, files under {studio.out_dir}; "
                      "Ctrl-C stops)", highlight=False, soft_wrap=True)
        sys.stdout.flush()
        serve(studio, sock)
