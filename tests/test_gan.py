"""GANs: losses, gradient penalty, diversity, chord conditions, MidiNet and MuseGAN steps."""

from __future__ import annotations

import math

import pytest
import torch

from cli_helpers import run_cli
from tiny_model import roll_info
from tunesmith.errors import ConfigError
from tunesmith.models import registry
from tunesmith.models.gan import (
    GANConfig,
    discriminator_loss,
    diversity,
    generator_loss,
    gradient_penalty,
    interpolate_latents,
)
from tunesmith.models.midinet import (
    MidiNet,
    MidiNetConfig,
    chords_from_frames,
    generate_with_chords,
    parse_chord,
    parse_chord_progression,
)
from tunesmith.models.musegan import MODES, MuseGAN, MuseGANConfig
from tunesmith.models.sampling import SamplingControls

TRACKS, PITCHES, LOW = 2, 14, 55


def tiny_midinet(**changes) -> MidiNet:
    torch.manual_seed(0)
    options = dict(n_tracks=TRACKS, n_pitches=PITCHES, pitch_low=LOW, steps_per_bar=8, z_dim=4,
                   g_dense=8, g_channels=6, conditioner_channels=3, d_channels=[4, 5], d_dense=8)
    return MidiNet(MidiNetConfig(**{**options, **changes}))


def tiny_musegan(**changes) -> MuseGAN:
    torch.manual_seed(0)
    options = dict(n_tracks=TRACKS, n_pitches=PITCHES, pitch_low=LOW, n_bars=2, steps_per_bar=8,
                   z_dim=3, temporal_hidden=4, g_channels=4, d_channels=4, n_critic=1)
    return MuseGAN(MuseGANConfig(**{**options, **changes}))


def frames_batch(batch=3, steps=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = (torch.rand(batch, steps, TRACKS * PITCHES, generator=g) > 0.85).float()
    return {"frames": frames, "mask": torch.ones(batch, steps, dtype=torch.bool)}


def parameters_copy(params):
    return [p.detach().clone() for p in params]


def changed(before, params):
    return any(not torch.equal(b, p.detach()) for b, p in zip(before, params, strict=True))


# ---- losses -----------------------------------------------------------------------------


def test_gradient_penalty_of_a_linear_critic_is_lambda_times_norm_minus_one_squared():
    w = torch.tensor([3.0, 4.0, 0.0, 12.0])  # ‖w‖ = 13

    def critic(x):
        return x.reshape(x.shape[0], -1) @ w

    real, fake = torch.randn(5, 2, 2), torch.randn(5, 2, 2)
    assert gradient_penalty(critic, real, fake, weight=10.0).item() == pytest.approx(10 * 12**2)
    unit = w / 13
    assert gradient_penalty(lambda x: x.reshape(5, -1) @ unit, real, fake).item() == pytest.approx(
        0.0, abs=1e-10
    )


def test_gradient_penalty_uses_interpolates_and_reaches_the_critic_weights():
    weight = torch.tensor([2.0], requires_grad=True)

    def critic(x):  # D(x) = w·x²: ∇ = 2wx, on x̂ = εr + (1-ε)f
        return (weight * x.pow(2)).sum(1)

    real, fake = torch.tensor([[1.0]]), torch.tensor([[3.0]])
    penalty = gradient_penalty(critic, real, fake, weight=1.0, epsilon=torch.tensor([0.5]))
    x_hat = 2.0
    assert penalty.item() == pytest.approx((2 * 2.0 * x_hat - 1) ** 2)  # (8 − 1)² = 49
    penalty.backward()
    assert weight.grad.item() == pytest.approx(2 * 7 * 2 * x_hat)  # d/dw (4w − 1)² = 2·7·4


def test_standard_and_wasserstein_losses_by_hand():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 1.0])

    def bce(logit, label):
        p = 1 / (1 + math.exp(-logit))
        return -(label * math.log(p) + (1 - label) * math.log(1 - p))

    expected_d = (bce(2.0, 0.9) + bce(0.0, 0.9)) / 2 + (bce(-1.0, 0) + bce(1.0, 0)) / 2
    assert discriminator_loss(real, fake, "standard", 0.9).item() == pytest.approx(expected_d)
    expected_g = (bce(-1.0, 1) + bce(1.0, 1)) / 2
    assert generator_loss(fake, "standard").item() == pytest.approx(expected_g)
    assert discriminator_loss(real, fake, "wgan-gp").item() == pytest.approx(0.0 - 1.0)
    assert generator_loss(fake, "wgan-gp").item() == pytest.approx(0.0)
    with pytest.raises(ConfigError):
        generator_loss(fake, "hinge")


