"""Biaxial RNN (Johnson 2017): a normalised frame distribution, causal in time and pitch."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from tiny_model import roll_info
from tunesmith.errors import ConfigError
from tunesmith.models.biaxial import BiaxialConfig, BiaxialRNN
from tunesmith.models.sampling import SamplingControls
from tunesmith.training.checkpoint import load_checkpoint, save_checkpoint

KEYS = 5


def tiny(**changes) -> BiaxialRNN:
    torch.manual_seed(0)
    config = BiaxialConfig(
        keys=KEYS, window=2, beat_bits=2, time_hidden=6, time_layers=2, note_hidden=5,
        note_layers=1, note_window=2, pitch_low=60,
    ).updated(**changes)
    model = BiaxialRNN(config).eval()
    with torch.no_grad():  # larger weights than the init, so that the tests are not trivial
        for parameter in model.parameters():
            parameter.normal_(0, 0.8)
    return model


@pytest.mark.parametrize("changes", [{}, {"active_low": 1, "active_high": 4}])
def test_frame_distribution_sums_to_one_given_a_history(changes):
    model = tiny(**changes)
    history = (torch.rand(1, 3, KEYS) > 0.5).float()  # 3 frames already played
    candidates = torch.tensor(list(itertools.product([0.0, 1.0], repeat=KEYS)))  # (32, K)
    frames = torch.cat([history.expand(len(candidates), 3, KEYS), candidates[:, None]], dim=1)
    with torch.no_grad():
        log_probs = model.frame_log_prob(frames)[:, 3]  # (32,): log p(candidate | history)
    assert torch.logsumexp(log_probs, 0).item() == pytest.approx(0.0, abs=1e-5)


def test_probabilities_of_frame_t_ignore_frames_from_t_on():
    model = tiny()
    frames = (torch.rand(2, 7, KEYS) > 0.5).float()
    changed = frames.clone()
    changed[:, 4:] = 1 - changed[:, 4:]
    a = model.logits(*shifted(frames))
    b = model.logits(*shifted(changed))
    assert torch.allclose(a[:, :4], b[:, :4])  # frames < 4 unaffected
    # frame 4's lowest key sees neither frame 4 nor later frames
    assert torch.allclose(a[:, 4, 0], b[:, 4, 0])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_conditional_of_key_k_ignores_keys_from_k_on_in_the_same_frame():
    model = tiny()
    frames = (torch.rand(2, 4, KEYS) > 0.5).float()
    k = 2
    changed = frames.clone()
    changed[:, 3, k:] = 1 - changed[:, 3, k:]
    previous, _ = shifted(frames)
    a = model.logits(previous, frames)
    b = model.logits(previous, changed)  # same history, frame 3 changed at keys >= k
    assert torch.allclose(a[:, 3, : k + 1], b[:, 3, : k + 1])
    assert not torch.allclose(a[:, 3, k + 1 :], b[:, 3, k + 1 :])


def shifted(frames):
    previous = torch.cat([torch.zeros_like(frames[:, :1]), frames[:, :-1]], dim=1)
    return previous, frames


@pytest.mark.parametrize("changes", [{}, {"active_low": 1, "active_high": 4}])
def test_threshold_generation_matches_the_teacher_forced_network(changes):
    model = tiny(**changes)
    prime = (torch.rand(2, 2, KEYS) > 0.5).float()
    out = model.generate(2, 6, SamplingControls(threshold=0.5), prime=prime)
    assert out.shape == (2, 6, KEYS) and torch.equal(out[:, :2], prime)
    with torch.no_grad():
        probs = torch.sigmoid(model.logits(*shifted(out)))
    assert torch.equal(out[:, 2:], (probs > 0.5).float()[:, 2:])


def test_training_step_and_config_errors():
    model = tiny(dropout=0.2).train()
    frames = (torch.rand(2, 5, KEYS) > 0.5).float()
    out = model.loss({"frames": frames, "mask": torch.ones(2, 5, dtype=torch.bool)})
    out["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ConfigError, match="active keys"):
        BiaxialRNN(BiaxialConfig(keys=5, active_low=3, active_high=9))
    with pytest.raises(ConfigError, match="tracks"):
        BiaxialRNN(BiaxialConfig(keys=10, n_tracks=3))


def test_the_data_decides_tracks_and_pitches():
    info = roll_info(["Soprano", "Alto", "Tenor", "Bass"], 36, 84)  # 4 × 49 keys from C2
    model = BiaxialRNN(BiaxialRNN.config_for_data(BiaxialConfig(time_hidden=4, note_hidden=4),
                                                  info))
    assert (model.config.keys, model.config.n_tracks, model.config.pitch_low) == (196, 4, 36)
    classes = model.pitch_class_onehot.argmax(-1).reshape(4, 49)  # (tracks, pitches)
    assert classes[:, 0].tolist() == [0] * 4  # each track starts on a C
    assert classes[:, 1].tolist() == [1] * 4


def test_two_tracks_features_stay_within_their_track():
    model = tiny(keys=6, n_tracks=2)  # 2 tracks × 3 pitches
    full = torch.ones(1, 1, 6)
    below = model.lower_notes(full[0, 0])  # (K, W): keys just below, in the same track
    assert below[3].tolist() == [0.0, 0.0]  # track 2's lowest key has nothing below it
    assert below[5].tolist() == [1.0, 1.0]
    neighbours = model.time_inputs(full)[0, 0, :, : 2 * model.config.window + 1]  # (K, 2w+1)
    assert neighbours[2].tolist() == [1, 1, 1, 0, 0]  # top of track 1: no key above
    assert neighbours[3].tolist() == [0, 0, 1, 1, 1]  # bottom of track 2: none below
    # the frame distribution is still normalised across both tracks
    history = (torch.rand(1, 2, 6) > 0.5).float()
    candidates = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6)))  # (64, K)
    frames = torch.cat([history.expand(len(candidates), 2, 6), candidates[:, None]], dim=1)
    with torch.no_grad():
        log_probs = model.frame_log_prob(frames)[:, 2]
    assert torch.logsumexp(log_probs, 0).item() == pytest.approx(0.0, abs=1e-5)


def test_note_limits_apply_per_track():
    model = tiny(keys=6, n_tracks=2)
    controls = SamplingControls(threshold=0.0, max_notes_per_step=1)  # every key wants a note
    out = model.generate(2, 3, controls)
    assert out.reshape(2, 3, 2, 3).sum(-1).eq(1).all()  # one note in each track


def test_a_checkpoint_saved_with_the_old_lowest_pitch_name_still_loads(tmp_path):
    info = roll_info(["Soprano", "Alto"], 60, 65)  # 2 tracks × 6 keys from C4
    model = BiaxialRNN(BiaxialRNN.config_for_data(
        BiaxialConfig(time_hidden=4, note_hidden=4, time_layers=1, note_layers=1), info))
    folder = save_checkpoint(tmp_path / "old", model, model_name="biaxial", data_info=info)
    meta = json.loads((folder / "config.json").read_text())
    meta["model_config"]["lowest_pitch"] = meta["model_config"].pop("pitch_low")  # as saved
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.warns(DeprecationWarning, match="lowest_pitch is now called pitch_low"):
        loaded, _ = load_checkpoint(folder)
    assert loaded.config == model.config and loaded.config.pitch_low == 60
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ConfigError, match="give only pitch_low"):
        BiaxialConfig.from_dict({"lowest_pitch": 21, "pitch_low": 21})


def reference_frame_log_prob(model, frames):
    """The teacher-forced figure computed frame by frame and key by key, as sampling runs:
    the time axis one step at a time with its state carried, then the note axis one key at
    a time with its state carried (the reference for the batched pass)."""
    n, steps, keys = frames.shape
    state, previous, rows = None, torch.zeros(n, 1, keys), []
    for t in range(steps):
        time_out, state = model.run_time_axis(previous, state, first_step=t)  # (n, 1, Ka, Ht)
        note_state, log_prob = None, torch.zeros(n)
        for k in range(keys):
            if model.low <= k < model.high:
                below = model.lower_notes(frames[:, t])[:, k]  # (n, W), the batched helper
                note_in = torch.cat([time_out[:, 0, k - model.low], below], -1).unsqueeze(1)
                out, note_state = model.note_rnn(note_in, note_state)
                logit = model.output(out[:, 0]).squeeze(-1)
            else:
                logit = model.outside_logit[k].expand(n)
            log_prob -= torch.nn.functional.binary_cross_entropy_with_logits(
                logit, frames[:, t, k], reduction="none")
        rows.append(log_prob)
        previous = frames[:, t : t + 1]
    return torch.stack(rows, 1)  # (n, T)


@pytest.mark.parametrize("changes", [{}, {"active_low": 1, "active_high": 4},
                                     {"keys": 6, "n_tracks": 2}])
def test_batched_teacher_forcing_equals_the_frame_by_frame_key_by_key_reference(changes):
    model = tiny(**changes)
    keys = model.config.keys
    frames = (torch.rand(3, 9, keys) > 0.6).float()
    mask = torch.ones(3, 9, dtype=torch.bool)
    with torch.no_grad():
        batched = model.frame_log_prob(frames)
        reference = reference_frame_log_prob(model, frames)
        loss = model.loss({"frames": frames, "mask": mask})["loss"]
    assert torch.allclose(batched, reference, atol=1e-5)
    assert loss.item() == pytest.approx(-reference.mean().item(), rel=1e-5)


@pytest.mark.parametrize("changes", [{}, {"keys": 6, "n_tracks": 2}, {"note_window": 4}])
def test_the_samplers_lower_keys_of_one_key_are_the_batched_ones(changes):
    model = tiny(**changes)
    frame = (torch.rand(4, model.config.keys) > 0.5).float()
    every = model.lower_notes(frame)  # (n, K, W)
    for k in range(model.config.keys):
        assert torch.equal(model.lower_notes_of_key(frame, k), every[:, k])


def test_seeded_sampling_is_reproducible_and_stays_in_shape():
    model = tiny(active_low=1, active_high=4)
    a = model.generate(3, 5, SamplingControls(seed=7))
    b = model.generate(3, 5, SamplingControls(seed=7))
    assert a.shape == (3, 5, KEYS) and torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
