"""GPT over event tokens: causality, KV cache (rotary and learned positions), conditioning
tokens, track embeddings, constrained decoding and priming."""

from __future__ import annotations

import miditok
import pytest
import torch

from tunesmith.models import registry
from tunesmith.models.gpt import estimate_key
from tunesmith.models.sampling import SamplingControls
from tunesmith.representations.events import EventsConfig, build_tokenizer
from tunesmith.representations.events import info as events_info

TINY = dict(d_model=16, n_heads=2, n_layers=2, d_ff=32, context=24, dropout=0.0)




def tiny_gpt(tokenizer="REMI", **options):
    info = events_info(EventsConfig(tokenizer=tokenizer))
    torch.manual_seed(0)
    return registry.build("gpt-events", {**TINY, **options}, info).double().eval()


def _ids(names):
    tokenizer = build_tokenizer(EventsConfig())
    return torch.tensor([tokenizer.vocab[n] for n in names])


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_causality(positions):
    model = tiny_gpt(positions=positions)
    tokens = torch.randint(3, model.config.vocab_size, (2, 20))
    changed = tokens.clone()
    changed[:, 12:] = torch.randint(3, model.config.vocab_size, (2, 8))
    a, b = model.forward_tokens(tokens), model.forward_tokens(changed)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-12)
    assert not torch.allclose(a[:, 12:], b[:, 12:])


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_cached_logits_equal_full_forward(positions):
    model = tiny_gpt(positions=positions)
    program = build_tokenizer(EventsConfig()).vocab["Program_40"]
    tokens = torch.randint(3, model.config.vocab_size, (2, 20))
    tokens[:, 3] = program  # a track that the cached steps must carry along
    full = model.forward_tokens(tokens)
    cache = model.new_cache(2)
    steps = [model.forward_tokens(tokens[:, :5], cache)]
    steps += [model.forward_tokens(tokens[:, t : t + 1], cache) for t in range(5, 20)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-10)


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_cached_sampling_equals_naive_past_the_window(positions):
    """70 tokens, 24-token context with a 5-token prefix: the window slides 5 times."""
    model = tiny_gpt(positions=positions)
    controls = SamplingControls(temperature=1.1, top_k=40, seed=5)
    condition = {"key": 1, "density": torch.tensor([2, 3, 4])}
    cached = model.generate(3, 70, controls, condition=condition)
    naive = model.generate_naive(3, 70, controls, condition=condition)
    assert torch.equal(cached, naive)


def test_track_ids_follow_program_tokens():
    model = tiny_gpt()
    tokens = _ids(["Bar_None", "Position_0", "Program_0", "Pitch_60", "Velocity_63",
                   "Duration_1.0.8", "Program_-1", "PitchDrum_36"])[None]
    assert model.track_ids(tokens, None).tolist() == [[0, 0, 2, 2, 2, 2, 1, 1]]


def test_conditioning_tokens_come_after_the_vocabulary_and_change_the_logits():
    model = tiny_gpt()
    v = model.config.vocab_size
    prefix = model.prefix_tokens(2, {"corpus": 1, "key": torch.tensor([1, 13]), "tempo": 0,
                                     "density": 3})
    sizes = model.config.condition_sizes()  # (9, 25, 9, 9)
    expected = [v + 1 + 1, v + 1 + sizes[0] + 1, v + 1 + sizes[0] + sizes[1] + 0,
                v + 1 + sizes[0] + sizes[1] + sizes[2] + 3, v]
    assert prefix[0].tolist() == expected
    assert prefix[1, 1].item() == v + 1 + sizes[0] + 13
    assert model.n_extra_tokens == 1 + sum(sizes)
    tokens = torch.randint(3, v, (2, 6))
    logits = model.forward_tokens(torch.cat([prefix, tokens], dim=1))[:, -1]
    assert not torch.allclose(logits[0], logits[1])
    with pytest.raises(Exception, match="out of range"):
        model.prefix_tokens(1, {"key": 25})


def test_conditions_computed_from_tokens():
    model = tiny_gpt()
    c_major = ["Pitch_60", "Pitch_62", "Pitch_64", "Pitch_65", "Pitch_67", "Pitch_69",
               "Pitch_71", "Pitch_72", "Pitch_67", "Pitch_60", "Pitch_64"]
    names = ["Bar_None"]
    for pitch in c_major:
        names += ["Position_0", "Program_0", pitch, "Velocity_63", "Duration_1.0.8"]
    names += ["Bar_None"]
    tokens = _ids(names)[None]
    values = model.condition_values(tokens, {"mask": torch.ones_like(tokens, dtype=torch.bool),
                                             "corpus_id": torch.tensor([2])})
    # corpus 2 -> 3; C major -> 1; no Tempo token -> 0; 11 notes over 2 bars = 5.5 per bar
    # -> log2 buckets over 1..64 with edges 2^0.75, 2^1.5, 2^2.25, 2^3, ... : bucket 3 + 1
    assert values.tolist() == [[3, 1, 0, 4]]
    a_minor = torch.tensor([[9, 11, 0, 2, 4, 5, 8, 9, 4, 9, 0, 9]])  # pitch classes
    assert estimate_key(a_minor).item() == 1 + 12 + 9


def test_constrained_samples_decode_without_errors():
    model = tiny_gpt(tokenizer="MIDILike").float()
    out = model.generate(3, 80, SamplingControls(seed=1), condition={"key": 5})
    tokenizer = build_tokenizer(EventsConfig(tokenizer="MIDILike"))
    for row in out.tolist():
        assert tokenizer.tokens_errors(miditok.TokSequence(ids=row[1:])) == 0
        assert tokenizer.decode(miditok.TokSequence(ids=row[1:])).note_num() > 0


def test_prime_is_kept_and_extras_are_never_sampled():
    model = tiny_gpt(constrained=False)
    prime = _ids(["Bar_None", "TimeSig_4/4", "Position_0", "Program_0", "Pitch_60"])
    out = model.generate(4, 50, SamplingControls(seed=2), prime=prime)
    assert torch.equal(out[:, :5], prime.expand(4, -1))
    assert out.max().item() < model.config.vocab_size


def test_training_loss_with_conditions_and_transposition():
    model = tiny_gpt().float().train()
    tokens = torch.randint(3, model.config.vocab_size, (3, 40))
    batch = {"tokens": tokens, "mask": torch.ones(3, 40, dtype=torch.bool),
             "corpus_id": torch.tensor([0, 1, 2])}
    out = model.loss(batch)
    out["loss"].backward()
    assert out["tokens"].item() == 120
    assert model.embed.weight.grad is not None and torch.isfinite(out["loss"])
