"""Reading and writing symbolic music.

Everything is read into a :class:`symusic.Score` in ticks:

* MIDI (``.mid``, ``.midi``) through symusic's C++ reader;
* ABC (``.abc``) through abc2midi, the reader symusic ships, one process for all the
  tunes of a file, normalised to the conventions below (:mod:`tunesmith.music.abc`;
  about 100 times faster than music21, and it follows the ABC standard where music21
  does not); a tune abc2midi cannot read (several voices, an error it reports) goes to
  music21. A multi-tune ABC file (Essen, O'Neill's) yields one Score per tune;
* MusicXML and Humdrum kern (``.xml``, ``.musicxml``, ``.mxl``, ``.krn``) through
  music21, converted part by part into symusic tracks (tempo, time and key signatures
  kept).

Any file we cannot use raises :class:`~tunesmith.errors.MusicFileError` naming the
file and the reason: unknown extension, missing or empty file, bytes that are not MIDI,
type-2 MIDI, a MIDI file whose chunks run past its end (truncated), unparsable
ABC/MusicXML/kern (said in words: "not a valid MusicXML file: broken XML (...)",
"malformed ABC header (...)"; :func:`_plain_reason`), or a piece without notes. MIDI bytes
pass a structural check (:mod:`tunesmith.music.midi_gate`) before symusic's C++ parser sees
them; a piece longer than a limit (:func:`max_piece_seconds`, 2 hours by default) or with
events before tick 0 is refused before anything allocates per tick or per step, and a
music21 parse that takes longer than a time limit (60 s by default) is stopped
(:func:`parse_within`).

Documented behaviour on odd but valid input:

* zero-length notes in MIDI are dropped (they never sound; music21 grace notes likewise),
  except drum hits, which are kept one tick long;
* overlapping notes of the same pitch are kept as symusic pairs them (first on, first off);
* drums (MIDI channel 10) become a track with ``is_drum`` True; so do unpitched
  percussion notes of MusicXML, keyed by General MIDI percussion numbers from each
  note's instrument (``<midi-unpitched>``), else the part's, else 38 (snare);
* tempo and time-signature changes are kept; tracks without notes are kept;
* repeats (repeat bar lines, 1st/2nd endings, D.C., D.S., Coda, Fine) of MusicXML and
  kern are written out as music21's ``expandRepeats`` does (ABC's as abc2midi plays
  them), so the Score holds the music as played; a piece whose repeats music21 cannot
  expand is read as written;
* a piece that opens with a pickup (anacrusis) bar is shifted right by the bar's
  missing part, so that bar lines fall on the time-signature grid from tick 0. Only a
  true pickup moves: a short first bar followed by two full bars (a piece whose meters
  alternate, 3/4 then 2/4, is left where it is);
* ABC follows the standard: an accidental holds to the end of its bar, inline key and
  meter changes apply, a tie between two pitches plays both; grace notes and
  decorations (trills, rolls, staccato) are not played (see :mod:`tunesmith.music.abc`);
* ABC files are read as UTF-8, or as Latin-1 when they are not valid UTF-8.
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import threading
from pathlib import Path

from symusic import KeySignature, Note, Score, Tempo, TimeSignature, Track
from symusic.core import NoteTickList

from tunesmith.errors import ConfigError, MusicFileError
from tunesmith.music.abc import render_tunes, split_abc_tunes, tune_score
from tunesmith.music.midi_gate import check_midi, length_seconds
from tunesmith.music.transforms import append_new_event

MIDI_SUFFIXES = (".mid", ".midi")
MUSIC21_SUFFIXES = (".abc", ".xml", ".musicxml", ".mxl", ".krn")
SUPPORTED_SUFFIXES = MIDI_SUFFIXES + MUSIC21_SUFFIXES

#: Ticks per quarter note of Scores converted from music21.
MUSIC21_TPQ = 480
#: Bump when a file may load differently (corpora put it in the prepared-data cache key).
#: 2: repeats written out, unpitched percussion kept, stricter pickups, Latin-1 ABC.
#: 3: ABC read through abc2midi (music21 for the tunes it cannot read).
LOADER_VERSION = 3
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
    """Remove pitched notes of no duration (they never sound), in place. On a drum track a
    hit sounds whatever its length (the Groove MIDI Dataset writes ghost notes so): there a
    zero-length note is kept, one tick long."""
    every_note = NoteTickList()  # all tracks' notes: one numpy() call, not one per track
    for track in score.tracks:
        every_note.extend(track.notes)
    if not len(every_note) or (every_note.numpy()["duration"] > 0).all():
        return  # nearly every file
    for track in score.tracks:
        if not len(track.notes) or (track.notes.numpy()["duration"] > 0).all():
            continue
        if track.is_drum:
            for note in track.notes:
                if note.duration <= 0:
                    note.duration = 1
        else:
            track.notes = track.notes.filter(lambda note: note.duration > 0, inplace=False)


def save_midi(score: Score, path: str | Path) -> Path:
    """Write a Score as a standard MIDI file, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))
    return path


