"""DDP on CPU: two training processes (gloo) from the command line, and how each epoch
is dealt out to the processes (disjoint parts that cover it, the same steps for each)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tunesmith
from test_cli import scale_piece
from tunesmith.data.datasets import EpochSampler, deal_batches
from tunesmith.music import save_midi
from tunesmith.training.settings import cpu_cores


@pytest.mark.parametrize("n_items,batch_size,replicas,buckets", [
    (10, 2, 2, False),  # 5 batches for 2 processes: one is split
    (11, 4, 2, True),
    (23, 3, 4, False),
    (7, 8, 3, True),  # one short batch for 3 processes
    (5, 1, 2, False),  # batches of 1: the last one is left out
])
def test_each_process_gets_a_disjoint_part_and_together_they_cover_the_epoch(
        n_items, batch_size, replicas, buckets):
    lengths = list(np.random.default_rng(0).integers(1, 50, n_items)) if buckets else None
    whole = EpochSampler(n_items, seed=2, lengths=lengths, batch_size=batch_size)
    for epoch in range(3):
        parts = []
        for rank in range(replicas):
            sampler = EpochSampler(n_items, seed=2, lengths=lengths, batch_size=batch_size)
            sampler.set_replicas(replicas, rank)
            sampler.set_epoch(epoch)
            parts.append(sampler.batches(epoch))
            assert [i for i, e in sampler if e == epoch] == [i for b in parts[-1] for i in b]
        assert len({len(p) for p in parts}) == 1  # the same number of steps each
        served = [int(i) for part in parts for batch in part for i in batch]
        assert len(served) == len(set(served))  # no piece twice, in any process
        left_out = n_items - len(served)
        if batch_size > 1:
            assert sorted(served) == list(range(n_items))  # all of them
            assert all(1 <= len(b) <= batch_size for p in parts for b in p)
        else:
            assert left_out == n_items % replicas
        assert set(served) <= set(whole.order(epoch).tolist())


def test_validation_parts_need_not_be_even():
    parts = []
    for rank in range(3):
        sampler = EpochSampler(5, shuffle=False, batch_size=2)
        sampler.set_replicas(3, rank, even=False)
        parts.append([b.tolist() for b in sampler.batches(0)])
    assert parts == [[[0, 1]], [[2, 3]], [[4]]]
    lonely = EpochSampler(1, shuffle=False, batch_size=1)
    lonely.set_replicas(2, 1, even=False)
    assert lonely.batches(0) == []


def test_split_batches_keep_length_neighbours_together():
    batches = [np.arange(0, 4), np.arange(4, 8), np.arange(8, 11)]
    dealt = deal_batches(batches, 2)
    assert [b.tolist() for b in dealt[0]] == [[0, 1, 2, 3], [6, 7]]
    assert [b.tolist() for b in dealt[1]] == [[4, 5], [8, 9, 10]]


def test_a_process_resumes_at_its_own_batch():
    sampler = EpochSampler(20, seed=1, batch_size=3)
    sampler.set_replicas(2, 1)
    full = list(EpochSampler.__iter__(sampler))
    again = EpochSampler(20, seed=1, batch_size=3)
    again.set_replicas(2, 1)
    again.start_at(0, 2, batches=True)
    batches = again.batches(0)
    assert list(again) == full[sum(len(b) for b in batches[:2]):]
    with pytest.raises(ValueError, match="outside an epoch of 4 batches"):
        again.start_at(0, 5, batches=True)


TINY = ["--repr-set", "pitch_low=48", "--repr-set", "pitch_high=84",
        "--set", "model.levels=2", "--set", "model.channels=4", "--set", "model.skip_channels=4",
        "--set", "data.workers=1", "--set", "train.batch_size=2", "--set", "train.window=16",
        "--set", "train.progress_bar=false", "--set", "train.loggers=false",
        "--set", "train.early_stopping_patience=0", "--threads", "1"]


def _tunesmith(args: list, tmp_path: Path) -> subprocess.CompletedProcess:
    """``python -m tunesmith ARGS`` in a child process: Lightning's DDP launcher starts
    the second training process by running the same command again."""
    env = {**os.environ, "PYTHONPATH": str(Path(tunesmith.__file__).parents[1]),
           "TUNESMITH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "tunesmith", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.skipif(cpu_cores() < 2, reason="two CPU training processes need two cores")
def test_two_process_ddp_on_cpu_trains_saves_once_and_resumes(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in [*range(12), 24, 39, 40]:  # the last three: the validation split
        save_midi(scale_piece(i % 12 - 6), corpus / f"scale{i}.mid")
    run = tmp_path / "run"
    ddp = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]
    first = _tunesmith(["train", "--model", "wavenet", "--data", f"folder:{corpus}", *TINY,
                        *ddp, "--epochs", "1", "--out", run], tmp_path)
    output = first.stdout + first.stderr
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in output and "GLOBAL_RANK: 1, MEMBER: 2/2" in output
    assert output.count("checkpoint: ") == 1  # the first process reports
    assert sorted(p.name for p in run.iterdir()) == [
        "config.json", "history.json", "last", "loss.png", "model.safetensors", "run.json"]
    config = json.loads((run / "config.json").read_text())
    n_train = config["split"]["counts"]["train"]
    assert config["split"]["counts"]["valid"] == 3
    # one step per pair of batches: each process took its own half of the epoch
    steps = math.ceil(math.ceil(n_train / 2) / 2)
    assert config["training"]["global_step"] == steps
    state = json.loads((run / "last" / "trainer_state.json").read_text())
    assert (state["world_size"], state["global_step"]) == (2, steps)

    from tunesmith.training.checkpoint import load_checkpoint

    model, meta = load_checkpoint(run)
    assert meta["model_name"] == "wavenet" and sum(p.numel() for p in model.parameters())

    _tunesmith(["train", "--out", run, "--resume", "--epochs", "2", *ddp], tmp_path)
    history = json.loads((run / "history.json").read_text())["history"]
    assert [(row["epoch"], row["step"]) for row in history] == [(0, steps), (1, 2 * steps)]
    # validation: 2 batches, one a process, their loss sums added over both
    assert all(math.isfinite(row["val_loss"]) for row in history)
    assert json.loads((run / "last" / "trainer_state.json").read_text())["global_step"] \
        == 2 * steps
