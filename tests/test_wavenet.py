"""WaveNet / TCN over piano-rolls: loss, causality, receptive field, cached = naive sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from symusic import Note, Score, Track

from tiny_model import assert_input_dropout_acts_in_training_only, roll_info
from tunesmith.errors import ConfigError
from tunesmith.generation.generate import pitch_histogram_from_spec
from tunesmith.models import registry
from tunesmith.models.sampling import SamplingControls
from tunesmith.models.wavenet import (
    WaveNet,
    WaveNetConfig,
    _CachedSteps,
    pitch_histogram_from_frames,
)
from tunesmith.music.keys import key_profile, pitch_class_histogram
from tunesmith.representations import pianoroll

TRACKS, PITCHES = 2, 6
KEYS = TRACKS * PITCHES

CONDITIONINGS = {
    "none": {},
    "corpus": {"n_global_classes": 3, "global_channels": 4},
    "histogram": {"pitch_histogram_cond": True},
    "local-repeat": {"local_channels": 3, "local_rate": 4},
    "local-transposed": {"local_channels": 3, "local_rate": 4, "local_upsample": "transposed"},
    "all": {"n_global_classes": 3, "global_channels": 4, "pitch_histogram_cond": True,
            "local_channels": 3, "local_rate": 2, "local_upsample": "transposed"},
}




def tiny(block: str = "gated", seed: int = 0, **options) -> WaveNet:
    torch.manual_seed(seed)
    sizes = {"channels": 8, "skip_channels": 6, "kernel_size": 2, "levels": 3, "blocks": 1}
    if block == "relu":
        sizes.update(kernel_size=3, levels=2)
    config = WaveNetConfig(keys=KEYS, n_tracks=TRACKS, n_pitches=PITCHES, pitch_low=60, block=block,
                    **{**sizes, **options})
    return WaveNet(config)


def random_frames(batch: int, steps: int, seed: int = 1, density: float = 0.3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, steps, KEYS, generator=generator) < density).float()


def condition_for(model: WaveNet, batch: int, steps: int) -> dict:
    c = model.config
    condition = {}
    if c.n_global_classes:
        condition["corpus_id"] = torch.arange(batch) % c.n_global_classes
    if c.pitch_histogram_cond:
        condition["pitch_histogram"] = torch.softmax(torch.randn(batch, 12), dim=1)
    if c.local_channels:
        condition["local_cond"] = torch.randn(batch, math.ceil(steps / c.local_rate),
                                              c.local_channels)
    return condition


# ---- training ---------------------------------------------------------------------------
@pytest.mark.parametrize("block", ["gated", "relu"])
@pytest.mark.parametrize("conditioning", sorted(CONDITIONINGS))
def test_forward_backward_reaches_every_parameter(block, conditioning):
    model = tiny(block, **CONDITIONINGS[conditioning])
    frames = random_frames(3, 12)
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[2, 9:] = False
    out = model.loss({"frames": frames, "mask": mask, **condition_for(model, 3, 12)})
    assert set(out) == {"loss", "nll_per_frame"}
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    h = model.forward_features(frames, condition_for(model, 3, 12))
    assert h.shape == (3, 12, model.head.proj.in_features)


def test_loss_is_k_ln2_when_the_head_outputs_one_half():
    model = tiny()
    torch.nn.init.zeros_(model.head.proj.weight)
    torch.nn.init.zeros_(model.head.proj.bias)
    out = model.loss({"frames": random_frames(2, 7), "mask": torch.ones(2, 7, dtype=torch.bool)})
    assert out["loss"].item() == pytest.approx(KEYS * math.log(2), rel=1e-6)


def test_loss_matches_hand_computed_bce_with_mask_and_first_frame_option():
    model = tiny()
    bias = torch.linspace(-2, 2, KEYS)
    torch.nn.init.zeros_(model.head.proj.weight)
    with torch.no_grad():
        model.head.proj.bias.copy_(bias)
    frames = random_frames(2, 5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    p = torch.sigmoid(bias)  # (K,), the same for every frame
    per_frame = -(frames * p.log() + (1 - frames) * (1 - p).log()).sum(-1)  # (2, 5)
    expected_all = per_frame[mask].mean()
    scored = mask.clone()
    scored[:, 0] = False
    expected_without_first = per_frame[scored].mean()
    batch = {"frames": frames, "mask": mask}
    assert model.loss(batch)["loss"].item() == pytest.approx(expected_all.item(), rel=1e-6)
    model.config.score_first_frame = False
    assert model.loss(batch)["loss"].item() == pytest.approx(
        expected_without_first.item(), rel=1e-6
    )
    log_prob = model.frame_log_prob(frames, mask)  # (B, T), every frame
    torch.testing.assert_close(log_prob, -per_frame)


# ---- causality and receptive field ------------------------------------------------------
@pytest.mark.parametrize("block", ["gated", "relu"])
def test_features_at_t_ignore_frames_from_t_on(block):
    model = tiny(block, dropout=0.0).eval()
    frames = random_frames(2, 30)
    h = model.forward_features(frames)
    for t0 in (0, 7, 29):
        changed = frames.clone()
        changed[:, t0:] = 1 - changed[:, t0:]
        h_changed = model.forward_features(changed)
        torch.testing.assert_close(h_changed[:, : t0 + 1], h[:, : t0 + 1], rtol=0, atol=0)
        if t0 + 1 < 30:
            assert not torch.allclose(h_changed[:, t0 + 1], h[:, t0 + 1])


@pytest.mark.parametrize(
    ("block", "options", "expected"),
    [
        ("gated", {"kernel_size": 2, "levels": 3, "blocks": 2}, 1 + 2 * (1 + 2 + 4)),
        ("gated", {"kernel_size": 3, "dilations": [1, 3, 9]}, 1 + 2 * (1 + 3 + 9)),
        ("relu", {"kernel_size": 3, "levels": 2, "blocks": 1}, 1 + 2 * 2 * (1 + 2)),
    ],
)
def test_receptive_field_is_exactly_the_frames_the_gradient_reaches(block, options, expected):
    model = tiny(block, **options).eval()
    assert model.receptive_field == expected
    steps, t = 60, 50
    frames = random_frames(1, steps, density=0.5).requires_grad_(True)
    model.forward_features(frames)[0, t].sum().backward()
    reached = (frames.grad[0].abs().sum(-1) > 0).nonzero().flatten().tolist()
    assert reached == list(range(t - expected, t))  # frames t-R … t-1 exactly


# ---- generation -------------------------------------------------------------------------
CONTROLS = {
    "bernoulli": SamplingControls(seed=5),
    "hot-limited": SamplingControls(seed=6, temperature=1.7, max_notes_per_step=2,
                                    max_sustain_steps=3),
    "threshold": SamplingControls(threshold=0.45, max_notes_per_step=1),
}


@pytest.mark.parametrize("block", ["gated", "relu"])
@pytest.mark.parametrize("conditioning", ["none", "all"])
@pytest.mark.parametrize("controls", sorted(CONTROLS))
def test_cached_generation_equals_naive_generation(block, conditioning, controls):
    model = tiny(block, **CONDITIONINGS[conditioning])
    steps = 40
    condition = condition_for(model, 3, steps)
    prime = random_frames(3, 5, seed=9)
    for p in (None, prime):
        cached = model.generate(3, steps, CONTROLS[controls], prime=p, condition=condition)
        naive = model.generate_naive(3, steps, CONTROLS[controls], prime=p, condition=condition)
        windowed = model.generate_naive(3, steps, CONTROLS[controls], prime=p,
                                        condition=condition, window=model.receptive_field)
        assert cached.shape == (3, steps, KEYS)
        assert torch.equal(cached, naive)
        assert torch.equal(cached, windowed)
        assert 0 < cached.sum() < cached.numel()  # something was drawn, not all keys


@pytest.mark.parametrize("block", ["gated", "relu"])
def test_cached_features_match_a_full_forward_pass_with_and_without_prefill(block):
    model = tiny(block, **CONDITIONINGS["all"]).eval()
    frames = random_frames(2, 25)
    condition = condition_for(model, 2, 25)
    expected = model.forward_features(frames, condition)  # (B, T, H)
    for n_prime in (0, 1, 10, 24):  # below and above the receptive field (8 / 13)
        with torch.inference_mode():
            cond = model.condition_features(condition, 2, 25)
            cache = _CachedSteps(model, 2, 25, cond)
            cache.prefill(frames[:, :n_prime], cond)  # one parallel pass over the prime
            stepped = torch.stack([cache.features(frames, t) for t in range(n_prime, 25)], 1)
        torch.testing.assert_close(stepped, expected[:, n_prime:], rtol=1e-5, atol=1e-5)


def test_prime_is_kept_and_broadcast():
    model = tiny()
    prime = random_frames(1, 6, seed=3)
    out = model.generate(4, 20, SamplingControls(seed=1), prime=prime)
    assert torch.equal(out[:, :6], prime.expand(4, -1, -1))
    longer = model.generate(2, 4, SamplingControls(seed=1), prime=prime[0])  # (P, K), P > steps
    assert torch.equal(longer, prime[:, :4].expand(2, -1, -1))
    with pytest.raises(ConfigError, match="prime"):
        model.generate(2, 10, prime=torch.zeros(3, 4, KEYS))


def test_seed_makes_samples_reproducible():
    model = tiny()
    a = model.generate(2, 30, SamplingControls(seed=11))
    b = model.generate(2, 30, SamplingControls(seed=11))
    c = model.generate(2, 30, SamplingControls(seed=12))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_note_limit_per_track_and_sustain_limit_are_respected():
    model = tiny()
    with torch.no_grad():
        model.head.proj.bias.fill_(3.0)  # p ≈ 0.95 for every key: limits must bind
    free = model.generate(3, 30, SamplingControls(seed=2))
    per_track = free.reshape(3, 30, TRACKS, PITCHES).sum(-1)
    assert per_track.max() > 2  # without the limit, tracks play more than 2 notes
    limited = model.generate(3, 30, SamplingControls(seed=2, max_notes_per_step=2,
                                                     max_sustain_steps=4))
    per_track = limited.reshape(3, 30, TRACKS, PITCHES).sum(-1)
    assert per_track.max() == 2
    longest_run = 0
    for row in limited.permute(0, 2, 1).reshape(-1, 30):  # one row per key
        run = 0
        for value in row.tolist():
            run = run + 1 if value else 0
            longest_run = max(longest_run, run)
    assert longest_run == 4


def test_generation_leaves_training_mode_and_gives_normal_tensors():
    model = tiny("relu", dropout=0.5).train()
    out = model.generate(2, 10, SamplingControls(seed=0))
    assert model.training
    assert torch.equal(out, model.generate_naive(2, 10, SamplingControls(seed=0)))
    (out * torch.ones(1, requires_grad=True)).sum().backward()  # not an inference tensor


# ---- conditioning -----------------------------------------------------------------------
def test_local_conditioning_is_repeated_at_the_step_rate():
    model = tiny(local_channels=2, local_rate=3)
    local = torch.arange(8.0).reshape(1, 4, 2)  # 4 conditioning frames
    cond = model.condition_features({"local_cond": local}, 1, 10)  # (1, 2, 10)
    expected = local[0].repeat_interleave(3, dim=0)[:10].t()
    torch.testing.assert_close(cond[0], expected)
    with pytest.raises(ConfigError, match="local_rate"):
        model.condition_features({"local_cond": local}, 1, 13)


def test_missing_or_invalid_conditions_are_clear_errors():
    model = tiny(n_global_classes=2, pitch_histogram_cond=True)
    frames = random_frames(2, 5)
    with pytest.raises(ConfigError, match="corpus_id"):
        model.loss({"frames": frames})
    with pytest.raises(ConfigError, match="corpus_id must be in"):
        model.loss({"frames": frames, "corpus_id": torch.tensor([0, 2])})
    with pytest.raises(ConfigError, match="pitch_histogram"):
        model.generate(2, 5, condition={"corpus_id": 1})
    # training data without a histogram: the pieces' own histograms are used
    out = model.loss({"frames": frames, "corpus_id": torch.tensor([0, 1])})
    explicit = model.loss({"frames": frames, "corpus_id": torch.tensor([0, 1]),
                           "pitch_histogram": pitch_histogram_from_frames(frames, PITCHES, 60)})
    assert out["loss"].item() == explicit["loss"].item()


def test_key_profiles_condition_on_a_key_name():
    c_major = key_profile("C major", profile="scale")
    assert c_major.tolist() == pytest.approx([1 / 7 if i in (0, 2, 4, 5, 7, 9, 11) else 0
                                              for i in range(12)])
    assert np.array_equal(key_profile("a minor", "scale"), c_major)
    assert np.array_equal(key_profile("Bb major"), key_profile("A# maj"))
    assert np.array_equal(key_profile("E♭ minor"), key_profile("D#m"))
    g = key_profile("G", "krumhansl")
    assert int(g.argmax()) == 7 and g.sum() == pytest.approx(1.0)
    f_sharp_minor = key_profile("F# minor")
    assert int(f_sharp_minor.argmax()) == (6 + 7) % 12  # the dominant C# is the peak
    with pytest.raises(ConfigError, match="H major"):
        key_profile("H major")
    with pytest.raises(ConfigError, match="profile"):
        key_profile("C", profile="nope")
    assert torch.equal(pitch_histogram_from_spec("D minor"),
                       torch.tensor(key_profile("D minor"), dtype=torch.float32))


def test_pitch_histogram_of_a_score_equals_that_of_its_pianoroll(tmp_path):
    score = Score(480)
    track = Track("t", 0, False)
    for time, duration, pitch in [(0, 480, 60), (0, 960, 64), (480, 240, 67), (960, 480, 72)]:
        track.notes.append(Note(time, duration, pitch, 80))
    score.tracks.append(track)
    from_score = torch.tensor(pitch_class_histogram(score, min_duration=1), dtype=torch.float32)
    # C: 480 + 480 ticks, E: 960, G: 240 -> 960/2160, 0, 0, 0, 960/2160, ..., 240/2160
    expected = np.zeros(12)
    expected[[0, 4, 7]] = [960 / 2160, 960 / 2160, 240 / 2160]
    assert from_score.tolist() == pytest.approx(expected.tolist())
    cfg = pianoroll.PianorollConfig(resolution=4, pitch_low=60, pitch_high=72)
    grid = torch.as_tensor(pianoroll.encode(score, cfg)).float()  # (1, T, 13)
    from_frames = pitch_histogram_from_frames(grid.permute(1, 0, 2).reshape(1, -1, 13), 13, 60)
    torch.testing.assert_close(from_frames[0], from_score)
    path = tmp_path / "piece.mid"
    score.dump_midi(str(path))
    torch.testing.assert_close(pitch_histogram_from_spec(str(path)), from_score)


# ---- registry and configuration ---------------------------------------------------------
def test_registry_presets_and_data_sizes():
    info = roll_info(["Soprano", "Alto", "Tenor", "Bass"], 36, 84)
    tcn = registry.build("tcn", {}, info)
    assert isinstance(tcn, WaveNet)
    c = tcn.config
    assert (c.block, c.kernel_size, c.layer_dilations(), c.channels, c.dropout) == (
        "relu", 3, [1, 2], 150, 0.5)
    assert (c.keys, c.n_tracks, c.n_pitches, c.pitch_low) == (196, 4, 49, 36)
    wavenet = registry.build("wavenet", {"head": "bernoulli"}, roll_info(["Piano"], 21, 108))
    assert wavenet.config.block == "gated" and wavenet.config.n_pitches == 88
    assert WaveNetConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="n_tracks"):
        WaveNetConfig(keys=10, n_tracks=3, n_pitches=3)
    with pytest.raises(ConfigError, match="block"):
        WaveNetConfig(block="lstm")


# ---- the voices head through the WaveNet --------------------------------------------------
def monophonic_frames(batch: int, steps: int, seed: int = 1) -> torch.Tensor:
    """Random frames with at most one note per track (a quarter of the steps rest)."""
    generator = torch.Generator().manual_seed(seed)
    states = torch.randint(0, PITCHES + 2, (batch, steps, TRACKS), generator=generator)
    one_hot = torch.nn.functional.one_hot(states, PITCHES + 2)[..., :PITCHES]  # two rest states
    return one_hot.reshape(batch, steps, KEYS).float()


@pytest.mark.parametrize("block", ["gated", "relu"])
def test_voices_head_cached_generation_equals_naive_with_one_note_per_voice(block):
    model = tiny(block, head="voices", nade_hidden=5)
    prime = monophonic_frames(3, 4, seed=9)
    for controls in (SamplingControls(seed=3), SamplingControls(threshold=0.5),
                     SamplingControls(seed=4, temperature=1.5, top_k=3, top_p=0.9,
                                      max_sustain_steps=3)):
        for p in (None, prime):
            cached = model.generate(3, 30, controls, prime=p)
            assert torch.equal(cached, model.generate_naive(3, 30, controls, prime=p))
            per_voice = cached.reshape(3, 30, TRACKS, PITCHES).sum(-1)
            assert per_voice.max() == 1 and per_voice.sum() > 0


def test_voices_head_frame_log_prob_is_causal_and_trains():
    model = tiny(head="voices", nade_hidden=5).eval()
    frames = monophonic_frames(2, 20)
    changed = frames.clone()
    changed[:, 12:] = monophonic_frames(2, 8, seed=5)
    a, b = model.frame_log_prob(frames), model.frame_log_prob(changed)
    torch.testing.assert_close(a[:, :12], b[:, :12], rtol=0, atol=0)
    assert not torch.allclose(a[:, 12:], b[:, 12:])
    model.train()
    loss = model.loss({"frames": frames, "mask": torch.ones(2, 20, dtype=torch.bool)})["loss"]
    loss.backward()
    assert all(p.grad is not None for p in model.head.parameters())


@pytest.mark.parametrize("block", ["gated", "relu"])
def test_input_dropout_acts_on_the_context_in_training_only(block):
    frames = random_frames(2, 12, density=0.5)
    assert_input_dropout_acts_in_training_only(
        lambda **options: tiny(block, **options), frames)
    dropped = tiny(block, input_dropout=0.5).train()
    # Still causal: frame t's features read frames < t only, masked or not.
    torch.manual_seed(4)
    features = dropped.forward_features(frames)
    changed = frames.clone()
    changed[:, 6:] = 1 - changed[:, 6:]
    torch.manual_seed(4)
    torch.testing.assert_close(dropped.forward_features(changed)[:, :7], features[:, :7])
