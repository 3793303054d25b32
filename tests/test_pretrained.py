"""Shipped pretrained models: each loads and generates offline, stays small and has a card;
``pretrained:NAME`` works wherever a checkpoint does; an unknown name is one line."""

from __future__ import annotations

import json
import socket

import pytest

from cli_helpers import run_cli
from tiny_model import register_tiny_families, save_tiny_checkpoint
from tunesmith import pretrained
from tunesmith.errors import ConfigError
from tunesmith.training import checkpoint

SHIPPED = pretrained.names()
CARD_FIELDS = ("name", "corpus", "family", "representation", "tracks", "data", "training",
               "held_out_nll", "quality", "tunesmith_commit")


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a pretrained model tried to use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def fake_shipped(tmp_path, monkeypatch):
    """A tiny checkpoint shipped as ``pretrained:tiny`` (the mechanism, whatever ships)."""
    register_tiny_families(monkeypatch)
    root = tmp_path / "pretrained"
    folder = save_tiny_checkpoint(root / "tiny", corpus={"corpus": "tiny"})
    card = {"name": "tiny", "corpus": "tiny", "family": "tiny-frames",
            "representation": "pianoroll", "tracks": ["Upper", "Lower"],
            "held_out_nll": {"value": 1.25, "unit": "nats/frame"},
            "quality": {"voice_activity": {"Upper": 0.9, "Lower": 0.8}, "within_band": 7,
                        "judged": 9, "two_sample_accuracy": 0.61, "two_sample_band": 0.55}}
    (folder / pretrained.CARD_FILE).write_text(json.dumps(card))
    (root / "not-a-model").mkdir()  # a stray folder is not listed
    monkeypatch.setattr(checkpoint, "PRETRAINED_DIR", root)
    return folder


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_loads_and_generates_offline(name, tmp_path, offline):
    from tunesmith.generation.generate import generate_from_checkpoint
    from tunesmith.music import load

    _model, meta = pretrained.load(name)
    assert meta["model_name"] == pretrained.card(name)["family"]
    paths = generate_from_checkpoint(f"pretrained:{name}", n=1, bars=2, out_dir=tmp_path,
                                     wav=False, png=False, seed=0)
    score = load(paths[0])
    assert score.note_num() > 0


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_is_small_and_has_a_card(name):
    assert pretrained.size_bytes(name) <= pretrained.MAX_BYTES
    card = pretrained.card(name)
    assert all(field in card for field in CARD_FIELDS)
    assert card["held_out_nll"]["split"] == "test" and card["held_out_nll"]["unit"]
    # a model comes from `train` or from `bench nll` (the same trainer, a benchmark corpus)
    assert card["training"]["command"].startswith(("tunesmith train", "tunesmith bench nll"))
    assert card["data"]["source"]
    quality = card["quality"]  # tracks matched by name, or by position ("track 1")
    assert 0 < len(quality["voice_activity"]) <= len(card["tracks"])
    assert quality["judged"] and quality["two_sample_accuracy"] is not None


def test_pretrained_name_resolves_in_the_checkpoint_loader(fake_shipped, tmp_path):
    assert pretrained.names() == ["tiny"]
    assert checkpoint.resolve_checkpoint("pretrained:tiny") == fake_shipped
    assert checkpoint.resolve_checkpoint(tmp_path / "run") == tmp_path / "run"
    _model, meta = checkpoint.load_checkpoint("pretrained:tiny")
    assert meta["model_name"] == "tiny-frames"
    assert pretrained.card("tiny")["corpus"] == "tiny"


def test_generate_cli_takes_a_pretrained_name(fake_shipped, tmp_path, offline):
    out = tmp_path / "out"
    assert run_cli(["generate", "--checkpoint", "pretrained:tiny", "--n", "1", "--bars", "1",
                    "--no-wav", "--no-png", "--out", out]) == 0
    assert (out / "sample_1.mid").is_file()


def test_unknown_pretrained_name_is_one_line_listing_the_shipped(fake_shipped, tmp_path,
                                                                 capsys):
    with pytest.raises(ConfigError, match=r"unknown pretrained model 'nope'; available: tiny$"):
        checkpoint.load_checkpoint("pretrained:nope")
    assert run_cli(["generate", "--checkpoint", "pretrained:nope", "--out", tmp_path]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "available: tiny" in err


def test_models_pretrained_lists_every_shipped_model(fake_shipped, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # Rich folds cells to the terminal's width
    assert run_cli(["models", "--pretrained"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "tiny-frames" in out and "1.250" in out
    assert "0.80–0.90" in out and "7/9" in out and "0.610" in out


def test_models_pretrained_lists_what_ships(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert run_cli(["models", "--pretrained"]) == 0
    out = capsys.readouterr().out
    for name in SHIPPED:
        assert name in out


@pytest.mark.parametrize("name", SHIPPED)
def test_size_guard_and_empty_primer_read_the_keys_of_the_stored_data_info(name):
    from tunesmith.errors import ConfigError as Refused
    from tunesmith.generation.generate import check_sample_size
    from tunesmith.studio.session import empty_array

    _model, meta = pretrained.load(name)
    info = checkpoint.checkpoint_data_info(meta)
    empty = empty_array(meta)
    assert empty.shape[0] == 0
    if empty.ndim == 2:  # frames: one column per key of the data, not a guessed 0 or 1
        assert empty.shape[1] == info.keys
        steps = 2**32 // (4 * info.keys) + 1  # one piece just over 4 GiB of float32 frames
        with pytest.raises(Refused, match="GiB of samples"):
            check_sample_size(meta, 1, steps)
        check_sample_size(meta, 1, steps // info.keys)  # what a 1-key count would allow
