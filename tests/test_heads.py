"""Output heads: the NADE head is a normalised, autoregressive distribution over a frame."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from tunesmith.errors import ConfigError
from tunesmith.models.heads import HEADS, BernoulliHead, NADEHead, VoiceHead, make_head
from tunesmith.models.sampling import SamplingControls


def all_frames(keys: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=keys)))  # (2^K, K)


def random_nade(hidden=5, keys=4, nade_hidden=6, seed=0, **ranges) -> NADEHead:
    torch.manual_seed(seed)
    head = NADEHead(hidden, keys, nade_hidden=nade_hidden, **ranges)
    with torch.no_grad():  # larger weights than the init, so that the test is not trivial
        for parameter in head.parameters():
            parameter.normal_(0, 1.0)
    return head


def test_nade_is_registered_and_unknown_head_is_an_error():
    assert HEADS["nade"] is NADEHead
    assert isinstance(make_head("nade", 8, 5, nade_hidden=3), NADEHead)
    with pytest.raises(ConfigError, match="NADE keys"):
        NADEHead(8, 5, nade_low=3, nade_high=7)
    with pytest.raises(ConfigError, match="unknown output head"):
        make_head("nope", 8, 5)


@pytest.mark.parametrize("ranges", [{}, {"nade_low": 1, "nade_high": 4}])
def test_nade_probabilities_over_all_frames_sum_to_one(ranges):
    head = random_nade(keys=5, **ranges)
    frames = all_frames(5)  # (32, 5)
    for h in torch.randn(3, 5):
        log_probs = head.log_prob(h.expand(len(frames), 5), frames)  # (32,)
        assert torch.logsumexp(log_probs, 0).item() == pytest.approx(0.0, abs=1e-5)
        assert log_probs.exp().min() > 0


def test_nade_log_prob_equals_key_by_key_product():
    head = random_nade(keys=5)
    h = torch.randn(2, 3, 5)  # (B, T, H)
    x = (torch.rand(2, 3, 5) > 0.5).float()
    expected = torch.zeros(2, 3)
    for k in range(5):  # explicit NADE recursion, one key at a time
        a = head.hidden_bias(h) + x[..., :k] @ head.input_weight[:k]
        logit = head.visible_bias(h)[..., k] + torch.sigmoid(a) @ head.output_weight[k]
        p = torch.sigmoid(logit)
        expected += torch.where(x[..., k] > 0, p.log(), (1 - p).log())
    assert torch.allclose(head.log_prob(h, x), expected, atol=1e-5)


def dense_nade_logits(head: NADEHead, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The textbook O(K·N) form: a_k = c(h) + cumulative sum of x_j W_j over j < k."""
    active = x[..., head.low : head.high]
    contribution = active.unsqueeze(-1) * head.input_weight  # (..., Ka, N)
    below = contribution.cumsum(-2) - contribution
    hidden = torch.sigmoid(below + head.hidden_bias(h).unsqueeze(-2))
    autoregressive = (hidden * head.output_weight).sum(-1)  # (..., Ka)
    autoregressive = torch.nn.functional.pad(autoregressive, (head.low, head.keys - head.high))
    return head.visible_bias(h) + autoregressive


@pytest.mark.parametrize("ranges", [{}, {"nade_low": 2, "nade_high": 7}])
def test_nade_segment_logits_and_gradients_equal_the_dense_form(ranges):
    head = random_nade(hidden=4, keys=9, nade_hidden=5, **ranges)
    h = torch.randn(3, 4, 4, requires_grad=True)  # (B, T, H)
    x = (torch.rand(3, 4, 9) > 0.6).float()
    x[0, 0] = 0  # a silent frame (and padding) has one segment
    x[1, 2] = 1  # every key sounding: the most segments
    x[2, 1, 3] = 0.5  # non-binary values weight W_j by x_j
    weights = torch.randn(3, 4, 9)
    fast = head.logits(h, x)
    (fast * weights).sum().backward()
    fast_grads = [p.grad.clone() for p in (h, *head.parameters())]
    for p in (h, *head.parameters()):
        p.grad = None
    dense = dense_nade_logits(head, h, x)
    (dense * weights).sum().backward()
    assert torch.allclose(fast, dense, atol=1e-5)
    for fast_grad, p in zip(fast_grads, (h, *head.parameters()), strict=True):
        assert torch.allclose(fast_grad, p.grad, atol=1e-5)


