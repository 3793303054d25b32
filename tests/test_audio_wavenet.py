"""Audio WaveNet: causality, cached = naive sampling, conditioning, training + checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from tunesmith.audio.mulaw import mu_law_encode
from tunesmith.errors import ConfigError
from tunesmith.models import registry
from tunesmith.models.audio_wavenet import (
    AudioWaveNet,
    AudioWaveNetConfig,
    _draw,
    bin_edges,
    mol_bin_log_probs,
    mol_log_prob,
)
from tunesmith.models.sampling import SamplingControls

CONDITIONINGS = {
    "none": {},
    "corpus": {"n_global_classes": 3, "global_channels": 4},
    "roll": {"local_channels": 6, "local_hop": 5, "local_hidden": 8},
    "both": {"n_global_classes": 2, "global_channels": 3, "local_channels": 6, "local_hop": 4,
             "local_hidden": 5},
    "mol": {"output": "mol", "mixtures": 3},
    "mol+roll": {"output": "mol", "mixtures": 2, "local_channels": 6, "local_hop": 5,
                 "local_hidden": 8},
}


def tiny(seed: int = 0, **options) -> AudioWaveNet:
    torch.manual_seed(seed)
    options.setdefault("zero_init_condition", False)  # conditioning that shows at once
    model = AudioWaveNet(AudioWaveNetConfig(channels=8, skip_channels=6, levels=3, blocks=2,
                                            **options))
    with torch.no_grad():  # spread the weights so that samples vary
        for p in model.parameters():
            p.mul_(3.0)
    return model.eval()


def condition_for(model: AudioWaveNet, n: int, steps: int) -> dict:
    c = model.config
    condition = {}
    if c.n_global_classes:
        condition["corpus_id"] = torch.arange(n) % c.n_global_classes
    if c.local_channels:
        frames = -(-steps // c.local_hop) + 1
        g = torch.Generator().manual_seed(5)
        condition["roll"] = (torch.rand(n, frames, c.local_channels, generator=g) < 0.4).float()
    return condition


def test_registered_and_receptive_field():
    assert "audio-wavenet" in registry.audio_family_names()
    assert "audio-wavenet" not in registry.family_names()  # symbolic tables stay symbolic
    model = registry.build("audio-wavenet", {"levels": 4, "blocks": 2})
    assert model.receptive_field == 1 + 2 * (1 + 2 + 4 + 8)


@pytest.mark.parametrize("kind", list(CONDITIONINGS))
def test_causal_sample_t_sees_only_earlier_samples(kind):
    model = tiny(**CONDITIONINGS[kind])
    steps = 40
    bins = torch.randint(0, 256, (2, steps))
    condition = condition_for(model, 2, steps)
    with torch.no_grad():
        base = model.logits(bins, condition)  # (B, Q, T): p(bin t | bins < t)
        for t in (0, 7, 25):
            changed = bins.clone()
            changed[:, t:] = 255 - changed[:, t:]
            logits = model.logits(changed, condition)
            assert torch.allclose(logits[:, :, : t + 1], base[:, :, : t + 1], atol=1e-5)
            assert not torch.allclose(logits[:, :, t + 1 :], base[:, :, t + 1 :])
        # the receptive field is exact: bin t−R reaches step t, bin t−R−1 does not
        r = model.receptive_field
        for back, reaches in ((r, True), (r + 1, False)):
            changed = bins.clone()
            changed[:, 30 - back] = 255 - changed[:, 30 - back]
            same = torch.allclose(model.logits(changed, condition)[:, :, 30], base[:, :, 30],
                                  atol=1e-5)
            assert same != reaches


@pytest.mark.parametrize("kind", list(CONDITIONINGS))
def test_cached_generation_equals_naive(kind):
    model = tiny(**CONDITIONINGS[kind])
    steps = 60
    condition = condition_for(model, 3, steps)
    controls = SamplingControls(temperature=1.0, seed=11)
    cached = model.generate(3, steps, controls, condition=condition)
    naive = model.generate_naive(3, steps, controls, condition=condition)
    windowed = model.generate_naive(3, steps, controls, condition=condition,
                                    window=model.receptive_field)
    assert torch.equal(cached, naive) and torch.equal(cached, windowed)
    assert len(torch.unique(cached)) > 10  # real samples, not a constant
    # a prime is kept, and cached = naive after it too
    prime = torch.rand(1, 9) - 0.5
    a = model.generate(3, steps, controls, prime=prime, condition=condition)
    b = model.generate_naive(3, steps, controls, prime=prime, condition=condition)
    assert torch.equal(a, b)
    assert torch.allclose(a[:, :9], prime.expand(3, -1), atol=0.02)
    # the seed decides the samples
    assert not torch.equal(cached, model.generate(3, steps, SamplingControls(seed=12),
                                                  condition=condition))


def test_conditioning_changes_the_distribution_and_is_required():
    model = tiny(**CONDITIONINGS["both"])
    audio = torch.rand(1, 30) - 0.5
    condition = condition_for(model, 1, 30)
    base = model.sample_nll(audio, condition)
    other = {**condition, "roll": 1 - condition["roll"]}
    assert not torch.allclose(model.sample_nll(audio, other), base)
    with pytest.raises(ConfigError, match="piano-roll"):
        model.sample_nll(audio, {"corpus_id": torch.tensor([0])})
    with pytest.raises(ConfigError, match="roll covers"):
        model.generate(1, 200, condition={"roll": condition["roll"][:, :2]})


def test_zero_init_conditioning_starts_as_an_unconditioned_model():
    torch.manual_seed(0)
    model = AudioWaveNet(AudioWaveNetConfig(channels=8, skip_channels=6, levels=3, blocks=1,
                                **CONDITIONINGS["both"])).eval()
    audio = torch.rand(1, 30) - 0.5
    condition = condition_for(model, 1, 30)
    other = {"corpus_id": torch.tensor([1]), "roll": 1 - condition["roll"]}
    assert torch.equal(model.sample_nll(audio, condition), model.sample_nll(audio, other))
    # ... and the conditioning weights get a gradient, so it learns to read them
    model.train()
    model.loss({"audio": audio, **condition})["loss"].backward()
    assert all(layer.cond.weight.grad.abs().sum() > 0 for layer in model.layers)


def test_bad_options_are_one_line_errors():
    with pytest.raises(ConfigError, match="bits"):
        AudioWaveNetConfig(bits=0)
    with pytest.raises(ConfigError, match="local_hop"):
        AudioWaveNetConfig(local_channels=4)
    with pytest.raises(ConfigError, match=r"unknown output .logistic.*choose one of softmax, mol"):
        AudioWaveNetConfig(output="logistic")
    with pytest.raises(ConfigError, match="mixtures"):
        AudioWaveNetConfig(output="mol", mixtures=0)


def test_mol_bins_edges_are_the_mu_law_cells():
    edges = bin_edges(8).double()
    assert len(edges) == 257 and (torch.diff(edges) > 0).all()
    inner = edges[1:-1]
    below, above = mu_law_encode(inner - 1e-7, 8), mu_law_encode(inner + 1e-7, 8)
    assert torch.equal(below, torch.arange(256)[:-1]) and torch.equal(above, torch.arange(1, 256))


def _mixtures(batch=4, k=3, steps=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logit_pi = torch.randn(batch, k, steps, generator=g)
    mean = torch.rand(batch, k, steps, generator=g) * 2.4 - 1.2  # some outside [-1, 1]
    log_scale = torch.rand(batch, k, steps, generator=g) * 14 - 10  # past both clamps
    return torch.cat([logit_pi, mean, log_scale], dim=1)  # (B, 3K, T)


def test_mol_discretised_probabilities_sum_to_one_and_match_the_cdf():
    out = _mixtures()
    edges = bin_edges(8)
    log_probs = mol_bin_log_probs(out, edges)  # (B, Q, T)
    assert log_probs.shape == (4, 256, 5)
    assert torch.allclose(log_probs.exp().sum(1), torch.ones(4, 5), atol=1e-5)
    # the gathered likelihood is the same numbers
    bins = torch.randint(0, 256, (4, 5))
    gathered = log_probs.gather(1, bins[:, None])[:, 0]
    assert torch.allclose(mol_log_prob(out, bins, edges), gathered, atol=1e-5)
    # against the mixture's CDF differenced in float64 (where that is accurate)
    logit_pi, mean, log_scale = out.double().chunk(3, dim=1)
    scale = log_scale.clamp(-9, 3).exp()
    e = edges.double().clone()
    e[0], e[-1] = -torch.inf, torch.inf
    cdf = torch.sigmoid((e[None, None, :, None] - mean[:, :, None]) / scale[:, :, None])
    direct = (torch.softmax(logit_pi, 1)[:, :, None] * torch.diff(cdf, dim=2)).sum(1)
    assert torch.allclose(log_probs.exp().double(), direct, atol=1e-5)


def test_mol_sampling_draws_in_range_where_the_mixture_puts_its_mass():
    # one narrow logistic at 0.3 and one at -0.6 with 1/4 of the weight
    out = torch.tensor([[[3.0], [0.0], [0.3], [-0.6], [-7.0], [-7.0]]])
    out[0, 1] = 3.0 - np.log(3.0)
    logits = mol_bin_log_probs(out, bin_edges(8))[:, :, 0].expand(4000, -1)
    drawn = _draw(logits, torch.rand(4000, generator=torch.Generator().manual_seed(0)), 1.0)
    assert drawn.min() >= 0 and drawn.max() <= 255
    near = {int(mu_law_encode(torch.tensor(0.3), 8)), int(mu_law_encode(torch.tensor(-0.6), 8))}
    share = np.isin(drawn.numpy(), [b + d for b in near for d in (-1, 0, 1)]).mean()
    assert share > 0.99
    assert abs((drawn < 128).float().mean().item() - 0.25) < 0.03
    audio = tiny(output="mol", mixtures=3).generate(2, 50, SamplingControls(seed=0))
    assert audio.shape == (2, 50) and audio.abs().max() <= 1


@pytest.mark.parametrize("output", ["softmax", "mol"])
def test_trains_through_the_trainer_saves_loads_and_generates(tmp_path, output):
    from tunesmith.data.audio import prepare_audio
    from tunesmith.training.audio import train_audio
    from tunesmith.training.checkpoint import load_checkpoint

    folder = tmp_path / "wavs"
    folder.mkdir()
    t = np.arange(4000) / 8000
    for i in range(8):
        soundfile.write(folder / f"{i}.wav", 0.4 * np.sin(2 * np.pi * (200 + 40 * i) * t), 8000)
    data = prepare_audio(f"folder:{folder}", 8000, progress=False, report=False)
    options = {"channels": 8, "skip_channels": 8, "levels": 3, "blocks": 1,
               "n_global_classes": 1, "global_channels": 2, "output": output, "mixtures": 4}
    run = train_audio("audio-wavenet", data, options, tmp_path / "run", window=500,
                      batch_size=4, max_steps=30, epochs=None, threads=1, lr=1e-2,
                      progress_bar=False, loggers=False, early_stopping_patience=0)
    history = __import__("json").loads((run / "history.json").read_text())["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # it learns
    model, meta = load_checkpoint(run)
    assert isinstance(model, AudioWaveNet) and meta["corpus"]["sample_rate"] == 8000
    assert model.config.sample_rate == 8000 and model.config.output == output
    audio = model.generate(2, 300, SamplingControls(seed=0))
    assert audio.shape == (2, 300) and audio.abs().max() <= 1
    again, _ = load_checkpoint(run)
    assert torch.equal(again.generate(2, 300, SamplingControls(seed=0)), audio)
