"""GrooVAE: its losses against a hand computation, the guarantees of its modes, and every
``tunesmith groove`` mode on a tiny checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cli_helpers import run_cli
from tunesmith.errors import ConfigError
from tunesmith.models import groove_vae as g
from tunesmith.models import registry
from tunesmith.representations import drums

TINY = {"encoder_hidden": 8, "encoder_layers": 1, "conductor_hidden": 8, "conductor_layers": 1,
        "conductor_output": 8, "decoder_hidden": 8, "decoder_layers": 1, "latent_dim": 4,
        "input_embedding": 8}


def tiny(**changes) -> g.GrooVAE:
    torch.manual_seed(0)
    return registry.build("groovae", {**TINY, **changes}, drums.info(drums.DrumsConfig()))


def random_drums(steps=32, seed=0, density=0.25) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((steps, 27), np.float32)
    hits = rng.random((steps, 9)) < density
    x[:, drums.HITS] = hits
    x[:, drums.VELOCITIES] = hits * rng.integers(1, 128, (steps, 9)) / 127
    x[:, drums.OFFSETS] = hits * rng.uniform(-0.5, 0.5, (steps, 9))
    return x


def test_reconstruction_terms_match_a_hand_computation():
    torch.manual_seed(3)
    outputs = torch.randn(2, 3, 27)
    x = torch.as_tensor(np.stack([random_drums(3, 1, 0.5), random_drums(3, 2, 0.5)]))
    weight = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # the last step is padding
    terms = g.reconstruction_terms(outputs, x, weight)
    for b in range(2):
        hits = velocities = offsets = 0.0
        for t in range(3):
            if weight[b, t] == 0:
                continue
            for v in range(9):
                logit, y = float(outputs[b, t, v]), float(x[b, t, v])
                p = 1 / (1 + math.exp(-logit))
                hits += -(y * math.log(p) + (1 - y) * math.log(1 - p))
                if y == 0:  # velocities and offsets count on hits only
                    continue
                vel = 1 / (1 + math.exp(-float(outputs[b, t, 9 + v])))
                velocities += (vel - float(x[b, t, 9 + v])) ** 2
                off = 0.5 * math.tanh(float(outputs[b, t, 18 + v]))
                offsets += (off - float(x[b, t, 18 + v])) ** 2
        assert float(terms["hits"][b]) == pytest.approx(hits, rel=1e-5)
        assert float(terms["velocities"][b]) == pytest.approx(velocities, rel=1e-5)
        assert float(terms["offsets"][b]) == pytest.approx(offsets, rel=1e-5)


def test_loss_is_the_terms_plus_beta_kl_and_a_step_lowers_it():
    model = tiny(beta_schedule="constant", beta_max=0.5, free_nats=0.0)
    batch = {"drums": torch.as_tensor(np.stack([random_drums(32, s) for s in range(6)])),
             "mask": torch.ones(6, 32, dtype=torch.bool)}
    model.eval()
    torch.manual_seed(1)
    out = model.loss(batch)
    assert float(out["reconstruction"]) == pytest.approx(
        float(out["hits"] + out["velocities"] + out["offsets"]), rel=1e-5)
    expected = float(out["reconstruction"] + 0.5 * out["kl"])
    assert float(out["loss"].detach()) == pytest.approx(expected, rel=1e-4)
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = []
    for step in range(40):
        torch.manual_seed(step)
        loss = model.loss(batch)["loss"]
        before.append(float(loss.detach()))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert np.mean(before[-5:]) < 0.85 * np.mean(before[:5])  # random hits: BCE floor ~0.8


def test_controls_show_each_task_only_its_input():
    x = torch.as_tensor(np.stack([random_drums(32, s) for s in range(4)]))
    task = torch.arange(4)
    kept = torch.ones(4, 9, dtype=torch.bool)
    kept[:, [2, 3]] = False
    encoder_input, control = g.make_controls(x, task, kept)
    assert encoder_input.shape == control.shape == (4, 32, g.CONTROL)
    one_hot = control[..., -4:]
    assert (one_hot.argmax(-1) == task[:, None]).all()
    # sample: the encoder reads the drums, the decoder the task alone
    assert torch.equal(encoder_input[0, :, :27], x[0])
    assert control[0, :, :-4].abs().sum() == 0
    # humanize: hits only
    assert torch.equal(control[1, :, :9], x[1, :, :9]) and control[1, :, 9:27].abs().sum() == 0
    # drumify: the tap alone
    tap = torch.as_tensor(drums.flatten_to_tap(x[2].numpy()))
    assert torch.equal(control[2, :, 27:30], tap) and control[2, :, :27].abs().sum() == 0
    # infill: no trace of the removed voices
    for block in range(3):
        assert control[3, :, block * 9 + 2: block * 9 + 4].abs().sum() == 0
        assert torch.equal(control[3, :, block * 9], x[3, :, block * 9])


def test_humanize_keeps_the_hits_exactly():
    model = tiny()
    score = drums.quantise(random_drums(64, 5))  # two windows
    out = g.humanize(model, score, g_controls(seed=2))
    assert out.shape == (64, 27)
    np.testing.assert_array_equal(out[:, drums.HITS], score[:, drums.HITS])
    no_hit = out[:, drums.HITS] == 0
    assert (out[:, drums.VELOCITIES][no_hit] == 0).all()
    assert (out[:, drums.OFFSETS][no_hit] == 0).all()
    assert (out[:, drums.VELOCITIES][~no_hit] > 0).all()


def test_infill_keeps_the_other_voices_bit_identical():
    model = tiny()
    x = random_drums(48, 7, density=0.4)  # 1.5 windows: the end is padded
    for voices in ([2, 3], [0, 4, 8]):
        out = g.infill(model, x, voices, g_controls(seed=1, temperature=1.0))
        assert out.shape == (64, 27)
        kept = [v for v in range(9) if v not in voices]
        for block in range(3):
            columns = [block * 9 + v for v in kept]
            assert np.array_equal(out[:48, columns], x[:, columns])
        regenerated = out[:48, voices]
        assert regenerated.any()  # an untrained model strikes about half the time


def test_drumify_sample_interpolate_shapes_and_validity():
    model = tiny()
    tap = drums.flatten_to_tap(random_drums(32, 9))
    kit = g.drumify(model, tap, g_controls(seed=0))
    assert kit.shape == (32, 27)
    samples = g.sample(model, 3, g_controls(seed=4))
    assert samples.shape == (3, 32, 27)
    again = g.sample(model, 3, g_controls(seed=4))
    np.testing.assert_array_equal(samples, again)
    for x in (kit, *samples):
        hits = x[:, drums.HITS]
        assert set(np.unique(hits)) <= {0.0, 1.0}
        assert (np.abs(x[:, drums.OFFSETS]) <= 0.5).all()
        assert ((x[:, drums.VELOCITIES] >= 0) & (x[:, drums.VELOCITIES] <= 1)).all()
    path = g.interpolate(model, random_drums(32, 1), random_drums(32, 2), 4)
    assert path.shape == (4, 32, 27)
    with pytest.raises(ConfigError):
        g.interpolate(model, random_drums(32, 1), random_drums(32, 2), 1)


def test_free_nats_leave_a_small_kl_unpenalised():
    model = tiny(beta_schedule="constant", beta_max=1.0)
    assert model.config.free_nats == 48.0
    batch = {"drums": torch.as_tensor(random_drums(32, 4))[None], "mask": torch.ones(1, 32,
                                                                                  dtype=bool)}
    model.eval()
    out = model.loss(batch)
    assert float(out["kl"]) < 48
    assert float(out["loss"].detach()) == pytest.approx(float(out["reconstruction"]), rel=1e-6)


def test_config_checks_and_registry():
    with pytest.raises(ConfigError, match="task_mix"):
        g.GrooVAEConfig(task_mix=[1, 0, 0])
    with pytest.raises(ConfigError, match="hihat_infill"):
        g.GrooVAEConfig(hihat_infill=2)
    flat = registry.build("groovae-flat", TINY, drums.info(drums.DrumsConfig()))
    assert flat.config.decoder == "flat" and flat.config.steps == 32
    from tunesmith.representations import melody

    with pytest.raises(ConfigError, match="drums"):
        registry.build("groovae", TINY, melody.info(melody.MelodyConfig(), track="x"))


def _teacher_inputs(model, seed=5):
    x = torch.as_tensor(np.stack([random_drums(32, seed), random_drums(32, seed + 1)]))
    task = torch.tensor([0, 1])
    _, control = g.make_controls(x, task)
    z = torch.randn(2, model.config.latent_dim, generator=torch.Generator().manual_seed(seed))
    return z, x, control


def test_decoder_input_dropout_acts_in_training_mode_only_on_its_tasks():
    dropping, plain = tiny(decoder_input_dropout=[0.9, 0.0, 0.0, 0.0]), tiny()
    plain.load_state_dict(dropping.state_dict())  # same weights, dropout off
    z, x, control = _teacher_inputs(dropping)  # window 0: sample task, window 1: humanize
    dropping.eval(), plain.eval()
    with torch.no_grad():
        reference = plain.decode_controlled(z, x, control)
        assert torch.equal(dropping.decode_controlled(z, x, control), reference)
        plain.train()  # no dropout configured: training mode changes nothing
        assert torch.equal(plain.decode_controlled(z, x, control), reference)
        dropping.train()
        torch.manual_seed(1)
        trained = dropping.decode_controlled(z, x, control)
    assert not torch.allclose(trained[0], reference[0])  # the sample window's inputs drop
    assert torch.equal(trained[1], reference[1])  # the humanize window's do not
    # whole steps are zeroed, at about the rate of each window's task
    torch.manual_seed(2)
    _, control = g.make_controls(torch.zeros(64, 32, 27), torch.tensor([0, 1] * 32))
    dropped = dropping._dropped(torch.ones(64, 32, 27), control)
    per_step = dropped.sum(-1)  # (64, 32): 27 where kept, 0 where dropped
    assert set(per_step.unique().tolist()) == {0.0, 27.0}
    assert float((per_step[0::2] == 0).float().mean()) == pytest.approx(0.9, abs=0.03)
    assert bool((per_step[1::2] == 27).all())
    with pytest.raises(ConfigError, match="decoder_input_dropout"):
        g.GrooVAEConfig(decoder_input_dropout=[1.0, 0, 0, 0])
    with pytest.raises(ConfigError, match="decoder_input_dropout"):
        g.GrooVAEConfig(decoder_input_dropout=[0.5])


def test_mu_batchnorm_gives_every_unit_the_scale_gamma_and_is_optional():
    assert tiny().mu_norm is None
    assert not any(k.startswith("mu_norm") for k in tiny().state_dict())
    model = tiny(mu_batchnorm=0.5)
    x = torch.as_tensor(np.stack([random_drums(32, s) for s in range(16)]))
    encoder_input, _ = g.make_controls(x, torch.zeros(16, dtype=torch.long))
    model.train()
    mu, _ = model.encode(encoder_input)  # (16, Z): batch statistics
    assert torch.allclose(mu.mean(0), torch.zeros(model.config.latent_dim), atol=1e-5)
    raw, _ = g.MusicVAE.encode(model, encoder_input.float())
    expected = 0.5 * (raw - raw.mean(0)) / torch.sqrt(raw.var(0, unbiased=False) + 1e-5)
    assert torch.allclose(mu, expected, atol=1e-5)
    model.eval()  # running statistics: a window's code does not depend on its batch
    with torch.no_grad():
        alone, _ = model.encode(encoder_input[:1])
        together, _ = model.encode(encoder_input)
    assert torch.allclose(alone[0], together[0], atol=1e-6)
    with pytest.raises(ConfigError, match="mu_batchnorm"):
        g.GrooVAEConfig(mu_batchnorm=-1)


def test_position_table_is_a_per_position_residual_and_optional():
    assert tiny().position_table is None  # the default: old checkpoints' state dicts fit
    assert "position_table" not in tiny().state_dict()
    with_table, plain = tiny(position_bias=True), tiny()
    plain.load_state_dict({k: v for k, v in with_table.state_dict().items()
                           if k != "position_table"})
    assert with_table.position_table is not None
    assert with_table.position_table.shape == (16, 27)
    table = torch.randn(16, 27, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        with_table.position_table.copy_(table)
    z, x, control = _teacher_inputs(with_table)
    with_table.eval(), plain.eval()
    with torch.no_grad():
        residual = with_table.decode_controlled(z, x, control) - plain.decode_controlled(
            z, x, control)  # (2, 32, 27)
    for t in range(32):  # step t gets the row of its 16th in the bar
        assert torch.allclose(residual[:, t], table[t % 16].expand(2, -1), atol=1e-5)
    # the step-by-step decoder adds the same rows: its greedy draws, fed back teacher-
    # forced, give the same hits and the velocities and offsets it wrote
    sample_control = control[:1].clone()
    out = with_table.decode(z[:1], greedy=True, control=sample_control)  # (1, 32, 27)
    with torch.no_grad():
        logits, velocity, offset = g.split_outputs(
            with_table.decode_controlled(z[:1], out, sample_control))
    hits = out[..., drums.HITS]
    assert hits.sum() > 0
    assert torch.equal((logits > 0).float(), hits)
    assert torch.allclose(velocity * hits, out[..., drums.VELOCITIES], atol=1e-5)
    assert torch.allclose(offset * hits, out[..., drums.OFFSETS], atol=1e-5)


def g_controls(seed=0, temperature=1.0):
    from tunesmith.models.sampling import SamplingControls

    return SamplingControls(seed=seed, temperature=temperature)


def test_every_groove_mode_runs_from_the_cli(tmp_path):
    import pretty_midi
    from symusic import Note, Score, Track

    from tunesmith.music import save_midi
    from tunesmith.training.checkpoint import save_checkpoint

    info = drums.info(drums.DrumsConfig())
    checkpoint = save_checkpoint(tmp_path / "ckpt", tiny(), model_name="groovae",
                                 data_info=info)
    a = save_midi(drums.decode(random_drums(32, 1), qpm=100), tmp_path / "a.mid")
    b = save_midi(drums.decode(random_drums(32, 2)), tmp_path / "b.mid")
    melody = Score(480)
    track = Track("Melody", 0, False)
    track.notes.extend([Note(t * 240, 200, 60 + t % 5, 80) for t in range(12)])
    melody.tracks.append(track)
    tune = save_midi(melody, tmp_path / "tune.mid")
    out = tmp_path / "out"
    common = ["--checkpoint", checkpoint, "--out", out]
    assert run_cli(["groove", "sample", "--n", "2", "--seed", "1", *common]) == 0
    assert run_cli(["groove", "humanize", a, "--no-wav", *common]) == 0
    assert run_cli(["groove", "drumify", tune, "--no-wav", *common]) == 0
    assert run_cli(["groove", "infill", a, "--voices", "hihat,ride", "--no-png", *common]) == 0
    assert run_cli(["groove", "interpolate", a, b, "--steps", "3", "--no-wav", "--no-png",
                    *common]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([
        "sample-00.mid", "sample-00.wav", "sample-00.png", "sample-01.mid", "sample-01.wav",
        "sample-01.png", "a-quantised.mid", "a-quantised.png", "a-humanized.mid",
        "a-humanized.png", "tune-drumified.mid", "tune-drumified.png", "a-infilled.mid",
        "a-infilled.wav", "interpolation-00.mid", "interpolation-01.mid",
        "interpolation-02.mid"])
    written = pretty_midi.PrettyMIDI(str(out / "a-humanized.mid"))
    assert [i.is_drum for i in written.instruments] == [True]  # channel 10
    assert written.estimate_tempo() > 0 and abs(written.get_tempo_changes()[1][0] - 100) < 1e-6
    humanized = drums.encode(Score(str(out / "a-humanized.mid")))
    np.testing.assert_array_equal(humanized[:, drums.HITS], random_drums(32, 1)[:, drums.HITS])
    assert run_cli(["groove", "infill", a, "--voices", "cowbell", *common]) == 2
    assert run_cli(["groove", "humanize", tmp_path / "missing.mid", *common]) == 2
    other = save_checkpoint(tmp_path / "vae", registry.build("music-vae", {
        "encoder_hidden": 8, "decoder_hidden": 8, "conductor_hidden": 8}), model_name="music-vae")
    assert run_cli(["groove", "sample", "--checkpoint", other, "--out", out]) == 2


def test_generate_and_file_to_array_read_drums_checkpoints(tmp_path):
    from tunesmith.generation.generate import file_to_array, generate_from_checkpoint
    from tunesmith.music import load, save_midi
    from tunesmith.training.checkpoint import read_checkpoint_config, save_checkpoint

    info = drums.info(drums.DrumsConfig())
    checkpoint = save_checkpoint(tmp_path / "ckpt", tiny(), model_name="groovae",
                                 data_info=info)
    paths = generate_from_checkpoint(checkpoint, n=2, out_dir=tmp_path / "gen", wav=False,
                                     png=False, seed=0)
    for path in paths:
        score = load(path)
        assert [t.is_drum for t in score.tracks] == [True] and score.note_num() > 0
    x = random_drums(32, 3)
    file = save_midi(drums.decode(x), tmp_path / "in.mid")
    back = file_to_array(file, read_checkpoint_config(checkpoint))
    np.testing.assert_array_equal(back[:, drums.HITS], x[:, drums.HITS])