def test_nade_conditional_of_key_ignores_keys_at_and_above_it():
    head = random_nade(keys=6)
    h = torch.randn(1, 5)
    x = (torch.rand(1, 6) > 0.5).float()
    k = 3
    changed = x.clone()
    changed[:, k:] = 1 - changed[:, k:]
    assert torch.allclose(head.logits(h, x)[:, : k + 1], head.logits(h, changed)[:, : k + 1])
    assert not torch.allclose(head.logits(h, x)[:, k + 1 :], head.logits(h, changed)[:, k + 1 :])


@pytest.mark.parametrize("ranges", [{}, {"nade_low": 2, "nade_high": 5}])
def test_nade_threshold_sample_is_the_greedy_chain_of_its_conditionals(ranges):
    head = random_nade(keys=6, **ranges)
    h = torch.randn(4, 5)
    frame = head.sample(h, SamplingControls(threshold=0.5))  # (4, 6)
    probs = torch.sigmoid(head.logits(h, frame))  # conditionals given the chosen lower keys
    assert torch.equal(frame, (probs > 0.5).float())


def test_nade_sample_respects_note_limit_per_group_and_seed():
    head = random_nade(keys=6)
    with torch.no_grad():
        head.visible_bias.bias.fill_(20.0)  # every key wants to sound
    h = torch.randn(3, 5)
    frame = head.sample(h, SamplingControls(max_notes_per_step=2), group_size=3)
    assert frame.reshape(3, 2, 3).sum(-1).tolist() == [[2.0, 2.0]] * 3
    a = head.sample(h, SamplingControls(seed=7), generator=SamplingControls(seed=7).generator())
    b = head.sample(h, SamplingControls(seed=7), generator=SamplingControls(seed=7).generator())
    assert torch.equal(a, b)


def test_bernoulli_head_log_prob_is_sum_of_independent_keys():
    head = BernoulliHead(3, 4)
    h, x = torch.randn(2, 3), torch.tensor([[1.0, 0, 0, 1], [0, 0, 0, 0]])
    p = torch.sigmoid(head.logits(h))
    expected = torch.where(x > 0, p.log(), (1 - p).log()).sum(-1)
    assert torch.allclose(head.log_prob(h, x), expected, atol=1e-6)


# ---- one categorical per voice ------------------------------------------------------------
def voice_frames(voices: int, pitches: int) -> torch.Tensor:
    """Every frame with at most one note per voice: (P+1)^V rows of V·P keys."""
    rows = []
    for states in itertools.product(range(pitches + 1), repeat=voices):
        frame = torch.zeros(voices * pitches)
        for voice, state in enumerate(states):
            if state < pitches:  # state P is the rest
                frame[voice * pitches + state] = 1.0
        rows.append(frame)
    return torch.stack(rows)


def random_voices(hidden=5, voices=3, pitches=2, nade_hidden=4, seed=0) -> VoiceHead:
    torch.manual_seed(seed)
    head = VoiceHead(hidden, voices * pitches, n_tracks=voices, nade_hidden=nade_hidden)
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.normal_(0, 1.0)
    return head.eval()


def test_voices_head_is_registered_and_checks_its_tracks():
    head = make_head("voices", 8, 6, n_tracks=3, nade_hidden=4, nade_low=1)  # NADE option ignored
    assert isinstance(head, VoiceHead) and (head.voices, head.pitches) == (3, 2)
    with pytest.raises(ConfigError, match="do not split into 4 tracks"):
        make_head("voices", 8, 6, n_tracks=4)


