"""Configs are validated one way (declared ranges and choices, then rules between
fields, each failure naming its option), and the melody range has one spelling:
``pitch_low``/``pitch_high`` inclusive, the old ``min_pitch``/``max_pitch`` (exclusive)
still read from command lines, caches and checkpoints."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest

from tunesmith.config import UNIT_OPEN, Range, at_least
from tunesmith.errors import ConfigError
from tunesmith.generation.generate import codec, generate_from_checkpoint
from tunesmith.models import registry
from tunesmith.models.musegan import MuseGANConfig
from tunesmith.models.rnn import RNNConfig
from tunesmith.models.wavenet import WaveNetConfig
from tunesmith.music import load
from tunesmith.representations import melody
from tunesmith.representations.melody import MelodyConfig
from tunesmith.training.checkpoint import load_checkpoint, save_checkpoint


def test_ranges_describe_and_hold_their_bounds():
    assert UNIT_OPEN.holds(0) and UNIT_OPEN.holds(0.99) and not UNIT_OPEN.holds(1)
    assert UNIT_OPEN.describe() == "in [0, 1)"
    assert at_least(1).describe() == ">= 1" and not at_least(1).holds(0)
    assert Range(0, 1, low_open=True, high_open=True).describe() == "in (0, 1)"


@pytest.mark.parametrize("make, option", [
    (lambda: WaveNetConfig(dropout=1.0), "dropout"),
    (lambda: WaveNetConfig(dilations=[1, 0]), "dilations"),
    (lambda: WaveNetConfig(block="lstm"), "block"),
    (lambda: RNNConfig(cell="rnn"), "cell"),  # was checked only when a model was built
    (lambda: MuseGANConfig(n_critic=0), "n_critic"),  # likewise
    (lambda: MuseGANConfig(loss="hinge"), "loss"),
    (lambda: MelodyConfig(steps_per_quarter=0), "steps_per_quarter"),
])
def test_each_failure_names_its_option(make, option):
    with pytest.raises(ConfigError, match=option):
        make()


def test_a_config_read_from_json_is_validated_too():
    with pytest.raises(ConfigError, match=r"model option dropout must be in \[0, 1\), got 2"):
        WaveNetConfig.from_dict({"dropout": 2})


def test_old_melody_spelling_is_read_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="min_pitch is now called pitch_low"):
        cfg = MelodyConfig.from_dict({"min_pitch": 50, "max_pitch": 86})
    assert (cfg.pitch_low, cfg.pitch_high) == (50, 85)  # max_pitch was exclusive
    assert cfg == MelodyConfig(pitch_low=50, pitch_high=85)
    with pytest.raises(ConfigError, match="give only pitch_low"):
        MelodyConfig.from_dict({"min_pitch": 50, "pitch_low": 50})


def test_a_checkpoint_with_the_old_melody_names_loads_and_generates(tmp_path):
    new = melody.info(MelodyConfig())
    old_options = {"steps_per_quarter": 4, "min_pitch": 48, "max_pitch": 84,
                   "polyphony": "highest", "transpose_to_range": True, "track": None}
    old_info = dataclasses.replace(new, repr_config=old_options)
    model = registry.build("melody-rnn-basic", {"hidden_size": 8, "num_layers": 1},
                           data_info=old_info)
    folder = save_checkpoint(tmp_path / "old", model, model_name="melody-rnn-basic",
                             data_info=old_info)
    stored = json.loads((folder / "config.json").read_text())
    assert "min_pitch" in stored["repr_config"] and "pitch_low" not in stored["repr_config"]
    _, meta = load_checkpoint(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cfg = codec(meta).cfg
        paths = generate_from_checkpoint(folder, n=1, bars=2, seed=0, out_dir=tmp_path / "out",
                                         wav=False, png=False)
    assert (cfg.pitch_low, cfg.pitch_high) == (new.pitch_low, new.pitch_high) == (48, 83)
    pitches = [n.pitch for t in load(paths[0]).tracks for n in t.notes]
    assert pitches and all(48 <= p <= 83 for p in pitches)


def test_the_shipped_melody_model_still_reads_its_old_names():
    _, meta = load_checkpoint("pretrained:essen-folk")
    assert "min_pitch" in meta["repr_config"]  # written before the rename
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cfg = codec(meta).cfg
    assert (cfg.pitch_low, cfg.pitch_high, cfg.vocab_size) == (48, 83, 38)
