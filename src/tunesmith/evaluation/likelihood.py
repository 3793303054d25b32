"""A checkpoint's frame-level NLL on a polyphonic benchmark split (the published protocol).

The protocol itself (:func:`~tunesmith.models.likelihood.frame_nll`,
:func:`~tunesmith.models.likelihood.score_split`) lives in :mod:`tunesmith.models.likelihood`,
where the trainer's ``frame_nll`` objective also reads it; a benchmark run is trained by
:func:`tunesmith.training.benchmark.bench_nll`. Here a saved checkpoint is scored again:
:func:`checkpoint_nll` gives the figure ``bench nll`` reported for the same weights, and
``tunesmith evaluate`` reports it as the held-out NLL when the reference is a benchmark.
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.data.prepare import prepare
from tunesmith.errors import ConfigError
from tunesmith.models.likelihood import model_pieces, score_split
from tunesmith.representations.adapter import get_representation
from tunesmith.training.checkpoint import load_checkpoint


def checkpoint_nll(
    checkpoint: str | Path,
    split: str = "test",
    corpus: str | None = None,
    path: str | Path | None = None,
    batch_size: int = 32,
) -> dict:
    """Frame-level NLL (nats per scored frame) of a piano-roll checkpoint on a benchmark split.

    ``corpus`` None scores the checkpoint's own data (the file its run recorded, or
    ``path``); a named benchmark corpus (``jsb``, ``nottingham``, ``mat:FILE``) is found
    like every corpus: ``path``, else ``$TUNESMITH_BENCHMARKS``, else the shared folder.
    The data is prepared with the checkpoint's representation options. Returns
    ``{"value", "split", "pieces", "frames", "corpus"}`` (``frames``: Σ(T_i − 1)).
    """
    model, meta = load_checkpoint(checkpoint)
    if not get_representation(meta.get("representation")).frames:
        raise ConfigError(f"{checkpoint}: frame-level NLL needs a piano-roll model, this one "
                          f"reads {meta.get('representation')!r}")
    recorded = meta.get("corpus") if isinstance(meta.get("corpus"), dict) else {}
    if corpus is None:
        corpus = recorded.get("corpus")
        if corpus is None:
            raise ConfigError(f"{checkpoint}: the checkpoint records no corpus; name one")
        path = path if path is not None else recorded.get("path")
    options = dict(meta.get("repr_config") or {})
    prepared = prepare(corpus, "pianoroll", options, path=path, progress=False, report=False)
    if prepared.split_source != "published":
        raise ConfigError(f"{corpus} is not a benchmark with a published split (jsb, "
                          "nottingham or mat:FILE)")
    pieces = model_pieces(model, prepared.pieces(split), prepared.onsets(split))
    if not pieces:
        raise ConfigError(f"{corpus} has no {split} pieces")
    return {
        "value": score_split(model, pieces, batch_size),
        "split": split,
        "pieces": len(pieces),
        "frames": sum(len(p) - 1 for p in pieces),
        "corpus": prepared.corpus,
    }
