"""Reading and writing symbolic music.

Everything is read into a :class:`symusic.Score` in ticks:

* MIDI (``.mid``, ``.midi``) through symusic's C++ reader;
* ABC, MusicXML and Humdrum kern (``.abc``, ``.xml``, ``.musicxml``, ``.mxl``, ``.krn``)
  through music21, converted part by part into symusic tracks (tempo, time and key
  signatures kept). A multi-tune ABC file (Essen, O'Neill's) yields one Score per tune.

Any file we cannot use raises :class:`~tunesmith.errors.MusicFileError` naming the
file and the reason: unknown extension, missing or empty file, bytes that are not MIDI,
type-2 MIDI, a MIDI file whose chunks run past its end (truncated), unparsable
ABC/MusicXML/kern, or a piece without notes. MIDI bytes pass a structural check
(:mod:`tunesmith.music.midi_gate`) before symusic's C++ parser sees them; a piece
longer than a limit (:func:`max_piece_seconds`, 2 hours by default) or with events before
tick 0 is refused before anything allocates per tick or per step, and a music21 parse
that takes longer than a time limit (60 s by default) is stopped (:func:`parse_within`).

Documented behaviour on odd but valid input:

* zero-length notes in MIDI are dropped (they never sound; music21 grace notes likewise);
* overlapping notes of the same pitch are kept as symusic pairs them (first on, first off);
* drums (MIDI channel 10) become a track with ``is_drum`` True;
* tempo and time-signature changes are kept; tracks without notes are kept;
* a music21 piece that opens with a pickup (anacrusis) bar is shifted right by the
  bar's missing part, so that bar lines fall on the time-signature grid from tick 0.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from pathlib import Path

from symusic import KeySignature, Note, Score, Tempo, TimeSignature, Track
from symusic.core import NoteTickList

from tunesmith.errors import ConfigError, MusicFileError
from tunesmith.music.midi_gate import check_midi, length_seconds

MIDI_SUFFIXES = (".mid", ".midi")
MUSIC21_SUFFIXES = (".abc", ".xml", ".musicxml", ".mxl", ".krn")
SUPPORTED_SUFFIXES = MIDI_SUFFIXES + MUSIC21_SUFFIXES

#: Ticks per quarter note of Scores converted from music21.
MUSIC21_TPQ = 480
#: The longest piece read by default (seconds); ``$TUNESMITH_MAX_PIECE_SECONDS`` overrides.
MAX_PIECE_SECONDS = 2 * 3600.0
#: The longest music21 parse of one file by default (seconds).
TIME_LIMIT = 60.0


def is_music_file(path: str | Path) -> bool:
    """True when the file's extension is one tunesmith can read."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def max_piece_seconds() -> float:
    """The default limit on a piece's length: ``$TUNESMITH_MAX_PIECE_SECONDS`` or 2 hours."""
    text = os.environ.get("TUNESMITH_MAX_PIECE_SECONDS")
    if not text:
        return MAX_PIECE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise ConfigError(f"TUNESMITH_MAX_PIECE_SECONDS must be a number of seconds > 0, "
                          f"got {text!r}")
    return value


def load(path: str | Path, max_seconds: float | None = None,
         time_limit: float = TIME_LIMIT) -> Score:
    """Read one piece. For a file holding several pieces (multi-tune ABC), the first.
    ``max_seconds``, ``time_limit``: see :func:`load_all`."""
    return load_all(path, max_seconds, time_limit)[0]


