"""Running the ``tunesmith`` command line inside a test."""

from __future__ import annotations

from tunesmith.cli import main


def run_cli(args: list) -> int:
    """Exit code of ``tunesmith ARGS`` (0 when the command returns normally)."""
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
