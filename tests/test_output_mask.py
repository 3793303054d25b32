"""Samplers stay within the corpus's vocabulary: the output mask (what the train split
holds) is computed at training time, stored in the checkpoint, and no family ever draws
outside it; old checkpoints without one still load; empty generations warn."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from test_families import INFOS, STEPS, TINY_OPTIONS
from tunesmith.data.prepare import prepare
from tunesmith.errors import CheckpointError, ConfigError
from tunesmith.models import registry
from tunesmith.models.heads import FrameHead
from tunesmith.models.sampling import SamplingControls, mask_logits, sample_categorical
from tunesmith.representations import events
from tunesmith.representations.output_mask import OutputMask, program_of_ids
from tunesmith.training.checkpoint import CONFIG_FILE, load_checkpoint, save_checkpoint

HOT = SamplingControls(temperature=3.0, seed=0)  # flat enough to explore every output


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def chorale_events(tmp_path_factory):
    """Event tokens of five four-part chorales (four of them in the train split)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNESMITH_CACHE", str(tmp_path_factory.getbasetemp() / "tunesmith-cache"))
        return prepare("bach-chorales", "events", {}, limit=5, workers=1, progress=False,
                       report=False)


def some_mask(representation: str, info) -> OutputMask:
    """A mask allowing a few outputs of each kind (every fourth piano-roll key, the
    specials and every third other id)."""
    if representation == "pianoroll":
        return OutputMask("pianoroll", info.keys, tuple(range(1, info.keys, 4)))
    allowed = sorted({0, 1, 2, *range(3, info.vocab_size, 3)})
    return OutputMask(representation, info.vocab_size, tuple(allowed))


# ---- the mask itself ----------------------------------------------------------------------


def test_mask_of_pianoroll_pieces_is_the_keys_that_sound():
    from tiny_model import roll_info

    info = roll_info(("Upper", "Lower"), 60, 63)  # 2 tracks x 4 pitches
    pieces = [np.eye(8, dtype=np.uint8)[[1, 1, 6]], np.eye(8, dtype=np.uint8)[[2]]]
    mask = OutputMask.from_pieces(info, pieces)
    assert mask.allowed == (1, 2, 6) and mask.size == 8
    assert mask.pitch_ranges(info) == [(61, 62), (62, 62)]
    assert OutputMask.from_pieces(info, []) is None
    assert OutputMask.from_dict(json.loads(json.dumps(mask.to_dict()))) == mask


def test_mask_of_chorale_tokens_holds_their_programs(chorale_events):
    info = chorale_events.info
    mask = OutputMask.from_pieces(info, chorale_events.pieces("train"))
    programs = program_of_ids(info)
    seen = {int(programs[i]) for i in mask.allowed if programs[i] > -2}
    per_piece = [len(set(programs[p].tolist()) - {-2}) for p in chorale_events.pieces("train")]
    assert seen and len(seen) < (programs > -2).sum()  # far fewer than the 129 of the vocabulary
    assert mask.max_programs == max(per_piece) <= len(seen)
    assert set(mask.allowed) == set(np.concatenate(chorale_events.pieces("train")).tolist())


@pytest.mark.parametrize("bad", [
    {"allowed": [3, 1]}, {"allowed": [99]}, {"size": -1}, {"representation": "midi"},
    {"extra": 1}, {"version": 9},
])
def test_a_damaged_mask_is_refused(bad):
    good = OutputMask("pianoroll", 8, (1, 3)).to_dict()
    with pytest.raises(ConfigError, match="output mask"):
        OutputMask.from_dict({**good, **bad})


def test_masked_logits_are_never_drawn_and_a_row_left_empty_keeps_its_logits():
    logits = torch.zeros(2000, 5)
    allowed = torch.tensor([False, True, False, True, False])
    draws = sample_categorical(logits, SamplingControls(temperature=5.0), allowed=allowed)
    assert set(draws.tolist()) == {1, 3}
    grammar_only = torch.tensor([[0.0, float("-inf"), 0.0, float("-inf"), 0.0]])
    assert torch.equal(mask_logits(grammar_only, allowed), grammar_only)


# ---- every family stays within the mask -------------------------------------------------


@pytest.mark.parametrize("name", registry.family_names())
def test_no_family_draws_outside_its_output_mask(name):
    representation = registry.get_family(name).representation
    info = INFOS[representation]
    if representation == "drums":  # hits, velocities, offsets: nothing discrete to mask
        assert OutputMask.from_pieces(info, [np.ones((32, 27), np.float32)]) is None
        return
    torch.manual_seed(0)
    model = registry.build(name, TINY_OPTIONS[name], info)
    mask = some_mask(representation, info)
    model.set_output_mask(mask)
    model.eval()
    allowed = model.allowed_outputs()
    steps = getattr(model.config, "steps", 24 if representation == "events" else STEPS)
    if representation == "pianoroll":
        samples = [model.generate(4, steps, HOT),
                   model.generate(4, steps, SamplingControls(threshold=0.0, seed=1))]
        drawn = torch.cat([s.reshape(-1, info.keys) for s in samples])  # (frames, K)
        assert drawn.sum() > 0, "nothing drawn: the check would be empty"
        assert not drawn[:, ~allowed].any(), f"{name} drew masked keys"
    else:
        if representation == "events":  # without its tokenizer the token model has no
            model.config.constrained = False  # grammar; the mask alone decides
        tokens = model.generate(8, steps, HOT)
        assert allowed[tokens].all(), f"{name} drew masked ids {tokens[~allowed[tokens]]}"
        model.set_output_mask(None)  # and the same sampler without a mask does not
        free = model.generate(8, steps, HOT)
        assert not bool(some_mask(representation, info).array()[free.numpy()].all())


