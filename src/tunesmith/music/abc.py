"""ABC tunes through abc2midi, the ABC reader symusic ships (``Score.from_abc`` runs it).

music21's ABC reader is pure Python (≈ 0.2 s a folk tune, 0.5 s an O'Neill's reel) and,
measured on the Essen and O'Neill's collections (docs/benchmarks.md, "ABC: abc2midi
against music21"), it departs from the ABC standard where abc2midi follows it: an
accidental holds to the end of its bar (music21: that note only), ``|: ... :|`` repeats
are played twice (music21's repeat marks from ABC often do not expand, and ``::`` loses
notes), inline ``[K:]`` and ``[M:]`` changes apply (music21 ignores them), and a tie
between two different pitches (``D-E``) plays both notes (music21 merges them into the
first). So tunesmith reads ABC with abc2midi and keeps music21 for what abc2midi cannot
read (:func:`read_tunes` returns a reason for those).

abc2midi's MIDI is brought to tunesmith's conventions for scores read from text, those
of :func:`tunesmith.music.io.music21_to_score`:

* grace notes are dropped (``-NGRA``; abc2midi would steal their time from the main note)
  and guitar-chord accompaniment is not generated (``-NGUI``: ``"Am"`` is an annotation);
* chord notes start together (``%%MIDI chordattack 0``; abc2midi staggers them);
* abc2midi starts every note one tick late (so that a repeated pitch's note-off comes
  first); notes are moved back that tick;
* every velocity is 80 (abc2midi's are its own beat-stress model, or ``!p!``/``!f!``;
  music21 writes none);
* a tune that opens with a pickup (anacrusis) bar is shifted right by the bar's missing
  part, as :func:`~tunesmith.music.io._pickup_shift` does: only when the two bars after
  it are full. Bar lines are found by a controller event (:data:`BAR_MARK`) written
  before each bar line of the text;
* one track, named ``Part 1`` as music21 names it, program 0; tempo, time and key
  signatures as abc2midi writes them (repeated ones dropped).

abc2midi is a C program: it runs in its own process (a crash or a hang costs that call,
never the caller; its tunes then go to music21) under a time limit, on text only
(tunesmith splits files into tunes), and the MIDI it writes passes the MIDI gate
(:func:`~tunesmith.music.midi_gate.check_midi`) before symusic's C++ reader sees it.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from symusic import KeySignature, Note, Score, Tempo, TimeSignature, Track

from tunesmith.errors import MusicFileError
from tunesmith.music.midi_gate import check_midi
from tunesmith.music.transforms import append_new_event

#: controller number of the bar-line marks (undefined in General MIDI)
BAR_MARK = 110
#: what a rest (``z``, ``x``) is written as for abc2midi: a note so low (MIDI 12, whatever
#: accidental or key it takes: 10-14) that no tune holds it. abc2midi writes a controller
#: event (a bar mark) before the rests just before it; a sounding note moves time on.
REST_NOTE = "C,,,,"
REST_PITCHES = (10, 14)
#: velocity of every note read from ABC (music21 writes none; tunesmith's default is 80)
VELOCITY = 80
#: ticks per quarter of abc2midi's MIDI files
ABC_TPQ = 480

_TUNE_START = re.compile(r"(?m)^X:[ \t]*(\S*)")
_FIELD_LINE = re.compile(r"^[A-Za-z+]:")
_INLINE_FIELD = re.compile(r"\[[A-Za-z]:[^\]\n]*\]")


def split_abc_tunes(text: str) -> list[tuple[str, str]]:
    """Split a multi-tune ABC text into ``(X number, tune text)`` pairs.

    The file header (fields before the first ``X:``) applies to every tune, so it is
    copied into each tune right after its ``X:`` line.
    """
    starts = list(_TUNE_START.finditer(text))
    if not starts:
        return []
    header = "".join(
        line + "\n"
        for line in text[: starts[0].start()].splitlines()
        if re.match(r"^[A-Za-z]:", line)
    )
    tunes = []
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        body = text[match.start() : end]
        first_line, _, rest = body.partition("\n")
        tunes.append((match.group(1) or str(i + 1), first_line + "\n" + header + rest))
    return tunes


def abc2midi_path() -> Path | None:
    """symusic's bundled ``abc2midi`` binary, None when this symusic has none."""
    import symusic

    name = "abc2midi.exe" if sys.platform.startswith("win") else "abc2midi"
    path = Path(symusic.__file__).parent / "bin" / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def multi_voice(text: str) -> bool:
    """True when a tune has ``V:`` voices (several parts: music21 reads those)."""
    return re.search(r"(?m)^V:|\[V:", text) is not None


