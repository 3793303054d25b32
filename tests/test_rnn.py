"""LSTM/GRU piano-roll family: training step, causality, cached generation."""

from __future__ import annotations

import pytest
import torch

from tiny_model import roll_info
from tunesmith.errors import ConfigError
from tunesmith.models import registry
from tunesmith.models.rnn import FrameRNN, RNNConfig
from tunesmith.models.sampling import SamplingControls

KEYS = 6


def tiny(cell="lstm", head="bernoulli") -> FrameRNN:
    torch.manual_seed(0)
    return FrameRNN(RNNConfig(keys=KEYS, hidden=8, layers=2, cell=cell, head=head, nade_hidden=4))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("head", ["bernoulli", "nade"])
def test_forward_backward_gives_every_parameter_a_gradient(cell, head):
    model = tiny(cell, head)
    frames = (torch.rand(3, 7, KEYS) > 0.6).float()
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    out = model.loss({"frames": frames, "mask": mask})
    assert out["loss"].isfinite() and out["loss"] > 0
    out["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_frame_log_prob_is_causal_in_time():
    model = tiny(head="nade").eval()
    frames = (torch.rand(2, 8, KEYS) > 0.5).float()
    changed = frames.clone()
    changed[:, 5:] = 1 - changed[:, 5:]
    a, b = model.frame_log_prob(frames), model.frame_log_prob(changed)
    assert torch.allclose(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_threshold_generation_matches_the_full_forward_pass():
    """Step-by-step sampling with carried state = the teacher-forced network's choices."""
    model = tiny().eval()
    with torch.no_grad():
        model.head.proj.bias.normal_(0, 2)
    prime = (torch.rand(2, 3, KEYS) > 0.5).float()
    out = model.generate(2, 9, SamplingControls(threshold=0.5), prime=prime)
    assert out.shape == (2, 9, KEYS)
    assert torch.equal(out[:, :3], prime)
    previous = torch.cat([torch.zeros_like(out[:, :1]), out[:, :-1]], dim=1)
    h, _ = model.features(previous)
    expected = (torch.sigmoid(model.head.logits(h)) > 0.5).float()
    assert torch.equal(out[:, 3:], expected[:, 3:])


def test_registry_presets_and_bad_cell():
    assert registry.build("gru", {"hidden": 4, "keys": 5}).config.cell == "gru"
    assert registry.build("lstm-nade", {"hidden": 4, "keys": 5}).config.head == "nade"
    lstm = registry.build("lstm", {}, roll_info(["Piano"], 21, 108))
    assert 250_000 < lstm.n_parameters() < 350_000  # Bai et al.'s LSTM size on JSB
    with pytest.raises(ConfigError, match="cell"):
        FrameRNN(RNNConfig(cell="rnn"))


@pytest.mark.parametrize("family", ["lstm", "frame-transformer"])
def test_voices_head_reads_tracks_from_prepared_info_and_samples_one_note_per_voice(family):
    """The data's tracks and pitches per track (DataInfo) size the head; the full model's
    last frame is a normalised distribution over the (P+1)^V voice states."""
    info = roll_info(pitch_low=60, pitch_high=62)  # 2 tracks × 3 pitches
    options = {"head": "voices", "nade_hidden": 4}
    options.update({"hidden": 8} if family == "lstm" else
                   {"d_model": 8, "n_heads": 2, "n_layers": 1, "d_ff": 16, "dropout": 0.0})
    torch.manual_seed(0)
    model = registry.build(family, options, info).double().eval()
    assert model.config.pitches_per_track == 3
    assert (model.head.voices, model.head.pitches) == (2, 3)
    prefix = (torch.rand(1, 4, 6) > 0.7).double()
    total = 0.0
    for s0 in range(4):
        for s1 in range(4):
            frame = torch.zeros(1, 1, 6, dtype=torch.float64)
            if s0 < 3:
                frame[0, 0, s0] = 1
            if s1 < 3:
                frame[0, 0, 3 + s1] = 1
            total += model.frame_log_prob(torch.cat([prefix, frame], 1))[0, -1].exp().item()
    assert total == pytest.approx(1.0, abs=1e-9)
    out = model.float().generate(3, 12, SamplingControls(seed=0))
    assert out.reshape(3, 12, 2, 3).sum(-1).max() == 1
