"""Representations: one adapter file per encoding (:mod:`tunesmith.representations.adapter`).

Importing the package loads every adapter, so :func:`get_representation` knows them all;
a new representation is one file plus its line here.
"""

from tunesmith.representations import drums, events, melody, pianoroll
from tunesmith.representations.adapter import (
    RepresentationAdapter,
    get_representation,
    representation_names,
)

__all__ = ["RepresentationAdapter", "drums", "events", "get_representation", "melody",
           "pianoroll", "representation_names"]
