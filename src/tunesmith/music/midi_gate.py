"""A structural check of MIDI bytes, before symusic's C++ parser sees them.

symusic 0.5.8 trusts its input: a data byte of 0x80 or more in a note event indexes
outside its per-pitch tables (a segfault or ``free(): invalid pointer`` on channel 16,
silently negative pitches and velocities elsewhere), a tempo meta event shorter than
3 bytes is read past its end, a time of 2^31 ticks wraps to a negative onset, and
ticks per quarter = 0 loads "fine" and divides by zero downstream.

:func:`check_midi` walks the header, every chunk and every event of every track
(delta times, running status, meta and sysex events with their variable-length
lengths) and raises :class:`~tunesmith.errors.MusicFileError` naming the byte offset
and the reason at the first thing symusic cannot be trusted with:

* a missing or short MThd header, type-2 or unknown format, an SMPTE time division
  (refused: tunesmith works in ticks per quarter note), ticks per quarter = 0;
* a chunk or event that runs past the end of its chunk (truncated file);
* a data byte >= 0x80, a meta type byte >= 0x80, a delta time or length of more than
  4 bytes, running status with no status byte before it (or after a sysex event, which
  cancels it), an undefined status byte (0xF1-0xF6, 0xF8-0xFE);
* a tempo, time-signature or key-signature meta event of the wrong length or with a
  value outside the standard (tempo 0, numerator 0, denominator above 2^7, more than
  7 sharps or flats, a mode other than major/minor);
* an event at 2^31 ticks or later (symusic's times are 32-bit).

It stops reading a track at its end-of-track event, as symusic does, and ignores
chunks of other types and bytes after the last announced track (common in the wild).
:func:`length_seconds` then measures the parsed piece, so that a caller can refuse a
huge one before anything allocates per tick or per step.

Two implementations, one authority. :func:`walk_track` is the reference: plain Python,
event by event (about 0.7 µs an event, 30x symusic's own parse). :func:`_fast_track`
accepts the common case at C speed: compiled regular expressions match runs of channel
events (running status included) and of tempo/time/key-signature events; Python only
steps over the other meta and sysex events. It never computes a time: a cheap upper
bound of the track's total ticks (from the lengths of the delta times) shows that
nothing reaches 2^31. Whatever it does not accept, wrong or merely unusual, goes to
:func:`walk_track`, which accepts it or names the offset and the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from tunesmith.errors import MusicFileError

#: Times at or past this many ticks wrap to negative numbers in symusic.
MAX_TICK = 2**31
#: Tempos faster than this many quarter notes a minute count as this fast in
#: :func:`length_seconds`, so that an absurd tempo cannot hide a huge piece.
FASTEST_QPM = 480.0
#: The tempo of a MIDI file before its first tempo event (120 quarter notes a minute).
DEFAULT_MSPQ = 500_000


@dataclass(frozen=True)
class MidiHeader:
    """The header of a MIDI file that passed :func:`check_midi`."""

    format: int  # 0 or 1
    n_tracks: int  # MTrk chunks announced (and present)
    ticks_per_quarter: int


def check_midi(data: bytes, path: str | Path = "") -> MidiHeader:
    """Check the structure of a standard MIDI file's bytes; its header when valid.

    Raises:
        MusicFileError: naming ``path`` and what is wrong (with its byte offset).
    """
    if len(data) < 14 or data[:4] != b"MThd":
        raise MusicFileError(path, "not a MIDI file (no MThd header)")
    header_length = int.from_bytes(data[4:8], "big")
    if header_length < 6:
        raise MusicFileError(path, f"corrupt MIDI header (length {header_length} < 6)")
    midi_format = int.from_bytes(data[8:10], "big")
    if midi_format == 2:
        raise MusicFileError(path, "type-2 MIDI (independent sequences) is not supported")
    if midi_format not in (0, 1):
        raise MusicFileError(path, f"unknown MIDI format {midi_format}")
    n_tracks = int.from_bytes(data[10:12], "big")
    division = int.from_bytes(data[12:14], "big")
    if division & 0x8000:
        raise MusicFileError(
            path, "SMPTE time division (frames per second) is not supported; "
            "tunesmith reads MIDI files timed in ticks per quarter note")
    if division == 0:
        raise MusicFileError(path, "corrupt MIDI header: 0 ticks per quarter note")

    position, found, tracks = 8 + header_length, 0, []
    while found < n_tracks:
        if position + 8 > len(data):
            raise MusicFileError(
                path, f"truncated MIDI: the header announces {n_tracks} tracks, "
                f"the file ends after {found}")
        chunk_type = data[position:position + 4]
        length = int.from_bytes(data[position + 4:position + 8], "big")
        start, end = position + 8, position + 8 + length
        if end > len(data):
            raise MusicFileError(
                path, f"truncated MIDI: chunk {chunk_type!r} at byte {position} declares "
                f"{length} bytes, only {len(data) - start} remain")
        if chunk_type == b"MTrk":  # other chunk types are skipped, as the standard says
            tracks.append((start, end))
            found += 1
        position = end
    # the fast path for every track, and a bound of the ticks of all tracks together;
    # else the reference walk, which names the fault if there is one
    fast = [_fast_track(data, start, end) for start, end in tracks]
    if not all(fast) or (tracks and _tick_bound(data, tracks[0][0], tracks[-1][1]) >= MAX_TICK):
        for index, (start, end) in enumerate(tracks):
            walk_track(data, start, end, index, path)
    return MidiHeader(midi_format, n_tracks, division)


def length_seconds(ticks_per_quarter: int, end_tick: int,
                   tempos: list[tuple[int, int]]) -> float:
    """Seconds from tick 0 to ``end_tick`` under a tempo map.

    ``tempos``: ``(tick, microseconds per quarter)`` sorted by tick; 120 quarter notes a
    minute before the first. A tempo faster than :data:`FASTEST_QPM` counts as that fast.
    """
    slowest_step = 60e6 / FASTEST_QPM  # µs per quarter at the fastest tempo counted
    microseconds, tick, mspq = 0.0, 0, DEFAULT_MSPQ
    for time, value in tempos:
        if time >= end_tick:
            break
        if time > tick:
            microseconds += (time - tick) * max(mspq, slowest_step)
            tick = time
        mspq = value
    microseconds += (end_tick - tick) * max(mspq, slowest_step)
    return microseconds / ticks_per_quarter / 1e6


# --------------------------------------------------------------------------- reference walk

# data bytes after each status byte (0 for the system bytes 0xF0-0xFF, handled apart)
_DATA_BYTES = bytes(0 if s < 0x80 or s >= 0xF0 else 1 if 0xC0 <= s < 0xE0 else 2
                    for s in range(256))
_EVENT_NAMES = {0x8: "a note-off", 0x9: "a note-on", 0xA: "an aftertouch",
                0xB: "a control change", 0xC: "a program change", 0xD: "a channel pressure",
                0xE: "a pitch bend"}


def walk_track(data: bytes, position: int, end: int, index: int = 0,
               path: str | Path = "") -> int:
    """Check the events of the track chunk ``data[position:end]`` one by one; the time of
    its last event before end-of-track. Raises MusicFileError at the first fault."""

    def fail(at: int, what: str) -> NoReturn:
        raise MusicFileError(path, f"corrupt MIDI at byte {at} (track {index + 1}): {what}")

    def read_length(at: int) -> tuple[int, int]:  # variable-length quantity, 1-4 bytes
        value = 0
        for stop in range(at, min(at + 4, end)):
            byte = data[stop]
            value = (value << 7) | (byte & 0x7F)
            if byte < 0x80:
                return value, stop + 1
        if at + 4 <= end:
            fail(at, "a variable-length number longer than 4 bytes")
        fail(at, "the track ends inside an event")

    tick = last = running = 0
    data_bytes = _DATA_BYTES
    while position < end:
        delta, position = read_length(position)
        tick += delta
        if tick >= MAX_TICK:
            fail(position, f"an event at tick {tick}, past 2^31 (times would wrap)")
        if position >= end:
            fail(position, "the track ends inside an event")
        status = data[position]
        if status < 0x80:  # running status: the previous channel status applies
            if not running:
                fail(position, f"data byte 0x{status:02X} without a status byte before it")
            status = running
        else:
            position += 1
            if status < 0xF0:
                running = status
        count = data_bytes[status]
        if count:  # a channel event
            if position + count > end:
                fail(position, "the track ends inside an event")
            for at in range(position, position + count):
                if data[at] >= 0x80:
                    fail(at, f"data byte 0x{data[at]:02X} in {_EVENT_NAMES[status >> 4]} "
                         f"event (status 0x{status:02X}); data bytes are below 0x80")
            position += count
        elif status == 0xFF:  # meta event: type, length, payload
            if position >= end:
                fail(position, "the track ends inside an event")
            meta_type = data[position]
            if meta_type >= 0x80:
                fail(position, f"meta event type 0x{meta_type:02X} (types are below 0x80)")
            length, start = read_length(position + 1)
            if start + length > end:
                fail(position - 1, f"meta event 0x{meta_type:02X} declares {length} bytes, "
                     f"only {end - start} remain in the track")
            if meta_type == 0x2F:  # end of track: symusic reads no further
                return last
            reason = _meta_fault(data, meta_type, start, length)
            if reason:
                fail(position - 1, reason)
            position = start + length
        elif status in (0xF0, 0xF7):  # sysex: length, payload; cancels running status
            length, start = read_length(position)
            if start + length > end:
                fail(position - 1, f"sysex event declares {length} bytes, "
                     f"only {end - start} remain in the track")
            position = start + length
            running = 0
        else:
            fail(position - 1, f"undefined status byte 0x{status:02X}")
        last = tick
    return last


def _meta_fault(data: bytes, meta_type: int, start: int, length: int) -> str | None:
    """What is wrong with a tempo, time or key signature (symusic reads them blindly)."""
    if meta_type == 0x51:
        if length != 3:
            return f"a tempo event of length {length} (3 expected)"
        if not any(data[start:start + 3]):
            return "a tempo of 0 microseconds per quarter note"
    elif meta_type == 0x58:
        if length != 4:
            return f"a time-signature event of length {length} (4 expected)"
        if data[start] == 0 or data[start + 1] > 7:
            return f"a time signature of {data[start]}/2^{data[start + 1]}"
    elif meta_type == 0x59:
        if length != 2:
            return f"a key-signature event of length {length} (2 expected)"
        sharps = int.from_bytes(data[start:start + 1], "big", signed=True)
        if not -7 <= sharps <= 7 or data[start + 1] > 1:
            return f"a key signature of {sharps} sharps, mode {data[start + 1]}"
    return None


# --------------------------------------------------------------------------- fast path

_D = rb"[\x00-\x7f]"  # a data byte
_DELTA = rb"[\x80-\xff]{0,3}+[\x00-\x7f]"  # a delta time of 1-4 bytes
_ANY = rb"[\x00-\xff]"
# valid tempo (not 0), time signature (numerator > 0, denominator <= 2^7), key signature
_META = (rb"\xff(?:\x51\x03(?!\x00\x00\x00)" + _ANY + rb"{3}"
         rb"|\x58\x04[\x01-\xff][\x00-\x07]" + _ANY + rb"{2}"
         rb"|\x59\x02[\x00-\x07\xf9-\xff][\x00\x01])")
# channel events with their status byte, and those signatures: no running status
_EXPLICIT = re.compile(rb"(?:" + _DELTA + rb"(?:[\x80-\xbf\xe0-\xef]" + _D + rb"{2}"
                       rb"|[\xc0-\xdf]" + _D + rb"|" + _META + rb"))*+")
# the same, and events that run on the status before them (possibly across those
# signatures): data bytes after a delta time, two (3 bytes < 0x80 in a row with the
# delta's last) after a status of two data bytes, one after a status of one
_RUN2 = (rb"(?:[\x80-\xff]{0,3}+[\x00-\x7f]{3})*+(?:" + _DELTA + _META
         + rb"(?:[\x80-\xff]{0,3}+[\x00-\x7f]{3})*+)*+")
_RUN1 = (rb"(?:[\x80-\xff]{0,3}+[\x00-\x7f]{2})*+(?:" + _DELTA + _META
         + rb"(?:[\x80-\xff]{0,3}+[\x00-\x7f]{2})*+)*+")
_RUNNING = re.compile(rb"(?:" + _DELTA + rb"(?:[\x80-\xbf\xe0-\xef]" + _D + rb"{2}" + _RUN2
                      + rb"|[\xc0-\xdf]" + _D + _RUN1 + rb"|" + _META + rb"))*+")
# bytes >= 0x80 -> 1, others -> 0
_HIGH = bytes.maketrans(bytes(range(256)), b"\x00" * 128 + b"\x01" * 128)


def _tick_bound(data: bytes, start: int, end: int) -> int:
    """An upper bound of the sum of the delta times of the events in ``data[start:end]``
    (of the tracks there, chunk headers and bytes after end-of-track counted as events).

    A delta time of k + 1 bytes (k <= 3 of them >= 0x80) is below 128^(k + 1); its k
    bytes >= 0x80 end a block of such bytes (after a status byte or event bytes, if any),
    and a block holds at most one delta's. Counting 2^14 for each byte >= 0x80, 2^21 for
    each pair of them in a row and 2^28 for each triple bounds every block's delta; every
    one-byte delta adds at most 127.
    """
    classes = data[start:end].translate(_HIGH)  # a byte 1 for each byte >= 0x80
    if b"\x01\x01" not in classes:  # most tracks: no delta of 3 bytes or more
        return 127 * (end - start) + 2**14 * classes.count(1)
    high = int.from_bytes(classes, "little")
    pairs = high & (high >> 8)
    return (127 * (end - start) + 2**14 * high.bit_count() + 2**21 * pairs.bit_count()
            + 2**28 * (pairs & (high >> 16)).bit_count())


def _fast_track(data: bytes, position: int, end: int) -> bool:
    """True when the events of the track chunk ``data[position:end]`` are certainly valid
    (see the module docstring); False sends it to :func:`walk_track`. Its times are
    checked apart (:func:`_tick_bound`).

    The track is matched with ``_EXPLICIT`` (every channel event with its status byte,
    as in most of symusic's own files) until an event uses running status; then again
    from its start with ``_RUNNING`` (slower). Running status right after an event that
    Python steps over (a text event between running notes, in karaoke files) is left to
    the reference walk: the expressions do not carry the running status across.
    """
    first, pattern = position, _EXPLICIT
    while True:
        matched = pattern.match(data, position, end)
        assert matched is not None  # both expressions match the empty string
        position = matched.end()
        if position >= end:
            return True
        # the event the expression did not take: running status (in _EXPLICIT), end of
        # track, another meta event, a sysex event; anything else is for the reference walk
        at = position
        while at < end and data[at] >= 0x80:  # the delta time's first bytes
            at += 1
        if at - position > 3 or at + 2 >= end:
            return False
        status = data[at + 1]
        if status < 0x80:
            if pattern is _RUNNING:
                return False
            position, pattern = first, _RUNNING  # start again, following running status
            continue
        if status == 0xFF and data[at + 2] < 0x80:
            meta_type = data[at + 2]
            if meta_type in (0x51, 0x58, 0x59):
                return False  # a tempo, time or key signature it found wrong
            length, start = _read_length(data, at + 3, end)
        elif status in (0xF0, 0xF7):
            meta_type = None
            length, start = _read_length(data, at + 2, end)
        else:
            return False
        if start < 0 or start + length > end:
            return False
        position = start + length
        if meta_type == 0x2F:  # end of track: symusic reads no further
            return True


def _read_length(data: bytes, position: int, end: int) -> tuple[int, int]:
    """(value, next position) of a variable-length number; (0, -1) when invalid."""
    value = 0
    for at in range(position, min(position + 4, end)):
        value = (value << 7) | (data[at] & 0x7F)
        if data[at] < 0x80:
            return value, at + 1
    return 0, -1
