"""Run config files (TOML: ``[model]``, ``[data]``, ``[train]``) and ``--set key=value``
overrides, read into plain dicts for :func:`tunesmith.training.trainer.train`.

Parsing what a person typed is the command line's job: the trainer takes typed settings
(:class:`tunesmith.training.settings.TrainSettings`) and never reads TOML or ``--set``.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Sequence
from pathlib import Path

from tunesmith.config import parse_value
from tunesmith.errors import ConfigError
from tunesmith.training.settings import TrainSettings


def load_config_file(path: str | Path) -> dict[str, dict]:
    """Read a TOML run config with sections ``[model]``, ``[data]`` and ``[train]``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        config = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    unknown = sorted(set(config) - {"model", "data", "train"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)}; "
                          "expected [model], [data], [train]")
    for section in ("model", "data", "train"):
        if not isinstance(config.setdefault(section, {}), dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
    return config


def apply_overrides(config: dict[str, dict], overrides: Sequence[str]) -> dict[str, dict]:
    """Apply ``key=value`` overrides (``model.x``, ``data.x``, ``train.x``; ``data.options.x``).

    A key without a section prefix goes to ``[train]`` when it names a train setting.
    """
    config = {section: dict(config.get(section, {})) for section in ("model", "data", "train")}
    train_fields = {f.name for f in dataclasses.fields(TrainSettings)}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, _, text = item.partition("=")
        parts = key.strip().split(".")
        if parts[0] not in config:
            if len(parts) == 1 and parts[0] in train_fields:
                parts = ["train", *parts]
            else:
                raise ConfigError(
                    f"--set {key}: prefix the key with model., data. or train. (e.g. train.lr=3e-4)"
                )
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"--set {key}: expected section.name=value")
        target = config[parts[0]]
        for part in parts[1:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"--set {key}: {part} is not a table")
        target[parts[-1]] = parse_value(text.strip())
    return config
