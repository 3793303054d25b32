"""JSON round trips and validation of the dataclass configs (models, representations).

Every config a user can write (a TOML section, ``--set key=value``, a checkpoint's
``config.json``) is read through :func:`config_from_dict`, so a typo in an option name
or a value of the wrong type (``channels=abc``, ``dropout=nan``) is one clear error,
never a silent default or a traceback deep inside a model.

Every :class:`DictConfig` is validated one way, when it is made (``__post_init__`` ->
:meth:`DictConfig.validate`): the ranges and choices each class declares
(``ranges = {"dropout": UNIT_OPEN, "channels": at_least(1)}``, ``choices = {"block":
("gated", "relu")}``, merged along the class's bases) are checked first, then the
class's :meth:`~DictConfig.check` for rules between fields. Each failure is one
ConfigError naming the option.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import types
import typing
import warnings
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

from tunesmith.errors import ConfigError


class Range(NamedTuple):
    """Allowed values of a numeric option (of each item, for a list): ``low``..``high``,
    either end open or absent (None)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed
    high_open: bool = False  # high itself is not allowed

    def holds(self, value: Any) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}")


def at_least(low: float) -> Range:
    return Range(low)


#: [0, 1): dropout rates and other probabilities that must leave something
UNIT_OPEN = Range(0, 1, high_open=True)
#: [0, 1]: probabilities
UNIT = Range(0, 1)
#: > 0: rates, scales, tempi
POSITIVE = Range(0, low_open=True)


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
    DeprecationWarning, its value converted where the meaning moved too (an exclusive
    bound read as an inclusive one); giving both names is an error.
    """
    data = dict(data)
    for old, target in getattr(cls, "renamed", {}).items():
        new, convert = (target, None) if isinstance(target, str) else target
        if old in data:
            if new in data:
                raise ConfigError(f"{what} options {old} and {new} are one option "
                                  f"({old} is its old name); give only {new}")
            warnings.warn(f"{what} option {old} is now called {new}", DeprecationWarning,
                          stacklevel=3)
            value = data.pop(old)
            data[new] = value if convert is None or not value_fits(value, float) \
                else convert(value)
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
    """Mixin for dataclass configs: ``to_dict()``, a checked ``from_dict()``, and one
    validation when made (see the module docstring)."""

    config_name: ClassVar[str] = "config"  # how errors name this kind of option
    #: old option name -> its name now (still read); or -> (name now, old value -> new)
    renamed: ClassVar[dict[str, str | tuple[str, Callable[[Any], Any]]]] = {}
    ranges: ClassVar[dict[str, Range]] = {}  # option -> allowed numbers (of each item)
    choices: ClassVar[dict[str, tuple]] = {}  # option -> allowed values

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the declared ranges and choices (of this class and its bases), then
        :meth:`check`; ConfigError naming the first option that fails."""
        ranges: dict[str, Range] = {}
        choices: dict[str, tuple] = {}
        for klass in reversed(type(self).__mro__):
            ranges.update(vars(klass).get("ranges", {}))
            choices.update(vars(klass).get("choices", {}))
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"unknown {name} {value!r} ({self.config_name} option); "
                                  f"choose one of {', '.join(map(str, allowed))}")
        for name, bounds in ranges.items():
            value = getattr(self, name)
            values = value if isinstance(value, (list, tuple)) else [value]
            if not all(bounds.holds(v) for v in values):
                each = " (each item)" if isinstance(value, (list, tuple)) else ""
                raise ConfigError(f"{self.config_name} option {name} must be "
                                  f"{bounds.describe()}{each}, got {value!r}")
        self.check()

    def check(self) -> None:
        """Rules between options (a class with any overrides this); raise ConfigError."""

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
