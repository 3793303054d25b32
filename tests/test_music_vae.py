"""MusicVAE: β schedule, free bits, KL, decoder structure, modes (tiny models)."""

from __future__ import annotations

import math

import pytest
import torch

from cli_helpers import run_cli
from tiny_model import roll_info
from tunesmith.errors import ConfigError
from tunesmith.models import registry
from tunesmith.models.music_vae import (
    MusicVAE,
    MusicVAEConfig,
    MusicVAEPianoroll,
    active_units,
    apply_attribute,
    attribute_vector,
    bar_windows,
    encode_sequences,
    free_bits_kl,
    interpolate,
    kl_beta,
    kl_divergence,
    reconstruct,
    slerp,
)

TINY = dict(
    vocab_size=12, steps_per_bar=4, bars=3, input_embedding=6, encoder_hidden=8, latent_dim=5,
    conductor_hidden=8, conductor_output=6, decoder_hidden=8,
)


def tiny(decoder="hierarchical", **changes) -> MusicVAE:
    torch.manual_seed(0)
    return MusicVAE(MusicVAEConfig(decoder=decoder, **{**TINY, **changes}))


def tiny_pianoroll(**changes) -> MusicVAEPianoroll:
    torch.manual_seed(0)
    return MusicVAEPianoroll(MusicVAEConfig(**{**TINY, "n_keys": 10, "n_tracks": 2, **changes}))


def melody_batch(batch=4, steps=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    events = torch.randint(0, 12, (batch, steps), generator=g)
    return {"events": events, "mask": torch.ones(batch, steps, dtype=torch.bool)}


# ---- β schedule, KL, free bits ----------------------------------------------------------


def test_kl_beta_linear_schedule_values():
    assert kl_beta(0, 0.2, 1000, "linear") == 0.0
    assert kl_beta(250, 0.2, 1000, "linear") == pytest.approx(0.05)
    assert kl_beta(500, 0.2, 1000, "linear") == pytest.approx(0.1)
    assert kl_beta(1000, 0.2, 1000, "linear") == 0.2
    assert kl_beta(50_000, 0.2, 1000, "linear") == 0.2


def test_kl_beta_sigmoid_and_constant_schedules():
    assert kl_beta(500, 1.0, 1000, "sigmoid") == pytest.approx(0.5)
    assert kl_beta(0, 1.0, 1000, "sigmoid") == pytest.approx(1 / (1 + math.exp(5)))
    assert kl_beta(999, 1.0, 1000, "sigmoid") < 1.0
    assert kl_beta(1000, 1.0, 1000, "sigmoid") == 1.0
    assert kl_beta(0, 0.3, 1000, "constant") == 0.3
    assert kl_beta(0, 0.3, 0, "linear") == 0.3  # no warm-up
    with pytest.raises(ConfigError):
        kl_beta(0, 1.0, 10, "cosine")


def test_kl_divergence_matches_torch_distributions():
    mu = torch.tensor([[0.5, -1.0, 0.0]])
    sigma = torch.tensor([[0.3, 2.0, 1.0]])
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, sigma), torch.distributions.Normal(0.0, 1.0)
    )
    assert torch.allclose(kl_divergence(mu, sigma), expected, atol=1e-6)
    assert kl_divergence(torch.zeros(1, 1), torch.ones(1, 1)).item() == 0.0


def test_free_bits_clamps_kl_below_threshold():
    kl = torch.tensor([0.5, 2.0, 5.0])
    assert free_bits_kl(kl, 2.0).tolist() == [0.0, 0.0, 3.0]
    assert free_bits_kl(kl, 0.0).tolist() == kl.tolist()


