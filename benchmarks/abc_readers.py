"""symusic's own ABC reader against music21's, tune by tune (Essen folk songs, O'Neill's).

For the first N tunes of each corpus (``tunesmith.data.corpora``'s tune split: each tune
alone, with its file's header), reads the tune with music21
(:func:`tunesmith.data.corpora.load_abc_tune`, what ``prepare`` uses today) and with
``symusic.Score.from_abc`` on the same text, and compares per tune: note count, length
in quarter notes (the last note's end), first meter and first key signature. Times both
readers (one process, seconds per tune) and lists the first disagreements of each kind.

This measures only; ``prepare`` still reads ABC with music21.

Usage: ``.venv/bin/python benchmarks/abc_readers.py [--tunes 300] [--corpus essen-folk oneills]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
from collections import Counter


@contextlib.contextmanager
def quiet():
    """Silence what the C++ ABC reader prints on file descriptors 1 and 2."""
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def facts(score) -> dict:
    """Notes, quarters, meter and key of a symusic Score."""
    tpq = score.ticks_per_quarter
    notes = sum(len(t.notes) for t in score.tracks)
    end = max((n.time + n.duration for t in score.tracks for n in t.notes), default=0)
    meter = (f"{score.time_signatures[0].numerator}/{score.time_signatures[0].denominator}"
             if len(score.time_signatures) else None)
    key = ((score.key_signatures[0].key, score.key_signatures[0].tonality)
           if len(score.key_signatures) else None)
    return {"notes": notes, "quarters": round(end / tpq, 3), "meter": meter, "key": key}


def compare(corpus_name: str, n_tunes: int) -> None:
    from symusic import Score

    from tunesmith.data.corpora import get_corpus, load_abc_tune, split_abc_tunes
    from tunesmith.music.io import read_text

    corpus = get_corpus(corpus_name)
    sources = [s for s in corpus.sources()[0] if s.tune is not None][:n_tunes]
    agree: Counter = Counter()
    examples: dict[str, list[str]] = {}
    times = {"music21": 0.0, "symusic": 0.0}
    failed = Counter()
    texts: dict[str, list] = {}
    for source in sources:
        if source.path not in texts:
            texts = {source.path: split_abc_tunes(read_text(source.path))}
        text = texts[source.path][source.tune][1]
        started = time.perf_counter()
        try:
            theirs = facts(load_abc_tune(source.path, source.tune))
        except Exception:
            failed["music21"] += 1
            theirs = None
        times["music21"] += time.perf_counter() - started
        started = time.perf_counter()
        try:
            with quiet():
                ours = facts(Score.from_abc(text))
        except Exception:
            failed["symusic"] += 1
            ours = None
        times["symusic"] += time.perf_counter() - started
        if theirs is None or ours is None:
            continue
        agree["read by both"] += 1
        for field in ("notes", "quarters", "meter", "key"):
            if theirs[field] == ours[field]:
                agree[field] += 1
            elif len(examples.setdefault(field, [])) < 3:
                examples[field].append(f"{source.id}: music21 {theirs[field]}, "
                                       f"symusic {ours[field]}")
        agree["all four"] += all(theirs[f] == ours[f] for f in ("notes", "quarters", "meter",
                                                                "key"))
    both = agree["read by both"]
    print(f"\n{corpus_name}: {len(sources)} tunes; music21 "
          f"{times['music21'] / len(sources) * 1000:.1f} ms a tune, symusic "
          f"{times['symusic'] / len(sources) * 1000:.2f} ms a tune "
          f"({times['music21'] / max(times['symusic'], 1e-9):.0f}x); failures: "
          f"music21 {failed['music21']}, symusic {failed['symusic']}")
    for field in ("notes", "quarters", "meter", "key", "all four"):
        share = 100 * agree[field] / max(both, 1)
        print(f"  same {field}: {agree[field]} of {both} ({share:.0f} %)")
        for line in examples.get(field, []):
            print(f"    e.g. {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tunes", type=int, default=300)
    parser.add_argument("--corpus", nargs="+", default=["essen-folk", "oneills"])
    args = parser.parse_args()
    import symusic

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), symusic "
          f"{symusic.__version__}, load average {os.getloadavg()[0]:.1f}")
    for name in args.corpus:
        compare(name, args.tunes)


if __name__ == "__main__":
    main()