def for_abc2midi(text: str, number: int, bars: bool = False) -> str:
    """A tune's text for abc2midi: ``X:`` renumbered to ``number``, chords unstaggered
    (``%%MIDI chordattack 0``), no ``R:`` field (abc2midi would swing a hornpipe's
    eighths and refuses one not in 2/4 or 4/4), and no blank lines (the ABC standard
    ends a tune at a blank line; some Essen tunes hold one in their middle, and music21
    reads on).

    ``bars``: the rendition that finds the bar lines instead: a :data:`BAR_MARK`
    controller event before every bar line of the tune body, rests written as
    :data:`REST_NOTE` and ties removed (abc2midi writes a controller event at the last
    note-on or note-off before it, so a bar ending in a rest or tied over would put its
    mark early; the notes' times are the same). Bar lines are runs of ``|`` and ``:``
    (``|``, ``||``, ``|]``, ``[|``, ``|:``, ``:|``, ``::``) outside comments, quoted
    strings, ``!decorations!``, grace groups and inline fields; field lines (``w:``
    lyrics hold ``|`` too) are left alone.
    """
    out = []
    in_body = False
    for line in text.split("\n"):
        if not line.strip():  # tunesmith splits tunes at X:; music21 reads on, too
            continue
        if not in_body or _FIELD_LINE.match(line) or line.startswith("%"):
            if line.startswith("R:"):  # abc2midi swings a "R:hornpipe" (music21 does not)
                continue
            if line.startswith("X:"):
                line = f"X:{number}"
            elif line.startswith("K:") and not in_body:
                in_body = True
                line = line + "\n%%MIDI chordattack 0"
            out.append(line)
            continue
        out.append(_body_line(line, bars))
    return "\n".join(out)


#: one-character decorations abc2midi plays and music21 does not: staccato (shortens the
#: note), roll, fermata, accent, mordents, trill, bowings. They are removed, as are
#: ``!decorations!`` but the jumps (:data:`_JUMPS`), which abc2midi plays too.
PLAYED = frozenset(".~HLMPTuv")
_JUMPS = frozenset({"D.S.", "D.C.", "segno", "coda", "fine", "D.C.alfine", "D.C.alcoda",
                    "D.S.alfine", "D.S.alcoda", "dacapo", "dacoda"})
_MARK = f"[I:MIDI=control {BAR_MARK} 1]"
_ENDING = re.compile(r"\[?[0-9][0-9,\-]*")  # 1st/2nd ending numbers after a bar line


def _body_line(line: str, bars: bool) -> str:
    """One body line without the decorations abc2midi would play (:data:`PLAYED`);
    ``bars``: with bar marks, rests as notes and no ties (see :func:`for_abc2midi`)."""
    pieces = []
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "%" and (i == 0 or line[i - 1] != "\\"):
            pieces.append(line[i:])
            break
        if c in '"!{':
            close = {'"': '"', "!": "!", "{": "}"}[c]
            j = line.find(close, i + 1)
            if j < 0 and c == "!":  # a lone ! (an old line break)
                pieces.append(c)
                i += 1
                continue
            j = n - 1 if j < 0 else j
            text = line[i : j + 1]
            if c != "!" or text[1:-1] in _JUMPS:
                pieces.append(text)
            i = j + 1
            continue
        if c in PLAYED:
            i += 1
            continue
        if c == "[":
            field = _INLINE_FIELD.match(line, i)
            if field:
                pieces.append(field.group())
                i = field.end()
                continue
        if not bars:
            pieces.append(c)
            i += 1
            continue
        if c in "|:" or (c == "[" and line[i + 1 : i + 2] == "|"):  # [| opens a section
            j = i + 1
            while j < n and line[j] in "|:":
                j += 1
            run = line[i:j]
            if "|" in run or "::" in run:
                ending = _ENDING.match(line, j)
                if ending:
                    j = ending.end()
                pieces.append(_MARK + line[i:j])
            else:
                pieces.append(run)
            i = j
            continue
        if c in "zx":
            pieces.append(REST_NOTE)
        elif c != "-":  # a tie
            pieces.append(c)
        i += 1
    return "".join(pieces)