# ----------------------------------------------------------------------------- music21

_MXL = "compressed MusicXML (.mxl)"
#: the format names used in messages, by suffix
_FORMAT_NAMES = {".abc": "ABC", ".xml": "MusicXML", ".musicxml": "MusicXML", ".mxl": _MXL,
                 ".krn": "Humdrum kern"}
MUSICXML_SUFFIXES = (".xml", ".musicxml", ".mxl")
#: a repeat played more often than this is not expanded (a fuzzed ``times="100000"``
#: would otherwise write out the piece a hundred thousand times)
MAX_REPEAT_TIMES = 16
#: GM percussion key of an unpitched note whose instrument the file does not say
#: (38, Acoustic Snare)
DEFAULT_DRUM_KEY = 38


def read_text(path: str | Path) -> str:
    """A text file (ABC) as UTF-8, or as Latin-1 when it is not valid UTF-8 (older
    collections are Latin-1; every byte sequence decodes as Latin-1)."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _load_music21(path: Path) -> list[Score]:
    import music21  # slow import; only needed for these formats

    suffix = path.suffix.lower()
    fmt = _FORMAT_NAMES[suffix]
    if suffix == ".abc":
        return load_abc_text(read_text(path), path)
    if suffix == ".mxl":
        _check_mxl(path)
    try:
        parsed = music21.converter.parse(str(path), forceSource=True)
    except Exception as exc:
        raise MusicFileError(path, _plain_reason(exc, fmt)) from exc
    drums = None
    if suffix in MUSICXML_SUFFIXES and parsed.recurse().getElementsByClass(
            music21.note.Unpitched).first() is not None:
        drums = _musicxml_drum_keys(path)
    return _convert_all(parsed, path, fmt, drums)


def _check_mxl(path: Path) -> None:
    """A compressed MusicXML file must be a zip archive holding an XML score (music21
    would read other bytes as XML and report a syntax error on line 1)."""
    import io
    import zipfile

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MusicFileError(path, f"cannot read ({exc.strerror or exc})") from exc
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise MusicFileError(path, f"not a {_MXL} file: not a zip archive")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except Exception as exc:  # BadZipFile, or OSError on bad offsets
        raise MusicFileError(path, _plain_reason(exc, _MXL)) from exc
    if not any(not n.startswith("META-INF") and n.lower().endswith((".xml", ".musicxml",
                                                                      ".mxl"))
               for n in names):  # the names music21 looks for
        raise MusicFileError(path, "no MusicXML score inside the .mxl archive "
                             f"(it holds {', '.join(names[:5]) or 'nothing'})")


def load_abc_text(text: str, where: str | Path, time_limit: float = TIME_LIMIT) -> list[Score]:
    """Every tune of an ABC text (one Score each): through abc2midi
    (:mod:`tunesmith.music.abc`), and through music21 (:func:`parse_abc`) the tunes
    abc2midi cannot read. Raises MusicFileError naming ``where`` with a plain reason
    when music21 cannot read one of those either."""
    tunes = split_abc_tunes(text)
    if not tunes:  # no X: line: music21 reads what it can, or says why not
        return parse_abc(text, where)
    rendered = render_tunes([tune for _, tune in tunes], time_limit)
    scores = []
    for (_, tune), tune_rendered in zip(tunes, rendered, strict=True):
        score = tune_score(tune_rendered, tune)
        scores += parse_abc(tune, where) if isinstance(score, str) else [score]
    return scores


def parse_abc(text: str, where: str | Path) -> list[Score]:
    """Every tune of an ABC text (one Score each) through music21. Raises
    MusicFileError naming ``where`` with a plain reason when music21 cannot read it."""
    import music21

    try:
        parsed = music21.converter.parse(text, format="abc", forceSource=True)
    except Exception as exc:
        raise MusicFileError(where, _plain_reason(exc, "ABC")) from exc
    return _convert_all(parsed, where, "ABC")


def _convert_all(parsed, where, fmt: str, drums: dict | None = None) -> list[Score]:
    import music21

    streams = list(parsed.scores) if isinstance(parsed, music21.stream.Opus) else [parsed]
    scores = []
    for stream in streams:
        try:
            scores.append(music21_to_score(stream, drums=drums, in_place=True))
        except Exception as exc:
            raise MusicFileError(where, _plain_reason(exc, fmt)) from exc
    return scores


def _plain_reason(exc: BaseException, fmt: str) -> str:
    """A reason a user understands for a music21 failure on a ``fmt`` file (ABC,
    MusicXML, Humdrum kern), keeping music21's own words as the detail."""
    import zlib
    from xml.etree.ElementTree import ParseError
    from zipfile import BadZipFile

    name = type(exc).__name__
    text = " ".join(str(exc).split())[:200]  # one line, bounded
    if isinstance(exc, ParseError):
        return f"not a valid {fmt} file: broken XML ({text})"
    if isinstance(exc, BadZipFile | zlib.error) or (
            fmt == _MXL and isinstance(exc, OSError | EOFError)):
        return f"corrupt {_MXL} archive ({name}: {text})"
    if isinstance(exc, OSError):
        return f"cannot read ({exc.strerror or text})"
    if isinstance(exc, LookupError):  # the XML declares an encoding Python does not know
        return f"not a valid {fmt} file: unknown text encoding ({text})"
    if isinstance(exc, MemoryError | RecursionError):
        return f"too large or too deeply nested for music21 to read ({name})"
    if name in ("MusicXMLImportException", "MusicXMLException"):
        return f"not a MusicXML score ({text})"  # e.g. the root is <html> or timewise
    if name == "ArchiveManagerException":
        return f"no MusicXML score inside the archive ({text})"
    if name in ("ABCHandlerException", "ABCTokenException", "ABCFileException"):
        if "default note length" in text:
            return "malformed ABC header: no L: (note length) or M: (meter) before the notes"
        if "no quarter length associated" in text:
            return f"malformed ABC header: a note length or meter that is not a fraction ({text})"
        if "must process tokens" in text:
            return "not an ABC tune: no header fields or notes found"
        return f"malformed ABC ({text})"
    if name == "HumdrumException":
        if "Could not determine spineType" in text:
            return "not a Humdrum kern file: no **kern (or other **) spine header"
        return f"malformed Humdrum kern ({text})"
    if name in ("ConverterException", "ConverterFileException", "SubConverterException"):
        return f"music21 cannot read this as {fmt} ({text})"
    if fmt == "ABC" and isinstance(exc, ValueError) and "invalid literal" in text:
        return f"malformed ABC header or note length: a number field is not a number ({text})"
    if isinstance(exc, UnicodeError):
        return f"not a text {fmt} file: undecodable bytes ({text})"
    # music21 tripped over its own assumptions (IndexError, AttributeError...)
    return f"malformed {fmt} that music21 cannot read ({name}: {text})"


