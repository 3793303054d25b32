"""``--set key=value`` parsing shared by every command (data, train, bench).

Values are read as JSON when they parse (numbers, true/false, null, lists), else kept as
text, so ``head=nade``, ``lr=3e-4`` and ``dilations=[1,2,4]`` all do what they say.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tunesmith.errors import ConfigError


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses, else the string itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def split_assignment(item: str, option: str = "--set") -> tuple[str, Any]:
    """``"lr=3e-4"`` -> ``("lr", 0.0003)``; a ConfigError without ``=`` or a name."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{option} expects key=value, got {item!r}")
    return key.strip(), parse_value(text)


def parse_assignments(items: Iterable[str] | None, option: str = "--set") -> dict[str, Any]:
    """``["hidden=256", "head=nade"]`` -> ``{"hidden": 256, "head": "nade"}``."""
    return dict(split_assignment(item, option) for item in items or [])