def run_abc2midi(texts: list[str], time_limit: float) -> tuple[list[bytes | None], str]:
    """abc2midi's MIDI bytes of each tune text (prepared by :func:`mark_bars`, numbered
    1, 2, ... in order), None for a tune it wrote nothing for; and what it printed.

    One process for all the tunes. Raises ``subprocess.TimeoutExpired`` past
    ``time_limit`` seconds and ``OSError`` when the program cannot run."""
    binary = abc2midi_path()
    if binary is None:
        raise OSError("this symusic ships no abc2midi")
    with tempfile.TemporaryDirectory(prefix="tunesmith-abc-", dir=_scratch()) as folder:
        source = Path(folder) / "t.abc"
        source.write_text("\n\n".join(texts) + "\n", encoding="utf-8")
        done = subprocess.run(
            [str(binary), source.name, "-NGRA", "-NGUI", "-silent"], cwd=folder,
            capture_output=True, timeout=None if time_limit == float("inf") else time_limit,
            check=False, stdin=subprocess.DEVNULL)
        out = []
        for number in range(1, len(texts) + 1):
            midi = Path(folder) / f"t{number}.mid"
            out.append(midi.read_bytes() if midi.is_file() else None)
    printed = (done.stdout + done.stderr).decode("utf-8", "replace")
    if done.returncode < 0:  # killed by a signal: a crash; trust none of its files
        raise OSError(f"abc2midi crashed (signal {-done.returncode})")
    return out, printed


def _scratch() -> str | None:
    """A folder in memory for abc2midi's files when there is one (``/dev/shm``: on this
    VM's disk, writing a file of MIDI per tune cost 1.3 s a 720-tune file, in memory
    0.05 s), else the system's temporary folder."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def errors_by_tune(printed: str, texts: list[str]) -> dict[int, str]:
    """abc2midi's ``Error in line-char L-C : ...`` messages, by tune index (0-based):
    the line numbers count lines of the joined file written by :func:`run_abc2midi`."""
    firsts, line = [], 1
    for text in texts:
        firsts.append(line)
        line += text.count("\n") + 2  # the text, then the blank line between tunes
    errors: dict[int, str] = {}
    for match in re.finditer(r"(?m)^Error in line-char (\d+)-\d+ : (.*)$", printed):
        at = int(match.group(1))
        index = int(np.searchsorted(firsts, at, side="right")) - 1
        errors.setdefault(max(index, 0), match.group(2).strip())
    return errors


def free_meter(text: str) -> bool:
    """True when a tune's header gives no meter or ``M:none`` (abc2midi then writes 4/4,
    music21 none)."""
    meter = None
    for line in text.split("\n"):
        if line.startswith("K:"):
            break
        if line.startswith("M:"):
            meter = line[2:].split("%")[0].strip()
    return not meter or meter.lower() == "none"


def from_abc2midi(music: bytes, bars: bytes, free: bool = False,
                 name: str = "Part 1") -> Score:
    """A Score in tunesmith's conventions (see the module docstring) from abc2midi's
    MIDI of a tune (``music``) and of its marked rendition (``bars``, see
    :func:`for_abc2midi`): notes a tick earlier, velocity 80, pickup shifted, one track.
    ``free``: the tune has no meter (:func:`free_meter`): the 4/4 abc2midi assumes at
    the start is dropped, and there is no pickup."""
    raw = Score.from_midi(music)
    tpq = raw.ticks_per_quarter
    starts, ends, pitches = _notes(raw)
    starts = np.maximum(starts - 1, 0)  # abc2midi starts each note one tick late
    signatures = [(int(ts.time), int(ts.numerator), int(ts.denominator))
                  for ts in raw.time_signatures]
    if free:
        signatures = [ts for ts in signatures if ts[0] > 0]
    marked = Score.from_midi(bars)
    marks = sorted({c.time for t in marked.tracks for c in t.controls
                    if c.number == BAR_MARK and c.time > 0})
    _, bar_ends, _ = _notes(marked)  # rests included, as notes
    shift = _pickup_shift(marks, signatures, tpq, int(bar_ends.max()) if len(bar_ends) else 0)

    def at(tick: int) -> int:
        return 0 if tick == 0 else tick + shift

    score = Score(tpq)
    track = Track(name, 0, False)
    keep = ((pitches < REST_PITCHES[0]) | (pitches > REST_PITCHES[1])) & (ends > starts)
    starts, ends, pitches = starts[keep], ends[keep], pitches[keep]
    for k in np.lexsort((pitches, starts)):
        track.notes.append(Note(int(starts[k]) + shift, int(ends[k] - starts[k]),
                                int(pitches[k]), VELOCITY))
    score.tracks.append(track)
    for tempo in raw.tempos:
        append_new_event(score.tempos, Tempo(at(int(tempo.time)), float(tempo.qpm)))
    for time, numerator, denominator in signatures:
        append_new_event(score.time_signatures, TimeSignature(at(time), numerator, denominator))
    for ks in raw.key_signatures:
        append_new_event(score.key_signatures,
                    KeySignature(at(int(ks.time)), int(ks.key), int(ks.tonality)))
    if not score.tempos:
        score.tempos.append(Tempo(0, 120.0))
    return score


def _notes(score: Score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, pitches) of the pitched notes of every track, in ticks."""
    arrays = [t.notes.numpy() for t in score.tracks if not t.is_drum and len(t.notes)]
    if not arrays:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    times = np.concatenate([a["time"] for a in arrays]).astype(np.int64)
    durations = np.concatenate([a["duration"] for a in arrays]).astype(np.int64)
    pitches = np.concatenate([a["pitch"] for a in arrays]).astype(np.int64)
    return times, times + durations, pitches