def test_voices_log_prob_equals_a_hand_computation():
    """2 voices × 2 pitches, weights chosen so that every probability is a simple fraction.

    Voice 0: logits (0, ln 2, 0) -> p = (1/4, 1/2, 1/4) over (pitch 0, pitch 1, rest).
    One NADE unit: a_1 = ln 3 when voice 0 sings pitch 1 (σ = 3/4), else 0 (σ = 1/2);
    voice 1's logits (0, 4 ln 2 · σ(a_1), 0) -> p(pitch 1) = 8/10 or 4/6.
    """
    head = VoiceHead(hidden=1, keys=4, n_tracks=2, nade_hidden=1).eval()
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.zero_()
        head.visible_bias.bias[1] = math.log(2)  # voice 0, pitch 1
        head.input_weight[0, 1, 0] = math.log(3)  # voice 0 sang pitch 1
        head.output_weight[1, 1, 0] = 4 * math.log(2)  # voice 1, pitch 1
    h = torch.zeros(4, 1)
    x = torch.tensor([[0, 1, 0, 1],  # pitch 1, pitch 1: 1/2 · 8/10
                      [0, 0, 1, 0],  # rest, pitch 0: 1/4 · 1/6
                      [1, 0, 0, 1],  # pitch 0, pitch 1: 1/4 · 4/6
                      [0, 1, 0, 0]], dtype=torch.float32)  # pitch 1, rest: 1/2 · 1/10
    expected = torch.tensor([1 / 2 * 8 / 10, 1 / 4 * 1 / 6, 1 / 4 * 4 / 6, 1 / 2 * 1 / 10])
    torch.testing.assert_close(head.log_prob(h, x).exp(), expected)


def test_voices_log_prob_equals_the_voice_by_voice_product():
    head = random_voices(voices=3, pitches=4)
    h = torch.randn(2, 5, 5)  # (B, T, H)
    x = voice_frames(3, 4)[torch.randint(0, 125, (2, 5))]  # (B, T, K)
    expected = torch.zeros(2, 5)
    a = head.hidden_bias(h)  # (B, T, N)
    for v in range(3):  # explicit recursion: softmax of voice v given voices < v
        block = x[..., 4 * v : 4 * v + 4]
        state = torch.where(block.sum(-1) > 0, block.argmax(-1), 4)
        logits = head.visible_bias(h)[..., 5 * v : 5 * v + 5] + torch.sigmoid(a) @ \
            head.output_weight[v].T
        expected += torch.log_softmax(logits, -1).gather(-1, state[..., None])[..., 0]
        if v < 2:
            a = a + head.input_weight[v][state]
    torch.testing.assert_close(head.log_prob(h, x), expected)


@pytest.mark.parametrize(("voices", "pitches"), [(1, 4), (2, 3), (3, 2)])
def test_voices_probabilities_over_all_states_sum_to_one(voices, pitches):
    head = random_voices(voices=voices, pitches=pitches)
    frames = voice_frames(voices, pitches)
    for h in torch.randn(3, 5):
        log_probs = head.log_prob(h.expand(len(frames), 5), frames)
        assert torch.logsumexp(log_probs, 0).item() == pytest.approx(0.0, abs=1e-5)


def test_a_chord_in_one_voice_has_probability_zero_but_trains_as_its_highest_note():
    head = random_voices(voices=2, pitches=3)
    h = torch.randn(2, 5)
    chord = torch.tensor([[1.0, 0, 1, 0, 1, 0], [0, 0, 1, 0, 1, 0]])  # voice 0: pitches 0 and 2
    assert head.chords(chord).tolist() == [True, False]
    assert head.log_prob(h, chord)[0] == float("-inf")
    head.train()
    torch.testing.assert_close(head.log_prob(h, chord)[0], head.log_prob(h, chord[1:])[0])


def test_voices_samples_follow_log_prob_and_honour_the_controls():
    head = random_voices(voices=2, pitches=2)
    h = torch.randn(1, 5)
    frames = voice_frames(2, 2)  # (9, 4)
    probs = head.log_prob(h.expand(9, 5), frames).exp()
    draws = head.sample(h.expand(20_000, 5), SamplingControls(),
                        generator=torch.Generator().manual_seed(0))
    assert (draws.reshape(-1, 2, 2).sum(-1) <= 1).all()  # at most one note per voice
    frequency = (draws[:, None, :] == frames).all(-1).float().mean(0)  # (9,)
    assert torch.allclose(frequency, probs, atol=0.015)
    greedy = head.sample(h, SamplingControls(threshold=0.5))
    assert torch.equal(head.sample(h, SamplingControls(top_k=1)), greedy)
    assert torch.equal(head.sample(h, SamplingControls(top_p=1e-6)), greedy)
    states = head.states(greedy)  # each voice the argmax given the earlier voices' choices
    assert torch.equal(head.logits(h, states).argmax(-1), states)
    cold = head.sample(h.expand(2000, 5), SamplingControls(temperature=0.05),
                       generator=torch.Generator().manual_seed(1))
    assert (cold == greedy).all(-1).float().mean() > 0.95


