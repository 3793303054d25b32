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


def _with_sampling(folder, controls: dict) -> None:
    """Give the fake shipped model's card a ``sampling`` entry."""
    card_path = folder / pretrained.CARD_FILE
    card = json.loads(card_path.read_text())
    card["sampling"] = {"controls": controls, "chosen": "in a test"}
    card_path.write_text(json.dumps(card))


def test_a_cards_sampling_is_the_default_of_generate_evaluate_studio_and_demo(
        fake_shipped, tmp_path, monkeypatch):
    """What a card's ``sampling.controls`` holds is how generate (CLI and API), the studio
    and the demo draw the model unless told otherwise; an explicit control still wins."""
    from tunesmith.cli.demo import DEMO_SAMPLING, demo_sampling
    from tunesmith.errors import CheckpointError
    from tunesmith.generation import generate as generation
    from tunesmith.studio.session import Studio

    assert checkpoint.sampling_defaults("pretrained:tiny") == {}  # a card without sampling
    card = {"temperature": 0.5, "max_sustain_steps": 3, "max_notes_per_step": 1}
    _with_sampling(fake_shipped, card)
    assert checkpoint.sampling_defaults("pretrained:tiny") == card

    seen = []
    original = generation.sample_arrays

    def spy(model, meta, n, steps, controls, *args):
        seen.append(controls)
        return original(model, meta, n, steps, controls, *args)

    monkeypatch.setattr(generation, "sample_arrays", spy)
    generation.generate_from_checkpoint("pretrained:tiny", n=1, bars=1, out_dir=tmp_path / "a",
                                        wav=False, png=False, seed=3)
    assert (seen[-1].temperature, seen[-1].max_sustain_steps, seen[-1].seed) == (0.5, 3, 3)
    run_cli(["generate", "--checkpoint", "pretrained:tiny", "--n", "1", "--bars", "1",
             "--no-wav", "--no-png", "--out", str(tmp_path / "b")])
    assert (seen[-1].temperature, seen[-1].max_sustain_steps,
            seen[-1].max_notes_per_step) == (0.5, 3, 1)
    run_cli(["generate", "--checkpoint", "pretrained:tiny", "--n", "1", "--bars", "1",
             "--temperature", "1.2", "--max-sustain", "0", "--no-wav", "--no-png",
             "--out", str(tmp_path / "c")])
    assert (seen[-1].temperature, seen[-1].max_sustain_steps,
            seen[-1].max_notes_per_step) == (1.2, 0, 1)

    studio = Studio(["pretrained:tiny"], tmp_path / "studio")
    entry = studio.entry("pretrained:tiny")
    assert studio.describe("pretrained:tiny")["sampling"] == {"top_p": 1.0, **card}
    page = studio.controls({}, entry)  # the page sent nothing: the card's
    assert (page.temperature, page.max_sustain_steps) == (0.5, 3)
    page = studio.controls({"temperature": "0.7", "top_p": "0.9"}, entry)
    assert (page.temperature, page.top_p, page.max_sustain_steps) == (0.7, 0.9, 3)

    assert demo_sampling(checkpoint.resolve_checkpoint("pretrained:tiny")) == \
        {**DEMO_SAMPLING, **card}

    _with_sampling(fake_shipped, {"temperature": 0.5, "warmth": 2})
    with pytest.raises(CheckpointError, match="warmth"):
        checkpoint.sampling_defaults("pretrained:tiny")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_sampling_defaults_are_valid_controls(name):
    from tunesmith.models.sampling import SamplingControls

    defaults = checkpoint.sampling_defaults(f"pretrained:{name}")
    controls = SamplingControls(**defaults)
    assert {k: getattr(controls, k) for k in defaults} == defaults
    sampling = pretrained.card(name).get("sampling")
    if sampling is not None:  # a card that names its sampling says how it was chosen
        assert sampling["chosen"]
