"""The onset-aware voices head (``voices-onset``): per voice strike pitch p, hold or rest.

Its log-probability is a normalised distribution over frames ‖ onsets given the previous
frame, sampling never holds where a voice was silent (nor past ``max_sustain_steps``),
repeated notes of a real piece survive the trip through states, and the WaveNet reads and
writes frames ‖ onsets for it, while old ``voices`` checkpoints still load and generate.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from symusic import Note, Score, Track

from tunesmith.errors import ConfigError
from tunesmith.generation.generate import array_to_score, generate_from_checkpoint
from tunesmith.models.heads import VoiceHead, VoiceOnsetHead, head_reads_onsets, make_head
from tunesmith.models.likelihood import model_pieces, score_split
from tunesmith.models.sampling import SamplingControls
from tunesmith.models.wavenet import WaveNet, WaveNetConfig
from tunesmith.representations import pianoroll
from tunesmith.training.checkpoint import load_checkpoint, save_checkpoint

VOICES, PITCHES = 2, 3
KEYS = VOICES * PITCHES


def random_head(voices=VOICES, pitches=PITCHES, seed=0) -> VoiceOnsetHead:
    torch.manual_seed(seed)
    head = VoiceOnsetHead(5, voices * pitches, n_tracks=voices, nade_hidden=4)
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.normal_(0, 1.0)
    return head.eval()


def all_states(head: VoiceOnsetHead) -> torch.Tensor:
    """Every combination of voice states (S^V, V): strike 0..P-1, hold P, rest P+1."""
    combos = itertools.product(range(head.pitches + 2), repeat=head.voices)
    return torch.tensor(list(combos))


def previous_frames() -> torch.Tensor:
    """Previous frames (sounding keys, K): both silent, voice 0 on pitch 1, both sounding."""
    return torch.tensor([[0, 0, 0, 0, 0, 0],
                         [0, 1, 0, 0, 0, 0],
                         [0, 0, 1, 1, 0, 0]], dtype=torch.float32)


def test_registered_and_only_for_a_backbone_that_reads_onsets():
    assert head_reads_onsets("voices-onset") and not head_reads_onsets("voices")
    head = make_head("voices-onset", 5, KEYS, n_tracks=VOICES, onset_input=True)
    assert isinstance(head, VoiceOnsetHead) and head.visible_bias.out_features == 2 * 5
    with pytest.raises(ConfigError, match="only a backbone that reads frames and onsets"):
        make_head("voices-onset", 5, KEYS, n_tracks=VOICES)


@pytest.mark.parametrize("previous", list(previous_frames()))
def test_log_prob_sums_to_one_over_all_states_and_holds_only_a_sounding_voice(previous):
    head = random_head()
    states = all_states(head)  # (S^V, V)
    before = head.pitch_states(previous.expand(len(states), -1))  # (S^V, V)
    frames = head.frame_of_states(states, before)  # (S^V, 2K)
    h = torch.randn(5).expand(len(states), 5)
    log_probs = head.log_prob(h, frames, previous.expand(len(states), -1))  # (S^V,)
    can_hold = before < head.pitches
    valid = ((states != head.hold) | can_hold).all(-1)  # a hold needs a sounding voice
    # valid state vectors and (frames, onsets) correspond one to one
    assert torch.equal(head.states(frames[valid], previous.expand(int(valid.sum()), -1)),
                       states[valid])
    assert len(torch.unique(frames[valid], dim=0)) == int(valid.sum())
    # the valid states carry all the mass: a hold after silence has probability 0
    assert torch.logsumexp(log_probs[valid], 0).item() == pytest.approx(0.0, abs=1e-5)


def test_log_prob_equals_the_voice_by_voice_product_with_the_hold_masked():
    head = random_head(voices=3, pitches=2)
    previous = torch.tensor([[0, 1, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.float32)
    states = torch.tensor([[3, 1, 2], [0, 3, 1]])  # [rest, strike 1, hold] / [strike 0, rest, 1]
    frames = head.frame_of_states(states, head.pitch_states(previous))
    h = torch.randn(2, 5)
    expected = torch.zeros(2)
    a = head.hidden_bias(h)
    can_hold = head.pitch_states(previous) < 2
    for v in range(3):
        logits = head.visible_bias(h)[:, 4 * v : 4 * v + 4] + torch.sigmoid(a) @ \
            head.output_weight[v].T
        logits[:, 2] = logits[:, 2].masked_fill(~can_hold[:, v], float("-inf"))
        expected += torch.log_softmax(logits, -1).gather(-1, states[:, v, None])[:, 0]
        if v < 2:
            a = a + head.input_weight[v][states[:, v]]
    torch.testing.assert_close(head.log_prob(h, frames, previous), expected)


def test_samples_follow_log_prob_and_never_hold_a_silent_or_too_long_note():
    head = random_head()
    previous = previous_frames()[1]  # voice 0 sounds pitch 1, voice 1 is silent
    h = torch.randn(1, 5).expand(30_000, 5)
    draws = head.sample(h, SamplingControls(), torch.Generator().manual_seed(0),
                        previous=previous.expand(30_000, -1))  # (n, 2K)
    sounding, onsets = draws[:, :KEYS], draws[:, KEYS:]
    assert (onsets <= sounding).all()  # onsets only on sounding keys
    voice1 = sounding[:, PITCHES:]
    assert torch.equal(onsets[:, PITCHES:], voice1)  # a silent voice cannot hold: strikes
    held = (sounding[:, :PITCHES] > onsets[:, :PITCHES]).any(-1)  # voice 0 held
    assert held.any() and (sounding[held, 1] == 1).all()  # it holds its own pitch 1
    states = head.states(draws, previous.expand(30_000, -1))
    codes = states[:, 0] * 10 + states[:, 1]
    values, counts = torch.unique(codes, return_counts=True)
    chosen = torch.stack([values // 10, values % 10], -1)
    frames = head.frame_of_states(chosen, head.pitch_states(previous.expand(len(chosen), -1)))
    probs = head.log_prob(h[: len(chosen)], frames, previous.expand(len(chosen), -1)).exp()
    torch.testing.assert_close(counts / 30_000, probs, atol=0.012, rtol=0)
    capped = head.sample(h[:2000], SamplingControls(max_sustain_steps=4),
                         torch.Generator().manual_seed(1), previous=previous.expand(2000, -1),
                         held=torch.tensor([4, 0]).expand(2000, -1))
    assert not (capped[:, :PITCHES] > capped[:, KEYS : KEYS + PITCHES]).any()  # no hold


def repeated_note_piece() -> Score:
    """Soprano C4 C4 (a repeated quarter) D4 (half); bass E3 held a bar, then E3 again."""
    score = Score(480)
    soprano, bass = Track("Soprano", 0, False), Track("Bass", 0, False)
    for time, pitch, duration in [(0, 60, 480), (480, 60, 480), (960, 62, 960)]:
        soprano.notes.append(Note(time, duration, pitch, 80))
    for time in (0, 1920):
        bass.notes.append(Note(time, 1920, 52, 80))
    score.tracks.extend([soprano, bass])
    return score


def test_a_piece_with_repeated_notes_round_trips_through_states():
    cfg = pianoroll.PianorollConfig(resolution=4, pitch_low=48, pitch_high=71, onset=True,
                                    track_names=["Soprano", "Bass"])
    grid, onsets = pianoroll.encode_with_onsets(repeated_note_piece(), cfg)  # (2, T, 24)
    steps = grid.shape[1]
    x = torch.as_tensor(np.concatenate([grid.transpose(1, 0, 2).reshape(steps, -1),
                                        onsets.transpose(1, 0, 2).reshape(steps, -1)], 1))
    head = VoiceOnsetHead(4, 48, n_tracks=2, nade_hidden=3)
    states = head.states(x.float())  # (T, 2), each step's previous: the step before
    hold, strikes = head.hold, (states < head.pitches)
    assert strikes[:, 0].nonzero()[:, 0].tolist() == [0, 4, 8]  # the repeat is a strike
    assert strikes[:, 1].nonzero()[:, 0].tolist() == [0, 16]
    assert (states[1:4, 0] == hold).all() and (states[17:, 1] == hold).all()
    rebuilt, previous = [], torch.zeros(1, 48)
    for t in range(steps):  # states -> frames step by step, as the sampler writes them
        frame = head.frame_of_states(states[t : t + 1], head.pitch_states(previous))
        rebuilt.append(frame)
        previous = frame[:, :48]
    rebuilt = torch.cat(rebuilt).numpy()
    assert np.array_equal(rebuilt, x.numpy())
    meta = {"representation": "pianoroll", "repr_config": cfg.to_dict(),
            "model_config": {"head": "voices-onset"}}
    score = array_to_score(rebuilt, meta)
    notes = [[(n.time, n.duration, n.pitch) for n in t.notes] for t in score.tracks]
    original = [[(n.time, n.duration, n.pitch) for n in t.notes]
                for t in repeated_note_piece().tracks]
    assert notes == original  # 3 + 2 notes; without onsets the repeats merge:
    merged = array_to_score(rebuilt[:, :48], {**meta, "model_config": {"head": "voices"}})
    assert [len(t.notes) for t in merged.tracks] == [2, 1]


# ---- through the WaveNet ---------------------------------------------------------------
def tiny(head="voices-onset", seed=0) -> WaveNet:
    torch.manual_seed(seed)
    return WaveNet(WaveNetConfig(keys=KEYS, n_tracks=VOICES, n_pitches=PITCHES, pitch_low=60,
                                 channels=8, skip_channels=6, levels=3, nade_hidden=5,
                                 head=head))


def onset_frames(batch, steps, seed=1) -> torch.Tensor:
    """Random frames ‖ onsets (B, T, 2K) drawn through the states of an untrained head."""
    generator = torch.Generator().manual_seed(seed)
    head = VoiceOnsetHead(1, KEYS, n_tracks=VOICES)
    out, previous = [], torch.zeros(batch, KEYS)
    for _ in range(steps):
        states = torch.randint(0, PITCHES + 2, (batch, VOICES), generator=generator)
        frame = head.frame_of_states(states, head.pitch_states(previous))
        out.append(frame)
        previous = frame[:, :KEYS]
    return torch.stack(out, 1)


def test_wavenet_onset_generation_cached_equals_naive_and_keeps_the_rules():
    model = tiny()
    prime = onset_frames(3, 4, seed=9)
    for controls in (SamplingControls(seed=3, max_sustain_steps=3),
                     SamplingControls(threshold=0.5),
                     SamplingControls(seed=4, temperature=1.5, top_k=3, top_p=0.9)):
        for p in (None, prime, prime[..., :KEYS]):
            cached = model.generate(3, 30, controls, prime=p)
            assert cached.shape == (3, 30, 2 * KEYS)
            assert torch.equal(cached, model.generate_naive(3, 30, controls, prime=p))
            sounding = cached[..., :KEYS].reshape(3, 30, VOICES, PITCHES)
            onsets = cached[..., KEYS:].reshape(3, 30, VOICES, PITCHES)
            assert sounding.sum(-1).max() == 1 and (onsets <= sounding).all()
            before = torch.nn.functional.pad(sounding[:, :-1], (0, 0, 0, 0, 1, 0))
            held = sounding * (1 - onsets)  # a held cell continues the same pitch
            start = 0 if p is None else p.shape[1]
            assert (held[:, start:] <= before[:, start:]).all()
    capped = model.generate(4, 60, SamplingControls(seed=5, max_sustain_steps=3))
    sounding = capped[..., :KEYS].reshape(4, 60, VOICES, PITCHES).any(-1)
    struck = (capped[..., KEYS:].reshape(4, 60, VOICES, PITCHES) > 0).any(-1)
    run = torch.zeros(4, VOICES)
    for t in range(60):  # steps since each voice's last strike
        run = torch.where(sounding[:, t] & ~struck[:, t], run + 1, sounding[:, t].float())
        assert run.max() <= 3


def test_wavenet_onset_log_prob_is_causal_trains_and_needs_onsets():
    model = tiny().eval()
    x = onset_frames(2, 20)
    changed = x.clone()
    changed[:, 12:] = onset_frames(2, 8, seed=5)
    with torch.no_grad():
        a, b = model.frame_log_prob(x), model.frame_log_prob(changed)
    torch.testing.assert_close(a[:, :12], b[:, :12], rtol=0, atol=0)
    assert torch.isfinite(a).all() and not torch.allclose(a[:, 12:], b[:, 12:])
    model.train()
    mask = torch.ones(2, 20, dtype=torch.bool)
    loss = model.loss({"frames": x[..., :KEYS], "onsets": x[..., KEYS:], "mask": mask})
    loss["loss"].backward()
    assert all(p.grad is not None for p in model.head.parameters())
    assert model.input.in_channels == 2 * KEYS  # the backbone sees past onsets
    with pytest.raises(ConfigError, match="onset=true"):
        model.loss({"frames": x[..., :KEYS], "mask": mask})
    model.eval()
    pieces = [x[0, :, :KEYS].numpy(), x[1, :15, :KEYS].numpy()]
    onsets = [x[0, :, KEYS:].numpy(), x[1, :15, KEYS:].numpy()]
    with pytest.raises(ConfigError, match="onset=true"):
        model_pieces(model, pieces)
    whole = score_split(model, model_pieces(model, pieces, onsets))
    with torch.no_grad():
        by_hand = -(a[0, 1:].sum() + model.frame_log_prob(x[1:, :15])[0, 1:].sum()) / 33
    assert whole == pytest.approx(float(by_hand), rel=1e-5)


def test_onset_head_refuses_data_without_onsets():
    for onset in (False, True):
        cfg = pianoroll.PianorollConfig(pitch_low=60, pitch_high=62, onset=onset,
                                        track_names=["S", "B"])
        if not onset:
            with pytest.raises(ConfigError, match="onset=true"):
                WaveNet.config_for_data(WaveNetConfig(head="voices-onset"), pianoroll.info(cfg))
            continue
        sized = WaveNet.config_for_data(WaveNetConfig(head="voices-onset"), pianoroll.info(cfg))
        assert (sized.keys, sized.frame_width) == (6, 12)


def test_checkpoints_of_both_voice_heads_load_and_generate(tmp_path):
    """An old ``voices`` checkpoint keeps its (P+1)-state weights and (T, K) samples; an
    onset one writes MIDI in which a repeated note stays two notes."""
    for head, onset in (("voices", False), ("voices-onset", True)):
        cfg = pianoroll.PianorollConfig(resolution=4, pitch_low=60, pitch_high=62,
                                        onset=onset, track_names=["S", "B"])
        model = tiny(head)
        states = PITCHES + (2 if onset else 1)
        assert model.head.visible_bias.out_features == VOICES * states
        folder = save_checkpoint(tmp_path / head, model, model_name="wavenet",
                                 data_info=pianoroll.info(cfg))
        loaded, meta = load_checkpoint(folder)
        assert type(loaded.head) is (VoiceOnsetHead if onset else VoiceHead)
        for name, tensor in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], tensor)
        out = loaded.generate(2, 16, SamplingControls(seed=0))
        assert out.shape == (2, 16, KEYS * (2 if onset else 1))
        sounding = out[0, :, :KEYS]
        turned_on = sounding * (1 - torch.nn.functional.pad(sounding[:-1], (0, 0, 1, 0)))
        starts = out[0, :, KEYS:] if onset else turned_on  # a note per onset / per turn-on
        assert array_to_score(out[0].numpy(), meta).note_num() == int(starts.sum())
        paths = generate_from_checkpoint(folder, n=2, bars=2, out_dir=tmp_path / f"{head}-out",
                                         wav=False, png=False, seed=0)
        assert len(paths) == 2 and all(p.stat().st_size > 0 for p in paths)
