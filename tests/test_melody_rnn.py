from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tiny_model import roll_info
from tunesmith.errors import ConfigError
from tunesmith.models import registry
from tunesmith.models.melody_rnn import MelodyRNN, MelodyRNNConfig
from tunesmith.models.sampling import SamplingControls, sample_categorical

MODES = ["basic", "lookback", "attention"]
V, BAR = 7, 4  # tiny vocabulary and bar for fast tests


def _model(mode: str, **options) -> MelodyRNN:
    torch.manual_seed(0)
    config = MelodyRNNConfig(mode=mode, vocab_size=V, steps_per_bar=BAR, hidden_size=12,
                             num_layers=2, dropout=0.0, attn_length=3, **options)
    return MelodyRNN(config).eval()


def _events(batch=3, steps=20, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (batch, steps), generator=generator)


def test_registry_builds_each_mode_with_the_data_sizes():
    from tunesmith.representations import melody

    info = melody.info(melody.MelodyConfig(), steps_per_bar=12)
    for mode in MODES:
        model = registry.build(f"melody-rnn-{mode}", {"hidden_size": 8}, data_info=info)
        assert isinstance(model, MelodyRNN)
        assert (model.config.mode, model.config.vocab_size, model.config.steps_per_bar) == (
            mode, 38, 12)
        assert model.family == "melody-rnn" and model.representation == "melody"
    assert registry.get_family("melody-rnn-basic") is MelodyRNN
    with pytest.raises(ConfigError, match="mode"):
        MelodyRNNConfig(mode="transformer")
    with pytest.raises(ConfigError, match="pianoroll"):
        registry.build("melody-rnn-basic", data_info=roll_info())
    config = MelodyRNNConfig(mode="attention", attn_length=7)
    assert MelodyRNNConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("mode", MODES)
