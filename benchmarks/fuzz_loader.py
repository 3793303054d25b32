"""Fuzz the music loaders: mutants of small real MIDI, ABC and MusicXML files, each read by
``tunesmith.music.load_all`` in a child process under a memory limit and a time limit.

Seed files (built or taken offline): MIDI written from music21's Bach chorales (several
tracks, tempo, time and key signatures) and hand-made MIDI with running status, text and
sysex events, program changes, pitch bends and drums; ABC tunes from music21's Essen
folk songs and Ryan's Mammoth collection; the smallest MusicXML files of music21's corpus.
A mutant is a seed with, chosen at random (fixed seed), 1 to 4 edits: bytes overwritten
(with random or boundary values 0x00 0x7F 0x80 0xFF), bytes inserted or deleted, a span
duplicated, a slice of a seed inserted (of the same format 4 times in 5), a truncation.
Half the MIDI mutants have 1 or 2 edits inside one chunk whose length is then rewritten
to match (so the events meet them, not the chunk walk); 2 in 5 ABC/MusicXML mutants have
1 to 3 of their numbers replaced by boundary values (0, -1, 65535, 1e308...) instead.

Each mutant ends in one of five outcomes:

* ``loaded``: load_all returned Scores (their pitches and velocities are checked to be
  0..127 and their times non-negative, or the outcome is ``other``);
* ``clean error``: a MusicFileError (the file named, a reason);
* ``other exception``: any other exception (a bug to fix: a traceback for the user);
* ``crash``: the child process died (a signal, e.g. 11 SIGSEGV, or 6 from ``free()``);
* ``hang``: no answer 30 s past the time limit (the child is killed).

The loader's own time limit (``load_all(..., time_limit=)``, 60 s in ``data prepare``)
stops music21 parses (late when music21 is inside one long C call); ``--time-limit``
sets it short here so that the campaign fits in minutes: a parse stopped by it counts as
a clean error, as it does in ``data prepare``.

Target: zero in the last three. A child reads many mutants in a row and is replaced after
a crash or a hang, so the campaign costs little more than the parsing itself.

Usage: ``nice .venv/bin/python benchmarks/fuzz_loader.py [--midi 10000] [--abc 1000]
[--musicxml 500] [--seed 0] [--time-limit 5] [--memory-gb 3] [--keep DIR] [--json]``
(``--keep``: copy each mutant with a bad outcome into DIR to reproduce it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from make_test_data import vlq

OUTCOMES = ("loaded", "clean error", "other exception", "crash", "hang")
FORMATS = {"midi": ".mid", "abc": ".abc", "musicxml": ".musicxml"}
GRACE = 30.0  # seconds past the loader's time limit before a child counts as hung

# --------------------------------------------------------------------------- seeds



def _handmade_midi() -> list[bytes]:
    """Valid MIDI using what symusic writes rarely: running status across a text event,
    sysex, program change, channel pressure, pitch bend, control change, drums."""
    body = (b"\x00\xff\x03\x05Piano" + b"\x00\xff\x51\x03\x07\xa1\x20"
            + b"\x00\xff\x58\x04\x03\x02\x18\x08" + b"\x00\xff\x59\x02\xfe\x01"
            + b"\x00\xf0\x05\x7e\x7f\x09\x01\xf7" + b"\x00\xc0\x05" + b"\x00\xb0\x07\x64")
    for i, pitch in enumerate((60, 64, 67, 72)):
        body += b"\x00\x90" + bytes([pitch, 90]) + b"\x00\xff\x01\x01" + bytes([65 + i])
        body += vlq(240) + bytes([pitch, 0])  # running status after a text event
    body += b"\x00\xd0\x30" + b"\x10\xe0\x00\x50" + b"\x00\x99\x24\x64\x60\x89\x24\x00"
    body += b"\x00\xff\x2f\x00"
    track = b"MTrk" + len(body).to_bytes(4, "big") + body
    header = b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0"
    return [header + track + track, header[:9] + b"\x00\x00\x01" + header[12:] + track]


def build_seeds(folder: Path) -> dict[str, list[bytes]]:
    """The seed files of each format (bytes)."""
    import music21

    from tunesmith.data.corpora import split_abc_tunes
    from tunesmith.music import load, save_midi

    corpus = Path(music21.__file__).parent / "corpus"
    midi = _handmade_midi()
    for name in ("bach/bwv66.6.mxl", "bach/bwv1.6.mxl", "bach/bwv269.mxl"):
        score = load(corpus / name)
        midi.append(save_midi(score, folder / "seed.mid").read_bytes())
    abc = [text.encode() for _, text in
           split_abc_tunes((corpus / "essenFolksong" / "testd.abc").read_text())[:4]]
    abc += [path.read_bytes() for path in sorted((corpus / "ryansMammoth").glob("*.abc"),
                                                 key=lambda p: p.stat().st_size)[:4]]
    xml = [(corpus / name).read_bytes() for name in (
        "demos/multiple-verses.xml", "demos/nested_tuplet_finale_test.xml",
        "demos/two-voices.xml", "demos/two-parts.xml", "demos/drum_sample.xml")]
    return {"midi": midi, "abc": abc, "musicxml": xml}


# --------------------------------------------------------------------------- mutants


def mutate(data: bytes, others: list[bytes], rng: random.Random, edits: int = 4) -> bytes:
    """1 to ``edits`` random edits of ``data`` (see the module docstring); ``others``:
    files to take inserted slices from."""
    out = bytearray(data)
    for _ in range(rng.randint(1, edits)):
        if not out:
            break
        at = rng.randrange(len(out))
        edit = rng.random()
        if edit < 0.35:  # overwrite 1-4 bytes
            for k in range(at, min(len(out), at + rng.randint(1, 4))):
                out[k] = rng.choice((0x00, 0x7F, 0x80, 0xFF, rng.randrange(128),
                                     rng.randrange(256)))
        elif edit < 0.5:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif edit < 0.65:
            del out[at:at + rng.randint(1, 16)]
        elif edit < 0.75:
            span = out[at:at + rng.randint(1, 64)]
            out[at:at] = span * rng.randint(1, 8)
        elif edit < 0.9:  # a slice of a seed file
            other = rng.choice(others)
            start = rng.randrange(len(other))
            out[at:at] = other[start:start + rng.randint(1, 256)]
        else:
            del out[at:]
    return bytes(out)


def mutate_tracks(data: bytes, others: list[bytes], rng: random.Random) -> bytes:
    """:func:`mutate` one track of a MIDI file and write its chunk length to match, so
    that the events, not the chunk lengths, meet the edits."""
    header_end = 8 + int.from_bytes(data[4:8], "big")
    chunks, position = [], header_end
    while position + 8 <= len(data):
        end = position + 8 + int.from_bytes(data[position + 4:position + 8], "big")
        chunks.append([data[position:position + 4], data[position + 8:end]])
        position = end
    chunk = rng.choice(chunks)
    chunk[1] = mutate(chunk[1], others, rng, edits=2) if chunk[1] else chunk[1]
    return data[:header_end] + b"".join(kind + len(body).to_bytes(4, "big") + body
                                        for kind, body in chunks)


_NUMBERS = (b"0", b"-1", b"1", b"3", b"7", b"64", b"127", b"128", b"255", b"65535",
            b"999999999", b"4294967297", b"0.0001", b"3.5", b"1e308", b"-32768")


def mutate_numbers(data: bytes, rng: random.Random) -> bytes:
    """Replace 1 to 3 numbers of a text file (durations, divisions, octaves, lengths...)
    with boundary values: where parsers divide, allocate and index."""
    found = list(re.finditer(rb"\d+", data))
    if not found:
        return data
    out = data
    for match in sorted(rng.sample(found, min(len(found), rng.randint(1, 3))),
                        key=lambda m: -m.start()):
        out = out[:match.start()] + rng.choice(_NUMBERS) + out[match.end():]
    return out


def write_mutants(seeds: dict[str, list[bytes]], counts: dict[str, int], seed: int,
                  folder: Path) -> list[tuple[str, Path]]:
    """(format, path) of every mutant, written under ``folder``."""
    rng = random.Random(seed)
    every_seed = [data for datas in seeds.values() for data in datas]
    mutants = []
    for fmt, count in counts.items():
        for index in range(count):
            path = folder / f"{fmt}-{index:05d}{FORMATS[fmt]}"
            # slices mostly of the same format (a text format mostly stays text)
            others = seeds[fmt] if rng.random() < 0.8 else every_seed
            data, kind = rng.choice(seeds[fmt]), rng.random()
            if fmt == "midi" and kind < 0.5:
                data = mutate_tracks(data, others, rng)
            elif fmt != "midi" and kind < 0.4:
                data = mutate_numbers(data, rng)
            else:
                data = mutate(data, others, rng)
            path.write_bytes(data)
            mutants.append((fmt, path))
    return mutants


# --------------------------------------------------------------------------- child


def child(list_file: str, first: int, time_limit: float, memory_gb: float, fd: int) -> None:
    """Read the mutants of ``list_file`` from line ``first`` on; one JSON line each, to
    the file descriptor ``fd`` (stdout and stderr stay the libraries')."""
    import music21  # noqa: F401  (imported before the memory limit, as a user's process)

    from tunesmith.errors import MusicFileError
    from tunesmith.music import load_all

    limit = int(memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = os.fdopen(fd, "w", buffering=1)
    paths = Path(list_file).read_text().splitlines()
    for index in range(first, len(paths)):
        out.write(json.dumps([index, "start"]) + "\n")
        try:
            scores = load_all(paths[index], time_limit=time_limit)
            outcome, detail = "loaded", _insane(scores)
            if detail:
                outcome = "other exception"
        except MusicFileError as exc:
            outcome, detail = "clean error", exc.reason[:200]
        except BaseException as exc:
            outcome, detail = "other exception", f"{type(exc).__name__}: {exc}"[:300]
        out.write(json.dumps([index, outcome, detail]) + "\n")


def _insane(scores) -> str:
    """What is impossible in loaded Scores (negative pitches, times...), or ''."""
    for score in scores:
        if score.ticks_per_quarter <= 0:
            return f"ticks per quarter {score.ticks_per_quarter}"
        for track in score.tracks:
            if not len(track.notes):
                continue
            notes = track.notes.numpy()
            for field, low, high in (("pitch", 0, 127), ("velocity", 0, 127),
                                     ("time", 0, 2**31 - 1), ("duration", 0, 2**31 - 1)):
                if notes[field].min() < low or notes[field].max() > high:
                    return f"a note {field} out of {low}..{high} in track {track.name!r}"
    return ""


# --------------------------------------------------------------------------- driver


def run(mutants: list[tuple[str, Path]], time_limit: float, memory_gb: float,
        progress: bool = True) -> list[tuple[str, str, str]]:
    """(format, outcome, detail) of every mutant, read by children in turn."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("\n".join(str(path) for _, path in mutants))
    results: list[tuple[str, str, str]] = []
    started, shown = time.monotonic(), 0
    while len(results) < len(mutants):
        first = len(results)
        read, write = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", listing.name, str(first), str(time_limit),
             str(memory_gb), str(write)], pass_fds=(write,), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        # the child imports music21 first: give that two minutes
        pending, deadline, buffer = None, time.monotonic() + 120, b""
        while True:
            ready, _, _ = select.select([read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:  # past the time limit: a hang
                proc.kill()
                proc.wait()
                if pending is None:
                    raise RuntimeError("a fuzzing child did not start in 120 s")
                results.append((mutants[pending][0], "hang", f"> {time_limit + GRACE:g} s"))
                break
            chunk = os.read(read, 65536)
            if not chunk:  # the child died
                code = proc.wait()
                if pending is not None:
                    results.append((mutants[pending][0], "crash", _signal_name(code)))
                elif len(results) == first and first < len(mutants):
                    raise RuntimeError(f"a fuzzing child died before its first file "
                                       f"({_signal_name(code)})")
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                index, outcome, *detail = json.loads(line)
                if outcome == "start":
                    pending, deadline = index, time.monotonic() + time_limit + GRACE
                    if index == first:  # music21 imports more on its first parse
                        deadline += 30
                else:
                    results.append((mutants[index][0], outcome, detail[0]))
                    pending, deadline = None, time.monotonic() + 120
            if progress and len(results) // 500 > shown // 500:
                shown = len(results)
                print(f"  {shown} / {len(mutants)} ({time.monotonic() - started:.0f} s)",
                      file=sys.stderr)
        os.close(read)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    os.unlink(listing.name)
    return results


def _signal_name(code: int) -> str:
    if code < 0:
        import signal

        try:
            return f"signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def summary(mutants, results) -> dict:
    table = {fmt: dict.fromkeys(OUTCOMES, 0) for fmt in FORMATS}
    stopped = dict.fromkeys(FORMATS, 0)  # clean errors that were the loader's time limit
    examples: dict[str, list] = {outcome: [] for outcome in OUTCOMES[2:]}
    for (fmt, path), (_, outcome, detail) in zip(mutants, results, strict=True):
        table[fmt][outcome] += 1
        stopped[fmt] += outcome == "clean error" and "per-file time limit" in detail
        if outcome in examples:
            examples[outcome].append([str(path), detail])
    return {"counts": table, "stopped_by_time_limit": stopped, "examples": examples}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]),
              int(sys.argv[6]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--midi", type=int, default=10000, help="MIDI mutants")
    parser.add_argument("--abc", type=int, default=1000, help="ABC mutants")
    parser.add_argument("--musicxml", type=int, default=500, help="MusicXML mutants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=5.0,
                        help="the loader's time limit per file (seconds)")
    parser.add_argument("--memory-gb", type=float, default=3.0, help="address space limit")
    parser.add_argument("--keep", default=None, help="copy bad mutants into this folder")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()

    counts = {"midi": args.midi, "abc": args.abc, "musicxml": args.musicxml}
    with tempfile.TemporaryDirectory(prefix="tunesmith-fuzz-") as tmp:
        folder = Path(tmp)
        seeds = build_seeds(folder)
        mutants = write_mutants(seeds, {k: v for k, v in counts.items() if v}, args.seed,
                                folder)
        started = time.monotonic()
        results = run(mutants, args.time_limit, args.memory_gb, progress=not args.json)
        elapsed = time.monotonic() - started
        report = summary(mutants, results)
        if args.keep:
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            for found in report["examples"].values():
                for path, _ in found:
                    shutil.copy(path, keep / Path(path).name)
    report["seconds"] = round(elapsed, 1)
    if args.json:
        print(json.dumps(report))
        return
    load = os.getloadavg()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
          f"{sys.version.split()[0]}, load average {load[0]:.2f}; seed {args.seed}, "
          f"time limit {args.time_limit:g} s, memory limit {args.memory_gb:g} GiB; "
          f"{len(mutants)} mutants in {elapsed:.0f} s")
    print(f"{'format':10s} " + " ".join(f"{o:>15s}" for o in OUTCOMES))
    for fmt, row in report["counts"].items():
        if counts[fmt]:
            print(f"{fmt:10s} " + " ".join(f"{row[o]:15d}" for o in OUTCOMES))
    print("clean errors that were the loader's time limit: " + ", ".join(
        f"{fmt} {n}" for fmt, n in report["stopped_by_time_limit"].items() if counts[fmt]))
    for outcome, found in report["examples"].items():
        for path, detail in found[:10]:
            print(f"{outcome}: {Path(path).name}: {detail}")
    bad = sum(row[o] for row in report["counts"].values() for o in OUTCOMES[2:])
    print(f"target: 0 other exceptions, crashes and hangs: {'met' if not bad else 'NOT met'}")


if __name__ == "__main__":
    main()
