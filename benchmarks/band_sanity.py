"""The held-out band and the two-sample test on sets whose answer is known.

Evaluates two sets against ``bach-chorales:train`` with ``tunesmith evaluate``'s code:

* ``real``: chorales of the **valid** split (never in train or test), which should sit
  within the band on nearly every metric and score about 50 % on the two-sample test;
* ``degraded``: the same chorales with each note dropped with probability ``--drop``
  (voices falling silent, as the issue's demo model does), which should not.

Usage::

    .venv/bin/python benchmarks/band_sanity.py --pieces 30 --drop 0.35 --out /tmp/band

Prints per set: metrics within band, two-sample accuracy (samples vs test, and test vs
train as its band), mean voice activity; reports go to ``OUT/real`` and ``OUT/degraded``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tunesmith.data import get_corpus
from tunesmith.errors import MusicFileError
from tunesmith.evaluation.report import run_evaluation
from tunesmith.music import save_midi


def write_sets(out: Path, pieces: int, drop: float, seed: int) -> dict[str, Path]:
    corpus = get_corpus("bach-chorales")
    rng = np.random.default_rng(seed)
    folders = {"real": out / "real-midi", "degraded": out / "degraded-midi"}
    written = 0
    for source in corpus.sources()[0]:
        if corpus.split(source) != "valid":
            continue
        try:
            score = corpus.load(source)
        except MusicFileError:
            continue
        save_midi(score, folders["real"] / f"{written:03d}.mid")
        for track in score.tracks:
            keep = iter(rng.random(len(track.notes)) >= drop)
            track.notes = track.notes.filter(lambda _, k=keep: bool(next(k)), inplace=False)
        save_midi(score, folders["degraded"] / f"{written:03d}.mid")
        written += 1
        if written == pieces:
            break
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=30)
    parser.add_argument("--drop", type=float, default=0.35)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/tunesmith-band-sanity"))
    args = parser.parse_args()
    folders = write_sets(args.out, args.pieces, args.drop, args.seed)
    for name, folder in folders.items():
        results, _ = run_evaluation(folder, "bach-chorales:train", args.out / name,
                                    seed=args.seed, progress=False)
        band, two = results["band"], results["two_sample"]
        activity = results["band"]["rows"]["voice_activity"]
        print(f"{name}: {results['n_generated']} pieces; within band on {band['n_within']} "
              f"of {band['n_judged']}; two-sample accuracy "
              f"{100 * two['samples']['accuracy']:.1f} % (test vs train "
              f"{100 * two['band']['accuracy']:.1f} %, {two['samples']['seconds']:.1f} s); "
              f"voice activity {activity['samples']:.3f} (band {activity['low']:.3f}-"
              f"{activity['high']:.3f}, test {activity['test']:.3f}); "
              f"outside: {', '.join(k for k, r in band['rows'].items() if r['within'] is False)}")


if __name__ == "__main__":
    main()