def test_forward_backward(mode):
    model = _model(mode, embedding_size=5 if mode == "lookback" else 0).train()
    events = _events()
    mask = torch.ones_like(events, dtype=torch.bool)
    mask[1, 15:] = False
    out = model.loss({"events": events, "mask": mask})
    assert set(out) == {"loss", "accuracy"}
    assert torch.isfinite(out["loss"]) and 0 <= out["accuracy"].item() <= 1
    # an untrained model is close to uniform over its classes
    classes = V + 2 if mode == "lookback" else V
    assert abs(out["loss"].item() - torch.log(torch.tensor(float(classes))).item()) < 0.3
    out["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert model(events).shape == (3, 20, classes)


@pytest.mark.parametrize("mode", MODES)
def test_padding_does_not_change_the_loss(mode):
    model = _model(mode)
    events = _events(batch=1, steps=13)
    alone = model.loss({"events": events, "mask": torch.ones_like(events, dtype=torch.bool)})
    padded = torch.cat([events, torch.full((1, 6), 3)], dim=1)
    mask = torch.zeros_like(padded, dtype=torch.bool)
    mask[:, :13] = True
    with_padding = model.loss({"events": padded, "mask": mask})
    torch.testing.assert_close(alone["loss"], with_padding["loss"])
    torch.testing.assert_close(alone["accuracy"], with_padding["accuracy"])


@pytest.mark.parametrize("mode", MODES)
def test_causality(mode):
    model = _model(mode)
    events = _events()
    logits = model(events)
    for k in (0, 5, 11, 19):
        changed = events.clone()
        changed[:, k:] = (changed[:, k:] + 1) % V
        new_logits = model(changed)
        torch.testing.assert_close(new_logits[:, : k + 1], logits[:, : k + 1])
        if k + 1 < events.shape[1]:
            assert not torch.allclose(new_logits[:, k + 1], logits[:, k + 1])


def _naive_generate(model, n, steps, controls, prime=None):
    """Re-run the whole prefix at every step: no state carried."""
    generator = controls.generator()
    events = torch.zeros(n, steps, dtype=torch.long)
    n_prime = 0 if prime is None else prime.shape[-1]
    if prime is not None:
        events[:, :n_prime] = prime
    all_logits = []
    with torch.no_grad():
        for t in range(steps):
            logits = model(events)[:, t]  # entries >= t are not read for step t
            all_logits.append(logits)
            if t >= n_prime:
                classes = sample_categorical(logits, controls, generator)
                events[:, t] = model._resolve(classes, events, t)
    return events, torch.stack(all_logits, dim=1)


@pytest.mark.parametrize("mode", MODES)
def test_carried_state_generation_equals_naive_rerun(mode):
    model = _model(mode)
    controls = SamplingControls(temperature=1.3, top_k=5, seed=7)
    fast = model.generate(4, 17, controls)
    slow, slow_logits = _naive_generate(model, 4, 17, controls)
    assert torch.equal(fast, slow)
    assert fast.dtype == torch.long and fast.shape == (4, 17)
    assert fast.min() >= 0 and fast.max() < V
    # and the carried logits match the full re-run step by step
    state, stepped = None, []
    with torch.no_grad():
        for t in range(17):
            logits, state = model.step_logits(fast, t, state)
            stepped.append(logits)
    torch.testing.assert_close(torch.stack(stepped, dim=1), slow_logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_prime_is_kept(mode):
    model = _model(mode)
    prime = torch.tensor([3, 0, 0, 1, 4, 0])
    out = model.generate(2, 12, SamplingControls(seed=3), prime=prime)
    assert torch.equal(out[:, :6], prime.expand(2, -1))
    slow, _ = _naive_generate(model, 2, 12, SamplingControls(seed=3), prime=prime)
    assert torch.equal(out, slow)
    per_sample = torch.tensor([[1, 2, 3], [4, 5, 6]])
    assert torch.equal(model.generate(2, 5, prime=per_sample)[:, :3], per_sample)
    assert torch.equal(model.generate(2, 2, prime=per_sample), per_sample[:, :2])
    with pytest.raises(ConfigError, match="prime"):
        model.generate(2, 5, prime=torch.tensor([V]))
    assert not model.training


def test_generate_restores_training_mode_and_is_seeded():
    model = _model("basic").train()
    a = model.generate(3, 10, SamplingControls(seed=11))
    b = model.generate(3, 10, SamplingControls(seed=11))
    assert model.training and torch.equal(a, b)


def test_lookback_input_features_by_hand():
    model = _model("lookback")  # V = 7 events + START, bar = 4 steps, 3-bit clock
    assert model.clock_bits == 3
    events = torch.tensor([[2, 0, 2, 3, 2, 5, 2, 0, 2]])
    features = model.features(events)  # (1, 9, 3 * 8 + 3 + 2)
    assert features.shape == (1, 9, 29)

    def expected(previous, one_bar, two_bars, t, repeats):
        clock = [1.0 if (t % 8) >> bit & 1 else -1.0 for bit in range(3)]
        return torch.cat([F.one_hot(torch.tensor(previous), 8).float(),
                          F.one_hot(torch.tensor(one_bar), 8).float(),
                          F.one_hot(torch.tensor(two_bars), 8).float(),
                          torch.tensor(clock), torch.tensor(repeats, dtype=torch.float)])

    # step 0: previous = START (7), nothing one or two bars back (NO_EVENT)
    torch.testing.assert_close(features[0, 0], expected(7, 0, 0, 0, [0, 0]))
    # step 5 predicts e5: previous e4 = 2, e1 = 0 one bar back, before the start two bars
    # back; clock 5 = 101b; e4 == e0 (1 bar before e4) -> flag 1
    torch.testing.assert_close(features[0, 5], expected(2, 0, 0, 5, [1, 0]))
    # step 8: previous e7 = 0, e4 = 2 one bar back, e0 = 2 two bars back; clock 8 mod 8 = 0;
    # e7 (0) vs e3 (3): no; e7 has nothing 2 bars back (index -1)
    torch.testing.assert_close(features[0, 8], expected(0, 2, 2, 8, [0, 0]))
    # step 7: previous e6 = 2; e6 == e2 (one bar) yes; two bars before e6 is index -2: no
    torch.testing.assert_close(features[0, 7], expected(2, 3, 0, 7, [1, 0]))


def test_lookback_labels_and_their_resolution():
    model = _model("lookback")
    events = torch.tensor([[2, 0, 2, 3, 2, 0, 4, 3, 2, 5, 4, 6]])
    # t0: 2; t1: a rest before 2 bars -> "2 bars" (8); t2: 2; t3: 3; t4: e4 == e0 -> "1 bar" (7)
    # t5: rest before 2 bars -> 8; t6: 4; t7: e7 == e3 -> 7; t8: e8 == e0 (2 bars) -> 8
    # t9: 5; t10: e10 == e6 (1 bar) -> 7; t11: 6
    assert model.lookback_labels(events).tolist() == [[2, 8, 2, 3, 7, 8, 4, 7, 8, 5, 7, 6]]
    history = torch.zeros(1, 12, dtype=torch.long)
    history[0, :9] = events[0, :9]
    assert model._resolve(torch.tensor([V]), history, 9).tolist() == [history[0, 5].item()]
    assert model._resolve(torch.tensor([V + 1]), history, 9).tolist() == [history[0, 1].item()]
    assert model._resolve(torch.tensor([V + 1]), history, 3).tolist() == [0]  # before start
    assert model._resolve(torch.tensor([4]), history, 9).tolist() == [4]


def test_a_tiny_model_learns_a_repeating_melody():
    torch.manual_seed(0)
    melody = torch.tensor([[2, 0, 3, 0, 4, 1, 4, 0] * 4])
    batch = {"events": melody, "mask": torch.ones_like(melody, dtype=torch.bool)}
    for mode in MODES:
        model = MelodyRNN(MelodyRNNConfig(mode=mode, vocab_size=V, steps_per_bar=8, hidden_size=16,
                                 num_layers=1, dropout=0.0, attn_length=4))
        optimizer = model.configure_optimizers(lr=0.05)
        first = model.loss(batch)["loss"].item()
        for _ in range(60):
            optimizer.zero_grad()
            out = model.loss(batch)
            out["loss"].backward()
            optimizer.step()
        assert out["loss"].item() < 0.25 * first, mode
        assert out["accuracy"].item() > 0.9, mode
        # greedy-ish sampling continues the pattern from a one-bar prime
        sample = model.generate(1, 32, SamplingControls(temperature=0.05, seed=0),
                                prime=melody[0, :8])
        assert torch.equal(sample, melody), mode


def test_samples_decode_through_the_melody_representation():
    from tunesmith.representations import melody

    cfg = melody.MelodyConfig()
    model = registry.build("melody-rnn-lookback", {"hidden_size": 8, "num_layers": 1},
                           data_info=melody.info(cfg))
    events = model.generate(2, 48, SamplingControls(seed=0))
    for row in events.numpy():
        score = melody.decode(row, cfg)
        pitches = [n.pitch for n in score.tracks[0].notes]
        assert all(cfg.pitch_low <= p <= cfg.pitch_high for p in pitches)
        assert len(pitches) == sum(int(e) >= melody.FIRST_PITCH_EVENT for e in row)