def load_all(path: str | Path, max_seconds: float | None = None,
             time_limit: float = TIME_LIMIT) -> list[Score]:
    """Read every piece of a music file, each as a symusic Score in ticks.

    ``max_seconds``: refuse a piece longer than this (default: :func:`max_piece_seconds`).
    ``time_limit``: refuse an ABC/MusicXML/kern file that music21 takes longer than this
    many seconds to parse (see :func:`parse_within`).

    Raises:
        MusicFileError: unknown extension, missing/unreadable/corrupt file, type-2
            MIDI, a piece past a limit, or a piece without notes. (From a multi-tune
            file, tunes without notes are dropped; the error comes only if none is left.)
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise MusicFileError(
            path, f"unknown extension {suffix or '(none)'!r}; expected one of "
            + ", ".join(SUPPORTED_SUFFIXES)
        )
    if max_seconds is None:
        max_seconds = max_piece_seconds()
    if suffix in MIDI_SUFFIXES:
        scores = _load_midi(path, max_seconds)
    else:
        if not path.is_file():
            raise MusicFileError(path, "no such file")
        if path.stat().st_size == 0:
            raise MusicFileError(path, "empty file")
        scores = parse_within(path, time_limit, lambda: _load_music21(path))
        for score in scores:
            check_length(score, path, max_seconds)
    scores = [s for s in scores if s.note_num() > 0]
    if not scores:
        raise MusicFileError(path, "the file contains no notes")
    return scores


def check_length(score: Score, path: str | Path, max_seconds: float | None = None) -> None:
    """Refuse a piece with events before tick 0 or longer than ``max_seconds`` (default
    :func:`max_piece_seconds`).

    Its length is :func:`~tunesmith.music.midi_gate.length_seconds` up to its last event,
    tempos faster than 480 quarter notes a minute counting as 480: a tiny file can
    announce days of music, and every encoder allocates per step.
    """
    if max_seconds is None:
        max_seconds = max_piece_seconds()
    if score.start() < 0:
        raise MusicFileError(path, f"events at negative times (from tick {score.start()})")
    tempos = [(tempo.time, tempo.mspq) for tempo in score.tempos]  # sorted by symusic
    seconds = length_seconds(score.ticks_per_quarter, score.end(), tempos)
    if seconds > max_seconds:
        raise MusicFileError(
            path, f"the piece lasts {_duration(seconds)}, longer than the limit of "
            f"{_duration(max_seconds)} (set by TUNESMITH_MAX_PIECE_SECONDS, or "
            f"--max-seconds of 'tunesmith data prepare')")


class _TimeUp(BaseException):
    """Raised by the alarm of :func:`parse_within` (not an Exception: music21's own
    ``except Exception`` blocks must not swallow it)."""


def parse_within(path: str | Path, seconds: float, parse):
    """``parse()``, refused with MusicFileError after ``seconds`` of wall time.

    For the pure-Python music21 parsers (quadratic in the number of measures, minutes on
    some small files): a SIGALRM timer interrupts them, late if they are inside one long
    C call (``sum`` of a huge list). It only works in the main thread, and leaves alone a
    timer the caller set; then, and for ``seconds`` = inf, there is no limit (``data
    prepare`` also kills a worker stuck past its time limit).
    """
    if (math.isinf(seconds) or not hasattr(signal, "setitimer")  # no SIGALRM on Windows
            or threading.current_thread() is not threading.main_thread()
            or signal.getitimer(signal.ITIMER_REAL)[0] > 0):
        return parse()
    active, late = True, False

    def alarm(signum, frame):
        if active:
            raise _TimeUp

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)  # again each second if swallowed
    try:
        try:
            result = parse()
        finally:
            while True:  # an alarm may interrupt this too: then clean up again
                try:
                    active = False
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, previous)
                    break
                except _TimeUp:
                    late = True
    except _TimeUp:
        late = True
    if late:
        raise MusicFileError(path, f"reading it took more than {seconds:g} s "
                             f"(the per-file time limit)")
    return result


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 60:,.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def _load_midi(path: Path, max_seconds: float) -> list[Score]:
    try:
        data = path.read_bytes()  # read once: the checks and symusic's parser share the bytes
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise MusicFileError(path, "no such file") from None
    except OSError as exc:
        raise MusicFileError(path, f"cannot read ({exc.strerror})") from exc
    if not data:
        raise MusicFileError(path, "empty file")
    check_midi(data, path)  # symusic's parser must never see malformed bytes
    try:
        score = Score.from_midi(data)
    except Exception as exc:  # symusic raises RuntimeError/ValueError with terse text
        raise MusicFileError(path, f"corrupt or truncated MIDI ({exc})") from exc
    check_length(score, path, max_seconds)
    _drop_zero_length_notes(score)
    return [score]


def _drop_zero_length_notes(score: Score) -> None:
    """Remove notes of no duration (they never sound), in place."""
    every_note = NoteTickList()  # all tracks' notes: one numpy() call, not one per track
    for track in score.tracks:
        every_note.extend(track.notes)
    if not len(every_note) or (every_note.numpy()["duration"] > 0).all():
        return  # nearly every file
    for track in score.tracks:
        if len(track.notes) and (track.notes.numpy()["duration"] <= 0).any():
            track.notes = track.notes.filter(lambda note: note.duration > 0, inplace=False)


def save_midi(score: Score, path: str | Path) -> Path:
    """Write a Score as a standard MIDI file, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))
    return path


