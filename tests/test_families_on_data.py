"""Every registered family × every kind of prepared data, built from real data (a few of
music21's Bach chorales) through the DataInfo the data writes: one training step with a
finite loss and gradients reaching the weights, or a one-line refusal (ConfigError) of
data it cannot model (another representation, or one listed in REFUSALS)."""

from __future__ import annotations

import pytest
import torch

from test_families import TINY_OPTIONS
from tunesmith.data.datasets import make_dataloader
from tunesmith.data.prepare import prepare
from tunesmith.errors import ConfigError
from tunesmith.models import registry

#: prepared data of each representation: name -> (representation, options)
DATA = {
    "pianoroll-satb": ("pianoroll", {"merge_tracks": False, "pitch_low": 36, "pitch_high": 84}),
    "pianoroll-merged": ("pianoroll", {"merge_tracks": True}),  # one 88-key track
    "melody": ("melody", {}),
    "events": ("events", {}),
}
LIMIT = 5  # chorales per data set (4 of them in the train split)
#: (family, data) of the family's own representation -> what its one-line refusal says;
#: every other such pair must train
REFUSALS: dict[tuple[str, str], str] = {}
#: config sizes of a model built on 4 tracks × MIDI 36-84, by config field
SATB_SIZES = {"keys": 196, "n_keys": 196, "n_tracks": 4, "n_pitches": 49, "pitch_low": 36,
              "pitches_per_track": 49}

CASES = [(name, data) for name in registry.family_names() for data in DATA]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Each DATA set, prepared once for this file into the session's temporary cache."""
    with pytest.MonkeyPatch.context() as patch:  # module scope: before the autouse fixture
        patch.setenv("TUNESMITH_CACHE", str(tmp_path_factory.getbasetemp() / "tunesmith-cache"))
        return {data: prepare("bach-chorales", representation, options, limit=LIMIT, workers=1,
                              progress=False, report=False)
                for data, (representation, options) in DATA.items()}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name, data", CASES, ids=[f"{n}-{d}" for n, d in CASES])
def test_one_training_step_on_prepared_data_or_a_one_line_refusal(name, data, prepared):
    prepared = prepared[data]
    representation = registry.get_family(name).representation
    refusal = REFUSALS.get((name, data))
    if prepared.representation != representation:
        refusal = f"needs the {representation!r} representation"
    torch.manual_seed(0)
    try:
        model = registry.build(name, TINY_OPTIONS[name], prepared.info)
    except ConfigError as exc:
        assert refusal is not None, f"{name} refused {data}: {exc}"
        assert refusal in str(exc) and "\n" not in str(exc)
        return
    assert refusal is None, f"{name} should refuse {data}"
    if data == "pianoroll-satb":  # the data's real tracks and pitch range, not defaults
        config = model.config.to_dict()
        sizes = {k: config[k] for k in SATB_SIZES if k in config}
        assert sizes and sizes == {k: SATB_SIZES[k] for k in sizes}, name

    loader = make_dataloader(prepared, "train", batch_size=2, window=64, shuffle=False)
    batch = next(iter(loader))
    model.train()
    if type(model).automatic_optimization:
        loss = model.loss(batch)["loss"]
        assert loss.ndim == 0 and torch.isfinite(loss), name
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), f"{name}: no gradient reaches the weights"
    else:  # GANs step their own optimisers
        before = [p.detach().clone() for p in model.parameters()]
        logs = model.manual_training_step(batch, model.configure_optimizers(1e-3),
                                          lambda loss: loss.backward())
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values()), name
        assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(),
                                                          strict=True)), name
