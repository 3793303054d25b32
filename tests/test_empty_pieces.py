"""A generation that yields a piece without notes warns, naming the file and the likely
cause, and the CLI summary counts the empty pieces (generate, gan, vae share the check)."""

from __future__ import annotations

import warnings

import pytest

from cli_helpers import run_cli
from test_families import TINY_OPTIONS
from tunesmith.generation.generate import EmptyPieceWarning, generate_from_checkpoint
from tunesmith.models import registry
from tunesmith.models.sampling import SamplingControls
from tunesmith.training.checkpoint import save_checkpoint


@pytest.fixture
def midinet_checkpoint(tmp_path):
    from tiny_model import roll_info

    info = roll_info(["Soprano", "Alto", "Tenor", "Bass"], 48, 71, resolution=2,
                     programs=[52] * 4)
    model = registry.build("midinet", TINY_OPTIONS["midinet"], info)
    return save_checkpoint(tmp_path / "ckpt", model, model_name="midinet", data_info=info)


def test_gan_generation_of_empty_pieces_warns_with_file_and_cause(midinet_checkpoint, tmp_path,
                                                                   capsys):
    out = tmp_path / "out"
    assert run_cli(["gan", "interpolate", "--checkpoint", midinet_checkpoint, "--steps", "3",
                    "--threshold", "0.9999999", "--seed", "0", "--out", out]) == 0
    captured = capsys.readouterr()
    text = (captured.err + captured.out).replace("\n", "")
    assert text.count("holds no notes") == 3
    assert str(out / "gan-interpolation-00.mid") in text
    assert "threshold 0.9999999 is above every note's probability" in text
    assert "3 of 3 generated pieces hold no notes" in text

    assert run_cli(["gan", "interpolate", "--checkpoint", midinet_checkpoint, "--steps", "3",
                    "--seed", "0", "--out", out]) == 0  # MidiNet's own default: notes
    assert "hold no notes" not in "".join(capsys.readouterr())


def test_generate_from_checkpoint_warns_for_each_empty_piece(midinet_checkpoint, tmp_path):
    controls = SamplingControls(threshold=0.9999999)
    with pytest.warns(EmptyPieceWarning) as caught:
        paths = generate_from_checkpoint(midinet_checkpoint, n=2, bars=1, controls=controls,
                                         out_dir=tmp_path / "gen", wav=False, png=False)
    messages = [str(w.message) for w in caught if w.category is EmptyPieceWarning]
    assert len(messages) == 2 and all(p.is_file() for p in paths)
    assert str(paths[0]) in messages[0] and "threshold" in messages[0]
    assert "undertrained" in messages[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmptyPieceWarning)  # notes: no warning
        generate_from_checkpoint(midinet_checkpoint, n=2, bars=1, out_dir=tmp_path / "gen2",
                                 wav=False, png=False)


def test_generate_cli_counts_the_empty_pieces(midinet_checkpoint, tmp_path, capsys):
    assert run_cli(["generate", "--checkpoint", midinet_checkpoint, "--n", "2", "--bars", "1",
                    "--threshold", "0.9999999", "--no-wav", "--no-png",
                    "--out", tmp_path / "gen"]) == 0
    captured = capsys.readouterr()
    text = (captured.err + captured.out).replace("\n", "")
    assert text.count("holds no notes") == 2
    assert "2 of 2 generated pieces hold no notes" in text


def test_vae_sample_of_a_silent_decoder_warns(tmp_path, capsys):
    import torch

    from tiny_model import roll_info

    info = roll_info(("Upper", "Lower"), 55, 68, resolution=1)
    model = registry.build("music-vae-pianoroll", TINY_OPTIONS["music-vae-pianoroll"], info)
    with torch.no_grad():
        model.output.bias.fill_(-50.0)  # every key off: what an undertrained model can give
    checkpoint = save_checkpoint(tmp_path / "ckpt", model, model_name="music-vae-pianoroll",
                                 data_info=info)
    assert run_cli(["vae", "sample", "--checkpoint", checkpoint, "--n", "2", "--seed", "0",
                    "--out", tmp_path / "out"]) == 0
    captured = capsys.readouterr()
    text = (captured.err + captured.out).replace("\n", "")
    assert text.count("holds no notes") == 2 and "undertrained" in text
    assert "2 of 2 generated pieces hold no notes" in text