def _bar_ticks(signatures: list[tuple[int, int, int]], tick: int, tpq: int) -> float:
    """The length of a bar at ``tick`` by the time signature in force (0 without one)."""
    length = 0.0
    for time, numerator, denominator in signatures:
        if time <= tick:
            length = numerator * 4 * tpq / denominator
    return length


def _pickup_shift(bars: list[int], signatures: list[tuple[int, int, int]], tpq: int,
                  end: int) -> int:
    """Ticks missing from an opening pickup bar, 0 when there is none.

    The rule of :func:`tunesmith.music.io._pickup_shift` on the bars music21 makes of
    an ABC tune: the first bar is short of its time signature and the two bars after it
    (not the last) are full. music21 splits a bar longer than its time signature after
    one bar's length and gives the rest a time signature of its own length (full, then).
    """
    if not bars or not signatures:
        return 0
    bounds = [0, *bars] + ([end] if end > bars[-1] else [])
    measures: list[tuple[float, float]] = []  # (length, its own bar length)
    for start, stop in itertools.pairwise(bounds):
        full = _bar_ticks(signatures, start, tpq)
        if measures and 0 < full < stop - start:  # music21's reBar (not the first bar)
            measures += [(full, full), (stop - start - full, stop - start - full)]
        else:
            measures.append((stop - start, full))
    length, full = measures[0]
    padding = full - length
    if padding <= 0 or padding >= full:
        return 0
    following = measures[1:-1][:2]
    if following and all(abs(length - full) <= 1 for length, full in following):
        return round(padding)
    return 0


def render_tunes(texts: list[str], time_limit: float) -> list[tuple[bytes, bytes] | str]:
    """abc2midi's two MIDI renditions of each ABC tune text (one tune each, header
    included): as written, for the notes, and marked (:func:`for_abc2midi`), for the bar
    lines; or the reason abc2midi cannot be trusted with the tune (read it with music21
    then): several voices, an error abc2midi reports, no MIDI written, or the whole call
    failing (a crash, past ``time_limit`` seconds). One abc2midi process for all."""
    results: list[tuple[bytes, bytes] | str] = ["" for _ in texts]
    todo = []
    for i, text in enumerate(texts):
        if multi_voice(text):
            results[i] = "several voices (V:)"
        else:
            todo.append(i)
    if not todo:
        return results
    prepared = []
    for k, i in enumerate(todo):
        prepared += [for_abc2midi(texts[i], 2 * k + 1),
                     for_abc2midi(texts[i], 2 * k + 2, bars=True)]
    try:
        midis, printed = run_abc2midi(prepared, time_limit)
    except subprocess.TimeoutExpired:
        for i in todo:
            results[i] = f"abc2midi took more than {time_limit:g} s"
        return results
    except OSError as exc:
        for i in todo:
            results[i] = f"abc2midi cannot run ({exc})"
        return results
    errors = errors_by_tune(printed, prepared)
    for k, i in enumerate(todo):
        error = errors.get(2 * k, errors.get(2 * k + 1))
        music, bars = midis[2 * k], midis[2 * k + 1]
        if error:
            results[i] = f"abc2midi: {error}"
        elif music is None or bars is None:
            results[i] = "abc2midi wrote no MIDI"
        else:
            results[i] = (music, bars)
    return results


def tune_score(rendered: tuple[bytes, bytes] | str, text: str) -> Score | str:
    """The Score of a tune from :func:`render_tunes`'s renditions (or its reason), or
    the reason it cannot be used."""
    if isinstance(rendered, str):
        return rendered
    try:
        for midi in rendered:  # symusic's C++ reader sees only well-formed MIDI
            check_midi(midi, "abc2midi's output")
        score = from_abc2midi(*rendered, free=free_meter(text))
    except MusicFileError as exc:
        return f"abc2midi wrote malformed MIDI ({exc.reason})"
    except Exception as exc:  # symusic's reader on abc2midi's bytes
        return f"abc2midi's MIDI unreadable ({exc})"
    return score if score.note_num() else "abc2midi found no notes"


def read_tunes(texts: list[str], time_limit: float) -> list[Score | str]:
    """Each ABC tune text as a Score through abc2midi, or the reason it cannot be
    (:func:`render_tunes`, :func:`tune_score`)."""
    return [tune_score(r, t) for r, t in zip(render_tunes(texts, time_limit), texts,
                                             strict=True)]