# ----------------------------------------------------------------------------- music21


def _load_music21(path: Path) -> list[Score]:
    import music21  # slow import; only needed for these formats

    try:
        parsed = music21.converter.parse(str(path), forceSource=True)
    except Exception as exc:
        raise MusicFileError(path, f"cannot parse ({type(exc).__name__}: {exc})") from exc
    streams = list(parsed.scores) if isinstance(parsed, music21.stream.Opus) else [parsed]
    scores = []
    for stream in streams:
        try:
            scores.append(music21_to_score(stream))
        except Exception as exc:
            raise MusicFileError(path, f"cannot convert ({type(exc).__name__}: {exc})") from exc
    return scores


def music21_to_score(stream, tpq: int = MUSIC21_TPQ) -> Score:
    """Convert a music21 Score/Part/Stream into a symusic Score (one track per part).

    Ties are merged into single notes, grace notes (zero duration) are dropped, and
    chords become simultaneous notes. Tempo marks, time and key signatures of the
    first part (music21 repeats them in each part) become the Score's.
    """
    import music21

    parts = list(stream.parts) if hasattr(stream, "parts") and len(stream.parts) else [stream]
    pickup_shift = _pickup_shift(parts[0])

    def ticks(quarters: float) -> int:
        return round(float(quarters) * tpq)

    def onset_ticks(offset: float) -> int:
        # a pickup shifts everything right; marks at 0 (the opening meter, key) stay at 0
        return 0 if float(offset) == 0 else ticks(float(offset) + pickup_shift)

    score = Score(tpq)
    for index, part in enumerate(parts):
        flat = part.stripTies().flatten()
        name = part.partName or (part.id if isinstance(part.id, str) else None)
        track = Track(str(name or f"Part {index + 1}"), _part_program(part), False)
        for element in flat.notes:
            start = ticks(float(element.offset) + pickup_shift)
            # end from the exact offset, so that triplets tile without gaps or overlaps
            duration = ticks(float(element.offset + element.quarterLength) + pickup_shift) - start
            if duration <= 0:
                continue  # grace notes
            velocity = element.volume.velocity if element.volume.velocity else 80
            pitches = element.pitches
            for pitch in pitches:
                track.notes.append(Note(start, duration, int(pitch.midi), int(velocity)))
        track.notes.sort(key=lambda n: (n.time, n.pitch))
        score.tracks.append(track)
        if index == 0:
            for mark in flat.getElementsByClass(music21.tempo.MetronomeMark):
                qpm = mark.getQuarterBPM()
                if qpm and math.isfinite(qpm) and qpm > 0:
                    score.tempos.append(Tempo(onset_ticks(mark.offset), float(qpm)))
            for ts in flat.getElementsByClass(music21.meter.TimeSignature):
                score.time_signatures.append(
                    TimeSignature(onset_ticks(ts.offset), int(ts.numerator), int(ts.denominator))
                )
            for ks in flat.getElementsByClass(music21.key.KeySignature):
                mode = getattr(ks, "mode", "major")
                tonality = 1 if mode == "minor" else 0
                score.key_signatures.append(
                    KeySignature(onset_ticks(ks.offset), int(ks.sharps), tonality)
                )
    if not score.tempos:
        score.tempos.append(Tempo(0, 120.0))
    return score


def _pickup_shift(part) -> float:
    """Quarter notes missing from an opening pickup bar (0 when the first bar is full)."""
    measures = part.getElementsByClass("Measure")
    if not len(measures):
        return 0.0
    padding = float(measures[0].paddingLeft or 0.0)
    return padding if padding > 0 else 0.0


def _part_program(part) -> int:
    """The General MIDI program of a music21 part (0, piano, when none is given)."""
    try:
        instrument = part.getInstrument(returnDefault=False)
    except Exception:
        instrument = None
    if instrument is not None and instrument.midiProgram is not None:
        return int(instrument.midiProgram)
    return 0