def test_voices_head_draws_only_allowed_pitches_or_rest():
    """With an output mask, each voice draws a pitch its training data sounds, or rests:
    a masked pitch is never drawn (and never silently turned into a rest by draw())."""
    from tunesmith.models.heads import VoiceHead
    from tunesmith.models.sampling import SamplingControls

    torch.manual_seed(0)
    head = VoiceHead(hidden=5, keys=6, n_tracks=2, nade_hidden=4)
    allowed = torch.tensor([True, False, True, False, True, False])
    head.allowed_keys = allowed
    h = torch.randn(400, 5) * 3
    frames = head.draw(h, SamplingControls(temperature=2.0), torch.Generator().manual_seed(1))
    assert not frames[:, ~allowed].any()
    assert frames.reshape(400, 2, 3).sum(-1).max() <= 1
    unmasked = VoiceHead(hidden=5, keys=6, n_tracks=2, nade_hidden=4)
    unmasked.load_state_dict(head.state_dict())
    free = unmasked.draw(h, SamplingControls(temperature=2.0), torch.Generator().manual_seed(1))
    assert free[:, ~allowed].any()  # the same head without the mask does draw them


# ---- NADE regularisers: dropout on the hidden units, order-agnostic training, orderings


def ordered_nade_log_prob(head: NADEHead, h: torch.Tensor, x: torch.Tensor,
                          order: torch.Tensor) -> torch.Tensor:
    """The NADE recursion visiting the NADE keys in ``order`` (position -> key within
    [low, high)), one key at a time; keys outside the range are independent sigmoids."""
    visible = head.visible_bias(h)  # (..., K)
    total = torch.zeros(x.shape[:-1])
    a = head.hidden_bias(h)
    for k in [*range(head.low), *range(head.high, head.keys)]:
        p = torch.sigmoid(visible[..., k])
        total += torch.where(x[..., k] > 0, p.log(), (1 - p).log())
    for key in order.tolist():
        k = head.low + key
        p = torch.sigmoid(visible[..., k] + torch.sigmoid(a) @ head.output_weight[key])
        total += torch.where(x[..., k] > 0, p.log(), (1 - p).log())
        a = a + x[..., k : k + 1] * head.input_weight[key]
    return total


@pytest.mark.parametrize("ranges", [{}, {"nade_low": 1, "nade_high": 5}])
def test_nade_log_prob_in_any_order_equals_the_key_by_key_recursion(ranges):
    head = random_nade(keys=6, **ranges)
    width = head.high - head.low
    h = torch.randn(5, 5)
    x = (torch.rand(5, 6) > 0.5).float()
    orders = torch.stack([torch.randperm(width) for _ in range(5)])  # one per frame
    fast = head._log_prob(h, x, orders)
    for i in range(5):
        expected = ordered_nade_log_prob(head, h[i], x[i], orders[i])
        assert fast[i].item() == pytest.approx(expected.item(), abs=1e-5)
    # another order is another distribution (the test would pass for any order otherwise)
    assert not torch.allclose(fast, head._log_prob(h, x), atol=1e-3)


@pytest.mark.parametrize("ranges", [{}, {"nade_low": 1, "nade_high": 4}])
def test_nade_mixture_of_orderings_is_normalised_and_is_the_mean_of_its_orderings(ranges):
    torch.manual_seed(0)
    head = random_nade(keys=5, nade_orderings=3, nade_order_agnostic=True, **ranges).eval()
    assert head.orderings.shape == (3, head.high - head.low)
    assert head.orderings[0].tolist() == list(range(head.high - head.low))
    frames = all_frames(5)  # (32, 5)
    for h in torch.randn(3, 5):
        h = h.expand(len(frames), 5)
        log_probs = head.log_prob(h, frames)  # (32,)
        assert torch.logsumexp(log_probs, 0).item() == pytest.approx(0.0, abs=1e-5)
        each = torch.stack([ordered_nade_log_prob(head, h, frames, o) for o in head.orderings])
        assert torch.allclose(log_probs, each.exp().mean(0).log(), atol=1e-5)


