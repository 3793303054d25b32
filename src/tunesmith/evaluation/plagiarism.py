"""Plagiarism search: how much of a generated piece is copied from the training set.

A piece becomes an integer **event sequence**: its non-drum notes in onset order
(ties broken by pitch), each coded as ``(pitch, onset delta)`` where the delta from the
previous note's onset is quantised to ``grid`` steps per quarter note and capped at
``max_delta`` steps (a chord is one note with the gap, the rest with delta 0).

For each generated piece and every training piece we compute

* the **longest common subsequence** (LCS) of their event sequences, exactly, with the
  bit-parallel algorithm of Allison & Dix (1986) in the form of Hyyrö (2004): with
  ``M[c]`` the bit mask of the positions of symbol ``c`` in the training sequence,
  ``U = V & M[c]; V = (V + U) | (V - U)`` per query symbol, and ``LCS = m - popcount(V)``.
  All training pieces are packed into one Python integer, each in its own bit field
  with a guard bit that swallows the carry, so one pass over the query computes the
  LCS against every training piece at once;
* the **longest common substring** (the longest verbatim copied span), found by binary
  search on the span length with 64-bit polynomial hashes of every window.

Both are reported in notes and as a ratio to the generated piece's length; a piece is
flagged when its LCS ratio or its copied span reaches a threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from symusic import Score

from tunesmith.evaluation.metrics import NoteTable

#: onset-delta steps per quarter note (12 resolves sixteenths and eighth triplets)
EVENT_GRID = 12
#: longest onset delta told apart, in steps (4 quarter notes)
MAX_DELTA_STEPS = 48

_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible modulo 2**64


def note_events(
    score: Score | NoteTable, grid: int = EVENT_GRID, max_delta: int = MAX_DELTA_STEPS
) -> np.ndarray:
    """``(N,)`` int64 event codes ``pitch * (max_delta + 1) + delta`` of non-drum notes."""
    t = NoteTable.of(score)
    keep = t.pitched()
    time, pitch = t.time[keep], t.pitch[keep]
    order = np.lexsort((pitch, time))
    time, pitch = time[order], pitch[order]
    delta = np.diff(time, prepend=time[:1] if len(time) else time)
    steps = np.minimum(np.round(delta * grid / t.tpq).astype(np.int64), max_delta)
    return pitch * (max_delta + 1) + steps


def lcs_length(a: np.ndarray, b: np.ndarray) -> int:
    """Exact longest-common-subsequence length of two integer sequences (bit-parallel)."""
    return int(TrainingIndex([np.asarray(a)]).lcs(np.asarray(b))[0])


def lcs_length_dp(a, b) -> int:
    """The textbook O(len(a)·len(b)) dynamic programme; a reference for tests."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