def test_loss_is_reconstruction_plus_beta_kl_and_free_bits_remove_it():
    model = tiny(beta_max=1.0, beta_schedule="constant")
    out = model.loss(melody_batch())
    assert out["loss"].item() == pytest.approx(out["reconstruction"].item() + out["kl"].item(),
                                               rel=1e-5)
    model = tiny(beta_max=1.0, beta_schedule="constant", free_nats=1e6)
    out = model.loss(melody_batch())
    assert out["kl"].item() > 0
    assert out["loss"].item() == pytest.approx(out["reconstruction"].item(), rel=1e-6)


def test_beta_follows_training_steps_only_in_training_mode():
    model = tiny(beta_max=0.4, beta_warmup_steps=4, beta_schedule="linear")
    betas = [model.loss(melody_batch())["beta"].item() for _ in range(3)]
    assert betas == pytest.approx([0.0, 0.1, 0.2])
    model.eval()
    assert model.loss(melody_batch())["beta"].item() == pytest.approx(0.3)
    assert model.loss(melody_batch())["beta"].item() == pytest.approx(0.3)
    assert int(model.kl_step) == 3


# ---- training and decoder structure -----------------------------------------------------


@pytest.mark.parametrize("decoder", ["hierarchical", "flat"])
def test_one_training_step_lowers_the_loss_on_the_batch(decoder):
    model = tiny(decoder, beta_max=0.0, beta_schedule="constant")
    batch = melody_batch()
    optimiser = model.configure_optimizers(0.05)
    model.eval()  # deterministic dropout-free loss before/after (z still sampled)
    torch.manual_seed(3)
    before = model.loss(batch)["loss"].item()
    model.train()
    for _ in range(5):
        optimiser.zero_grad()
        model.loss(batch)["loss"].backward()
        optimiser.step()
    model.eval()
    torch.manual_seed(3)
    assert model.loss(batch)["loss"].item() < before


@pytest.mark.parametrize("decoder", ["hierarchical", "flat"])
def test_flushing_denormals_leaves_the_loss_and_gradients_unchanged(decoder):
    """The benchmarks flush denormal floats to zero for speed; on a fixed seed a training
    step's loss and every gradient agree with the step that keeps them (to 1e-6)."""
    results = []
    for flush in (False, True):
        model = tiny(decoder)
        torch.set_flush_denormal(flush)
        try:
            torch.manual_seed(4)
            loss = model.loss(melody_batch())["loss"]
            loss.backward()
        finally:
            torch.set_flush_denormal(False)
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss_kept, grads_kept), (loss_flushed, grads_flushed) = results
    assert torch.allclose(loss_kept, loss_flushed, rtol=1e-6, atol=1e-6)
    for kept, flushed in zip(grads_kept, grads_flushed, strict=True):
        assert torch.allclose(kept, flushed, rtol=1e-5, atol=1e-6)


