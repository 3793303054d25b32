"""The studio's operations on every registered family (in process, tiny checkpoints), and
the conditional resampling of a bar range (:mod:`tunesmith.generation.infill`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from test_families import INFOS, TINY_OPTIONS, build_tiny
from tunesmith.generation.infill import resample_range, step_log_probs
from tunesmith.generation.sampling import SamplingControls
from tunesmith.models import registry
from tunesmith.studio.session import Studio, StudioError
from tunesmith.training.checkpoint import save_checkpoint


def studio_for(name: str, tmp_path) -> Studio:
    model, info = build_tiny(name)
    folder = save_checkpoint(tmp_path / name, model, model_name=name, data_info=info)
    return Studio([str(folder)], tmp_path / "out")


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_every_family_generates_and_continues_or_says_why_not(name, tmp_path):
    studio = studio_for(name, tmp_path)
    info = studio.describe(name)
    assert info["family"] == name
    piece = studio.generate({"model": name, "bars": 2, "seed": 0})
    assert (tmp_path / "out" / "pieces" / f"{piece['id']}.wav").is_file()
    assert piece["bars"] > 0
    if info["fixed_bars"]:
        assert piece["bars"] == info["fixed_bars"]  # a MusicVAE phrase
    elif info["steps_per_bar"]:
        assert piece["bars"] == 2
    if info["can_continue"]:
        longer = studio.continue_piece({"piece": piece["id"], "bars": 1, "seed": 1})
        before = studio.pieces[piece["id"]].array
        after = studio.pieces[longer["id"]].array
        assert len(after) > len(before) and np.array_equal(after[: len(before)], before)
    else:
        with pytest.raises(StudioError, match="does not continue"):
            studio.continue_piece({"piece": piece["id"], "bars": 1})


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_every_family_regenerates_bars_keeping_the_rest_or_says_why_not(name, tmp_path):
    studio = studio_for(name, tmp_path)
    info = studio.describe(name)
    piece = studio.generate({"model": name, "bars": 3, "seed": 0})
    if info["regenerate"] is None:
        with pytest.raises(StudioError, match="cannot regenerate"):
            studio.regenerate({"piece": piece["id"], "from_bar": 1, "to_bar": 1})
        return
    again = studio.regenerate({"piece": piece["id"], "from_bar": 2, "to_bar": 2, "seed": 3,
                               "amount": 1.0})
    per_bar = info["steps_per_bar"]
    before = studio.pieces[piece["id"]].array
    after = studio.pieces[again["id"]].array
    assert after.shape == before.shape
    assert np.array_equal(after[:per_bar], before[:per_bar])
    assert np.array_equal(after[2 * per_bar:], before[2 * per_bar:])
    expected = {"conditional": "both sides", "interpolation": "interpolated"}[
        info["regenerate"]]
    assert expected in again["note"]


def _wavenet(tmp_path=None):
    torch.manual_seed(0)
    info = INFOS["pianoroll"]
    model = registry.build("wavenet", {"levels": 2, "channels": 8, "skip_channels": 8,
                                       "head": "voices"}, info)
    return model.eval(), {"representation": "pianoroll", "data_info": info.to_dict()}


def test_the_chosen_candidate_is_weighted_by_the_likelihood_of_the_right_side():
    model, meta = _wavenet()
    piece = model.generate(1, 32, SamplingControls(seed=0))[0].numpy()  # (32, K)
    out, facts = resample_range(model, meta, piece, 8, 16, SamplingControls(seed=4),
                                candidates=6)
    assert facts["candidates"] == 6 and 1 <= facts["effective_candidates"] <= 6
    assert np.array_equal(out[:8], piece[:8]) and np.array_equal(out[16:], piece[16:])
    with torch.no_grad():
        log_probs = step_log_probs(model, torch.as_tensor(out)[None])[0]  # (T,)
    assert float(log_probs[16:].sum()) == pytest.approx(facts["log_weight"], abs=1e-3)


def test_one_candidate_is_plain_resampling_after_the_bars_before():
    model, meta = _wavenet()
    piece = model.generate(1, 24, SamplingControls(seed=0))[0].numpy()
    out, facts = resample_range(model, meta, piece, 8, 16, SamplingControls(seed=7),
                                candidates=1)
    primed = model.generate(1, 16, SamplingControls(seed=7),
                            prime=torch.as_tensor(piece[:8])[None])[0].numpy()
    assert facts["candidates"] == 1
    assert np.array_equal(out[8:16], primed[8:16]) and np.array_equal(out[16:], piece[16:])


def _sticky_model(persistence_logit: float = 2.0):
    """p(x_t | x_{t-1}): every key keeps its previous state with probability
    sigmoid(persistence_logit) (0.88), independently; K = 8 keys."""
    from tiny_model import TinyFrameConfig, TinyFrameModel

    model = TinyFrameModel(TinyFrameConfig(keys=8, hidden=8, dropout=0.0)).eval()
    with torch.no_grad():
        model.inp.weight.copy_(10 * torch.eye(8))
        model.inp.bias.fill_(-5.0)  # features: +1 where the key was on, -1 where off
        model.head.proj.weight.copy_(persistence_logit * torch.eye(8))
        model.head.proj.bias.zero_()
    return model, {"representation": "pianoroll"}


def test_the_right_side_pulls_the_draw_towards_what_fits_it():
    """Left side pattern A, right side pattern B: left-only draws of the range mostly keep
    A up to its last step, draws weighted by the right side end closer to B."""
    model, meta = _sticky_model()
    a = np.array([1, 1, 1, 1, 0, 0, 0, 0], np.float32)
    piece = np.stack([a] * 8 + [np.zeros(8, np.float32)] * 8 + [1 - a] * 8)  # (24, 8)
    distance = {}
    for candidates in (1, 16):
        values = []
        for seed in range(20):
            out, _ = resample_range(model, meta, piece, 8, 16, SamplingControls(seed=seed),
                                    candidates=candidates)
            values.append(np.abs(out[15] - piece[16]).sum())  # keys that must flip at 16
        distance[candidates] = float(np.mean(values))
    assert distance[16] < distance[1] - 1, distance


def test_a_range_outside_the_piece_is_refused():
    model, meta = _wavenet()
    piece = np.zeros((16, model.config.keys), np.float32)
    from tunesmith.errors import ConfigError

    with pytest.raises(ConfigError, match="not inside"):
        resample_range(model, meta, piece, 8, 20, SamplingControls())
