"""The studio's operations on every registered family (in process, tiny checkpoints), and
the conditional resampling of a bar range (:mod:`tunesmith.generation.infill`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from test_families import INFOS, TINY_OPTIONS, build_tiny
from tunesmith.generation.infill import resample_range, step_log_probs
from tunesmith.models import registry
from tunesmith.models.sampling import SamplingControls
from tunesmith.studio.session import Studio, StudioError
from tunesmith.training.checkpoint import save_checkpoint


def studio_for(name: str, tmp_path) -> Studio:
    model, info = build_tiny(name)
    folder = save_checkpoint(tmp_path / name, model, model_name=name, data_info=info)
    return Studio([str(folder)], tmp_path / "out")


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_every_family_generates_and_continues_or_says_why_not(name, tmp_path):
    studio = studio_for(name, tmp_path)
    info = studio.describe(name)
    assert info["family"] == name
    piece = studio.generate({"model": name, "bars": 2, "seed": 0})
    assert (tmp_path / "out" / "pieces" / f"{piece['id']}.wav").is_file()
    assert piece["bars"] > 0
    if info["fixed_bars"]:
        assert piece["bars"] == info["fixed_bars"]  # a MusicVAE phrase
    elif info["steps_per_bar"]:
        assert piece["bars"] == 2
    if info["can_continue"]:
        longer = studio.continue_piece({"piece": piece["id"], "bars": 1, "seed": 1})
        before = studio.pieces[piece["id"]].array
        after = studio.pieces[longer["id"]].array
        if info["representation"] == "events":  # continued in place of the closing EOS
            from tunesmith.generation.infill import open_tokens

            before = open_tokens(before)
        assert len(after) > len(before) and np.array_equal(after[: len(before)], before)
    else:
        with pytest.raises(StudioError, match="does not continue"):
            studio.continue_piece({"piece": piece["id"], "bars": 1})


@pytest.mark.parametrize("name", sorted(TINY_OPTIONS))
def test_every_family_regenerates_bars_keeping_the_rest_or_says_why_not(name, tmp_path):
    studio = studio_for(name, tmp_path)
    info = studio.describe(name)
    piece = studio.generate({"model": name, "bars": 3, "seed": 0})
    if info["regenerate"] is None:
        with pytest.raises(StudioError, match="cannot regenerate"):
            studio.regenerate({"piece": piece["id"], "from_bar": 1, "to_bar": 1})
        return
    again = studio.regenerate({"piece": piece["id"], "from_bar": 2, "to_bar": 2, "seed": 3,
                               "amount": 1.0})
    per_bar = info["steps_per_bar"]
    if per_bar is None:  # event tokens: the music is cut at bar lines of its decoding
        kept = lambda p: sorted(tuple(n) for n in p["notes"]  # noqa: E731
                                if n[2] + n[3] < 4 or n[2] >= 8)
        assert kept(again) == kept(piece) and again["note"].startswith("bars 2-2 resampled")
        return
    before = studio.pieces[piece["id"]].array
    after = studio.pieces[again["id"]].array
    assert after.shape == before.shape
    assert np.array_equal(after[:per_bar], before[:per_bar])
    assert np.array_equal(after[2 * per_bar:], before[2 * per_bar:])
    expected = {"conditional": "both sides", "interpolation": "interpolated"}[
        info["regenerate"]]
    assert expected in again["note"]


def _wavenet(tmp_path=None):
    torch.manual_seed(0)
    info = INFOS["pianoroll"]
    model = registry.build("wavenet", {"levels": 2, "channels": 8, "skip_channels": 8,
                                       "head": "voices"}, info)
    return model.eval(), {"representation": "pianoroll", "data_info": info.to_dict()}


def test_the_chosen_candidate_is_weighted_by_the_likelihood_of_the_right_side():
    model, meta = _wavenet()
    piece = model.generate(1, 32, SamplingControls(seed=0))[0].numpy()  # (32, K)
    out, facts = resample_range(model, meta, piece, 8, 16, SamplingControls(seed=4),
                                candidates=6)
    assert facts["candidates"] == 6 and 1 <= facts["effective_candidates"] <= 6
    assert np.array_equal(out[:8], piece[:8]) and np.array_equal(out[16:], piece[16:])
    with torch.no_grad():
        log_probs = step_log_probs(model, torch.as_tensor(out)[None])[0]  # (T,)
    assert float(log_probs[16:].sum()) == pytest.approx(facts["log_weight"], abs=1e-3)


def test_one_candidate_is_plain_resampling_after_the_bars_before():
    model, meta = _wavenet()
    piece = model.generate(1, 24, SamplingControls(seed=0))[0].numpy()
    out, facts = resample_range(model, meta, piece, 8, 16, SamplingControls(seed=7),
                                candidates=1)
    primed = model.generate(1, 16, SamplingControls(seed=7),
                            prime=torch.as_tensor(piece[:8])[None])[0].numpy()
    assert facts["candidates"] == 1
    assert np.array_equal(out[8:16], primed[8:16]) and np.array_equal(out[16:], piece[16:])


def _sticky_model(persistence_logit: float = 2.0):
    """p(x_t | x_{t-1}): every key keeps its previous state with probability
    sigmoid(persistence_logit) (0.88), independently; K = 8 keys."""
    from tiny_model import TinyFrameConfig, TinyFrameModel

    model = TinyFrameModel(TinyFrameConfig(keys=8, hidden=8, dropout=0.0)).eval()
    with torch.no_grad():
        model.inp.weight.copy_(10 * torch.eye(8))
        model.inp.bias.fill_(-5.0)  # features: +1 where the key was on, -1 where off
        model.head.proj.weight.copy_(persistence_logit * torch.eye(8))
        model.head.proj.bias.zero_()
    return model, {"representation": "pianoroll"}


def test_the_right_side_pulls_the_draw_towards_what_fits_it():
    """Left side pattern A, right side pattern B: left-only draws of the range mostly keep
    A up to its last step, draws weighted by the right side end closer to B."""
    model, meta = _sticky_model()
    a = np.array([1, 1, 1, 1, 0, 0, 0, 0], np.float32)
    piece = np.stack([a] * 8 + [np.zeros(8, np.float32)] * 8 + [1 - a] * 8)  # (24, 8)
    distance = {}
    for candidates in (1, 16):
        values = []
        for seed in range(20):
            out, _ = resample_range(model, meta, piece, 8, 16, SamplingControls(seed=seed),
                                    candidates=candidates)
            values.append(np.abs(out[15] - piece[16]).sum())  # keys that must flip at 16
        distance[candidates] = float(np.mean(values))
    assert distance[16] < distance[1] - 1, distance


def test_a_range_outside_the_piece_is_refused():
    model, meta = _wavenet()
    piece = np.zeros((16, model.config.keys), np.float32)
    from tunesmith.errors import ConfigError

    with pytest.raises(ConfigError, match="not inside"):
        resample_range(model, meta, piece, 8, 20, SamplingControls())


def test_a_key_conditioned_wavenet_takes_a_key(tmp_path, monkeypatch):
    from tunesmith.generation.generate import pitch_histogram_from_spec
    from tunesmith.models.wavenet import WaveNet

    info = INFOS["pianoroll"]
    torch.manual_seed(0)
    model = registry.build("wavenet", {"levels": 2, "channels": 4, "skip_channels": 4,
                                       "pitch_histogram_cond": True}, info)
    folder = save_checkpoint(tmp_path / "keyed", model, model_name="wavenet", data_info=info)
    studio = Studio([str(folder)], tmp_path / "out")
    assert studio.describe("keyed")["controls"] == ["key"]
    seen, original = [], WaveNet.generate

    def spy(self, n, steps, controls=None, prime=None, condition=None):
        seen.append(condition["pitch_histogram"])
        return original(self, n, steps, controls, prime, condition)

    monkeypatch.setattr(WaveNet, "generate", spy)
    piece = studio.generate({"model": "keyed", "bars": 2, "seed": 0, "key": "D minor"})
    studio.continue_piece({"piece": piece["id"], "bars": 1, "key": "F# major"})
    assert torch.equal(seen[0][0], pitch_histogram_from_spec("D minor"))
    assert torch.equal(seen[1][0], pitch_histogram_from_spec("F# major"))
    from tunesmith.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot read key"):
        studio.generate({"model": "keyed", "bars": 2, "key": "H major"})


def test_midinet_follows_the_chords(tmp_path):
    studio = studio_for("midinet", tmp_path)
    assert "chords" in studio.describe("midinet")["controls"]
    piece = studio.generate({"model": "midinet", "bars": 2, "seed": 0, "chords": "Dm G"})
    assert piece["note"] == "2 bars over Dm G" and piece["bars"] == 2
    from tunesmith.errors import TunesmithError

    with pytest.raises(TunesmithError):
        studio.generate({"model": "midinet", "bars": 2, "chords": "Xq7"})


def test_musicxml_and_abc_primers_go_through_the_loader(tmp_path, chorale_paths):
    studio = Studio(["pretrained:bach-chorales", "pretrained:essen-folk"], tmp_path / "out")
    five_parts, four_parts = chorale_paths[0], chorale_paths[1]  # bwv1.6 has a 5th part
    chorale = studio.upload("pretrained:bach-chorales", four_parts.name, four_parts.read_bytes())
    assert [t["name"] for t in chorale["tracks"]] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert chorale["notes"] and chorale["note"] == f"primer {four_parts.name}"
    with pytest.raises(StudioError, match=rf"^{five_parts.name}: has 5 pitched tracks"):
        studio.upload("pretrained:bach-chorales", five_parts.name, five_parts.read_bytes())
    abc = b"X:1\nT:Scale\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|cBAG|FEDC|]\n"
    tune = studio.upload("pretrained:essen-folk", "scale.abc", abc)
    assert [n[1] for n in tune["notes"]][:4] == [60, 62, 64, 65] and tune["bars"] == 4
    with pytest.raises(StudioError, match=r"^broken\.abc: "):
        studio.upload("pretrained:essen-folk", "broken.abc", b"\x00\x01 not music")
    # a one-voice tune is not a four-voice model's primer: said in one line, naming the file
    with pytest.raises(StudioError, match=r"^scale\.abc: has 1 pitched tracks"):
        studio.upload("pretrained:bach-chorales", "scale.abc", abc)


def _token_model_and_piece():
    from symusic import Note, Score, Track

    from tunesmith.representations import events

    info = INFOS["events"]
    torch.manual_seed(0)
    model = registry.build("music-transformer", {"d_model": 16, "n_heads": 2, "n_layers": 1,
                                                 "d_ff": 32, "context": 512, "dropout": 0.0},
                           info).eval()
    meta = {"representation": "events", "repr_config": dict(info.repr_config),
            "data_info": info.to_dict()}
    score = Score(480)
    track = Track("Piano", 0, False)
    for quarter in range(12):  # three bars of quarter notes, C major upwards
        track.notes.append(Note(quarter * 480, 480, 60 + quarter, 80))
    score.tracks.append(track)
    cfg = events.EventsConfig.from_dict(meta["repr_config"])
    return model, meta, np.asarray(events.encode(score, cfg)), cfg


def test_an_event_token_range_is_resampled_between_the_kept_notes():
    from tunesmith.generation.generate import crop_score
    from tunesmith.generation.infill import open_tokens, resample_token_range, token_log_probs
    from tunesmith.representations import events

    model, meta, tokens, cfg = _token_model_and_piece()
    out, facts = resample_token_range(model, meta, tokens, 4.0, 8.0, SamplingControls(seed=2),
                                      candidates=4)
    before, after = events.decode(tokens, cfg), events.decode(out, cfg)
    notes = lambda s: sorted((n.time, n.duration, n.pitch)  # noqa: E731
                             for t in s.tracks for n in t.notes)
    tpq = before.ticks_per_quarter
    outside = lambda s: [n for n in notes(s) if n[0] + n[1] <= 4 * tpq or n[0] >= 8 * tpq]  # noqa: E731
    assert outside(after) == outside(before) and len(outside(before)) == 8
    assert all(n[0] < 4 * tpq or n[0] >= 8 * tpq or n[0] + n[1] <= 8 * tpq
               for n in notes(after))  # new notes end by the range's end
    assert facts["candidates"] == 4 and 1 <= facts["effective_candidates"] <= 4
    head = open_tokens(events.encode(crop_score(after.copy(), 8.0), cfg))
    with torch.no_grad():
        right = token_log_probs(model, out)[len(head):].sum()
    assert float(right) == pytest.approx(facts["log_weight"], abs=1e-3)