def music21_to_score(stream, tpq: int = MUSIC21_TPQ, *, expand_repeats: bool = True,
                     drums: dict | None = None, in_place: bool = False) -> Score:
    """Convert a music21 Score/Part/Stream into a symusic Score (one track per part).

    Repeats, first/second endings and D.C./D.S./Coda marks are written out first
    (:func:`_expand_repeats`). Ties are merged into single notes, grace notes (zero
    duration) are dropped, and chords become simultaneous notes. Unpitched percussion
    becomes a drum track (``is_drum``) keyed by General MIDI percussion numbers
    (:func:`_drum_key`); ``drums`` maps a MusicXML part id to the GM key of each staff
    position, as read by :func:`_musicxml_drum_keys`. Tempo marks, time and key
    signatures of the first part (music21 repeats them in each part) become the Score's.
    ``in_place`` lets the conversion change ``stream`` (merging ties) instead of working
    on a deep copy: for a stream nobody else holds, it saves most of the time, and lets
    repeats be written out without copying the notes (:func:`_played_bars`).
    """
    import music21

    plan = _played_bars(stream) if expand_repeats and in_place else None
    if plan is not None:  # the same Score as music21's expansion, without its copies
        parts = list(stream.parts)
        written = list(parts[0].getElementsByClass("Measure"))
        # before ties are merged: a note tied over a bar line would lengthen its bar
        pickup_shift = _pickup_shift([written[index] for index, _ in plan])
        views = [_played_view(part, plan) for part in parts]
    else:
        if expand_repeats:
            expanded = _expand_repeats(stream)
            in_place = in_place or expanded is not stream  # a fresh copy: ours to change
            stream = expanded
        parts = (list(stream.parts) if hasattr(stream, "parts") and len(stream.parts)
                 else [stream])
        pickup_shift = _pickup_shift(list(parts[0].getElementsByClass("Measure")))
        views = [_flat_view(part, in_place) for part in parts]

    def ticks(quarters: float) -> int:
        return round(float(quarters) * tpq)

    def onset_ticks(offset: float) -> int:
        # a pickup shifts everything right; marks at 0 (the opening meter, key) stay at 0
        return 0 if float(offset) == 0 else ticks(float(offset) + pickup_shift)

    score = Score(tpq)
    for index, (part, (notes, marks)) in enumerate(zip(parts, views, strict=True)):
        name = str(getattr(part, "partName", None)
                   or (part.id if isinstance(part.id, str) else None) or f"Part {index + 1}")
        instrument = _part_instrument(part)
        track = Track(name, _part_program(instrument), False)
        drum_track = Track(name, 0, True)
        positions = (drums or {}).get(getattr(instrument, "partId", None), {})
        for offset, element in notes:
            start = ticks(float(offset) + pickup_shift)
            # end from the exact offset, so that triplets tile without gaps or overlaps
            duration = ticks(float(offset + element.quarterLength) + pickup_shift) - start
            if duration <= 0:
                continue  # grace notes
            velocity = int(element.volume.velocity or 80)
            for pitch in element.pitches:
                track.notes.append(Note(start, duration, int(pitch.midi), velocity))
            for unpitched in _unpitched_of(element):
                key = _drum_key(unpitched, positions, instrument)
                drum_track.notes.append(Note(start, duration, key, velocity))
        for t in (track, drum_track):
            t.notes.sort(key=lambda n: (n.time, n.pitch))
        if len(drum_track.notes) and len(track.notes):
            drum_track.name = f"{name} (drums)"
        if len(drum_track.notes):
            score.tracks.extend([track, drum_track] if len(track.notes) else [drum_track])
        else:
            score.tracks.append(track)  # tracks without notes are kept, as in MIDI
        if index == 0:
            for offset, mark in marks[music21.tempo.MetronomeMark]:
                qpm = mark.getQuarterBPM()
                if qpm and math.isfinite(qpm) and qpm > 0:
                    append_new_event(score.tempos, Tempo(onset_ticks(offset), float(qpm)))
            for offset, ts in marks[music21.meter.TimeSignature]:
                append_new_event(score.time_signatures, TimeSignature(
                    onset_ticks(offset), int(ts.numerator), int(ts.denominator)))
            for offset, ks in marks[music21.key.KeySignature]:
                tonality = 1 if getattr(ks, "mode", "major") == "minor" else 0
                append_new_event(score.key_signatures,
                            KeySignature(onset_ticks(offset), int(ks.sharps), tonality))
    if not score.tempos:
        score.tempos.append(Tempo(0, 120.0))
    return score