def test_diversity_is_zero_for_copies_and_one_for_opposites():
    roll = torch.zeros(1, 4, 12)
    roll[0, :, 0] = 1  # C for every step (pitch_low = 60)
    copies = roll.repeat(3, 1, 1)
    out = diversity(copies, pitch_low=60)
    assert out["diversity_roll"].item() == 0 and out["diversity_pitch_class"].item() == 0
    other = torch.zeros(1, 4, 12)
    other[0, :, 7] = 1  # G
    opposite = 1 - roll
    pair = diversity(torch.cat([roll, other]), pitch_low=60)
    assert pair["diversity_roll"].item() == pytest.approx(8 / 48)
    assert pair["diversity_pitch_class"].item() == pytest.approx(1.0)
    assert diversity(torch.cat([roll, opposite]), pitch_low=60)["diversity_roll"].item() == 1.0


# ---- chords -----------------------------------------------------------------------------


def test_chord_text_parsing():
    chords = parse_chord_progression("C G Am F")
    assert chords.shape == (4, 13)
    assert chords.argmax(1)[:4].tolist() == [0, 7, 9, 5]
    assert chords[:, 12].tolist() == [0, 0, 1, 0]
    assert parse_chord("F#m")[[6, 12]].tolist() == [1, 1]
    assert parse_chord("Bb7").argmax().item() == 10 and parse_chord("Bb7")[12] == 0
    assert parse_chord("Cmaj7")[12] == 0 and parse_chord("Bdim")[12] == 1
    assert parse_chord("G/B").argmax().item() == 7
    assert parse_chord("N").sum().item() == 0
    assert parse_chord_progression("C | Dm", bars=5).argmax(1).tolist() == [0, 2, 0, 2, 0]
    for bad in ("H", "Cx", "", "C## G"):
        with pytest.raises(ConfigError):
            parse_chord_progression(bad)


def test_chords_are_recognised_from_data_bars():
    frames = torch.zeros(3, 4, TRACKS * PITCHES)  # pitch_low 55 = G3
    for pitch in (60, 64, 67):  # C major, across both tracks
        frames[0, :, (pitch - LOW) + (PITCHES if pitch == 64 else 0)] = 1
    for pitch in (57, 60, 64):  # A minor
        frames[1, :, pitch - LOW] = 1
    chords = chords_from_frames(frames, PITCHES, LOW)
    assert chords[0].nonzero().flatten().tolist() == [0]
    assert chords[1].nonzero().flatten().tolist() == [9, 12]
    assert chords[2].sum().item() == 0  # silence: no chord


# ---- MidiNet ----------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["standard", "wgan-gp"])
def test_midinet_training_step_updates_both_halves(loss):
    model = tiny_midinet(loss=loss, diversity_every=1)
    opt_g, opt_d = model.configure_optimizers(1e-2)
    g_before = parameters_copy(model.generator_parameters())
    d_before = parameters_copy(model.discriminator_parameters())
    logs = model.manual_training_step(frames_batch(), [opt_g, opt_d], lambda l: l.backward())
    assert changed(g_before, model.generator_parameters())
    assert changed(d_before, model.discriminator_parameters())
    assert {"d_loss", "g_loss", "fm_x", "fm_f", "diversity_roll"} <= set(logs)
    assert ("gradient_penalty" in logs) == (loss == "wgan-gp")
    assert all(torch.isfinite(v) for v in logs.values())


