"""JSON round trips for the dataclass configs (models, representations, training).

Every config a user can write (a TOML section, ``--set key=value``, a checkpoint's
``config.json``) is read through :func:`config_from_dict`, so a typo in an option name
is one clear error listing the known names, never a silent default.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from tunesmith.errors import ConfigError


def config_from_dict(cls, data: dict[str, Any], what: str = "config"):
    """Build dataclass ``cls`` from ``data``; unknown keys raise ConfigError."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown {what} option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return cls(**data)


class DictConfig:
    """Mixin for dataclass configs: ``to_dict()`` and a checked ``from_dict()``."""

    config_name: ClassVar[str] = "config"  # how errors name this kind of option

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        return config_from_dict(cls, data, cls.config_name)
