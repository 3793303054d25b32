"""Frame Transformer: relative attention past its learned distances, causality, cached
sampling equal to the full pass, and the NADE head's exact likelihood through it."""

from __future__ import annotations

import itertools

import torch

from tiny_model import assert_input_dropout_acts_in_training_only, roll_info
from tunesmith.models import registry
from tunesmith.models.likelihood import frame_nll, sequence_log_probs
from tunesmith.models.music_transformer import RelativeSelfAttention, relative_attention_naive
from tunesmith.models.sampling import SamplingControls
from tunesmith.models.transformer_blocks import merge_heads, split_heads

TINY = dict(d_model=16, n_heads=2, n_layers=2, d_ff=32, context=5, dropout=0.0)


def tiny_model(keys=6, **options):
    torch.manual_seed(0)
    info = roll_info(["Piano"], 60, 60 + keys - 1)
    return registry.build("frame-transformer", {**TINY, **options}, info).double().eval()


def random_frames(batch, steps, keys, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, steps, keys, generator=g, dtype=torch.float64) < 0.3).double()


def test_distances_beyond_the_context_share_the_farthest_embedding():
    torch.manual_seed(0)
    attention = RelativeSelfAttention(8, 2, context=4, per_head=True, dropout=0.0).double()
    x = torch.randn(2, 9, 8, dtype=torch.float64)  # T = 9 > context = 4
    q, k, v = (split_heads(z, 2) for z in attention.qkv(x).split(8, dim=-1))
    # the naive form clamps distances >= context - 1 to the farthest row
    expected = attention.out(merge_heads(relative_attention_naive(q, k, v, attention.er)))
    assert torch.allclose(attention(x), expected, atol=1e-12)


def test_features_are_causal():
    model = tiny_model()
    frames = random_frames(2, 12, 6)
    changed = frames.clone()
    changed[:, 8:] = 1 - changed[:, 8:]
    a, _ = model.features(frames)
    b, _ = model.features(changed)
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-12)
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_cached_steps_equal_the_full_pass_past_the_context():
    model = tiny_model()
    frames = random_frames(3, 11, 6)  # longer than context = 5
    full, _ = model.features(frames)
    cache = model.initial_state(3, 11)
    _, cache = model.features(frames[:, :4], cache)  # a primed prefix, then one frame a step
    steps = [model.features(frames[:, t : t + 1], cache)[0] for t in range(4, 11)]
    assert torch.allclose(torch.cat(steps, dim=1), full[:, 4:], atol=1e-10)


def test_nade_head_gives_a_normalised_frame_distribution():
    keys = 4
    model = tiny_model(keys=keys, head="nade", nade_hidden=5)
    prefix = random_frames(1, 3, keys)
    total = 0.0
    for bits in itertools.product([0.0, 1.0], repeat=keys):
        frames = torch.cat([prefix, torch.tensor([[bits]], dtype=torch.float64)], dim=1)
        total += model.frame_log_prob(frames)[0, -1].exp().item()
    assert abs(total - 1.0) < 1e-9


def test_padding_does_not_change_the_benchmark_nll():
    model = tiny_model(head="nade", nade_hidden=5)
    a, b = random_frames(1, 9, 6, seed=1), random_frames(1, 5, 6, seed=2)
    batch = torch.zeros(2, 9, 6, dtype=torch.float64)
    batch[0], batch[1, :5] = a[0], b[0]
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0], mask[1, :5] = True, True
    padded, n_padded = frame_nll(sequence_log_probs(model, batch, mask), mask)
    alone = [frame_nll(sequence_log_probs(model, x, m), m)
             for x in (a, b) for m in [torch.ones(1, x.shape[1], dtype=torch.bool)]]
    assert n_padded == sum(n for _, n in alone) == 8 + 4
    assert torch.allclose(padded, sum(total for total, _ in alone), atol=1e-10)


def test_generation_keeps_the_primer_and_fills_the_requested_length():
    model = tiny_model(head="nade", nade_hidden=5).float()
    prime = random_frames(2, 3, 6).float()
    out = model.generate(2, 9, SamplingControls(seed=0), prime=prime)
    assert out.shape == (2, 9, 6)
    assert torch.equal(out[:, :3], prime)
    assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_input_dropout_acts_on_the_context_in_training_only():
    assert_input_dropout_acts_in_training_only(
        lambda **options: tiny_model(dropout=0.0, **options), random_frames(2, 10, 6))