class TrainingIndex:
    """Every training sequence packed for fast LCS and copied-span queries."""

    def __init__(self, sequences: list[np.ndarray]):
        self.sequences = [np.asarray(s, np.int64) for s in sequences]
        self.lengths = np.array([len(s) for s in self.sequences], np.int64)  # (P,)
        # piece j occupies bits [offsets[j], offsets[j] + lengths[j]); the next bit is a guard
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths + 1)[:-1]]).astype(np.int64)
        self.width = int((self.lengths + 1).sum())
        symbols = np.concatenate(self.sequences) if self.sequences else np.zeros(0, np.int64)
        positions = np.concatenate(
            [off + np.arange(n) for off, n in zip(self.offsets, self.lengths, strict=True)]
        ) if self.sequences else np.zeros(0, np.int64)
        field_bits = np.zeros(self.width, np.uint8)
        field_bits[positions] = 1
        self.fields = _bits_to_int(field_bits)
        self.masks: dict[int, int] = {}
        order = np.argsort(symbols, kind="stable")
        sorted_symbols = symbols[order]
        starts = np.flatnonzero(np.diff(sorted_symbols, prepend=-1) != 0)
        ends = np.append(starts[1:], len(sorted_symbols))[: len(starts)]
        for s, e in zip(starts, ends, strict=True):
            bits = np.zeros(self.width, np.uint8)
            bits[positions[order[s:e]]] = 1
            self.masks[int(sorted_symbols[s])] = _bits_to_int(bits)
        # concatenated sequences for the copied-span search, and each position's piece
        self._concat = symbols
        self._piece_of = np.repeat(np.arange(len(self.sequences)), self.lengths)
        self._piece_end = np.repeat(np.cumsum(self.lengths), self.lengths)
        self._train_windows = lru_cache(maxsize=64)(self._train_windows_uncached)

    # ------------------------------------------------------------------ LCS

    def lcs(self, query: np.ndarray) -> np.ndarray:
        """``(P,)`` LCS length of ``query`` with every training sequence."""
        v = self.fields
        fields = self.fields
        masks = self.masks
        for symbol in np.asarray(query).tolist():
            match = masks.get(symbol)
            if match is None:
                continue
            u = v & match
            v = ((v + u) | (v - u)) & fields
        ones = np.unpackbits(
            np.frombuffer(v.to_bytes((self.width + 7) // 8, "little"), np.uint8),
            bitorder="little",
        )[: self.width]
        cumulative = np.concatenate([[0], np.cumsum(ones, dtype=np.int64)])
        kept = cumulative[self.offsets + self.lengths] - cumulative[self.offsets]
        return self.lengths - kept

    # ------------------------------------------------------------------ copied span

    def _train_windows_uncached(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted hashes of every length-k window inside one training piece, and their starts."""
        starts = np.flatnonzero(np.arange(len(self._concat)) + k <= self._piece_end)
        hashes = _window_hashes(self._concat, k)[starts]
        order = np.argsort(hashes)
        return hashes[order], starts[order]

    def longest_copied_span(self, query: np.ndarray) -> tuple[int, int]:
        """``(length, training piece index)`` of the longest run of ``query`` found verbatim
        in one training piece (``(0, -1)`` when no symbol is shared)."""
        query = np.asarray(query, np.int64)
        best, where = 0, -1
        low, high = 1, min(len(query), int(self.lengths.max(initial=0)))
        while low <= high:  # invariant: a common window of length `best` exists
            k = (low + high) // 2
            found = self._find_window(query, k)
            if found >= 0:
                best, where = k, found
                low = k + 1
            else:
                high = k - 1
        return best, where

    def _find_window(self, query: np.ndarray, k: int) -> int:
        """A training piece holding some length-k window of ``query`` verbatim, else -1."""
        train_hashes, train_starts = self._train_windows(k)
        if not len(train_hashes):
            return -1
        query_hashes = _window_hashes(query, k)
        slot = np.searchsorted(train_hashes, query_hashes)
        slot = np.minimum(slot, len(train_hashes) - 1)
        for q in np.flatnonzero(train_hashes[slot] == query_hashes):
            start = train_starts[slot[q]]
            if np.array_equal(self._concat[start:start + k], query[q:q + k]):  # no collision
                return int(self._piece_of[start])
        return -1


def _bits_to_int(bits: np.ndarray) -> int:
    """Little-endian bit array -> Python int."""
    return int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")


def _window_hashes(x: np.ndarray, k: int) -> np.ndarray:
    """Polynomial hash of each window ``x[s:s+k]`` (``len(x) - k + 1`` values, mod 2**64).

    With ``G[i] = Σ_{t<i} x[t]·B^{-t}`` the window hash is ``(G[s+k] - G[s])·B^s``
    ``= Σ_t x[s+t]·B^{-t}``, which depends on the window's content only.
    """
    n = len(x) - k + 1
    if n <= 0:
        return np.zeros(0, np.uint64)
    inverse = np.uint64(pow(int(_HASH_BASE), -1, 2**64))
    with np.errstate(over="ignore"):
        inv_powers = np.cumprod(np.full(len(x), inverse, np.uint64)) * _HASH_BASE  # B^{-t}
        prefix = np.concatenate([[np.uint64(0)], np.cumsum(x.astype(np.uint64) * inv_powers)])
        powers = np.cumprod(np.full(n, _HASH_BASE, np.uint64)) * inverse  # B^s
        return (prefix[k:k + n] - prefix[:n]) * powers


@dataclass
class PlagiarismResult:
    """The copying found for one generated piece."""

    piece: str  # generated piece name
    n_events: int  # length of its event sequence
    lcs: int  # longest common subsequence with its closest training piece (notes)
    lcs_ratio: float  # lcs / n_events
    lcs_match: str  # that training piece
    copied_span: int  # longest verbatim copied run (notes)
    copied_span_ratio: float  # copied_span / n_events
    copied_span_match: str  # training piece it is copied from ("" if none)
    flagged: bool

    def to_dict(self) -> dict:
        return asdict(self)


def search(
    generated: dict[str, np.ndarray],
    index: TrainingIndex,
    training_names: list[str],
    lcs_threshold: float = 0.8,
    span_threshold: int = 32,
    progress=None,
) -> list[PlagiarismResult]:
    """LCS and longest copied span of each generated sequence against the training set.

    A piece is flagged when ``lcs_ratio >= lcs_threshold`` or ``copied_span >=
    span_threshold`` notes. ``progress`` is an optional callable called once per piece.
    """
    results = []
    for name, sequence in generated.items():
        n = len(sequence)
        if n == 0 or not len(index.lengths):
            results.append(PlagiarismResult(name, n, 0, float("nan"), "", 0,
                                            float("nan"), "", False))
            continue
        lcs = index.lcs(sequence)
        best = int(np.argmax(lcs))
        span, span_piece = index.longest_copied_span(sequence)
        lcs_ratio = float(lcs[best] / n)
        results.append(PlagiarismResult(
            piece=name,
            n_events=n,
            lcs=int(lcs[best]),
            lcs_ratio=lcs_ratio,
            lcs_match=training_names[best],
            copied_span=span,
            copied_span_ratio=span / n,
            copied_span_match=training_names[span_piece] if span_piece >= 0 else "",
            flagged=bool(lcs_ratio >= lcs_threshold or span >= span_threshold),
        ))
        if progress is not None:
            progress()
    return results
