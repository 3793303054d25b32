"""Rendering: WAV of the right duration and level through the SoundFont, PNG piano-rolls."""

from __future__ import annotations

import pytest
from symusic import Note, Score, Tempo, Track

from cli_helpers import run_cli
from tunesmith.music import save_midi
from tunesmith.render import render_png, render_wav
from tunesmith.render.audio import PEAK, SAMPLE_RATE, wav_facts


def four_quarters(tempo: float = 120.0) -> Score:
    """C4 D4 E4 F4 as quarter notes (2 s at 120 qpm), piano and a bass under it."""
    score = Score(480)
    score.tempos.append(Tempo(0, tempo))
    piano, bass = Track("Piano", 0, False), Track("Bass", 33, False)
    for i, pitch in enumerate((60, 62, 64, 65)):
        piano.notes.append(Note(i * 480, 480, pitch, 90))
    bass.notes.append(Note(0, 1920, 36, 90))
    score.tracks.extend([piano, bass])
    return score



def test_wav_has_the_music_duration_and_normalised_peak(tmp_path):
    path = render_wav(four_quarters(), tmp_path / "a.wav")
    facts = wav_facts(path)
    assert facts["sample_rate"] == SAMPLE_RATE and facts["channels"] == 2
    assert 2.0 <= facts["seconds"] <= 4.0  # 2 s of notes plus the release tail
    assert facts["peak"] == pytest.approx(PEAK, abs=0.01)
    slower = wav_facts(render_wav(four_quarters(60.0), tmp_path / "b.wav"))
    assert 4.0 <= slower["seconds"] <= 6.0  # half the tempo, twice the notes' length


def test_png_is_written(tmp_path):
    import matplotlib.image

    path = render_png(four_quarters(), tmp_path / "a.png", title="test")
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_render_cli_writes_wav_and_png(tmp_path):
    midi = save_midi(four_quarters(), tmp_path / "piece.mid")
    assert run_cli(["render", str(midi), "--out", str(tmp_path / "out")]) == 0
    assert 2.0 <= wav_facts(tmp_path / "out" / "piece.wav")["seconds"] <= 4.0
    assert (tmp_path / "out" / "piece.png").read_bytes()[:4] == b"\x89PNG"


def test_render_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    midi = save_midi(four_quarters(), tmp_path / "piece.mid")
    assert run_cli(["render", str(tmp_path / "missing.mid")]) == 2
    assert run_cli(["render", str(midi), "--soundfont", str(tmp_path / "none.sf2")]) == 2
    not_a_font = tmp_path / "font.txt"
    not_a_font.write_text("hello")
    assert run_cli(["render", str(midi), "--soundfont", str(not_a_font)]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert err.count("error:") == 3 and "Traceback" not in err
    assert "missing.mid" in err and "none.sf2: no such SoundFont" in err
    assert "font.txt: a SoundFont must be a .sf2 or .sf3 file" in err
