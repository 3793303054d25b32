"""Our MusPy metrics against MusPy 0.5.0's own, file by file, on real-world MIDI.

For each file: read it with ``tunesmith.music.load`` and with ``muspy.read_midi`` (its
default mido reader), compute every MusPy metric both ways, and when they differ, find
which reader difference explains it by removing it from MusPy's ``Music`` and comparing
again (docs/evaluation.md, "Against MusPy"):

1. ``controllers`` — MusPy keeps control changes as track annotations and a track's end
   time counts them, so a song ends at its last controller (a sustain-pedal release, a
   hi-hat pedal stream, a reset) rather than its last note;
2. ``zero-length`` — ``tunesmith.music`` drops notes of zero duration, MusPy keeps them;
3. ``unmatched note-on`` — a note-on whose note-off was taken by an earlier note of the
   pitch: MusPy holds it to the end of the track, symusic drops it.

Usage::

    .venv/bin/python benchmarks/muspy_agreement.py                 # the default files
    .venv/bin/python benchmarks/muspy_agreement.py FOLDER... --every 4

Default files: the Groove MIDI Dataset in ``../shared/datasets/groove`` (drum
performances), music21's MIDI test files and miditoolkit's example ``1390.mid`` (piano
and melody). Prints the counts and the files each cause explains; ``--every N`` reads
every N-th file.
"""

from __future__ import annotations

import argparse
import collections
import copy
import math
import warnings
from pathlib import Path

from tunesmith.evaluation import metrics as M
from tunesmith.music import load

SHARED = Path(__file__).resolve().parents[2] / "shared"


def default_files() -> list[Path]:
    import miditoolkit
    import music21

    files = sorted((SHARED / "datasets" / "groove").rglob("*.mid"))
    files += sorted((Path(music21.__file__).parent / "midi" / "testPrimitive").glob("*.mid"))
    files += sorted((Path(miditoolkit.__file__).parent / "midi" / "examples_data").glob("*.mid"))
    return files


def both(table: M.NoteTable, music, muspy) -> dict[str, tuple[float, float]]:
    """metric -> (ours, MusPy's), measures of four quarter notes for both."""
    bar = 4 * music.resolution
    pairs = {
        "pitch_range": (M.pitch_range(table), muspy.pitch_range(music)),
        "n_pitches_used": (M.n_pitches_used(table), muspy.n_pitches_used(music)),
        "pitch_entropy": (M.pitch_entropy(table), muspy.pitch_entropy(music)),
        "pitch_class_entropy": (M.pitch_class_entropy(table), muspy.pitch_class_entropy(music)),
        "scale_consistency": (M.scale_consistency(table), muspy.scale_consistency(music)),
        "polyphony": (M.polyphony(table), muspy.polyphony(music)),
        "polyphony_rate": (M.polyphony_rate(table), muspy.polyphony_rate(music)),
        "empty_beat_rate": (M.empty_beat_rate(table), muspy.empty_beat_rate(music)),
        "empty_measure_rate": (M.empty_measure_rate(table, bar),
                               muspy.empty_measure_rate(music, bar)),
        "groove_consistency": (M.groove_consistency(table, bar),
                               muspy.groove_consistency(music, bar)),
        "drum_pattern_consistency": (M.drum_pattern_consistency(table),
                                     muspy.drum_pattern_consistency(music)),
    }
    if pairs["pitch_range"][1] == -127:  # drums only: MusPy's sentinels, documented
        pairs["pitch_range"] = (pairs["pitch_range"][0], 0)
    return pairs


def differing(pairs: dict[str, tuple[float, float]]) -> list[str]:
    out = []
    for name, (ours, theirs) in pairs.items():
        if math.isnan(ours) != math.isnan(theirs) or (
                not math.isnan(ours) and abs(ours - theirs) > 1e-9):
            out.append(name)
    return out


def without(music, table: M.NoteTable, causes: tuple[str, ...]):
    """A copy of MusPy's Music without the reader differences named in ``causes``."""
    music = copy.deepcopy(music)
    ours = set(zip(table.time.tolist(), table.pitch.tolist(), strict=True))
    for track in music.tracks:
        if "controllers" in causes:
            track.annotations = []
        if "zero-length" in causes:
            track.notes = [n for n in track.notes if n.duration > 0]
        if "unmatched note-on" in causes:
            track.notes = [n for n in track.notes if n.duration == 0
                           or (n.time, n.pitch) in ours]
    return music


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--every", type=int, default=1, help="read every N-th file")
    args = parser.parse_args()
    import muspy

    warnings.filterwarnings("ignore")  # MusPy's deprecation chatter
    files = ([f for d in args.folders for f in sorted(d.rglob("*.mid*"))] if args.folders
             else default_files())[::args.every]
    counts: collections.Counter = collections.Counter()
    per_metric: collections.Counter = collections.Counter()
    examples: dict[str, list[str]] = collections.defaultdict(list)
    options = [("controllers",), ("zero-length",), ("unmatched note-on",),
               ("controllers", "zero-length"), ("controllers", "unmatched note-on"),
               ("zero-length", "unmatched note-on"),
               ("controllers", "zero-length", "unmatched note-on")]
    for path in files:
        try:
            table = M.NoteTable.of(load(path))
        except Exception as exc:  # report, keep going
            counts[f"unreadable here ({type(exc).__name__})"] += 1
            continue
        music = muspy.read_midi(str(path))
        counts["files"] += 1
        wrong = differing(both(table, music, muspy))
        if not wrong:
            counts["equal"] += 1
            continue
        counts["differ"] += 1
        per_metric.update(wrong)
        cause = next((" + ".join(c) for c in options
                      if not differing(both(table, without(music, table, c), muspy))),
                     "unexplained")
        counts[f"explained by: {cause}"] += 1
        examples[cause].append(path.name)
    for key, value in counts.items():
        print(f"{key}: {value}")
    print("files differing per metric:", dict(per_metric))
    for cause, names in examples.items():
        print(f"{cause}: e.g. {', '.join(names[:4])}")


if __name__ == "__main__":
    main()