def test_n_critic_updates_the_generator_every_nth_step():
    model = tiny_musegan(n_critic=2, loss="wgan-gp")
    opts = model.configure_optimizers(1e-2)
    step = lambda: model.manual_training_step(frames_batch(), opts, lambda l: l.backward())  # noqa: E731
    assert "g_loss" in step()
    g_before = parameters_copy(model.generator_parameters())
    assert "g_loss" not in step()
    assert not changed(g_before, model.generator_parameters())
    assert "g_loss" in step()
    assert changed(g_before, model.generator_parameters())


def test_midinet_generation_follows_the_chord_progression_bar_count():
    model = tiny_midinet()
    out = generate_with_chords(model, "C G Am", bars=5, n=2, controls=SamplingControls(seed=1))
    assert out.shape == (2, 5 * 8, TRACKS * PITCHES)
    per_track = out.view(2, 40, TRACKS, PITCHES)
    assert per_track[:, :, 1].sum() == 0  # only the melody track sounds
    assert int(per_track[:, :, 0].sum(-1).max()) <= 1  # monophonic
    again = generate_with_chords(model, "C G Am", bars=5, n=2, controls=SamplingControls(seed=1))
    assert torch.equal(out, again)
    with pytest.raises(ConfigError):
        model.generate(2, 40, condition={"chords": torch.zeros(3, 12)})
    with pytest.raises(ConfigError):
        model.generate(2, 41)


def test_midinet_generator_reads_chord_and_previous_bar_conditions():
    model = tiny_midinet().eval()
    z = {"z": torch.randn(2, 4)}
    previous = torch.zeros(2, 1, 8, PITCHES)
    chord_c = parse_chord_progression("C", 1).expand(2, -1)
    chord_a = parse_chord_progression("Am", 1).expand(2, -1)
    base = model.generate_from_latents(z, {"chords": chord_c, "previous": previous})
    assert base.shape == (2, 1, 8, PITCHES)
    other_chord = model.generate_from_latents(z, {"chords": chord_a, "previous": previous})
    other_prev = model.generate_from_latents(z, {"chords": chord_c, "previous": previous + 1})
    assert not torch.allclose(base, other_chord) and not torch.allclose(base, other_prev)
    blind = tiny_midinet(use_previous_bar=False).eval()
    a = blind.generate_from_latents(z, {"chords": chord_c, "previous": previous})
    b = blind.generate_from_latents(z, {"chords": chord_c, "previous": previous + 1})
    assert torch.equal(a, b)


# ---- MuseGAN ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("loss", ["standard", "wgan-gp"])
def test_musegan_modes_train_and_generate(mode, loss):
    model = tiny_musegan(mode=mode, loss=loss)
    opts = model.configure_optimizers(1e-2)
    d_before = parameters_copy(model.discriminator_parameters())
    logs = model.manual_training_step(frames_batch(), opts, lambda l: l.backward())
    assert changed(d_before, model.discriminator_parameters())
    assert all(torch.isfinite(v) for v in logs.values())
    out = model.generate(3, 40, SamplingControls(threshold=0.5))
    assert out.shape == (3, 40, TRACKS * PITCHES)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert len(model.discriminators) == (TRACKS if mode == "jamming" else 1)


def test_musegan_shared_latent_moves_all_tracks_private_latent_only_its_own():
    model = tiny_musegan(mode="hybrid", z_dim=8, g_channels=16).eval()
    latents = model.sample_latents(1, torch.Generator().manual_seed(0))
    base = model.generate_from_latents(latents, {})
    private = {**latents, "private": latents["private"].clone()}
    private["private"][:, 0] += 1.0
    moved = model.generate_from_latents(private, {})
    assert not torch.allclose(moved[:, 0], base[:, 0]) and torch.equal(moved[:, 1], base[:, 1])
    shared = {**latents, "shared": latents["shared"] + 1.0}
    moved = model.generate_from_latents(shared, {})
    assert not torch.allclose(moved[:, 0], base[:, 0])
    assert not torch.allclose(moved[:, 1], base[:, 1])


