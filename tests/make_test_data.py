"""Build the crafted regression files of ``tests/data/`` from the bytes spelled out here.

Run ``python tests/make_test_data.py`` after changing this file; ``test_midi_gate.py``
checks that the files on disk are what it writes. Each entry says what the file holds
and what went wrong with it before the MIDI gate (issue 14).
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def vlq(value: int) -> bytes:
    """MIDI variable-length quantity (7 bits a byte, high bit = more follow)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi(tracks: list[bytes], tpq: int = 480, fmt: int = 0, division: bytes | None = None
         ) -> bytes:
    """A MIDI file: MThd (format, track count, ticks per quarter) + one MTrk per body."""
    header = b"MThd" + (6).to_bytes(4, "big") + fmt.to_bytes(2, "big")
    header += len(tracks).to_bytes(2, "big") + (division or tpq.to_bytes(2, "big"))
    return header + b"".join(b"MTrk" + len(t).to_bytes(4, "big") + t for t in tracks)


END = b"\x00\xff\x2f\x00"  # delta 0, end of track
NOTE = b"\x00\x90\x3c\x64" + b"\x83\x60\x80\x3c\x00"  # C4 for 480 ticks (delta 0x8360)
TEMPO_120 = b"\x00\xff\x51\x03\x07\xa1\x20"  # 500,000 µs per quarter


def _hours(hours: float, tpq: int = 1) -> bytes:
    """Two notes, the second starting ``hours`` later at 120 quarter notes a minute."""
    ticks = round(hours * 3600 * 2 * tpq)
    return midi([TEMPO_120 + NOTE.replace(b"\x83\x60", b"\x01")  # 1-tick notes
                 + vlq(ticks) + b"\x90\x3e\x64\x01\x80\x3e\x00" + END], tpq=tpq)


#: file name -> (bytes, what it is and what happened before the gate)
FILES: dict[str, tuple[bytes, str]] = {
    "crash_pitch80_ch16.mid": (
        bytes.fromhex("4d546864000000060001000101e04d54726b0000000c"
                      "009f8064108f800000ff2f00"),
        "34 bytes from issue 14: a note-on on channel 16 with pitch byte 0x80; symusic "
        "0.5.8 crashed the process (segfault or free(): invalid pointer)"),
    "bomb_delta_0fffffff.mid": (
        bytes.fromhex("4d546864000000060000000100014d54726b00000017"
                      "00903c6410803c00ffffff7f903e6410803e0000ff2f00"),
        "45 bytes from issue 14: 1 tick per quarter and a delta time of 0x0FFFFFFF "
        "(37,000 hours); 'data prepare' failed the whole folder allocating 88 GiB"),
    "velocity80.mid": (
        midi([b"\x00\x90\x3c\x80\x60\x80\x3c\x00" + END]),
        "a note-on of velocity byte 0x80: loaded silently as velocity -128"),
    "pitch_ff.mid": (
        midi([b"\x00\x90\xff\x64\x60\x80\xff\x00" + END]),
        "a note of pitch byte 0xFF: loaded silently as pitch -1"),
    "tpq_zero.mid": (
        midi([NOTE + END], tpq=0),
        "0 ticks per quarter note: loaded 'fine', ZeroDivisionError downstream"),
    "smpte_division.mid": (
        midi([NOTE + END], division=b"\xe7\x28"),
        "an SMPTE time division (25 frames/s, 40 ticks a frame): refused with a clear reason"),
    "ticks_past_2_31.mid": (
        midi([b"\x00\x90\x3c\x64" + b"\xff\xff\xff\x7f\xff\x01\x00" * 8  # 8 x 0x0FFFFFFF
              + b"\xff\xff\xff\x7f\x80\x3c\x00" + END], tpq=0x7FFF),
        "nine delta times of 0x0FFFFFFF (text events between): the note-off at tick "
        "2,415,919,095 > 2^31 wrapped to a negative time"),
    "tempo_length2.mid": (
        midi([b"\x00\xff\x51\x02\x07\xa1" + NOTE + END]),
        "a tempo event of length 2: symusic read its third byte past the event"),
    "tempo_zero.mid": (
        midi([b"\x00\xff\x51\x03\x00\x00\x00" + NOTE + END]),
        "a tempo of 0 µs per quarter note: an infinite tempo"),
    "running_status_first.mid": (
        midi([b"\x00\x3c\x64\x60\x3c\x00" + END]),
        "data bytes with no status byte before them (running status of nothing)"),
    "undefined_status_f4.mid": (
        midi([b"\x00\xf4" + NOTE + END]),
        "the undefined status byte 0xF4 (system common messages have no place in a file)"),
    "fast_tempo_bomb.mid": (
        midi([b"\x00\xff\x51\x03\x00\x00\x01" + NOTE.replace(b"\x83\x60", b"\x01")
              + vlq(0x0FFFFFFF) + b"\x90\x3e\x64\x01\x80\x3e\x00" + END], tpq=1),
        "1 µs per quarter note and 268 million quarter notes: 268 s by the clock, but "
        "every encoder allocates per step (counted at 480 quarters a minute: 9,321 h)"),
    "three_hours.mid": (
        _hours(3),
        "a valid piece of 3 hours (1 tick per quarter, 120 a minute): over the default "
        "limit of 2 hours, kept when the limit is raised"),
    "running_status_across_meta.mid": (
        midi([b"\x00\x90\x3c\x64\x00\xff\x01\x01A\x83\x60\x3c\x00"  # on, text, off (running)
              b"\x00\xf0\x03\x7e\x7f\xf7"  # a sysex event: cancels running status
              b"\x00\x90\x40\x64\x83\x60\x40\x00" + END]),
        "valid: running status across a text event, a sysex, then a new status; "
        "two quarter notes, C4 at 0 and E4 at 480"),
    "slow_note_65535.abc": (
        b"X:1\nT:slow\nM:C|\nL:1/8\nK:G\nG2Bd g2dB | g2ge a65535af | gfge a2af |\n",
        "valid ABC with a note of 65,535 eighths (found by benchmarks/fuzz_loader.py): "
        "music21 10.5's ABC reader spends minutes re-barring it (bestTimeSignature)"),
    "long_note.abc": (
        b"X:1\nT:One long note\nL:1/1\nK:C\nC20000|\n",
        "valid ABC of one note 20,000 whole notes long: 11 hours at 120 quarters a minute"),
}


def main() -> None:
    DATA.mkdir(exist_ok=True)
    for name, (data, _) in FILES.items():
        (DATA / name).write_bytes(data)
    print(f"wrote {len(FILES)} files to {DATA}")


if __name__ == "__main__":
    main()
