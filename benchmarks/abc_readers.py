"""abc2midi (tunesmith's ABC reader) against music21's, tune by tune, with the reason for
each difference (Essen folk songs, O'Neill's).

For the chosen tunes of each corpus (``tunesmith.data.corpora``'s tune split: each tune
alone, with its file's header), reads the tune with music21 (``parse_abc``, what
``prepare`` used before: music21's reader and tunesmith's conversion) and with
:func:`tunesmith.music.abc.read_tunes` (abc2midi, normalised to tunesmith's conventions),
compares the two Scores (notes as time, duration, pitch; time and key signatures) and
sorts each difference by what it is (more notes, other pitches, other times, other
meters) and by what the tune's text holds that explains it:

* ``repeats``: repeat marks (``|:``, ``:|``, ``::``, endings); abc2midi plays them,
  music21's repeat marks from ABC often fail to expand (and ``::`` can lose notes);
* ``accidental held in the bar``: an accidental followed in the same bar by the same
  note letter without one: the ABC standard (and abc2midi) keeps the accidental to the
  bar line, music21 applies it to its note only;
* ``accidental held over a line end``: the same across a line end without a bar line
  (Essen writes phrases one a line; a line end there is sometimes a bar line);
* ``tie between different pitches``: ``D-E``, ``=F-^F``; abc2midi plays both notes,
  music21 merges them into the first;
* ``key or meter change``: ``K:``/``M:`` inside the tune; abc2midi applies it, music21
  ignores it;
* ``music21's own meters``: music21 gives a bar that does not fit the written meter a
  time signature of its own length (e.g. 1/8 before a pickup, 10/4), abc2midi keeps the
  written meter;
* ``broken rhythm or grace note in a slur``: ``(A>).B``, ``({g}fe)``; music21 misreads
  some of these;
* ``jump``: ``D.C.``, ``D.S.``, ``!D.C.!``: abc2midi plays the jump (as music21's
  ``expandRepeats`` does for MusicXML), music21's ABC reader does not;
* ``decoration``: ``H``, ``T``, ``~``, ``.`` before a note (``G Hc>c``); music21 misreads
  some of these (abc2midi would play them: tunesmith removes them first);

and lists the tunes no reason explains. With ``--ids`` (a JSON list, e.g. the
``differ`` list of ``benchmarks/cold_prepare.py``'s result), only those tunes. Times both
readers (one process, CPU seconds per tune).

Usage: ``.venv/bin/python benchmarks/abc_readers.py [--tunes 300] [--step 1]
[--corpus essen-folk oneills] [--ids differ.json] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
import warnings
from collections import Counter

_NOTE = re.compile(r"([_^=]{0,2})([A-Ga-g])([,']*)")
_BAR = re.compile(r"[|:]*\|[|:\]]*|::|\[\|")
_TIE = re.compile(r"([_^=]{0,2}[A-Ga-g][,']*)[0-9/]*\)?-[\s|:\]]*(?:\[?[0-9]+)?[\s(]*"
                  r"([_^=]{0,2}[A-Ga-g][,']*)")


def body_lines(text: str) -> list[str]:
    """The music lines of a tune (after the first ``K:``), without strings, decorations,
    comments and grace groups."""
    lines, in_body = [], False
    for line in text.split("\n"):
        if line.startswith("K:") and not in_body:
            in_body = True
            continue
        if in_body and not re.match(r"^[A-Za-z+]:|^%", line):
            lines.append(re.sub(r'"[^"]*"|![^!]*!|%.*|\{[^}]*\}|\[[A-Za-z]:[^\]]*\]', "", line))
    return lines


def _carries(bars: list[str]) -> bool:
    for bar in bars:
        held = set()
        for accidental, letter, _ in _NOTE.findall(bar):
            if accidental:
                held.add(letter.upper())
            elif letter.upper() in held:
                return True
    return False


def features(text: str) -> set[str]:
    """What a tune's text holds that the two readers read differently."""
    lines = body_lines(text)
    body = "\n".join(lines)
    found = set()
    if re.search(r":\||\|:|::|\|\s*\[?[12]", body):
        found.add("repeats")
    in_bar = _carries([bar for line in lines for bar in _BAR.split(line)])
    if in_bar:
        found.add("accidental held in the bar")
    elif _carries(_BAR.split(" ".join(lines))):
        found.add("accidental held over a line end")
    # a second accidental counts (F-^F: two pitches), a repeated one or none does not
    if any(a.lstrip("_^=") != b.lstrip("_^=") or (b[0] in "_^=" and a != b)
           for a, b in _TIE.findall(body)):
        found.add("tie between different pitches")
    after_key = text.split("\nK:", 1)[1].split("\n", 1)[1] if "\nK:" in text else ""
    if re.search(r"(?m)\[[KM]:|^[KM]:", after_key):
        found.add("key or meter change")
    if re.search(r"\([^)]*[<>]\)|\(\{", body) or re.search(r"\([^)]*\{", body):
        found.add("broken rhythm or grace note in a slur")
    if re.search(r"D\.[CS]\.", "\n".join(text.split("\n")[1:]).split("\nK:", 1)[-1]):
        found.add("jump")
    if re.search(r"[.~HLMPTuv][_^=]*[A-Ga-g]", body):
        found.add("decoration")
    return found