def test_musegan_phrase_layout_round_trip():
    model = tiny_musegan()
    frames = frames_batch(steps=16)["frames"]
    phrases = model.from_pianoroll(frames)
    assert phrases.shape == (3, TRACKS, 2, 8, PITCHES)
    assert torch.equal(phrases[1, 1, 1, 3], frames[1, 8 + 3, PITCHES:])
    assert torch.equal(model.as_pianoroll(phrases), frames)


def test_latent_interpolation_endpoints_are_the_endpoint_samples():
    model = tiny_musegan().eval()
    start = model.sample_latents(1, torch.Generator().manual_seed(1))
    end = model.sample_latents(1, torch.Generator().manual_seed(2))
    controls = SamplingControls(threshold=0.5)
    path = interpolate_latents(model, 4, controls=controls, latents=(start, end))
    assert path.shape == (4, 16, TRACKS * PITCHES)
    for index, latents in ((0, start), (-1, end)):
        expected = model.sample_notes(model.generate_from_latents(latents, {}), controls)
        assert torch.equal(path[index], expected[0])


def test_registry_builds_gans_from_data_info():
    info = roll_info(["Soprano", "Alto", "Tenor", "Bass"], 40, 69, resolution=4)
    midinet = registry.build("midinet", {"z_dim": 4, "g_dense": 8, "d_dense": 8}, info)
    assert (midinet.config.n_tracks, midinet.config.n_pitches) == (4, 30)
    musegan = registry.build("musegan", {"g_channels": 4, "d_channels": 4}, info)
    assert musegan.config.pitch_low == 40 and musegan.automatic_optimization is False
    with pytest.raises(ConfigError):
        MuseGANConfig(mode="solo")



# ---- CLI on a checkpoint ------------------------------------------------------------------


def test_gan_cli_generates_chord_conditioned_midi(tmp_path):
    from tunesmith.music import load
    from tunesmith.training.checkpoint import save_checkpoint

    names = ["Soprano", "Alto", "Tenor", "Bass"]
    info = roll_info(names, 48, 71, resolution=2, programs=[52] * 4)
    model = registry.build("midinet", {"z_dim": 4, "g_dense": 8, "g_channels": 6,
                                       "conditioner_channels": 3, "d_dense": 8}, info)
    assert model.config.steps_per_bar == 8
    checkpoint = save_checkpoint(tmp_path / "ckpt", model, model_name="midinet", data_info=info)
    out = tmp_path / "out"
    assert run_cli(["gan", "generate", "--checkpoint", str(checkpoint), "--chords", "C G Am",
                    "--bars", "4", "--n", "1", "--threshold", "0.0", "--seed", "0",
                    "--out", str(out)]) == 0
    score = load(out / "gan-00.mid")
    sounding = [t for t in score.tracks if len(t.notes)]  # empty tracks are not written
    assert [t.name for t in sounding] == ["Soprano"]
    soprano = sounding[0].notes
    assert max(n.end for n in soprano) == 4 * 8 * (score.ticks_per_quarter // 2)
    assert run_cli(["gan", "generate", "--checkpoint", str(checkpoint), "--chords", "X7",
                    "--out", str(out)]) == 2


@pytest.mark.parametrize("config_class", [MidiNetConfig, MuseGANConfig])
def test_both_gan_configs_check_the_options_the_gan_step_reads(config_class):
    """GANConfig's rules hold in every family: loss name, n_critic, two Adam betas in [0, 1)."""
    assert isinstance(config_class(), GANConfig)
    for bad in ({"loss": "hinge"}, {"n_critic": 0}, {"adam_betas": [0.5]},
                {"adam_betas": [0.5, 1.0]}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            config_class(**bad)
    assert config_class(adam_betas=[0.0, 0.99], n_critic=3).n_critic == 3
