"""Corpora, preparation and caching, torch datasets.

``prepare(corpus, representation)`` -> :class:`PreparedData` (cached arrays, splits,
skipped pieces); ``make_dataloader(prepared, split, ...)`` -> batches for the models.
The torch side (:mod:`tunesmith.data.datasets`) is imported on first use, so the data
CLI starts without torch.
"""

from tunesmith.data.corpora import CORPORA, SPLITS, Corpus, corpus_names, get_corpus, split_of
from tunesmith.data.prepare import PreparedData, cache_root, load_prepared, prepare

__all__ = [
    "CORPORA",
    "SPLITS",
    "Corpus",
    "PreparedData",
    "SequenceDataset",
    "cache_root",
    "corpus_names",
    "get_corpus",
    "load_prepared",
    "make_dataloader",
    "prepare",
    "split_of",
]


def __getattr__(name: str):
    if name in ("SequenceDataset", "make_dataloader", "collate"):
        from tunesmith.data import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module 'tunesmith.data' has no attribute {name!r}")
