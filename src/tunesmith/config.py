"""JSON round trips for the dataclass configs (models, representations, training).

Every config a user can write (a TOML section, ``--set key=value``, a checkpoint's
``config.json``) is read through :func:`config_from_dict`, so a typo in an option name
or a value of the wrong type (``channels=abc``, ``dropout=nan``) is one clear error,
never a silent default or a traceback deep inside a model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import types
import typing
import warnings
from typing import Any, ClassVar

from tunesmith.errors import ConfigError


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses (numbers, true/false, null, lists), else
    the string itself, so ``head=nade`` and ``lr=3e-4`` both do what they say."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _describe(hint: Any) -> str:
    """``int | None`` -> "an integer or null", for error messages."""
    if hint is type(None):
        return "null"
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if typing.get_origin(hint) in (list, tuple):
        return f"a list, each item {_describe(args[0])}" if args else "a list"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a text",
            dict: "a table"}.get(hint, getattr(hint, "__name__", str(hint)))


def value_fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` (read from JSON/TOML) has the type a config field declares.

    Integers are accepted for floats, lists for tuples; floats must be finite (NaN and
    infinity are never a sensible size, rate or probability); unknown hints accept anything.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(value_fits(value, a) for a in args)
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        item = args[0] if args else Any
        return all(value_fits(v, item) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return (isinstance(value, numbers.Real) and not isinstance(value, bool)
                and math.isfinite(value))
    if hint is str:
        return isinstance(value, str)
    return True


def config_from_dict(cls, data: dict[str, Any], what: str = "config"):
    """Build dataclass ``cls`` from ``data``; unknown keys and values of the wrong type
    raise ConfigError.

    An option renamed since (``cls.renamed``: old name -> new name, as saved checkpoints
    and older command lines spell it) is read under its new name with a
    DeprecationWarning; giving both names is an error.
    """
    data = dict(data)
    for old, new in getattr(cls, "renamed", {}).items():
        if old in data:
            if new in data:
                raise ConfigError(f"{what} options {old} and {new} are one option "
                                  f"({old} is its old name); give only {new}")
            warnings.warn(f"{what} option {old} is now called {new}", DeprecationWarning,
                          stacklevel=3)
            data[new] = data.pop(old)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown {what} option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if not value_fits(value, hints.get(name, Any)):
            raise ConfigError(
                f"{what} option {name} expects {_describe(hints[name])}, got {value!r}"
            )
    return cls(**data)


class DictConfig:
    """Mixin for dataclass configs: ``to_dict()`` and a checked ``from_dict()``."""

    config_name: ClassVar[str] = "config"  # how errors name this kind of option
    renamed: ClassVar[dict[str, str]] = {}  # old option name -> its name now (still read)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        return config_from_dict(cls, data, cls.config_name)


def check_json_keys(data: Any, known: set[str], what: str) -> None:
    """Refuse a stored JSON value that is not an object holding exactly the ``known`` keys
    (one ConfigError line naming ``what`` and the keys)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: expected a JSON object, got {type(data).__name__}")
    unknown, missing = sorted(set(data) - known), sorted(known - set(data))
    if unknown:
        raise ConfigError(f"{what}: unknown key(s) {', '.join(unknown)}")
    if missing:
        raise ConfigError(f"{what}: missing key(s) {', '.join(missing)}")
