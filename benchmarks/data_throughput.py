"""Throughput of ``prepare()`` on a folder of MIDI files, against pretty_midi loading.

Writes 1,000 distinct MIDI files from the corpora into a temporary folder, for each of two
file mixes: ``jsb`` (the JSB Chorales benchmark rolls decoded to one-track MIDI at a few
transpositions: tiny files, ~60 quarter notes) and ``chorales`` (music21's Bach chorales
from the prepared ``bach-chorales`` piano-rolls, decoded to 4-track S/A/T/B MIDI at a few
transpositions: typical files, a few hundred notes). Then times, per mix, in one run:

* ``prepare("folder:...", "pianoroll", refresh=True, workers=2)``: list, parse (symusic),
  merge tracks, estimate the key, encode the piano-roll, write the cache;
* the same with ``workers=1`` (per-core figure);
* ``pretty_midi.PrettyMIDI(path)`` on every file, one process (loading only);
* in this process, best of 3: the MIDI gate (``tunesmith.music.midi_gate.check_midi``)
  and symusic's parse (``Score.from_midi``) on every file's bytes, in µs per file.

Usage: ``.venv/bin/python benchmarks/data_throughput.py [--files 1000] [--mix jsb chorales]
[--path DIR]``
(``--path``: the folder holding JSB_Chorales.mat, as for ``tunesmith data``).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path


def jsb_scores(path: str | None):
    """The JSB Chorales benchmark rolls (all splits) as one-track Scores."""
    from tunesmith.data.corpora import find_benchmark_file
    from tunesmith.data.polyphonic import load_polyphonic_mat
    from tunesmith.representations.pianoroll import PianorollConfig, decode

    rolls = load_polyphonic_mat(find_benchmark_file("JSB_Chorales.mat", path))
    cfg = PianorollConfig(resolution=1, track_names=["Piano"])
    return [decode(roll, cfg) for split in ("train", "valid", "test") for roll in rolls[split]]


def chorale_scores():
    """music21's Bach chorales as 4-track S/A/T/B Scores, from the prepared piano-rolls."""
    from tunesmith.data.prepare import prepare
    from tunesmith.generation.generate import array_to_score

    data = prepare("bach-chorales", "pianoroll", {"resolution": 4, "merge_tracks": False},
                   progress=True, report=False)
    meta = {"representation": "pianoroll", "repr_config": data.info.repr_config}
    return [array_to_score(piece, meta)
            for split in ("train", "valid", "test") for piece in data.pieces(split)]


def write_midi_files(folder: Path, n_files: int, scores) -> list[Path]:
    """Write ``n_files`` distinct MIDI files: the scores at transpositions 0, +1, -1, ..."""
    from tunesmith.music.transforms import transpose

    files = []
    for shift in (0, 1, -1, 2, -2, 3, -3):
        for index, score in enumerate(scores):
            if len(files) == n_files:
                return files
            shifted, _ = transpose(score, shift)
            file = folder / f"piece{index:03d}_t{shift:+d}.mid"
            shifted.dump_midi(str(file))
            files.append(file)
    return files


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_prepare(folder: Path, workers: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, pieces prepared)."""
    from tunesmith.data.prepare import prepare

    start, cpu = time.perf_counter(), cpu_seconds()
    data = prepare(f"folder:{folder}", "pianoroll", refresh=True, workers=workers,
                   progress=False, report=False)
    return time.perf_counter() - start, cpu_seconds() - cpu, len(data)


def time_pretty_midi(files: list[Path]) -> tuple[float, float]:
    import warnings

    import pretty_midi

    start, cpu = time.perf_counter(), cpu_seconds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for file in files:
            pretty_midi.PrettyMIDI(str(file))
    return time.perf_counter() - start, cpu_seconds() - cpu


def time_gate(files: list[Path]) -> tuple[float, float] | None:
    """(µs per file of the MIDI gate, of symusic's parse), best of 3; None before the gate."""
    try:
        from tunesmith.music.midi_gate import check_midi
    except ImportError:
        return None
    from symusic import Score

    datas = [file.read_bytes() for file in files]
    best = []
    for function in (check_midi, Score.from_midi):
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            for data in datas:
                function(data)
            runs.append(time.perf_counter() - start)
        best.append(min(runs) / len(datas) * 1e6)
    return best[0], best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--mix", nargs="+", default=["jsb", "chorales"],
                        choices=["jsb", "chorales"], help="which file mixes to time")
    parser.add_argument("--path", default=None, help="folder or .mat of JSB Chorales")
    args = parser.parse_args()

    load = os.getloadavg()
    print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f} (wall-clock rates suffer when the load exceeds the CPU count)")
    for mix in args.mix:
        scores = jsb_scores(args.path) if mix == "jsb" else chorale_scores()
        with tempfile.TemporaryDirectory(prefix="tunesmith-bench-") as tmp:
            cache = os.environ.get("TUNESMITH_CACHE")
            os.environ["TUNESMITH_CACHE"] = str(Path(tmp) / "cache")
            folder = Path(tmp) / "midi"
            folder.mkdir()
            files = write_midi_files(folder, args.files, scores)
            n = len(files)
            notes = sum(s.note_num() for s in scores) / len(scores)
            time_prepare(folder, 2)  # warm-up: imports, page cache
            wall_2, cpu_2, kept = time_prepare(folder, 2)
            wall_1, cpu_1, _ = time_prepare(folder, 1)
            wall_pm, cpu_pm = time_pretty_midi(files)
            gate = time_gate(files)
            if cache is None:
                del os.environ["TUNESMITH_CACHE"]
            else:
                os.environ["TUNESMITH_CACHE"] = cache
        print(f"\n[{mix}] {n} MIDI files, {notes:.0f} notes per piece on average, "
              f"{kept} prepared")
        print(f"{'':30s} {'wall s':>7s} {'files/s':>8s} {'CPU s':>7s} {'files/CPU-s':>11s}")
        rows = [("tunesmith prepare, 2 workers", wall_2, cpu_2),
                ("tunesmith prepare, 1 worker", wall_1, cpu_1),
                ("pretty_midi load, 1 process", wall_pm, cpu_pm)]
        for name, wall, cpu in rows:
            print(f"{name:30s} {wall:7.2f} {n / wall:8.0f} {cpu:7.2f} {n / cpu:11.0f}")
        print(f"ratio prepare(2 workers) / pretty_midi, wall: {wall_pm / wall_2:.1f}x; "
              f"per CPU-second: {cpu_pm / cpu_2:.1f}x")
        if gate:
            print(f"MIDI gate {gate[0]:.1f} µs per file, symusic parse {gate[1]:.1f} µs "
                  f"per file ({gate[0] / gate[1]:.1f}x)")
        met = n / wall_2 >= 500 and wall_pm / wall_2 >= 10
        print(f"target >= 500 files/s and >= 10x pretty_midi (wall, 2 workers): "
              f"{'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
