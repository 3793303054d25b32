"""Option parsing and checks shared by the commands: ``--set key=value``, output folders,
checkpoint folders, input files.

The checks here need neither torch nor the models, so every command runs them before its
heavy imports: a bad path is reported at once, as one line (exit 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tunesmith.config import parse_value
from tunesmith.errors import CheckpointError, ConfigError

__all__ = ["check_checkpoint", "check_file", "check_out_file", "check_out_folder",
           "parse_assignments", "parse_value", "split_assignment"]


def split_assignment(item: str, option: str = "--set") -> tuple[str, Any]:
    """``"lr=3e-4"`` -> ``("lr", 0.0003)``; a ConfigError without ``=`` or a name."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{option} expects key=value, got {item!r}")
    return key.strip(), parse_value(text)


def parse_assignments(items: Iterable[str] | None, option: str = "--set") -> dict[str, Any]:
    """``["hidden=256", "head=nade"]`` -> ``{"hidden": 256, "head": "nade"}``."""
    return dict(split_assignment(item, option) for item in items or [])


def check_out_folder(path: str | Path | None, option: str = "--out") -> None:
    """Refuse an output folder that is an existing file or lies under one."""
    if path is None:
        return
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists():
            if folder.is_dir():
                return
            where = "is" if folder == path else f"lies under {folder}, which is"
            raise ConfigError(f"{path}: {option} must be a folder, but it {where} a file")


def check_out_file(path: str | Path | None, option: str = "--out") -> None:
    """Refuse an output file that is an existing folder or lies under a file."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: {option} must be a file, but it is a folder")
    check_out_folder(path.parent, option)


def check_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder with its two files, checked before torch is loaded.
    ``pretrained:NAME`` passes: the checkpoint loader resolves it (an unknown name is its
    one-line error listing the shipped models)."""
    if str(path).startswith("pretrained:"):
        return Path(path)
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "no such checkpoint folder")
    if not path.is_dir():
        raise CheckpointError(path, "a checkpoint is a folder (with model.safetensors and "
                              "config.json), not a file")
    for name in ("config.json", "model.safetensors"):
        if not (path / name).is_file():
            raise CheckpointError(path / name, "no such file")
    return path


def check_file(path: str | Path | None, option: str) -> None:
    """Refuse an input file that does not exist or is a folder."""
    if path is None:
        return
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file ({option})")
    if path.is_dir():
        raise ConfigError(f"{path}: {option} expects a file, not a folder")
