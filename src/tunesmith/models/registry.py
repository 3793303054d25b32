"""Names → model families. The CLI, tests and benchmarks all read this table.

Families are imported lazily, and this module imports neither torch nor a family: the
command line checks a model name (:func:`check_name`) before it loads torch, so a typo
is reported at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from tunesmith.errors import ConfigError
from tunesmith.representations.info import DataInfo

if TYPE_CHECKING:
    from tunesmith.models.base import GenerativeModel

#: registry name -> ("module:Class", preset options). Add a family by adding a line here;
#: variants of one family are presets of the same class.
FAMILIES: dict[str, tuple[str, dict]] = {
    "music-vae": ("tunesmith.models.music_vae:MusicVAE", {}),
    "music-vae-flat": ("tunesmith.models.music_vae:MusicVAE", {"decoder": "flat"}),
    "music-vae-pianoroll": ("tunesmith.models.music_vae:MusicVAEPianoroll", {}),
    "groovae": ("tunesmith.models.groove_vae:GrooVAE", {}),
    "groovae-flat": ("tunesmith.models.groove_vae:GrooVAE", {"decoder": "flat"}),
    "midinet": ("tunesmith.models.midinet:MidiNet", {}),
    "musegan": ("tunesmith.models.musegan:MuseGAN", {}),
    "lstm": ("tunesmith.models.rnn:FrameRNN", {}),
    "gru": ("tunesmith.models.rnn:FrameRNN", {"cell": "gru"}),
    "lstm-nade": ("tunesmith.models.rnn:FrameRNN", {"head": "nade"}),
    "biaxial": ("tunesmith.models.biaxial:BiaxialRNN", {}),
    "wavenet": ("tunesmith.models.wavenet:WaveNet", {}),
    "tcn": ("tunesmith.models.wavenet:WaveNet", {"block": "relu", "kernel_size": 3, "levels": 2,
                                                 "blocks": 1, "channels": 150, "dropout": 0.5}),
    "melody-rnn-basic": ("tunesmith.models.melody_rnn:MelodyRNN", {"mode": "basic"}),
    "melody-rnn-lookback": ("tunesmith.models.melody_rnn:MelodyRNN", {"mode": "lookback"}),
    "melody-rnn-attention": ("tunesmith.models.melody_rnn:MelodyRNN", {"mode": "attention"}),
    "music-transformer": ("tunesmith.models.music_transformer:MusicTransformer", {}),
    "frame-transformer": ("tunesmith.models.frame_transformer:FrameTransformer", {}),
    "gpt-events": ("tunesmith.models.gpt:EventGPT", {}),
}

#: the audio domain's families (``tunesmith audio ...``): same contract, data from
#: :mod:`tunesmith.data.audio` instead of a symbolic representation
AUDIO_FAMILIES: dict[str, tuple[str, dict]] = {
    "audio-wavenet": ("tunesmith.models.audio_wavenet:AudioWaveNet", {}),
    "vq-vae": ("tunesmith.models.vq_vae:VQVAE", {}),
}


def family_names() -> list[str]:
    return sorted(FAMILIES)


def audio_family_names() -> list[str]:
    return sorted(AUDIO_FAMILIES)


def all_family_names() -> list[str]:
    """Every registered name: the symbolic families, then the audio ones."""
    return family_names() + audio_family_names()


def listing(names: list[str] | None = None) -> list[dict]:
    """One JSON-ready row per family (all of them by default): its ``model`` name,
    ``domain`` (symbolic | audio), the ``representation`` it reads, the ``data`` it
    takes, the ``train`` command and its ``options`` with their defaults. Imports the
    families (and torch)."""
    rows = []
    for name in names or all_family_names():
        check_name(name)
        cls = get_family(name)
        config = cls.config_class.from_dict(preset_options(name))
        audio = name in AUDIO_FAMILIES
        data = cls.data_help or (f"a symbolic corpus or folder of MIDI/ABC/MusicXML, "
                                 f"encoded as {cls.representation}")
        rows.append({"model": name, "domain": "audio" if audio else "symbolic",
                     "representation": cls.representation, "data": data,
                     "train": "tunesmith audio train" if audio else "tunesmith train",
                     "options": config.to_dict()})
    return rows


def check_name(name: str) -> str:
    """``name`` when it is registered, else a ConfigError listing the names (no import)."""
    _entry(name)
    return name


def get_family(name: str) -> type[GenerativeModel]:
    """The model class registered under ``name``."""
    target, _preset = _entry(name)
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def preset_options(name: str) -> dict:
    """The options a registry name fixes (e.g. ``melody-rnn-lookback`` -> mode=lookback)."""
    return dict(_entry(name)[1])


def _entry(name: str) -> tuple[str, dict]:
    entry = FAMILIES.get(name) or AUDIO_FAMILIES.get(name)
    if entry is None:
        raise ConfigError(
            f"unknown model {name!r}; available: {', '.join(family_names()) or '(none)'} "
            f"(audio: {', '.join(audio_family_names())})"
        )
    return entry


def build(name: str, options: dict | None = None, data_info: DataInfo | None = None):
    """Build a family's model from option overrides and the data's sizes."""
    cls = get_family(name)
    config = cls.config_class.from_dict({**preset_options(name), **(options or {})})
    if data_info is not None:
        if not isinstance(data_info, DataInfo):
            raise TypeError(f"data_info must be a DataInfo, got {type(data_info).__name__} "
                            "(DataInfo.read converts a stored dict)")
        if data_info.representation != cls.representation:
            raise ConfigError(
                f"model {name!r} needs the {cls.representation!r} representation, "
                f"but the data is {data_info.representation!r}"
            )
        config = cls.config_for_data(config, data_info)
    return cls(config)
