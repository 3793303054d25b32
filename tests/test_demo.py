"""``tunesmith demo`` end to end on a few chorales and a few seconds of training: the
shipped model first (or a note that it is missing), then the demo's own wavenet + voices
run; Lightning's banner and tips reach the run's log file, not the console."""

from __future__ import annotations

import logging
import warnings

import pytest

from cli_helpers import run_cli
from tunesmith.cli import demo
from tunesmith.training.checkpoint import pretrained_names, read_json


@pytest.fixture
def few_chorales(monkeypatch):
    """The demo's data cut to a handful of chorales (the demo prepares all 410)."""
    import importlib

    prepare_module = importlib.import_module("tunesmith.data.prepare")  # not the function
    real = prepare_module.prepare
    monkeypatch.setattr(prepare_module, "prepare",
                        lambda *args, **kwargs: real(*args, **{**kwargs, "limit": 8}))


def test_demo_runs_and_keeps_lightning_off_the_console(few_chorales, tmp_path, capsys):
    out = tmp_path / "demo"
    assert run_cli(["demo", "--minutes", "0.03", "--no-evaluate", "--out", out]) == 0
    console = capsys.readouterr()
    text = console.out + console.err
    for chatter in ("GPU available", "Tip:", "limit_val_batches", "LitLogger"):
        assert chatter not in text
    assert "training" in text and "your model" in text
    for i in range(1, 5):
        for suffix in (".mid", ".wav", ".png"):
            assert (out / "trained" / f"chorale_{i}{suffix}").is_file()
    run = read_json(out / "trained" / "run" / "run.json")
    assert run["model_name"] == "wavenet" and run["options"]["head"] == "voices"
    # whole pieces in their own keys (the demo's settings, recorded for a re-run)
    assert run["settings"]["window"] is None and run["settings"]["length_buckets"] is True
    assert run["settings"]["transpose"] in (None, [0, 0])
    log = (out / "trained" / "run" / "train.log").read_text()
    assert "GPU available" in log
    if demo.SHIPPED_MODEL in pretrained_names():
        assert (out / "pretrained" / "chorale_1.mid").is_file()
        assert (out / "pretrained" / "chorale_1.wav").is_file()
    else:
        assert "no shipped" in "".join(text.split()) or "noshipped" in "".join(text.split())


def test_a_missing_shipped_model_is_said_and_training_goes_on(few_chorales, tmp_path):
    lines = []
    result = demo.run_demo(tmp_path / "d", minutes=0.02, n=1, evaluate=False,
                           shipped="no-such-model", say=lines.append)
    assert result["shipped"] is None
    assert any("no shipped 'no-such-model' model" in line for line in lines)
    assert result["trained"]["midi"][0].is_file()


def test_lightning_output_goes_to_the_log_file(tmp_path, capsys):
    log_path = tmp_path / "run" / "train.log"
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    before = (logging.getLogger("pytorch_lightning").handlers,
              logging.getLogger("pytorch_lightning").propagate)
    with demo.lightning_output_to(log_path):
        logger.info("GPU available: False")
        warnings.warn("a Lightning notice", UserWarning, stacklevel=1)
    assert (logging.getLogger("pytorch_lightning").handlers,
            logging.getLogger("pytorch_lightning").propagate) == before
    console = capsys.readouterr()
    assert "GPU available" not in console.out + console.err
    assert "notice" not in console.out + console.err
    text = log_path.read_text()
    assert "GPU available: False" in text and "a Lightning notice" in text