def _mark_classes():
    import music21

    return (music21.tempo.MetronomeMark, music21.meter.TimeSignature,
            music21.key.KeySignature)


def _flat_view(part, in_place: bool):
    """(notes, marks) of a part as written: ``[(offset, note or chord)]`` with ties
    merged, and ``{class: [(offset, mark)]}`` of its tempo marks, time and key
    signatures."""
    if in_place:
        part.stripTies(inPlace=True)
    flat = (part if in_place else part.stripTies()).flatten()
    notes = [(element.offset, element) for element in flat.notes]
    marks = {cls: [(m.offset, m) for m in flat.getElementsByClass(cls)]
             for cls in _mark_classes()}
    return notes, marks


def _played_view(part, plan: list[tuple[int, object]]):
    """:func:`_flat_view` of a part with its repeats written out by ``plan`` (the index of
    each measure as played and where it starts, :func:`_played_bars`): the notes of
    each measure again at each of its places, where music21's expansion copies them."""
    from music21.common.numberTools import opFrac

    part.stripTies(inPlace=True)
    measures = list(part.getElementsByClass("Measure"))
    classes = _mark_classes()
    inside: dict[int, tuple] = {}
    notes: list = []
    marks: dict = {cls: [] for cls in classes}
    for index, start in plan:
        if index not in inside:
            flat = measures[index].flatten()
            inside[index] = ([(e.offset, e) for e in flat.notes],
                             {cls: [(m.offset, m) for m in flat.getElementsByClass(cls)]
                              for cls in classes})
        measure_notes, measure_marks = inside[index]
        notes += [(opFrac(start + offset), e) for offset, e in measure_notes]
        for cls in classes:
            marks[cls] += [(opFrac(start + offset), m) for offset, m in measure_marks[cls]]
    notes.sort(key=lambda pair: pair[0])  # stable: a measure's own order among equals
    return notes, marks


