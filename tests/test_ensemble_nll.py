"""benchmarks/ensemble_nll.py: the mixture of exact frame distributions, by the protocol."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from tunesmith.models.likelihood import score_split
from tunesmith.models.rnn import FrameRNN, RNNConfig

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ensemble_nll.py"


def test_ensemble_of_one_model_twice_is_that_model_and_jensen_holds():
    spec = importlib.util.spec_from_file_location("ensemble_nll_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rng = np.random.default_rng(0)
    pieces = [(rng.random((n, 88)) < 0.05).astype(np.uint8) for n in (9, 14, 5)]
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(FrameRNN(RNNConfig(keys=88, hidden=6)).eval())
    each, twice = script.split_figures([models[0], models[0]], pieces)
    assert twice == pytest.approx(score_split(models[0], pieces), rel=1e-6)
    each, mixed = script.split_figures(models, pieces)
    assert each == pytest.approx([score_split(m, pieces) for m in models], rel=1e-6)
    assert mixed <= sum(each) / 2  # -log of a mean probability <= the mean of -log
    assert mixed != pytest.approx(each[0])
