"""The ``tunesmith`` command line: a thin Typer app over typed Python functions.

Each command group lives in its own module here and registers itself on the app in
:func:`build_app`; heavy imports (torch, music21) happen inside the commands, so
``tunesmith --help`` is instant. Errors a user can cause (:class:`TunesmithError`)
are printed as one clear line with exit code 2, never as a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from tunesmith.errors import TunesmithError

#: modules under tunesmith.cli that define ``register(app: typer.Typer)``
COMMAND_MODULES = ["data", "models", "train", "generate", "render", "evaluate", "bench", "demo",
                   "vae", "gan", "groove", "audio", "studio"]

console = Console(stderr=True)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="tunesmith",
        help="Train, sample and evaluate deep generative models of symbolic music.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def root() -> None:
        """tunesmith: data, train, generate, evaluate, render, bench, demo."""

    for name in COMMAND_MODULES:
        importlib.import_module(f"tunesmith.cli.{name}").register(app)
    return app


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. Usage errors are click's (usage + message, exit 2); errors caused by
    the user's files or options, and errors the operating system reports (a full disk,
    a folder without write permission), are one red line (exit 2); anything else is a
    bug and keeps its traceback. Returns normally on success, so Python callers and
    tests can call ``main([...])``; failures raise SystemExit with the exit code."""
    app = build_app()
    try:
        app(args=argv, standalone_mode=True)  # click ends every run with SystemExit
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    except TunesmithError as exc:
        fail(str(exc))
    except OSError as exc:  # the machine said no: a missing folder, no space, no permission
        fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))


def fail(message: str) -> None:
    """Print ``error: message`` as one red line on stderr and exit with code 2."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(2)
