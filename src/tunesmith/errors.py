"""The error types tunesmith raises for bad input.

Every error a user can cause by handing us a file or an option derives from
:class:`TunesmithError`, so the CLI can print it as one clear line instead of a
traceback.
"""

from __future__ import annotations

from pathlib import Path


class TunesmithError(Exception):
    """Base class of errors caused by the user's input (files, options, checkpoints)."""


class MusicFileError(TunesmithError):
    """A music file that cannot be used: unreadable, corrupt, unsupported, or empty.

    The message always names the file and the reason.
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ConfigError(TunesmithError):
    """An impossible or unknown option (model name, representation, config key...)."""


class CheckpointError(TunesmithError):
    """A checkpoint folder that is missing, incomplete, or corrupt."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class RepresentationError(TunesmithError):
    """A piece that a representation cannot encode as asked (polyphony where a melody is
    required, pitches out of range, no notes), or an array that does not decode."""
