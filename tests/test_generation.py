"""generate_from_checkpoint: lengths, outputs that load back, priming, conditioning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from test_families import TINY_OPTIONS, build_tiny
from tiny_model import (
    TINY_INFO,
    register_tiny_families,
    save_tiny_checkpoint,
)
from tunesmith.errors import ConfigError
from tunesmith.generation.generate import (
    array_to_score,
    file_to_array,
    generate_from_checkpoint,
    length_in_steps,
)
from tunesmith.models.sampling import SamplingControls
from tunesmith.music import load, save_midi
from tunesmith.training.checkpoint import save_checkpoint

TPQ = 480


@pytest.fixture(autouse=True)
def _tiny_registry(monkeypatch):
    register_tiny_families(monkeypatch)


@pytest.fixture
def checkpoint(tmp_path):
    return save_tiny_checkpoint(tmp_path / "ckpt")


def test_length_in_steps_uses_the_data_grid_and_tempo():
    meta = {"representation": "pianoroll", "data_info": TINY_INFO.to_dict(),
            "repr_config": TINY_INFO.repr_config}
    assert length_in_steps(meta, bars=3) == 3 * 4 * 2  # 4/4, 2 steps a quarter
    assert length_in_steps(meta, seconds=3.0) == 12  # 6 quarters at 120 qpm
    assert length_in_steps(meta) == 8 * 8  # default 8 bars
    with pytest.raises(ConfigError, match="not both"):
        length_in_steps(meta, bars=2, seconds=2)
    with pytest.raises(ConfigError, match="bars must be > 0"):
        length_in_steps(meta, bars=0)


def test_generated_midi_loads_back_with_the_data_tracks(checkpoint, tmp_path):
    controls = SamplingControls(seed=1, max_notes_per_step=1)
    paths = generate_from_checkpoint(checkpoint, n=2, bars=2, controls=controls,
                                     out_dir=tmp_path / "out", wav=True, png=True)
    assert [p.name for p in paths] == ["sample_1.mid", "sample_2.mid"]
    for path in paths:
        score = load(path)
        named = {t.name: t.program for t in score.tracks}
        assert set(named) <= {"Upper", "Lower"} and named.get("Lower", 33) == 33
        assert score.note_num() > 0
        assert score.end() <= 2 * 4 * score.ticks_per_quarter  # 2 bars at most
        assert path.with_suffix(".wav").stat().st_size > 44
        assert path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one note per track and step: no two notes of a track start together
    for track in load(paths[0]).tracks:
        times = track.notes.numpy()["time"]
        assert len(times) == len(set(times.tolist()))


def test_same_seed_same_pieces(checkpoint, tmp_path):
    a = generate_from_checkpoint(checkpoint, n=1, bars=1, seed=7, out_dir=tmp_path / "a",
                                 wav=False, png=False)
    b = generate_from_checkpoint(checkpoint, n=1, bars=1, seed=7, out_dir=tmp_path / "b",
                                 wav=False, png=False)
    assert a[0].read_bytes() == b[0].read_bytes()


def test_primer_is_kept_unchanged_at_the_start(checkpoint, tmp_path):
    meta = {"representation": "pianoroll", "repr_config": TINY_INFO.repr_config,
            "data_info": TINY_INFO.to_dict()}
    primer = np.zeros((6, 8), np.uint8)  # (steps, tracks·pitches)
    primer[0:2, 1] = 1  # Upper: pitch 61 for a quarter
    primer[2:6, 2] = 1  # Upper: pitch 62
    primer[0:6, 4 + 0] = 1  # Lower: pitch 60 held
    primer_file = save_midi(array_to_score(primer, meta), tmp_path / "primer.mid")
    assert np.array_equal(file_to_array(primer_file, meta), primer)

    paths = generate_from_checkpoint(checkpoint, n=2, bars=1, prime=primer_file,
                                     controls=SamplingControls(seed=3, threshold=0.5),
                                     out_dir=tmp_path / "out", wav=False, png=False)
    for path in paths:
        grid = file_to_array(path, meta)  # (steps, 8)
        assert grid.shape[0] >= 6
        assert grid.shape[0] <= 6 + 8  # primer + one bar of 8 steps
        # notes ending at the primer's edge may continue into the generated part
        assert np.array_equal(grid[:5], primer[:5])


def test_pitch_histogram_needs_a_conditioned_model(checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="pitch-histogram"):
        generate_from_checkpoint(checkpoint, n=1, bars=1, pitch_histogram="C major",
                                 out_dir=tmp_path, wav=False, png=False)


def test_pitch_histogram_conditions_a_wavenet(tmp_path, monkeypatch):
    from tunesmith.models import registry
    from tunesmith.models.wavenet import WaveNet
    from tunesmith.music.keys import key_profile

    torch.manual_seed(0)
    model = registry.build("wavenet", {"levels": 2, "channels": 4, "skip_channels": 4,
                                       "pitch_histogram_cond": True}, TINY_INFO)
    folder = save_checkpoint(tmp_path / "wn", model, model_name="wavenet", data_info=TINY_INFO)
    seen = []
    original = WaveNet.generate

    def spy(self, n, steps, controls=None, prime=None, condition=None):
        seen.append(condition["pitch_histogram"])
        return original(self, n, steps, controls, prime, condition)

    monkeypatch.setattr(WaveNet, "generate", spy)
    paths = generate_from_checkpoint(folder, n=2, bars=2, pitch_histogram="F# major",
                                     controls=SamplingControls(seed=0), out_dir=tmp_path / "o",
                                     wav=False, png=False)
    assert len(paths) == 2 and load(paths[0]).tracks[0].name == "Upper"
    expected = torch.tensor(key_profile("F# major"), dtype=torch.float32)
    assert seen[0].shape == (2, 12) and torch.equal(seen[0][1], expected)
    with pytest.raises(ConfigError, match="cannot read key"):
        generate_from_checkpoint(folder, n=1, bars=1, pitch_histogram="H major",
                                 out_dir=tmp_path, wav=False, png=False)


def test_evaluation_generates_midi_only(checkpoint, tmp_path):
    from tunesmith.evaluation.report import generate_samples

    out = generate_samples(checkpoint, 2, tmp_path / "eval", seed=0)
    assert sorted(p.name for p in out.iterdir()) == ["sample_1.mid", "sample_2.mid"]


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_every_family_generates_midi_from_its_checkpoint(name, tmp_path):
    model, info = build_tiny(name)
    folder = save_checkpoint(tmp_path / name, model, model_name=name, data_info=info)
    fixed_length = isinstance(getattr(model.config, "steps", None), int)  # MusicVAE phrases
    paths = generate_from_checkpoint(folder, n=1, bars=None if fixed_length else 1,
                                     controls=SamplingControls(seed=0), out_dir=tmp_path / "out",
                                     wav=False, png=False)
    score = load(paths[0])
    quarters = 4  # one 4/4 bar, or the model's own phrase
    if fixed_length:
        quarters = model.config.steps / info.steps_per_quarter
    assert 0 < score.end() <= quarters * score.ticks_per_quarter
