"""``tunesmith audio``: every audio family trains, saves, loads and generates from its
checkpoint through the commands, each writing WAV + spectrogram PNG files."""

from __future__ import annotations

import json

import pytest
import soundfile

from test_audio_data import midi_folder
from tunesmith.cli import main


def run(*args: str) -> None:
    main([str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio-cli")
    folder = midi_folder(root / "midi")
    data = f"rendered:folder:{folder}"
    common = ["--data", data, "--sample-rate", "8000", "--seconds", "2", "--max-steps", "6",
              "--batch-size", "2", "--threads", "1"]
    run("audio", "train", "--model", "audio-wavenet", "--out", root / "wn", "--window", "2000",
        "--set", "roll_conditioned=true", "--set", "channels=8", "--set", "skip_channels=8",
        "--set", "levels=4", "--set", "blocks=1", *common)
    run("audio", "train", "--model", "vq-vae", "--out", root / "vq", "--window", "2048",
        "--set", "channels=8", "--set", "code_dim=4", "--set", "codebook_size=16",
        "--set", "strides=[4, 4]", *common)
    return root, folder, data


def test_synth_renders_a_midi_file_beside_the_soundfont(trained, capsys):
    root, folder, _ = trained
    run("audio", "synth", folder / "piece0.mid", "--checkpoint", root / "wn", "--out",
        root / "synth", "--seconds", "1")
    for name in ("piece0-synth", "piece0-soundfont"):
        audio, rate = soundfile.read(root / "synth" / f"{name}.wav")
        assert rate == 8000 and len(audio) == 8000  # 8 sixteenths × 1000 samples
        assert (root / "synth" / f"{name}.png").stat().st_size > 1000
    assert "log-mel distance" in capsys.readouterr().out


def test_encode_decode_sample_prior_evaluate(trained, capsys):
    root, _folder, data = trained
    wav = root / "in.wav"
    soundfile.write(wav, soundfile.read(root / "synth" / "piece0-soundfont.wav")[0]
                    if (root / "synth").exists() else [0.1, -0.1] * 4000, 8000)
    run("audio", "encode", wav, "--checkpoint", root / "vq", "--out", root / "codec")
    assert "bitrate 2000 bits/s" in capsys.readouterr().out  # 8000 / 16 · log2(16)
    run("audio", "decode", root / "codec" / "in.codes.safetensors", "--checkpoint", root / "vq",
        "--out", root / "codec")
    decoded, rate = soundfile.read(root / "codec" / "in-decoded.wav")
    assert rate == 8000 and len(decoded) == len(soundfile.read(wav)[0])
    run("audio", "prior", "--checkpoint", root / "vq", "--data", data, "--out", root / "prior",
        "--seconds", "2", "--window", "32", "--max-steps", "3", "--batch-size", "2",
        "--set", "d_model=16", "--set", "n_layers=1", "--set", "n_heads=2",
        "--set", "d_ff=16")
    run("audio", "sample", "--checkpoint", root / "vq", "--prior", root / "prior",
        "--seconds", "0.5", "--out", root / "samples")
    audio, _ = soundfile.read(root / "samples" / "sample-0.wav")
    assert len(audio) == 4000 and (root / "samples" / "sample-0.png").is_file()
    run("audio", "evaluate", "--checkpoint", root / "vq", "--seconds", "1",
        "--out", root / "eval-vq")
    report = json.loads((root / "eval-vq" / "report.json").read_text())
    assert report["bitrate (bits/s)"] == 2000 and 0 < report["bottom codes used (fraction)"] <= 1
    run("audio", "evaluate", "--checkpoint", root / "wn", "--seconds", "1",
        "--out", root / "eval-wn")
    report = json.loads((root / "eval-wn" / "report.json").read_text())
    assert 0 < report["test NLL (bits per sample)"] < 16


def test_errors_are_one_line(trained, capsys):
    root, folder, _ = trained
    with pytest.raises(SystemExit):
        run("audio", "synth", folder / "piece0.mid", "--checkpoint", root / "vq")
    assert "not 'audio-wavenet'" in capsys.readouterr().err
    bad = root / "bad.wav"
    bad.write_bytes(b"RIFF" + bytes(10))
    with pytest.raises(SystemExit):
        run("audio", "encode", bad, "--checkpoint", root / "vq", "--out", root / "x")
    err = capsys.readouterr().err
    assert "bad.wav" in err and "corrupt" in err and "Traceback" not in err


def test_models_lists_the_audio_families_with_their_data(capsys):
    from tunesmith.models import registry

    run("models", "--json")
    rows = {row["model"]: row for row in json.loads(capsys.readouterr().out)}
    assert sorted(rows) == sorted(registry.family_names() + registry.audio_family_names())
    for name in registry.audio_family_names():
        assert rows[name]["domain"] == "audio"
        assert rows[name]["train"] == "tunesmith audio train"
        assert "rendered:" in rows[name]["data"] and "folder:" in rows[name]["data"]
    assert "roll_conditioned" in rows["audio-wavenet"]["options"]
    assert rows["wavenet"]["domain"] == "symbolic"
    assert "pianoroll" in rows["wavenet"]["data"]
    run("models", "vq-vae")  # the table, one family
    assert "vq-vae" in capsys.readouterr().out
