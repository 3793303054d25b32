"""Symbolic music without torch: reading, writing, transforms, key estimation."""

from tunesmith.music.io import (
    SUPPORTED_SUFFIXES,
    is_music_file,
    load,
    load_all,
    music21_to_score,
    save_midi,
)

__all__ = [
    "SUPPORTED_SUFFIXES",
    "is_music_file",
    "load",
    "load_all",
    "music21_to_score",
    "save_midi",
]