def _played_bars(stream) -> list[tuple[int, object]] | None:
    """``[(measure index, offset)]`` of the bars of a multi-part score as played, read
    from music21's expansion of a copy of the first part without its notes (a
    ``template``: a quarter of the work of expanding every part with its notes); None
    when :func:`_expand_repeats` must do it: no repeat marks, marks that differ from part
    to part (D.C. over the top staff only, repeat bar lines in some parts), a tie over a
    jump of the repeats, a repeat past :data:`MAX_REPEAT_TIMES`, or music21 failing."""
    from music21 import bar, repeat, spanner

    parts = list(stream.parts) if hasattr(stream, "parts") and len(stream.parts) else None
    if not parts:
        return None
    marks = list(stream.recurse().getElementsByClass(
        (bar.Repeat, repeat.RepeatExpression, spanner.RepeatBracket)))
    if not marks or any((getattr(m, "times", None) or 0) > MAX_REPEAT_TIMES for m in marks):
        return None
    layouts = {_repeat_layout(part) for part in parts}
    if len(layouts) != 1:
        return None
    try:
        skeleton = parts[0].template(fillWithRests=True, retainVoices=False)
        written = list(skeleton.getElementsByClass("Measure"))
        index = {id(m): i for i, m in enumerate(written)}
        plan = []
        for measure in skeleton.expandRepeats(copySpanners=False).getElementsByClass("Measure"):
            origin = measure
            while id(origin) not in index:
                origin = origin.derivation.origin
                if origin is None:
                    return None
            plan.append((index[id(origin)], measure.offset))
    except Exception:  # music21's ExpanderException, StreamException, or its own bugs
        return None
    for part in parts:  # a tie into a bar that is not the next one played: copy, merge
        measures = list(part.getElementsByClass("Measure"))
        for (a, _), (b, _) in itertools.pairwise(plan):
            if b != a + 1 and _ends_tied(measures[a]):
                return None
    return plan


def _repeat_layout(part) -> tuple:
    """What decides the path through a part's repeats, bar by bar: bar numbers, repeat
    bar lines, repeat words (D.C., Fine...) and the endings each bar belongs to."""
    from music21 import bar, repeat, spanner

    endings: dict[int, list] = {}
    for bracket in part.spannerBundle.getByClass(spanner.RepeatBracket):
        for measure in bracket.getSpannedElements():
            endings.setdefault(id(measure), []).append(str(bracket.number))
    layout = []
    for measure in part.getElementsByClass("Measure"):
        lines = tuple((b.direction, b.times) if isinstance(b, bar.Repeat) else None
                      for b in (measure.leftBarline, measure.rightBarline))
        words = tuple(type(e).__name__ for e in
                      measure.getElementsByClass(repeat.RepeatExpression))
        layout.append((measure.number, lines, words, tuple(endings.get(id(measure), ()))))
    return tuple(layout)


def _ends_tied(measure) -> bool:
    """True when a note of the measure is tied over its end."""
    for element in measure.flatten().notes:
        tie = getattr(element, "tie", None)
        if tie is not None and tie.type in ("start", "continue"):
            return True
        for note in getattr(element, "notes", ()):
            if note.tie is not None and note.tie.type in ("start", "continue"):
                return True
    return False