def test_nade_order_agnostic_training_scores_each_frame_in_a_random_order():
    head = random_nade(keys=6, nade_order_agnostic=True).train()
    h, x = torch.randn(2, 3, 5), (torch.rand(2, 3, 6) > 0.5).float()
    torch.manual_seed(3)
    trained = head.log_prob(h, x)  # (2, 3)
    torch.manual_seed(3)
    orders = torch.rand(6, 6).argsort(-1)  # the orderings the head drew, one per frame
    expected = torch.stack([ordered_nade_log_prob(head, h.reshape(6, 5)[i], x.reshape(6, 6)[i],
                                                  orders[i]) for i in range(6)]).reshape(2, 3)
    assert torch.allclose(trained, expected, atol=1e-5)
    assert len({tuple(o.tolist()) for o in orders}) > 1  # not one order for all frames
    # in eval mode with one ordering it is the low-to-high NADE, as without the option
    plain = random_nade(keys=6).eval()
    assert torch.allclose(head.eval().log_prob(h, x), plain.log_prob(h, x))


def test_nade_dropout_acts_in_training_only_and_zero_changes_nothing():
    h, x = torch.randn(4, 5), (torch.rand(4, 6) > 0.5).float()
    plain, off, on = (random_nade(keys=6, nade_dropout=p) for p in (0.0, 0.0, 0.5))
    for head in (plain, off, on):
        head.train()
    torch.manual_seed(1)
    assert torch.equal(off.log_prob(h, x), plain.log_prob(h, x))
    torch.manual_seed(1)
    dropped = on.log_prob(h, x)
    assert not torch.allclose(dropped, plain.log_prob(h, x))
    # scoring (eval mode) is the undropped head
    assert torch.allclose(on.eval().log_prob(h, x), plain.eval().log_prob(h, x))


def test_nade_options_are_checked():
    with pytest.raises(ConfigError, match="nade_dropout"):
        NADEHead(5, 6, nade_dropout=1.0)
    with pytest.raises(ConfigError, match="nade_order_agnostic"):
        NADEHead(5, 6, nade_orderings=2)
    with pytest.raises(ConfigError, match="nade_orderings"):
        NADEHead(5, 6, nade_orderings=0, nade_order_agnostic=True)


def test_nade_orderings_are_saved_with_the_weights():
    head = NADEHead(5, 6, nade_orderings=4, nade_order_agnostic=True)
    assert "orderings" in head.state_dict()
    assert "orderings" not in NADEHead(5, 6).state_dict()  # older checkpoints still load
    other = NADEHead(5, 6, nade_orderings=4, nade_order_agnostic=True)
    other.load_state_dict(head.state_dict())
    assert torch.equal(other.orderings, head.orderings)


def test_nade_samples_from_the_mixture_of_orderings():
    head = random_nade(keys=3, nade_orderings=3, nade_order_agnostic=True).eval()
    h = torch.randn(1, 5).expand(6000, 5)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        frames = head.sample(h, SamplingControls(), generator=generator)  # (6000, 3)
        codes = (frames * torch.tensor([4.0, 2.0, 1.0])).sum(-1).long()
        observed = torch.bincount(codes, minlength=8).float() / len(codes)
        expected = head.log_prob(h[:8], all_frames(3)).exp()  # codes 0..7 in this order
    assert torch.allclose(observed, expected, atol=0.025)
    # the greedy chain of one of the orderings, row by row; note limits per group hold
    with torch.no_grad():
        head.visible_bias.bias.fill_(20.0)
        full = head.sample(torch.randn(4, 5), SamplingControls(max_notes_per_step=1),
                           group_size=3)
    assert full.sum(-1).tolist() == [1.0] * 4