class AllOnHead(FrameHead):
    """A head that knows nothing of masks: every key on."""

    def __init__(self, keys):
        super().__init__()
        self.keys = keys

    def sample(self, h, controls, generator=None, group_size=None):
        return torch.ones(h.shape[0], self.keys)


def test_a_head_that_ignores_the_mask_is_still_masked_through_draw():
    info = INFOS["pianoroll"]
    model = registry.build("lstm", TINY_OPTIONS["lstm"], info)
    model.head = AllOnHead(info.keys)
    mask = some_mask("pianoroll", info)
    model.set_output_mask(mask)
    frames = model.generate(2, 5, HOT)
    assert torch.equal(frames[0, 0].bool(), torch.as_tensor(mask.array()))


# ---- gpt-events on four-part chorales -----------------------------------------------------


def programs_and_tracks(tokens: torch.Tensor, info) -> list[tuple[set[int], int]]:
    """(programs of the Program tokens, tracks of the decoded piece) of each sample."""
    programs = program_of_ids(info)
    cfg = events.EventsConfig.from_dict(info.repr_config)
    out = []
    for row in tokens.numpy():
        score = events.decode(row, cfg)
        out.append(({int(p) for p in programs[row] if p > -2},
                    sum(1 for t in score.tracks if len(t.notes))))
    return out


def test_gpt_trained_a_step_on_chorales_samples_only_their_programs(chorale_events, tmp_path):
    from tunesmith.training.trainer import train

    info = chorale_events.info
    options = {**TINY_OPTIONS["gpt-events"], "context": 64}
    run = train("gpt-events", chorale_events, options, tmp_path / "run", max_steps=1,
                epochs=1, batch_size=2, window=32, progress_bar=False, loggers=False,
                threads=1, lr_schedule="constant", early_stopping_patience=0)
    stored = json.loads((run / CONFIG_FILE).read_text())["output_mask"]
    data_mask = OutputMask.from_pieces(info, chorale_events.pieces("train"))
    assert stored == data_mask.to_dict()

    model, _ = load_checkpoint(run)
    assert model.output_mask == data_mask
    data_programs = {int(p) for p in program_of_ids(info)[list(data_mask.allowed)] if p > -2}
    samples = programs_and_tracks(model.generate(24, 96, HOT), info)
    assert all(programs <= data_programs for programs, _ in samples)
    assert all(len(programs) <= data_mask.max_programs for programs, _ in samples)
    assert all(tracks <= data_mask.max_programs for _, tracks in samples)
    assert sum(tracks for _, tracks in samples) > 0

    model.set_output_mask(None)  # the same model without its mask wanders off
    free = programs_and_tracks(model.generate(24, 96, HOT), info)
    assert any(not programs <= data_programs for programs, _ in free)


def test_no_sample_has_more_programs_than_a_training_piece():
    info = INFOS["events"]
    torch.manual_seed(0)
    model = registry.build("gpt-events", TINY_OPTIONS["gpt-events"], info)
    programs = program_of_ids(info)
    three = [int(np.flatnonzero(programs == p)[0]) for p in (0, 40, 73)]
    allowed = sorted(set(range(info.vocab_size)) - set(np.flatnonzero(programs > -2)) | set(three))
    for most in (1, 2):
        model.set_output_mask(OutputMask("events", info.vocab_size, tuple(allowed),
                                         max_programs=most))
        used = [{int(p) for p in programs[row] if p > -2}
                for row in model.generate(16, 48, HOT).numpy()]
        assert all(u <= {0, 40, 73} and len(u) <= most for u in used)
        assert max(len(u) for u in used) == most  # the limit, not chance, stopped them


# ---- checkpoints --------------------------------------------------------------------------


def test_the_mask_survives_save_and_load_and_old_checkpoints_allow_everything(tmp_path):
    info = INFOS["pianoroll"]
    model = registry.build("lstm", TINY_OPTIONS["lstm"], info)
    mask = some_mask("pianoroll", info)
    model.set_output_mask(mask)
    folder = save_checkpoint(tmp_path / "ckpt", model, model_name="lstm", data_info=info)
    meta = json.loads((folder / CONFIG_FILE).read_text())
    assert meta["output_mask"]["allowed"] == list(mask.allowed)
    loaded, _ = load_checkpoint(folder)
    assert loaded.output_mask == mask
    assert torch.equal(loaded.head.allowed_keys, torch.as_tensor(mask.array()))
    drawn = loaded.generate(4, STEPS, HOT).reshape(-1, info.keys)
    assert not drawn[:, ~loaded.head.allowed_keys].any()

    del meta["output_mask"]  # a checkpoint written before masks
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    old, _ = load_checkpoint(folder)
    assert old.output_mask is None and old.allowed_outputs() is None
    assert old.head.allowed_keys is None
    drawn = old.generate(4, STEPS, SamplingControls(threshold=0.0))  # p > 0: every key
    assert drawn.reshape(-1, info.keys).any(dim=0).all()

    meta["output_mask"] = {**mask.to_dict(), "size": 7}
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="output mask"):
        load_checkpoint(folder)
