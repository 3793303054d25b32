"""The polyphonic piano-roll benchmarks in their published ``.mat`` layout.

Boulanger-Lewandowski, Bengio and Vincent (ICML 2012) released JSB Chorales,
Nottingham, MuseData and Piano-midi.de as piano-rolls; Bai, Kolter and Koltun (2018)
use ``.mat`` files with keys ``traindata``, ``validdata``, ``testdata``, each a
1 × N object array of ``(T, 88)`` 0/1 matrices where column j is MIDI pitch 21 + j.
Any file of that layout can be read here, and the split is kept exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunesmith.errors import MusicFileError

#: our split name -> key in the .mat file
MAT_SPLITS = {"train": "traindata", "valid": "validdata", "test": "testdata"}
#: MIDI pitch of column 0
LOWEST_PITCH = 21
N_KEYS = 88

#: frames per quarter note of the published files
STEPS_PER_QUARTER = {"JSB_Chorales": 1, "Nottingham": 2}


def load_polyphonic_mat(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Read a benchmark ``.mat`` into ``{"train"|"valid"|"test": [(T, 88) uint8, ...]}``.

    Raises:
        MusicFileError: the file is missing, not a MATLAB file, lacks a split key, has an
            empty split, or holds a piece that is not a (T, 88) binary matrix with T >= 1.
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise MusicFileError(path, "no such file")
    try:
        raw = scipy.io.loadmat(str(path))
    except Exception as exc:
        raise MusicFileError(path, f"not a readable .mat file ({exc})") from exc
    splits: dict[str, list[np.ndarray]] = {}
    for split, key in MAT_SPLITS.items():
        if key not in raw:
            raise MusicFileError(
                path, f"missing key {key!r} (expected {', '.join(MAT_SPLITS.values())})"
            )
        pieces = []
        for index, piece in enumerate(np.asarray(raw[key]).reshape(-1)):
            piece = np.asarray(piece)
            if piece.ndim != 2 or piece.shape[1] != N_KEYS or piece.shape[0] < 1:
                raise MusicFileError(
                    path, f"{key}[{index}] has shape {piece.shape}, expected (frames, {N_KEYS}) "
                          "with at least one frame"
                )
            if not np.issubdtype(piece.dtype, np.number) or not np.isfinite(piece).all():
                raise MusicFileError(path, f"{key}[{index}] holds values that are not finite "
                                           "numbers")
            pieces.append((piece > 0).astype(np.uint8))
        if not pieces:
            raise MusicFileError(path, f"{key!r} holds no piece")
        splits[split] = pieces
    return splits
