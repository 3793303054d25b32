"""Every registered family at tiny sizes: one forward/backward step, and a checkpoint round
trip (save -> load gives the same weights, the same loss and the same samples)."""

from __future__ import annotations

import pytest
import torch

from tiny_model import roll_info
from tunesmith.models import registry
from tunesmith.models.sampling import SamplingControls
from tunesmith.representations import drums, events, melody
from tunesmith.training.checkpoint import load_checkpoint, save_checkpoint

TRACKS, PITCHES, LOW = 2, 14, 55
PIANOROLL_INFO = roll_info(("Upper", "Lower"), LOW, LOW + PITCHES - 1, programs=[0, 33])
MELODY_INFO = melody.info(melody.MelodyConfig(steps_per_quarter=1))  # 4 steps a bar
EVENTS_INFO = events.info(events.EventsConfig())
DRUMS_INFO = drums.info(drums.DrumsConfig())  # 2-bar windows of 16 steps a bar
INFOS = {"pianoroll": PIANOROLL_INFO, "melody": MELODY_INFO, "events": EVENTS_INFO,
         "drums": DRUMS_INFO}

_VAE = dict(steps_per_bar=4, bars=2, input_embedding=6, encoder_hidden=8, latent_dim=5,
            conductor_hidden=8, conductor_output=6, decoder_hidden=8)
_GROOVAE = {k: v for k, v in _VAE.items() if k not in ("steps_per_bar", "bars")}
_TRANSFORMER = dict(d_model=16, n_heads=2, n_layers=1, d_ff=32, context=24, dropout=0.0)
#: option overrides that make each registered family tiny; a new family needs a line here
TINY_OPTIONS = {
    "wavenet": {"levels": 2, "channels": 4, "skip_channels": 4},
    "tcn": {"levels": 2, "channels": 4},
    "lstm": {"hidden": 4},
    "gru": {"hidden": 4},
    "lstm-nade": {"hidden": 4, "nade_hidden": 4},
    "biaxial": {"time_hidden": 4, "time_layers": 1, "note_hidden": 4, "note_layers": 1},
    "melody-rnn-basic": {"hidden_size": 8, "num_layers": 1},
    "melody-rnn-lookback": {"hidden_size": 8, "num_layers": 1},
    "melody-rnn-attention": {"hidden_size": 8, "num_layers": 1, "attn_length": 4},
    "music-vae": _VAE,
    "music-vae-flat": _VAE,
    "music-vae-pianoroll": _VAE,
    "groovae": _GROOVAE,
    "groovae-flat": _GROOVAE,
    "midinet": {"z_dim": 4, "g_dense": 8, "g_channels": 6, "conditioner_channels": 3,
                "d_channels": [4, 5], "d_dense": 8},
    "musegan": {"n_bars": 2, "z_dim": 3, "temporal_hidden": 4, "g_channels": 4,
                "d_channels": 4, "n_critic": 1},
    "music-transformer": _TRANSFORMER,
    "gpt-events": _TRANSFORMER,
    # context 6 < STEPS: distances past the learned range share one embedding
    "frame-transformer": {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32, "context": 6,
                          "dropout": 0.0, "head": "nade", "nade_hidden": 4},
}
STEPS = 16  # a whole number of bars for every tiny config (8 steps a bar, 4 for melodies)


def batch_for(representation: str, info, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(2, STEPS, dtype=torch.bool)
    if representation == "pianoroll":
        frames = (torch.rand(2, STEPS, info.keys, generator=g) < 0.1).float()  # (B, T, K)
        return {"frames": frames, "mask": mask}
    if representation == "melody":
        return {"events": torch.randint(0, info.vocab_size, (2, STEPS), generator=g),
                "mask": mask}
    if representation == "drums":  # 2-bar windows: (B, 32, 27) hits | velocities | offsets
        hits = (torch.rand(2, 32, 9, generator=g) < 0.2).float()
        velocities = hits * torch.rand(2, 32, 9, generator=g)
        offsets = hits * (torch.rand(2, 32, 9, generator=g) - 0.5)
        return {"drums": torch.cat([hits, velocities, offsets], -1),
                "mask": torch.ones(2, 32, dtype=torch.bool)}
    tokens = torch.randint(3, info.vocab_size, (2, STEPS), generator=g)  # no PAD/BOS/EOS
    tokens[:, 0] = 1  # BOS
    return {"tokens": tokens, "mask": mask}


def build_tiny(name: str):
    cls = registry.get_family(name)
    info = INFOS[cls.representation]
    torch.manual_seed(0)
    return registry.build(name, TINY_OPTIONS[name], info), info


def test_every_registered_family_has_tiny_options():
    assert sorted(TINY_OPTIONS) == registry.family_names()


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_one_training_step_changes_the_weights(name):
    model, info = build_tiny(name)
    model.train()
    batch = batch_for(model.representation, info)
    before = [p.detach().clone() for p in model.parameters()]
    if type(model).automatic_optimization:
        optimizer = model.configure_optimizers(1e-2)
        loss = model.loss(batch)["loss"]
        assert loss.ndim == 0 and torch.isfinite(loss)
        loss.backward()
        optimizer.step()
    else:
        optimizers = model.configure_optimizers(1e-2)
        logs = model.manual_training_step(batch, optimizers, lambda loss: loss.backward())
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values())
    changed = sum(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    assert changed > 0


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_checkpoint_round_trip_gives_identical_outputs(name, tmp_path):
    model, info = build_tiny(name)
    model.eval()
    folder = save_checkpoint(tmp_path / name, model, model_name=name, data_info=info)
    loaded, meta = load_checkpoint(folder)
    assert meta["model_name"] == name and meta["representation"] == model.representation
    assert type(loaded) is type(model) and loaded.config == model.config
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)

    batch = batch_for(model.representation, info, seed=1)
    with torch.no_grad():
        torch.manual_seed(3)
        loss_a = model.loss(batch)["loss"]
        torch.manual_seed(3)
        loss_b = loaded.loss(batch)["loss"]
    assert torch.equal(loss_a, loss_b)

    controls = SamplingControls(seed=5, threshold=0.3 if model.representation == "pianoroll"
                                else None)
    steps = getattr(model.config, "steps", STEPS)  # MusicVAE decodes its own phrase length
    torch.manual_seed(4)
    sample_a = model.generate(2, steps, controls)
    torch.manual_seed(4)
    sample_b = loaded.generate(2, steps, controls)
    assert torch.equal(sample_a, sample_b)