def _expand_repeats(stream):
    """``stream`` with its repeats written out, as music21's ``expandRepeats`` does
    (repeat bar lines, 1st/2nd endings, D.C., D.S., Segno, Coda, Fine).

    D.C./D.S./Segno/Coda/Fine written over one part apply to all
    (:func:`_share_repeat_expressions`). The stream comes back unchanged when it has no
    repeat marks, and also when music21 cannot expand them (inconsistent marks, no
    measures), when a repeat asks for more than :data:`MAX_REPEAT_TIMES` passes, or when
    the parts would still take different paths through the repeats (repeat bar lines in
    some parts only). The piece is then read as written, never refused.
    """
    from music21 import bar, repeat, spanner
    from music21.stream import Score as Music21Score

    marks = list(stream.recurse().getElementsByClass(
        (bar.Repeat, repeat.RepeatExpression, spanner.RepeatBracket)))
    if not marks:
        return stream
    if any((getattr(mark, "times", None) or 0) > MAX_REPEAT_TIMES for mark in marks):
        return stream
    parts = list(stream.parts) if hasattr(stream, "parts") and len(stream.parts) else None
    added = _share_repeat_expressions(parts) if parts else []
    try:
        if parts is None:
            return stream.expandRepeats(copySpanners=False)
        # part by part, without re-linking spanners (slurs...): ties are on the notes,
        # and this is a third faster than Score.expandRepeats
        expanded = [part.expandRepeats(copySpanners=False) for part in parts]
    except Exception:  # music21's ExpanderException, StreamException, or its own bugs
        return stream
    finally:
        for measure, mark in added:  # the caller's stream is left as it was
            measure.remove(mark)
    paths = {tuple(m.number for m in p.getElementsByClass("Measure")) for p in expanded}
    if len(paths) > 1:
        return stream  # the parts would drift apart
    score = Music21Score()
    for part in expanded:
        score.insert(0, part)
    return score


def _share_repeat_expressions(parts) -> list:
    """Copy the D.C./D.S./Segno/Coda/Fine marks written in one part into the same
    measures (by number) of the parts without them, as a score is read: such words are
    often printed over the top staff only, and music21 expands each part on its own.
    Returns the ``(measure, mark)`` pairs added, for the caller to remove."""
    import copy

    from music21 import repeat

    marks = [(measure.number, mark, mark.getOffsetBySite(measure))
             for part in parts for measure in part.getElementsByClass("Measure")
             for mark in measure.getElementsByClass(repeat.RepeatExpression)]
    added = []
    for part in parts:
        measures: dict = {}
        for measure in part.getElementsByClass("Measure"):
            measures.setdefault(measure.number, measure)
        for number, mark, offset in marks:
            measure = measures.get(number)
            if measure is None or any(type(m) is type(mark) for m in
                                      measure.getElementsByClass(repeat.RepeatExpression)):
                continue
            shared = copy.deepcopy(mark)
            measure.insert(offset, shared)
            added.append((measure, shared))
    return added


def _pickup_shift(measures: list) -> float:
    """Quarter notes missing from an opening pickup bar (anacrusis), 0 when there is none.

    music21 pads any short first bar as a pickup. It is one only when the two bars
    after it are full (each by its own time signature): in a piece whose bars
    alternate 3/4 and 2/4 under one written meter, or under a composite meter such as
    3/4+2/4, the short first bar is one of the meters, and shifting it would move every
    bar. (Two bars, not all: chorales with repeats hold short bars around the repeat
    signs. The last bar is not looked at: a piece with a pickup ends short by design.)
    A piece with nothing between its first and last bars shifts only a bar numbered 0.
    """
    if not measures:
        return 0.0
    first = measures[0]
    padding = float(first.paddingLeft or 0.0)
    if padding <= 0 or padding >= _bar_quarters(first):
        return 0.0
    following = measures[1:-1][:2]
    if not following:
        return padding if first.number == 0 else 0.0
    full = all(abs(float(m.highestTime) - _bar_quarters(m)) < 1e-6 for m in following)
    return padding if full else 0.0


def _bar_quarters(measure) -> float:
    """A measure's length by its time signature, in quarters (0 when it has none)."""
    try:
        return float(measure.barDuration.quarterLength)
    except Exception:  # no time signature in context
        return 0.0


def _part_instrument(part):
    """The music21 instrument of a part, None when it names none."""
    try:
        return part.getInstrument(returnDefault=False)
    except Exception:
        return None