def test_pianoroll_variant_trains_and_samples_multi_hot_frames():
    model = tiny_pianoroll()
    frames = (torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    out = model.loss({"frames": frames, "mask": torch.ones(3, 12, dtype=torch.bool)})
    out["loss"].backward()
    assert model.input_proj.weight.grad is not None
    sample = model.generate(2, 12)
    assert sample.shape == (2, 12, 10)
    assert set(sample.unique().tolist()) <= {0.0, 1.0}


def test_hierarchical_bars_depend_only_on_their_conductor_embedding():
    """Bar 1's teacher-forced outputs ignore bar 0's tokens (except the last, its first input)."""
    steps_per_bar = TINY["steps_per_bar"]
    x = melody_batch(batch=1)["events"]
    changed = x.clone()
    changed[0, : steps_per_bar - 1] = (changed[0, : steps_per_bar - 1] + 1) % 12
    z = torch.randn(1, TINY["latent_dim"])
    hierarchical = tiny("hierarchical").eval()
    a = hierarchical.decode_teacher_forced(z, x)[:, steps_per_bar:]
    b = hierarchical.decode_teacher_forced(z, changed)[:, steps_per_bar:]
    assert torch.allclose(a, b)
    flat = tiny("flat").eval()
    a = flat.decode_teacher_forced(z, x)[:, steps_per_bar:]
    b = flat.decode_teacher_forced(z, changed)[:, steps_per_bar:]
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("make", [lambda: tiny("hierarchical"), lambda: tiny("flat"),
                                  tiny_pianoroll])
def test_step_by_step_greedy_decoding_equals_teacher_forcing_on_its_output(make):
    model = make().eval()
    z = torch.randn(3, TINY["latent_dim"], generator=torch.Generator().manual_seed(2))
    decoded = model.decode(z, greedy=True)
    logits = model.decode_teacher_forced(z, decoded)
    if decoded.dim() == 2:
        assert torch.equal(logits.argmax(-1), decoded)
    else:
        assert torch.equal((logits > 0).float(), decoded)


def test_sampling_is_reproducible_with_a_seed():
    from tunesmith.models.sampling import SamplingControls

    model = tiny().eval()
    a = model.generate(2, 12, SamplingControls(seed=7))
    b = model.generate(2, 12, SamplingControls(seed=7))
    assert a.shape == (2, 12) and torch.equal(a, b)
    assert int(a.max()) < TINY["vocab_size"]


def test_bar_windows_are_bar_aligned_inside_the_real_steps():
    x = torch.arange(40).repeat(3, 1)  # (3, 40)
    mask = torch.ones(3, 40, dtype=torch.bool)
    mask[1, 20:] = False
    first, first_mask = bar_windows(x, mask, 8, 4, random=False)
    assert torch.equal(first, x[:, :8]) and bool(first_mask.all())
    torch.manual_seed(0)
    for _ in range(20):
        window, window_mask = bar_windows(x, mask, 8, 4, random=True)
        starts = window[:, 0]
        assert bool((starts % 4 == 0).all())
        assert int(starts[1]) + 8 <= 20 and bool(window_mask.all())
    short, short_mask = bar_windows(x[:, :5], mask[:, :5], 8, 4, random=True)
    assert short.shape == (3, 8) and short_mask.sum(1).tolist() == [5, 5, 5]


def test_short_and_long_sequences_are_windowed_by_the_loss():
    model = tiny()
    batch = melody_batch(steps=30)
    batch["mask"][0, 7:] = False
    out = model.loss(batch)
    assert torch.isfinite(out["loss"])


# ---- modes ------------------------------------------------------------------------------


def test_slerp_endpoints_and_norm():
    z0 = torch.tensor([1.0, 0.0, 0.0])
    z1 = torch.tensor([0.0, 1.0, 0.0])
    assert torch.allclose(slerp(z0, z1, 0.0), z0)
    assert torch.allclose(slerp(z0, z1, 1.0), z1)
    mid = slerp(z0, z1, 0.5)
    assert torch.allclose(mid, torch.tensor([math.sqrt(0.5), math.sqrt(0.5), 0.0]), atol=1e-6)
    assert torch.allclose(slerp(z0, 2 * z0, 0.5), 1.5 * z0)  # parallel: linear fallback


def test_interpolation_endpoints_are_the_encoder_means():
    model = tiny().eval()
    batch = melody_batch(batch=2)["events"]
    start, end = batch[0].numpy(), batch[1].numpy()
    codes, phrases = interpolate(model, start, end, n_steps=4)
    mu = encode_sequences(model, [start, end])
    assert torch.allclose(codes[0], mu[0], atol=1e-6)
    assert torch.allclose(codes[-1], mu[1], atol=1e-6)
    assert phrases.shape == (4, 12)
    assert torch.equal(phrases[0], reconstruct(model, [start])[0])


def test_attribute_vector_is_mean_code_of_dense_minus_sparse_pieces():
    model = tiny().eval()
    sparse = [torch.tensor([2] + [0] * 11), torch.tensor([3] + [0] * 11)]
    middle = [torch.tensor([2, 0] * 6)]
    dense = [torch.tensor([2, 5] * 6) + 2, torch.tensor([4] * 12)]
    pieces = [p.numpy() for p in sparse + middle + dense]
    vector = attribute_vector(model, pieces, quantile=0.4)
    mu = encode_sequences(model, pieces)
    assert torch.allclose(vector, mu[3:].mean(0) - mu[:2].mean(0), atol=1e-6)
    unchanged, moved = apply_attribute(model, pieces[:1], vector, scales=(0.0, 2.0))
    assert torch.equal(unchanged, reconstruct(model, pieces[:1]))
    assert moved.shape == (1, 12)


def test_active_units_counts_dimensions_with_posterior_variance():
    mu = torch.zeros(100, 4)
    mu[:, 0] = torch.linspace(-1, 1, 100)  # variance ≈ 0.34
    mu[:, 1] = torch.linspace(-0.05, 0.05, 100)  # variance ≈ 0.00085
    count, variances = active_units(mu)
    assert count == 1
    assert variances[0].item() == pytest.approx(torch.linspace(-1, 1, 100).var().item())


def test_registry_presets_and_data_sizes():
    from tunesmith.representations import melody

    tunes = melody.info(melody.MelodyConfig(pitch_low=20, pitch_high=107), steps_per_bar=12)
    flat = registry.build("music-vae-flat", {"encoder_hidden": 8}, data_info=tunes)
    assert flat.config.decoder == "flat" and flat.config.vocab_size == 90
    assert flat.config.steps_per_bar == 12
    roll = registry.build("music-vae-pianoroll", {"encoder_hidden": 8},
                          data_info=roll_info(pitch_high=63, resolution=4))
    assert isinstance(roll, MusicVAEPianoroll) and roll.config.n_keys == 8
    assert (roll.config.n_tracks, roll.config.steps_per_bar) == (2, 16)
    with pytest.raises(ConfigError, match="pianoroll"):
        registry.build("music-vae", data_info=roll_info())
    with pytest.raises(ConfigError):
        MusicVAEConfig(decoder="transformer")



# ---- CLI on a checkpoint ------------------------------------------------------------------


def test_vae_cli_modes_write_midi(tmp_path):
    import numpy as np

    from tunesmith.music import load, save_midi
    from tunesmith.representations import melody
    from tunesmith.training.checkpoint import save_checkpoint

    cfg = melody.MelodyConfig()
    info = melody.info(cfg, steps_per_bar=4, track="Soprano")
    model = registry.build("music-vae", {k: v for k, v in TINY.items() if k != "vocab_size"},
                           data_info=info)
    checkpoint = save_checkpoint(tmp_path / "ckpt", model, model_name="music-vae", data_info=info)
    files = []
    for i, pitch_event in enumerate((10, 20)):
        events = np.array([pitch_event, 0, 0, 1] * 3 + [pitch_event + 2, 0, 1, 0] * 2)
        files.append(save_midi(melody.decode(events, cfg), tmp_path / f"in{i}.mid"))
    out = tmp_path / "out"
    common = ["--checkpoint", str(checkpoint), "--out", str(out)]
    assert run_cli(["vae", "sample", "--n", "2", "--seed", "1", *common]) == 0
    assert run_cli(["vae", "reconstruct", str(files[0]), *common]) == 0
    assert run_cli(["vae", "interpolate", str(files[0]), str(files[1]), "--steps", "3",
                    *common]) == 0
    names = sorted(p.name for p in out.glob("*.mid"))
    assert names == ["in0-input-recon-00.mid", "in0-input-recon-01.mid",
                     "interpolation-00.mid", "interpolation-01.mid", "interpolation-02.mid",
                     "sample-00.mid", "sample-01.mid"]
    original = load(out / "in0-input-recon-00.mid")  # the input's first phrase, re-encoded
    assert [n.pitch for n in original.tracks[0].notes][:3] == [cfg.pitch_low + 8] * 3
    assert run_cli(["vae", "sample", "--checkpoint", str(tmp_path / "missing")]) == 2
