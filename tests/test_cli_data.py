import pytest
from symusic import Note, Score, Tempo, Track
from typer.testing import CliRunner

from tunesmith.cli import build_app, main
from tunesmith.cli.data import parse_pitch_range, parse_settings, repr_options
from tunesmith.errors import ConfigError


@pytest.fixture
def run(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # wide rich tables: ids and reasons not folded
    runner = CliRunner()
    app = build_app()

    def invoke(*args):
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output + repr(result.exception)
        return result.output

    return invoke


def _midi(path, pitches):
    score = Score(480)
    score.tempos.append(Tempo(0, 120.0))
    track = Track("piano", 0, False)
    for i, pitch in enumerate(pitches):
        track.notes.append(Note(i * 480, 480, pitch, 80))
    score.tracks.append(track)
    score.dump_midi(str(path))


def test_list_names_every_corpus(run):
    output = run("data", "list")
    for name in ("bach-chorales", "essen-folk", "oneills", "jsb", "nottingham", "folder:PATH"):
        assert name in output


def test_inspect_jsb_shows_the_published_split(run, polyphonic_dir):
    output = run("data", "inspect", "jsb", "--path", str(polyphonic_dir))
    rows = {line.split()[1]: line.split()[3] for line in output.splitlines()
            if line.startswith("│") and line.split()[1] in ("train", "valid", "test")}
    assert rows == {"train": "229", "valid": "76", "test": "77"}
    assert "no piece skipped" in output


def test_prepare_a_folder_reports_the_corrupt_file(run, tmp_path):
    _midi(tmp_path / "good1.mid", [60, 64, 67])
    _midi(tmp_path / "good2.mid", [62, 65])
    (tmp_path / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0")
    output = run("data", "prepare", f"folder:{tmp_path}", "--resolution", "2",
                 "--pitch-range", "48-84", "--workers", "1", "--set", "onset=true")
    assert "skipped 1 piece(s)" in output and "broken.mid" in output
    all_row = next(line for line in output.splitlines() if "all" in line)
    assert all_row.split()[3] == "2"  # two pieces kept
    assert all_row.split()[5] == "10"  # 3 + 2 quarters at 2 steps per quarter


def test_inspect_chorales_shows_four_voices(run):
    output = run("data", "inspect", "bach-chorales", "--limit", "3", "--workers", "1")
    for voice in ("Soprano", "Alto", "Tenor", "Bass"):
        assert f"│ {voice} " in output
    assert "4 track(s) x 88 pitches = 352 keys" in output
    assert "estimated keys" in output


def test_unknown_corpus_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "inspect", "no-such-corpus"])
    assert exit_info.value.code == 2
    assert "unknown corpus 'no-such-corpus'" in capsys.readouterr().err


def test_option_parsing():
    assert parse_settings(["resolution=8", "onset=true", "track=Alto"]) == {
        "resolution": 8, "onset": True, "track": "Alto"
    }
    assert parse_pitch_range("21-108") == (21, 108)
    assert repr_options("melody", 2, "48-83", None) == {
        "steps_per_quarter": 2, "pitch_low": 48, "pitch_high": 83
    }
    with pytest.raises(ConfigError):
        parse_settings(["resolution"])
    with pytest.raises(ConfigError):
        parse_pitch_range("low")
