"""Checkpoints shipped in the package, ready to sample from offline.

Each shipped model is a folder ``tunesmith/pretrained/<name>/`` (package data, so a
plain ``pip install`` carries it) holding::

    model.safetensors   the weights            } an ordinary checkpoint: every command
    config.json         the checkpoint config  } that takes one takes ``pretrained:NAME``
    card.json           what the model is and how good it is (below)

``card.json`` holds: ``name``, ``corpus``, ``family`` (registry name), ``representation``,
``tracks``, ``data`` (the corpus's source and terms, its split method and piece counts),
``training`` (the command that reproduces the checkpoint, its wall time, epochs, steps and
machine), ``held_out_nll`` (value, unit and piece count on the corpus's **test** split),
``quality`` (from ``tunesmith evaluate`` of samples against the corpus's train split with
its held-out band: per-track voice activity, metrics within band, two-sample accuracy)
``sampling`` (optional: ``controls``, the sampling controls ``generate``, ``evaluate``,
the studio and the demo draw it with unless told otherwise, and ``chosen``, how they were
chosen; :func:`tunesmith.training.checkpoint.sampling_defaults` reads them) and
``tunesmith_commit``. ``benchmarks/pretrained.py`` writes a card from a training run.

Names resolve in one place, :func:`tunesmith.training.checkpoint.resolve_checkpoint`;
this module lists the models and reads their cards::

    from tunesmith import pretrained
    pretrained.names()                          # ['essen-folk', 'palestrina', ...]
    model, meta = pretrained.load("essen-folk")  # same as load_checkpoint("pretrained:...")
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import CheckpointError
from tunesmith.training.checkpoint import (
    CARD_FILE,
    PRETRAINED_DIR,
    PRETRAINED_PREFIX,
    load_checkpoint,
    pretrained_names,
    read_json,
    resolve_checkpoint,
)

#: the most a shipped checkpoint folder may weigh (weights, config and card)
MAX_BYTES = 10_000_000

__all__ = ["CARD_FILE", "MAX_BYTES", "PRETRAINED_DIR", "card", "cards", "load", "names", "path",
           "size_bytes"]


def names() -> list[str]:
    """The shipped models, sorted by name."""
    return pretrained_names()


def path(name: str) -> Path:
    """The folder of a shipped model (a one-line error lists the names for an unknown one)."""
    return resolve_checkpoint(PRETRAINED_PREFIX + name)


def load(name: str, device: str = "cpu"):
    """``(model, meta)`` of a shipped model, in eval mode (no network, no training)."""
    return load_checkpoint(path(name), device=device)


def card(name: str) -> dict:
    """The parsed ``card.json`` of a shipped model."""
    folder = path(name)
    data = read_json(folder / CARD_FILE)
    if data.get("name") != name:
        raise CheckpointError(folder / CARD_FILE, f"the card names {data.get('name')!r}, "
                              f"its folder {name!r}")
    return data


def cards() -> list[dict]:
    """Every shipped model's card, sorted by name."""
    return [card(name) for name in names()]


def size_bytes(name: str) -> int:
    """Bytes of a shipped model's folder (at most :data:`MAX_BYTES`)."""
    return sum(p.stat().st_size for p in path(name).iterdir() if p.is_file())