def facts(score) -> dict:
    return {"notes": [(n.time, n.duration, n.pitch) for t in score.tracks for n in t.notes],
            "meters": [(t.time, t.numerator, t.denominator) for t in score.time_signatures],
            "keys": [(k.time, k.key, k.tonality) for k in score.key_signatures]}


def difference(old: dict, new: dict) -> str:
    """What differs: '' (nothing), 'more notes', 'fewer notes', 'pitches', 'times',
    'meters', 'keys' (the first that applies)."""
    a, b = old["notes"], new["notes"]
    if len(a) != len(b):
        return "more notes" if len(b) > len(a) else "fewer notes"
    if [n[2] for n in a] != [n[2] for n in b]:
        return "pitches"
    if a != b:
        return "times"
    if old["meters"] != new["meters"]:
        return "meters"
    if old["keys"] != new["keys"]:
        return "keys"
    return ""


def reasons(kind: str, found: set[str], old: dict, new: dict) -> list[str]:
    """The explanations that fit a difference of ``kind``."""
    fits = {
        "more notes": {"repeats", "jump", "tie between different pitches",
                       "broken rhythm or grace note in a slur", "decoration"},
        "fewer notes": {"repeats", "jump", "tie between different pitches",
                        "broken rhythm or grace note in a slur", "decoration"},
        "pitches": {"accidental held in the bar", "accidental held over a line end",
                    "key or meter change", "tie between different pitches"},
        "times": {"repeats", "jump", "broken rhythm or grace note in a slur",
                  "tie between different pitches", "decoration"},
        "meters": {"key or meter change"},
        "keys": {"key or meter change"},
    }[kind]
    out = sorted(found & fits)
    if kind in ("meters", "times", "more notes", "fewer notes", "pitches") and \
            old["meters"] != new["meters"] and any(m not in new["meters"]
                                                   for m in old["meters"]):
        out.append("music21's own meters")
    return out


def compare(corpus_name: str, n_tunes: int, step: int, ids: set[str] | None) -> dict:
    from tunesmith.data.corpora import get_corpus, split_abc_tunes
    from tunesmith.music.abc import read_tunes
    from tunesmith.music.io import parse_abc, read_text

    corpus = get_corpus(corpus_name)
    sources = [s for s in corpus.sources()[0] if s.tune is not None]
    sources = [s for s in sources if s.id in ids] if ids is not None else \
        sources[::step][:n_tunes]
    kinds: Counter = Counter()
    explained: Counter = Counter()
    unexplained: list[str] = []
    fallback: Counter = Counter()
    cpu = {"music21": 0.0, "abc2midi": 0.0}
    texts: dict[str, list] = {}
    for source in sources:
        if source.path not in texts:
            texts = {source.path: split_abc_tunes(read_text(source.path))}
        text = texts[source.path][source.tune][1]
        started = time.process_time()
        try:
            old = facts(parse_abc(text, source.id)[0])
        except Exception:
            old = None
        cpu["music21"] += time.process_time() - started
        started = time.process_time()
        new = read_tunes([text], 60)[0]
        cpu["abc2midi"] += time.process_time() - started
        if isinstance(new, str):
            fallback[new.split(":")[0] + (": " + new.split(":")[1][:40] if ":" in new else "")] += 1
            kinds["read by music21 (abc2midi refused it)"] += 1
            continue
        if old is None:
            kinds["music21 cannot read it"] += 1
            continue
        new = facts(new)
        kind = difference(old, new)
        kinds[kind or "identical"] += 1
        if not kind:
            continue
        why = reasons(kind, features(text), old, new)
        for reason in why:
            explained[(kind, reason)] += 1
        if not why:
            unexplained.append(f"{source.id} ({kind})")
    n = max(len(sources), 1)
    return {"corpus": corpus_name, "tunes": len(sources), "kinds": dict(kinds),
            "explained": {f"{k} <- {r}": v for (k, r), v in explained.most_common()},
            "unexplained": unexplained, "abc2midi refused": dict(fallback),
            "cpu ms a tune": {k: round(v / n * 1000, 1) for k, v in cpu.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tunes", type=int, default=300)
    parser.add_argument("--step", type=int, default=1, help="every STEP-th tune")
    parser.add_argument("--corpus", nargs="+", default=["essen-folk", "oneills"])
    parser.add_argument("--ids", default=None, help="JSON list of piece ids to compare")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # music21's own warnings on odd ABC
    import symusic

    ids = None
    if args.ids:
        with open(args.ids) as handle:
            ids = set(json.load(handle))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), symusic "
          f"{symusic.__version__}, load average {os.getloadavg()[0]:.1f}")
    results = []
    for name in args.corpus:
        result = compare(name, args.tunes, args.step, ids)
        results.append(result)
        print(f"\n{name}: {result['tunes']} tunes; CPU a tune {result['cpu ms a tune']}")
        for kind, count in sorted(result["kinds"].items(), key=lambda kv: -kv[1]):
            print(f"  {count:5d} {kind}")
        print("  explained (a tune may have several reasons):")
        for line, count in result["explained"].items():
            print(f"    {count:5d} {line}")
        print(f"  unexplained: {len(result['unexplained'])}: "
              f"{', '.join(result['unexplained'][:12])}")
        if result["abc2midi refused"]:
            print(f"  abc2midi refused: {result['abc2midi refused']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
