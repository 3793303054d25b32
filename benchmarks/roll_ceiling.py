"""What the chorale piano-roll lets any model reach: real test chorales, round-tripped.

A model of the demo's piano-roll (bach-chorales, sixteenth steps, MIDI 36-84, four tracks,
no onset grid) can only write what that roll holds. Without an onset grid a repeated note
in one voice (the bass striking the same C on two beats) decodes as one held note, so
samples from even a perfect model of the roll have fewer, longer notes than the MIDI the
band is measured on. This script measures that ceiling: it encodes ``--pieces`` real test
chorales as the demo's roll, decodes them back to MIDI (the path a sample takes) and runs
``tunesmith evaluate``'s machinery on them against ``bach-chorales:train`` with the test
split as band, exactly as ``benchmarks/sample_quality.py`` does for samples.

With ``--onsets`` the roll carries the onset grid (``onset=true``, what the
``voices-onset`` head models) and decoding splits a run of cells at each onset: the
ceiling of an onset-aware model.

The two-sample accuracy of this set is not meaningful (its "real" side is the same test
pieces, so it sits below 50 %); the metric rows are.

Usage::

    PYTHONPATH=src python benchmarks/roll_ceiling.py --pieces 32 \\
        --out benchmarks/results/roll_ceiling.json
    PYTHONPATH=src python benchmarks/roll_ceiling.py --pieces 32 --onsets \\
        --out benchmarks/results/roll_ceiling_onsets.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

CORPUS = "bach-chorales"


def main(argv: list[str] | None = None) -> int:
    from tunesmith.cli.demo import DEMO_REPR
    from tunesmith.data.prepare import prepare
    from tunesmith.evaluation.report import run_evaluation
    from tunesmith.representations.pianoroll import PianorollConfig, decode

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pieces", type=int, default=32, help="test chorales round-tripped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--onsets", action="store_true",
                        help="the roll with its onset grid (repeated notes stay repeated)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON of the results")
    args = parser.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="roll_ceiling-"))
    options = {**DEMO_REPR, **({"onset": True} if args.onsets else {})}
    prepared = prepare(CORPUS, "pianoroll", options, report=False, progress=False)
    options = {k: v for k, v in prepared.repr_config.items() if k != "merge_tracks"}
    cfg = PianorollConfig.from_dict(options)
    tracks = prepared.info.n_tracks
    samples = work / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    test = prepared.pieces("test")[: args.pieces]
    onsets = prepared.onsets("test") if args.onsets else None

    def grid_of(roll):  # (T, tracks × pitches) -> (tracks, T, pitches)
        roll = np.asarray(roll)
        return roll.reshape(len(roll), tracks, -1).transpose(1, 0, 2)

    for i, roll in enumerate(test):
        onset_grid = None if onsets is None else grid_of(onsets[i])
        decode(grid_of(roll), cfg, onsets=onset_grid).dump_midi(str(samples / f"test_{i:02d}.mid"))
    results, _ = run_evaluation(samples, f"{CORPUS}:train", work / "evaluate",
                                samples=len(test), seed=args.seed, plots=False, progress=False)
    rows = results["band"]["rows"]
    outside = sorted(name for name, row in rows.items()
                     if row["within"] is False and name != "two_sample_accuracy")
    judged = [name for name, row in rows.items()
              if row["within"] is not None and name != "two_sample_accuracy"]
    within = len(judged) - len(outside)
    print(f"{len(test)} real test chorales through the demo's roll"
          f"{' with onsets' if args.onsets else ''}: within band on {within} of "
          f"{len(judged)} metrics (two-sample row left out); outside: {', '.join(outside)}")
    for name in outside:
        row = rows[name]
        print(f"  {name}: {row['samples']:.3f} (band {row['low']:.3f}-{row['high']:.3f}, "
              f"test {row['test']:.3f})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "command": "python benchmarks/roll_ceiling.py " + " ".join(
                argv if argv is not None else sys.argv[1:]),
            "corpus": CORPUS, "representation": options, "pieces": len(test),
            "within_band": within, "judged": len(judged), "outside_band": outside,
            "rows": {name: rows[name] for name in outside},
            "report": str(work / "evaluate" / "report.md")}, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
