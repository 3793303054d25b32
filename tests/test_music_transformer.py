"""Music Transformer: skewed relative attention, causality, KV cache, grammar, priming."""

from __future__ import annotations

import miditok
import pytest
import torch

from tunesmith.models import registry
from tunesmith.models.music_transformer import (
    RelativeSelfAttention,
    relative_attention_naive,
    relative_logits_skewed,
)
from tunesmith.models.sampling import SamplingControls
from tunesmith.models.transformer_blocks import merge_heads, split_heads
from tunesmith.representations.events import EventsConfig, build_tokenizer
from tunesmith.representations.events import info as events_info

TINY = dict(d_model=16, n_heads=2, n_layers=2, d_ff=32, context=24, dropout=0.0)


def tiny_model(name="music-transformer", tokenizer="REMI", **options):
    info = events_info(EventsConfig(tokenizer=tokenizer))
    torch.manual_seed(0)
    return registry.build(name, {**TINY, **options}, info).double().eval()


@pytest.mark.parametrize("per_head", [True, False])
def test_skewing_equals_naive_relative_attention(per_head):
    torch.manual_seed(0)
    attention = RelativeSelfAttention(8, 2, context=10, per_head=per_head, dropout=0.0).double()
    x = torch.randn(3, 7, 8, dtype=torch.float64)  # T = 7 < L = 10
    q, k, v = (split_heads(z, 2) for z in attention.qkv(x).split(8, dim=-1))
    expected = attention.out(merge_heads(relative_attention_naive(q, k, v, attention.er[:, :]
                                                                  if per_head
                                                                  else attention.er[0])))
    assert torch.allclose(attention(x), expected, atol=1e-12)


def test_skewed_logits_are_the_relative_logits():
    torch.manual_seed(1)
    q = torch.randn(1, 1, 5, 4, dtype=torch.float64)
    er = torch.randn(1, 5, 4, dtype=torch.float64)  # distances 4..0
    s_rel = relative_logits_skewed(q, er)
    for i in range(5):
        for j in range(i + 1):
            assert torch.allclose(s_rel[0, 0, i, j], q[0, 0, i] @ er[0, 4 - (i - j)])


def test_causality():
    model = tiny_model()
    tokens = torch.randint(3, model.config.vocab_size, (2, 20))
    changed = tokens.clone()
    changed[:, 12:] = torch.randint(3, model.config.vocab_size, (2, 8))
    a, b = model.forward_tokens(tokens), model.forward_tokens(changed)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-12)
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_cached_logits_equal_full_forward():
    model = tiny_model()
    tokens = torch.randint(3, model.config.vocab_size, (2, 20))
    full = model.forward_tokens(tokens)
    cache = model.new_cache(2)
    steps = [model.forward_tokens(tokens[:, :5], cache)]
    steps += [model.forward_tokens(tokens[:, t : t + 1], cache) for t in range(5, 20)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-10)


@pytest.mark.parametrize("constrained", [True, False])
def test_cached_sampling_equals_naive_past_the_window(constrained):
    """70 tokens with a 24-token context: the window slides 4 times (23 tokens per window,
    11 dropped per slide); the cached and uncached samplers draw the same tokens."""
    model = tiny_model(constrained=constrained)
    controls = SamplingControls(temperature=0.9, top_k=50, top_p=0.95, seed=3)
    cached = model.generate(3, 70, controls)
    naive = model.generate_naive(3, 70, controls)
    assert torch.equal(cached, naive)
    assert cached.shape == (3, 70)


@pytest.mark.parametrize("tokenizer", ["REMI", "MIDILike"])
def test_constrained_samples_decode_without_errors(tokenizer):
    model = tiny_model(tokenizer=tokenizer).float()
    out = model.generate(4, 90, SamplingControls(seed=0))
    midi_tokenizer = build_tokenizer(EventsConfig(tokenizer=tokenizer))
    for row in out.tolist():
        assert row[0] == 1  # BOS opens every sample, as in the data
        assert midi_tokenizer.tokens_errors(miditok.TokSequence(ids=row[1:])) == 0
        assert midi_tokenizer.decode(miditok.TokSequence(ids=row[1:])).note_num() > 0


def test_prime_is_kept():
    model = tiny_model()
    tokenizer = build_tokenizer(EventsConfig())
    prime = torch.tensor([1] + [tokenizer.vocab[n] for n in (
        "Bar_None", "TimeSig_4/4", "Position_0", "Program_0", "Pitch_60", "Velocity_63",
        "Duration_1.0.8", "Program_0", "Pitch_64")])
    out = model.generate(2, 40, SamplingControls(seed=0), prime=prime)
    assert torch.equal(out[:, : len(prime)], prime.expand(2, -1))
    assert all(tokenizer[i].startswith("Velocity") for i in out[:, len(prime)].tolist())


def test_a_few_steps_of_training_lower_the_loss():
    model = tiny_model().float().train()
    batch = {"tokens": torch.randint(3, model.config.vocab_size, (2, 30)),
             "mask": torch.ones(2, 30, dtype=torch.bool)}
    model.config.transpose = 0
    optimizer = model.configure_optimizers(lr=1e-2)
    first = model.loss(batch)["loss"].item()
    for _ in range(20):
        optimizer.zero_grad()
        model.loss(batch)["loss"].backward()
        optimizer.step()
    assert model.loss(batch)["loss"].item() < first - 1.0


def test_loss_counts_only_masked_tokens_and_cuts_long_rows_into_windows():
    model = tiny_model()
    tokens = torch.randint(3, model.config.vocab_size, (1, 50))  # > 24: three windows
    mask = torch.ones(1, 50, dtype=torch.bool)
    out = model.loss({"tokens": tokens, "mask": mask})
    assert out["tokens"].item() == 50
    padded = torch.cat([tokens, torch.zeros(1, 10, dtype=torch.long)], dim=1)
    out_padded = model.loss({"tokens": padded,
                             "mask": torch.cat([mask, torch.zeros(1, 10, dtype=torch.bool)], 1)})
    assert torch.allclose(out["loss"], out_padded["loss"])
