"""Checkpoints: self-contained folders, and a clear CheckpointError for every bad one."""

from __future__ import annotations

import json
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from tiny_model import (
    TINY_INFO,
    TinyFrameConfig,
    TinyFrameModel,
    register_tiny_families,
    save_tiny_checkpoint,
)
from tunesmith.errors import CheckpointError
from tunesmith.training.checkpoint import load_checkpoint, read_checkpoint_config


@pytest.fixture(autouse=True)
def _tiny_registry(monkeypatch):
    register_tiny_families(monkeypatch)


@pytest.fixture
def folder(tmp_path):
    return save_tiny_checkpoint(tmp_path / "ckpt", corpus={"corpus": "tiny"},
                                training={"epochs": 3})


def test_config_records_what_rebuilds_the_model(folder):
    meta = read_checkpoint_config(folder)
    assert meta["model_name"] == "tiny-frames" and meta["representation"] == "pianoroll"
    assert meta["model_config"] == {"keys": 8, "hidden": 16, "dropout": 0.1, "group_size": 4}
    assert meta["repr_config"] == TINY_INFO.repr_config
    assert meta["training"] == {"epochs": 3} and "torch" in meta["versions"]
    assert meta["n_parameters"] == sum(p.numel() for p in TinyFrameModel(
        TinyFrameConfig(keys=8, group_size=4)).parameters())
    model, _ = load_checkpoint(folder)
    assert not model.training


def test_missing_folder_and_files(tmp_path, folder):
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        load_checkpoint(tmp_path / "nowhere")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors: no such file"):
        load_checkpoint(folder)


def test_a_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(path)


def test_corrupt_weights(folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_checkpoint(folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_checkpoint(folder)


@pytest.mark.parametrize("change, match", [
    (lambda m: m.update(model_name="no-such-model"), "unknown model 'no-such-model'"),
    (lambda m: m["model_config"].update(hiden=3), "unknown (model )?option"),
    (lambda m: m["model_config"].update(hidden=32), "has shape"),
    (lambda m: m.pop("model_config"), "missing field 'model_config'"),
])
def test_config_that_does_not_fit(folder, change, match):
    meta = json.loads((folder / "config.json").read_text())
    change(meta)
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(folder)


def test_invalid_json(folder):
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(folder)


def _edit_weights(folder, change):
    tensors = dict(load_file(str(folder / "model.safetensors")))
    change(tensors)
    save_file(tensors, str(folder / "model.safetensors"))


@pytest.mark.parametrize("change, match", [
    (lambda t: t.update({"inp.weight": t["inp.weight"].double()}),
     r"weight inp\.weight is float64, expected float32"),
    (lambda t: t.update({"inp.weight": t["inp.weight"].to(torch.int8)}),
     r"weight inp\.weight is int8, expected float32"),
    (lambda t: t["head.proj.bias"].__setitem__(0, float("nan")),
     r"weight head\.proj\.bias holds NaN or infinite values"),
    (lambda t: t["start"].__setitem__(0, float("inf")), r"weight start holds NaN or infinite"),
    (lambda t: t.update(junk=torch.zeros(3)), r"weights junk do not belong to this model"),
])
def test_weights_of_the_wrong_kind_are_refused(folder, change, match):
    _edit_weights(folder, change)
    with pytest.raises(CheckpointError, match=match) as error:
        load_checkpoint(folder)
    assert str(error.value).startswith(str(folder / "model.safetensors"))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("hidden, match", [
    # (8 + 1 + 8) x 1e12 weights: 68 TB of float32
    (10**12, r"the config asks for 1\.7e\+13 parameters \(68\.0 TB of weights\); this"),
    (2**62, r"the config asks for sizes beyond what PyTorch can index"),  # its overflow errors
    (10**19, r"the config asks for sizes beyond what PyTorch can index"),
])
def test_a_config_asking_for_terabytes_is_refused_before_allocating(folder, hidden, match):
    meta = json.loads((folder / "config.json").read_text())
    meta["model_config"]["hidden"] = hidden
    (folder / "config.json").write_text(json.dumps(meta))
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"config\.json: " + match) as error:
        load_checkpoint(folder)
    assert time.perf_counter() - start < 5 and "\n" not in str(error.value)


def test_model_name_must_be_a_string(folder):
    meta = json.loads((folder / "config.json").read_text())
    meta["model_name"] = 3
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="'model_name' must be str"):
        load_checkpoint(folder)
