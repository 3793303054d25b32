"""Audio I/O, μ-law, mel features and the audio data layer (folder: and rendered:)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from tunesmith.audio.features import log_mel, mel_filterbank
from tunesmith.audio.io import AudioFileError, load_audio
from tunesmith.audio.mulaw import mu_law_decode, mu_law_encode
from tunesmith.data.audio import AudioWindows, audio_loader, prepare_audio
from tunesmith.errors import ConfigError


def tone(seconds: float, rate: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def midi_folder(folder):
    """Three short MIDI files: a chord with rests between notes."""
    from symusic import Note, Score, Tempo, Track

    folder.mkdir()
    for i in range(3):
        score = Score(480)
        score.tempos.append(Tempo(0, 120.0))
        track = Track("Piano", 0, False)
        for k in range(4):  # quarter notes on beats 1 and 3, rests between
            track.notes.append(Note(k * 960, 480, 60 + i + 2 * k, 90))
        score.tracks.append(track)
        score.dump_midi(str(folder / f"piece{i}.mid"))
    return folder


@pytest.mark.parametrize("bits", [4, 8])
def test_mu_law_round_trip_within_quantisation_error(bits):
    x = np.linspace(-1, 1, 20001)
    bins = mu_law_encode(x, bits)
    assert bins.min() == 0 and bins.max() == 2**bits - 1
    error = np.abs(mu_law_decode(bins, bits) - x)
    levels = mu_law_decode(np.arange(2**bits), bits)  # increasing
    gaps = np.diff(levels)
    assert (gaps > 0).all()
    # each sample decodes to a level inside its quantisation cell: the x range whose
    # companded value rounds to the bin, from bin - 1/2 to bin + 1/2 (clipped at ±1)
    level = mu_law_decode(bins, bits)
    upper = np.minimum(mu_law_decode(bins + 0.5, bits), 1.0) - level
    lower = level - np.maximum(mu_law_decode(bins - 0.5, bits), -1.0)
    half_cell = np.maximum(upper, lower)
    assert (error <= half_cell + 1e-6).all()
    assert error.max() > 0.25 * half_cell.max()  # and the bound is not vacuous
    # torch agrees with numpy
    tx = torch.tensor(x, dtype=torch.float64)
    assert torch.equal(mu_law_encode(tx, bits), torch.as_tensor(bins))
    # finer near zero: the cell at 0 is far smaller than the cell at full scale
    assert gaps[len(gaps) // 2] < gaps[-1] / (10 if bits == 4 else 50)


def test_mel_filterbank_covers_the_band_and_log_mel_finds_a_tone():
    bank = mel_filterbank(16000, 1024, 40)
    assert bank.shape == (40, 513) and (bank >= 0).all()
    assert (bank.sum(1) > 0).all()  # every filter has support
    mel = log_mel(torch.tensor(tone(0.5, 16000, 1000.0)), 16000, n_mels=40)  # (40, frames)
    peak_bin = int(mel.mean(1).argmax())
    centres = (bank * torch.arange(513)).sum(1) / bank.sum(1) * 16000 / 1024
    assert abs(float(centres[peak_bin]) - 1000) < 150


def test_load_audio_resamples_and_mixes_to_mono(tmp_path):
    stereo = np.stack([tone(0.5, 44100), tone(0.5, 44100)], axis=1)
    soundfile.write(tmp_path / "a.wav", stereo, 44100)
    audio = load_audio(tmp_path / "a.wav", 16000)
    assert audio.ndim == 1 and abs(len(audio) - 8000) <= 1
    # still a 440 Hz tone of amplitude 0.5 after soxr
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 440) < 5
    assert 0.45 < np.abs(audio).max() < 0.55


@pytest.mark.parametrize("name,content,reason", [
    ("corrupt.wav", b"RIFF\x00\x01garbage-not-a-wave-file" * 3, "corrupt"),
    ("empty.wav", b"", "empty"),
    ("fake.flac", b"ID3 this is an mp3", "not a FLAC"),
    ("song.mp3", b"ID3", "unsupported audio format"),
])
def test_bad_files_are_one_clear_error(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioFileError) as error:
        load_audio(path, 16000)
    assert str(path) in str(error.value) and reason in str(error.value)


def test_silent_file_is_refused(tmp_path):
    soundfile.write(tmp_path / "quiet.wav", np.zeros(1000, np.float32), 16000)
    with pytest.raises(AudioFileError, match="silent"):
        load_audio(tmp_path / "quiet.wav", 16000)


def test_folder_with_one_corrupt_wav_reports_it_and_keeps_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    music = tmp_path / "music"
    music.mkdir()
    for i in range(4):
        soundfile.write(music / f"take{i}.wav", tone(0.25, 22050, 220 * (i + 1)), 22050)
    soundfile.write(music / "take4.flac", tone(0.25, 8000), 8000)
    (music / "broken.wav").write_bytes(b"RIFF" + bytes(40))
    data = prepare_audio(f"folder:{music}", 16000, progress=False, report=False)
    assert sorted(data.ids) == ["take0.wav", "take1.wav", "take2.wav", "take3.wav", "take4.flac"]
    assert [s[0] for s in data.skipped] == ["broken.wav"]
    assert "corrupt" in data.skipped[0][1]
    assert data.sample_rate == 16000 and abs(len(data.audio(0)) - 4000) <= 1
    # the cache gives the same data back, splits included
    again = prepare_audio(f"folder:{music}", 16000, progress=False, report=False)
    assert again.cache_dir == data.cache_dir and again.splits == data.splits
    assert np.array_equal(again.pcm, data.pcm) and again.skipped == data.skipped


def test_folder_of_only_bad_files_names_each(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(Exception, match=r"no usable audio file(.|\n)*a.wav: empty file"):
        prepare_audio(f"folder:{tmp_path}", 16000, progress=False, report=False)


def test_unknown_spec_is_refused():
    with pytest.raises(ConfigError, match="folder:PATH or rendered:CORPUS"):
        prepare_audio("bach-chorales", 16000)


def test_rendered_corpus_gives_aligned_audio_and_rolls(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    folder = midi_folder(tmp_path / "midi")
    data = prepare_audio(f"rendered:folder:{folder}", 8000, max_seconds=2.0,
                         progress=False, report=False)
    assert data.has_rolls and data.hop == 1000  # 8 kHz · 0.125 s per sixteenth at 120 qpm
    for i in range(len(data.ids)):
        audio, roll = data.audio(i), data.roll(i)
        assert len(audio) == len(roll) * data.hop
        keys = roll.shape[1] // 2
        # frames where nothing sounds are (near) silent once the release has died away
        energy = np.array([np.abs(audio[f * data.hop:(f + 1) * data.hop]).max()
                           for f in range(len(roll))])
        sounding = roll[:, :keys].any(1)
        assert energy[sounding].mean() > 0.05
    windows = AudioWindows(data, "train" if data.indices("train") else "test", 2000)
    item = windows[0]
    assert item["audio"].shape == (2000,) and item["roll"].shape == (2, data.roll_channels)
    with pytest.raises(ConfigError, match="multiple of the roll hop"):
        AudioWindows(data, "train", 1500)


def test_loader_order_is_a_function_of_seed_and_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    for i in range(6):
        soundfile.write(tmp_path / f"t{i}.wav", tone(0.3, 8000, 100 + 50 * i), 8000)
    data = prepare_audio(f"folder:{tmp_path}", 8000, progress=False, report=False)
    split = max(("train", "valid", "test"), key=lambda s: len(data.indices(s)))
    first = [b["audio"] for b in audio_loader(data, split, 1000, 2, seed=3)]
    second = [b["audio"] for b in audio_loader(data, split, 1000, 2, seed=3)]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    batch = next(iter(audio_loader(data, split, 1000, 2, seed=3)))
    assert batch["audio"].shape[1] == 1000 and batch["mask"].dtype == torch.bool
