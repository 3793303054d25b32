"""Time ``tunesmith evaluate``: 100 generated pieces against the bach-chorales train split.

The "generated" pieces are simulated from real chorales so that every comparison has
realistic work to do: from ``--sources`` chorales of the corpus (parsed once, not timed)
we write 100 MIDI files, each a random chorale

* transposed by a random -5..+5 semitones,
* with 20 % of its notes moved by ±1 or ±2 semitones,
* with its bars rotated by a random number of bars (a circular shift of the timeline),

plus 5 exact copies of chorales, which the plagiarism search must flag.

Timed separately:

1. **first-time reference preparation**: parsing every chorale of the train split with
   music21 and summarising it (features, pitch-class counts, event sequences), in
   ``--workers`` processes; its result is cached (skipped with ``--warm`` if cached);
2. **the evaluation** (what the target "< 60 s on 2 cores" is about): read the 100 MIDI
   files, compute their metrics, read the cached reference summary, pitch-class JS,
   indirect likelihood, Yang & Lerch, plagiarism search of every generated piece against
   every training chorale (exact LCS + longest copied span), write report.md/json and
   the PNGs. Run in one process.

Usage: ``.venv/bin/python benchmarks/evaluate_speed.py [--workers 2] [--warm]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def simulate(folder: Path, n_pieces: int, n_sources: int, seed: int) -> int:
    """Write ``n_pieces`` perturbed chorales + 5 exact copies as MIDI; returns the count."""
    from symusic import Note, Score, Track

    from tunesmith.data import get_corpus
    from tunesmith.music import save_midi

    corpus = get_corpus("bach-chorales")
    sources, _ = corpus.sources()
    train = [s for s in sources if corpus.split(s) == "train"]
    rng = np.random.default_rng(seed)
    scores = []
    for source in rng.permutation(len(train))[: n_sources * 2]:
        try:
            scores.append(corpus.load(train[source]))
        except Exception:  # a chorale the corpus skips: take another
            continue
        if len(scores) == n_sources:
            break
    for i in range(n_pieces):
        base = scores[int(rng.integers(len(scores)))]
        shift = int(rng.integers(-5, 6))
        bar = base.ticks_per_quarter * 4
        end = max(1, -(-base.end() // bar) * bar)
        rotate = int(rng.integers(0, max(1, end // bar))) * bar
        out = Score(base.ticks_per_quarter)
        out.tempos = base.tempos.copy()
        out.time_signatures = base.time_signatures.copy()
        for track in base.tracks:
            new = Track(track.name, track.program, track.is_drum)
            for note in track.notes:
                pitch = note.pitch + shift
                if rng.random() < 0.2:
                    pitch += int(rng.choice([-2, -1, 1, 2]))
                new.notes.append(Note((note.time + rotate) % end, note.duration,
                                      int(np.clip(pitch, 0, 127)), note.velocity))
            new.notes.sort(key=lambda n: (n.time, n.pitch))
            out.tracks.append(new)
        save_midi(out, folder / f"simulated_{i:03d}.mid")
    for i in range(5):
        save_midi(scores[i], folder / f"copy_{i}.mid")
    return n_pieces + 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=100)
    parser.add_argument("--sources", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warm", action="store_true", help="reuse a cached reference summary")
    parser.add_argument("--out", default=None, help="report folder (default: temporary)")
    args = parser.parse_args()

    from tunesmith.evaluation.reference import reference_summary
    from tunesmith.evaluation.report import run_evaluation

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
          f"load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        summary, cache_dir, cached = reference_summary(
            "bach-chorales", "train", workers=args.workers, refresh=not args.warm)
        prep = time.perf_counter() - start
        print(f"reference preparation ({'cached' if cached else 'first time'}, "
              f"{args.workers} workers): {prep:.1f} s for {len(summary)} chorales "
              f"({len(summary.skipped)} skipped) -> {cache_dir}")

        generated = tmp / "generated"
        generated.mkdir()
        start = time.perf_counter()
        n = simulate(generated, args.pieces, args.sources, seed=0)
        print(f"simulated {n} generated pieces in {time.perf_counter() - start:.1f} s "
              "(not part of the evaluation time)")

        out = Path(args.out) if args.out else tmp / "report"
        start = time.perf_counter()
        results, paths = run_evaluation(generated, "bach-chorales:train", out, progress=False)
        total = time.perf_counter() - start
        timings = results["timings"]
        print(f"evaluation of {results['n_generated']} pieces vs {results['n_reference']} "
              f"training chorales: {total:.1f} s total (target < 60 s; ratio to target "
              f"{total / 60:.2f})")
        print("  breakdown: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
        plag = results["plagiarism"]
        copies = [p for p in plag["pieces"] if p["piece"].startswith("copy_")]
        print(f"  plagiarism: {plag['n_flagged']} flagged; exact copies flagged: "
              f"{sum(p['flagged'] for p in copies)}/{len(copies)}; pairs searched: "
              f"{results['n_generated'] * results['n_reference']}")
        print(f"  Yang & Lerch mean OA {results['yang_lerch_mean_oa']:.3f}, pooled pitch-class "
              f"JS {results['pitch_class_js']['pooled']:.4f}")
        print(f"load average after: {os.getloadavg()[0]:.1f}; report: {paths['markdown']}")


if __name__ == "__main__":
    main()