def _part_program(instrument) -> int:
    """The General MIDI program of a music21 instrument (0, piano, when none is given)."""
    program = getattr(instrument, "midiProgram", None)
    return int(program) if program is not None and 0 <= program < 128 else 0


# ----------------------------------------------------------------------------- percussion


def _unpitched_of(element) -> list:
    """The unpitched notes of a music21 note or (percussion) chord."""
    from music21 import note

    if isinstance(element, note.Unpitched):
        return [element]
    return [n for n in getattr(element, "notes", ()) if isinstance(n, note.Unpitched)]


def _drum_key(unpitched, positions: dict, instrument) -> int:
    """The General MIDI percussion key (35 bass drum, 38 snare, 42 closed hi-hat...) of an
    unpitched note: the instrument the file gives its staff position and notehead
    (MusicXML ``<instrument>`` + ``<midi-unpitched>``), else the part's instrument (music21 reads
    ``<midi-unpitched>`` or a name such as "Snare Drum"), else :data:`DEFAULT_DRUM_KEY`."""
    step, octave = str(unpitched.displayStep), int(unpitched.displayOctave)
    for position in ((step, octave, str(unpitched.notehead)), (step, octave)):
        if position in positions:
            return positions[position]
    key = getattr(instrument, "percMapPitch", None)
    if key is not None and 0 <= int(key) < 128:
        return int(key)
    return DEFAULT_DRUM_KEY


def _musicxml_drum_keys(path: Path) -> dict[str, dict[tuple, int]]:
    """For each MusicXML part id, the GM percussion key of each staff position of its
    unpitched notes, ``(step, octave, notehead)`` and ``(step, octave)``.

    music21 keeps one instrument per part, so a drum-kit part (snare, bass drum,
    hi-hat on one staff) would sound as one drum; this reads, from the file itself,
    the instrument each note names and that instrument's ``<midi-unpitched>`` (1-based)
    or name. Noteheads tell apart instruments on one line (hi-hat ``x``, crash
    ``diamond``); a position still shared takes its most frequent instrument. Empty
    when the file says nothing usable.
    """
    import xml.etree.ElementTree as ET
    from collections import Counter, defaultdict

    import music21

    try:
        if path.suffix.lower() == ".mxl":
            root = ET.fromstring(music21.converter.ArchiveManager(str(path)).getData())
        else:
            root = ET.parse(path).getroot()  # music21 has just parsed the same bytes
    except Exception:
        return {}
    sounds: dict[str | None, int] = {}  # score-instrument id -> GM key
    for score_part in root.iter("score-part"):
        for midi in score_part.iter("midi-instrument"):
            number = _int_or_none(midi.findtext("midi-unpitched"))
            if number is not None and 1 <= number <= 128:
                sounds[midi.get("id")] = number - 1
        for named in score_part.iter("score-instrument"):
            if named.get("id") not in sounds:
                key = _gm_key_of_name(named.findtext("instrument-name") or "")
                if key is not None:
                    sounds[named.get("id")] = key
    keys: dict[str, dict[tuple, int]] = {}
    for part in root.iter("part"):
        votes: dict[tuple, Counter] = defaultdict(Counter)
        for note_element in part.iter("note"):
            unpitched = note_element.find("unpitched")
            instrument = note_element.find("instrument")
            if unpitched is None or instrument is None or instrument.get("id") not in sounds:
                continue
            # music21 puts a note without display-step/octave on the middle line: B4
            step = (unpitched.findtext("display-step") or "B").strip()
            octave = _int_or_none(unpitched.findtext("display-octave"))
            octave = 4 if octave is None else octave
            notehead = (note_element.findtext("notehead") or "normal").strip()
            key = sounds[instrument.get("id")]
            votes[(step, octave, notehead)][key] += 1
            votes[(step, octave)][key] += 1
        keys[str(part.get("id"))] = {p: c.most_common(1)[0][0] for p, c in votes.items()}
    return keys


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except ValueError:
        return None


def _gm_key_of_name(name: str) -> int | None:
    """The GM percussion key of an instrument name music21 knows ("Snare Drum")."""
    from music21 import instrument

    try:
        found = instrument.fromString(name)
    except Exception:  # music21's InstrumentException: a name it does not know
        return None
    key = getattr(found, "percMapPitch", None)
    return int(key) if key is not None and 0 <= key < 128 else None
