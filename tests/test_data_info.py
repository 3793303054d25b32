"""DataInfo: the typed contract between prepared data and models, its JSON form, and the
conversion of the info dicts that caches and checkpoints held before it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tiny_model import TINY_INFO, TINY_INFO_LEGACY, register_tiny_families, save_tiny_checkpoint
from tunesmith.errors import CheckpointError, ConfigError
from tunesmith.representations import events, melody, pianoroll
from tunesmith.representations.info import DataInfo
from tunesmith.training.checkpoint import checkpoint_data_info, load_checkpoint

SATB = ["Soprano", "Alto", "Tenor", "Bass"]

# ``info`` of meta.json in caches of format 3 (written before DataInfo), verbatim
OLD_CACHE_INFO = {
    "pianoroll": {
        "corpus": "bach-chorales", "representation": "pianoroll",
        "repr_config": {"resolution": 4, "pitch_low": 36, "pitch_high": 84, "velocity": False,
                        "onset": False, "track_names": SATB, "programs": [52, 52, 52, 52],
                        "is_drum": [False] * 4, "tempo": 120.0, "merge_tracks": False},
        "n_tracks": 4, "n_pitches": 49, "keys": 196, "track_names": SATB,
        "programs": [52, 52, 52, 52], "steps_per_quarter": 4, "pitch_low": 36,
        "pitch_high": 84, "onset": False, "n_pieces": {"train": 2, "valid": 1, "test": 0},
        "n_skipped": 20, "transpose_to_c": False,
        "split_source": "hash of piece id (80/10/10)"},
    "melody": {
        "corpus": "bach-chorales", "representation": "melody",
        "repr_config": {"steps_per_quarter": 4, "min_pitch": 48, "max_pitch": 84,
                        "polyphony": "highest", "transpose_to_range": True, "track": "Soprano"},
        "vocab_size": 38, "steps_per_quarter": 4, "steps_per_bar": 16, "min_pitch": 48,
        "max_pitch": 84, "n_pieces": {"train": 2, "valid": 1, "test": 0}, "n_skipped": 20,
        "transpose_to_c": False, "split_source": "hash of piece id (80/10/10)"},
    "events": {
        "corpus": "bach-chorales", "representation": "events",
        "repr_config": events.EventsConfig().to_dict(), "vocab_size": 485,
        "tokenizer": events.EventsConfig().to_dict(),
        "n_pieces": {"train": 2, "valid": 1, "test": 0}, "n_skipped": 20,
        "transpose_to_c": False, "split_source": "hash of piece id (80/10/10)"},
}


def _satb() -> DataInfo:
    cfg = pianoroll.PianorollConfig(pitch_low=36, pitch_high=84, track_names=SATB,
                                    programs=[52] * 4, is_drum=[False] * 4)
    return pianoroll.info(cfg)


def _without_repr_config(info: DataInfo) -> dict:
    return {k: v for k, v in info.to_dict().items() if k != "repr_config"}


# ---- the dataclass ------------------------------------------------------------------------
def test_each_representation_writes_its_info():
    roll = _satb()
    assert (roll.n_tracks, roll.n_pitches, roll.keys, roll.pitch_low) == (4, 49, 196, 36)
    assert (roll.steps_per_quarter, roll.steps_per_bar, roll.vocab_size) == (4, 16, 0)
    tune = melody.info(melody.MelodyConfig(), steps_per_bar=12, track="Soprano")
    assert (tune.pitch_low, tune.pitch_high, tune.vocab_size) == (48, 83, 38)
    assert tune.track_names == ("Soprano",) and tune.steps_per_bar == 12
    tokens = events.info(events.EventsConfig())
    assert (tokens.pitch_low, tokens.pitch_high, tokens.steps_per_quarter) == (21, 108, None)
    assert tokens.vocab_size == events.vocab_size(events.EventsConfig())
    assert tokens.n_tracks == 0  # Program tokens carry the tracks
    with pytest.raises(dataclasses.FrozenInstanceError):
        roll.pitch_low = 21


@pytest.mark.parametrize("info", [
    _satb(), melody.info(melody.MelodyConfig()), events.info(events.EventsConfig())],
    ids=["pianoroll", "melody", "events"])
def test_json_round_trip(info):
    text = json.dumps(info.to_dict())
    assert DataInfo.from_dict(json.loads(text)) == info
    assert DataInfo.read(json.loads(text)) == info


@pytest.mark.parametrize("change, message", [
    ({"keys": 196}, "unknown key(s) keys"),
    ({"pitch_low": None}, "pitch_low must be int"),
    ({"pitch_low": True}, "pitch_low must be int"),
    ({"programs": [52, 52, "52", 52]}, "programs must be a list of int"),
    ({"is_drum": [0, 0, 0, 0]}, "is_drum must be a list of bool"),
    ({"version": 2}, "version 2"),
    ({"representation": "abc"}, "unknown representation"),
    ({"pitch_high": 30}, "pitch range"),
    ({"programs": [52]}, "one entry per track"),
    ({"vocab_size": 10}, "no vocabulary"),
    ({"steps_per_quarter": None}, "steps_per_quarter must be >= 1"),
])
def test_from_dict_refuses_bad_json_in_one_line(change, message):
    data = {**_satb().to_dict(), **change}
    with pytest.raises(ConfigError, match=r"^data info: ") as error:
        DataInfo.from_dict(data)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_from_dict_refuses_missing_keys():
    data = _satb().to_dict()
    del data["track_names"]
    with pytest.raises(ConfigError, match=r"missing key\(s\) track_names"):
        DataInfo.from_dict(data)


# ---- older caches and checkpoints ---------------------------------------------------------
@pytest.mark.parametrize("representation", sorted(OLD_CACHE_INFO))
def test_old_cache_infos_convert_to_what_the_representation_writes_today(representation):
    old = OLD_CACHE_INFO[representation]
    now = {"pianoroll": _satb(),
           "melody": melody.info(melody.MelodyConfig(), 16, "Soprano"),
           "events": events.info(events.EventsConfig())}[representation]
    converted = DataInfo.read(old)  # no version: the legacy reader
    assert converted == dataclasses.replace(now, repr_config=old["repr_config"])


def test_old_spellings_and_checks():
    bench = {"representation": "pianoroll", "tracks": 1, "pitches": 88, "keys": 88,
             "lowest_pitch": 21, "steps_per_quarter": 1}  # what `bench nll` built models from
    info = DataInfo.from_legacy_dict(bench)
    assert (info.n_tracks, info.n_pitches, info.pitch_low, info.steps_per_bar) == (1, 88, 21, 4)
    assert info.track_names == ("Track 1",)
    with pytest.raises(ConfigError, match="no lowest pitch recorded"):
        DataInfo.from_legacy_dict({"representation": "pianoroll", "keys": 88,
                                   "steps_per_quarter": 4})
    with pytest.raises(ConfigError, match="keys 100 is not 1 tracks x 88 pitches"):
        DataInfo.from_legacy_dict({**bench, "keys": 100})
    with pytest.raises(ConfigError, match="unknown representation"):
        DataInfo.from_legacy_dict({"keys": 88})


def test_an_old_checkpoint_loads_and_generates(tmp_path, monkeypatch):
    from tunesmith.generation.generate import generate_from_checkpoint, grid_facts

    register_tiny_families(monkeypatch)
    folder = save_tiny_checkpoint(tmp_path / "old")
    config = json.loads((folder / "config.json").read_text())
    assert config["data_info"] == TINY_INFO.to_dict()
    config["data_info"] = TINY_INFO_LEGACY  # as the checkpoints of format 1 hold it
    config["repr_config"] = TINY_INFO_LEGACY["repr_config"]
    (folder / "config.json").write_text(json.dumps(config))
    _, meta = load_checkpoint(folder)
    info = checkpoint_data_info(meta)
    assert _without_repr_config(info) == _without_repr_config(TINY_INFO)
    assert grid_facts(meta)["steps_per_bar"] == 8
    paths = generate_from_checkpoint(folder, n=1, bars=1, seed=0, out_dir=tmp_path / "out",
                                     wav=False, png=False)
    assert paths[0].is_file()

    config["data_info"] = {**TINY_INFO.to_dict(), "pitch_low": "60"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config\.json: data info: pitch_low must be int"):
        load_checkpoint(folder)


def test_an_old_cache_still_loads(tmp_path):
    import shutil

    from symusic import Note, Score, Track

    from tunesmith.data.prepare import load_prepared, prepare

    folder = tmp_path / "songs"
    folder.mkdir()
    for name, pitches in (("a", [60, 64, 67]), ("b", [62, 65])):
        score, track = Score(480), Track("piano", 0, False)
        track.notes.extend(Note(i * 480, 480, p, 80) for i, p in enumerate(pitches))
        score.tracks.append(track)
        score.dump_midi(str(folder / f"{name}.mid"))
    data = prepare(f"folder:{folder}", "pianoroll", {"resolution": 2}, workers=1,
                   progress=False, report=False)
    old = tmp_path / "old-cache"
    shutil.copytree(data.cache_dir, old)
    meta = json.loads((old / "meta.json").read_text())
    assert meta["format"] == 4 and meta["info"]["version"] == 1
    legacy = {"corpus": meta["corpus"], "representation": "pianoroll",
              "repr_config": meta["repr_config"], "n_tracks": 1, "n_pitches": 88, "keys": 88,
              "track_names": ["Piano"], "programs": [0], "steps_per_quarter": 2,
              "pitch_low": 21, "pitch_high": 108, "onset": False,
              "n_pieces": {"train": 2, "valid": 0, "test": 0}, "n_skipped": 0,
              "transpose_to_c": True, "split_source": "hash of piece id (80/10/10)"}
    for key in ("format", "transpose_to_c", "split_source"):  # format 3 kept them in info
        del meta[key]
    meta["info"] = legacy
    (old / "meta.json").write_text(json.dumps(meta))
    loaded = load_prepared(old)
    assert loaded.info == data.info
    assert loaded.transpose_to_c and loaded.split_source == "hash of piece id (80/10/10)"
    assert loaded.n_pieces == data.n_pieces
