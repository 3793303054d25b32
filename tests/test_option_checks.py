"""The checks behind the one-line CLI errors: typed config values, Lightning flags, output
folders, and a model registry that answers without importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tunesmith.cli.options import check_checkpoint, check_out_file, check_out_folder
from tunesmith.errors import CheckpointError, ConfigError
from tunesmith.representations.pianoroll import PianorollConfig
from tunesmith.training import settings as settings_module
from tunesmith.training.settings import TrainSettings, validate_lightning_flags

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.parametrize("cls, data, message", [
    (TrainSettings, {"lr": "abc"}, "train option lr expects a finite number, got 'abc'"),
    (TrainSettings, {"lr": float("inf")}, "train option lr expects a finite number"),
    (TrainSettings, {"max_time": float("nan")}, "max_time expects a finite number or null"),
    (TrainSettings, {"epochs": 1.5}, "epochs expects an integer or null, got 1.5"),
    (TrainSettings, {"batch_size": True}, "batch_size expects an integer, got True"),
    (TrainSettings, {"progress_bar": 1}, "progress_bar expects true or false, got 1"),
    (PianorollConfig, {"track_names": ["Piano", 3]},
     "track_names expects a list, each item a text"),
    (PianorollConfig, {"resolution": "4"}, "resolution expects an integer, got '4'"),
])
def test_config_values_of_the_wrong_type_are_refused(cls, data, message):
    with pytest.raises(ConfigError) as info:
        cls.from_dict(data)
    assert message in str(info.value)


def test_config_values_of_the_right_type_are_kept():
    settings = TrainSettings.from_dict({"lr": 1, "epochs": None, "max_time": 2.5,
                                        "devices": [0, 1], "precision": 32})
    assert (settings.lr, settings.epochs, settings.devices, settings.precision) == (
        1, None, [0, 1], 32)
    config = PianorollConfig.from_dict({"track_names": ("A", "B"), "programs": [0, 33]})
    assert list(config.track_names) == ["A", "B"]


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.setattr(settings_module, "cpu_cores", lambda: 4)


@pytest.mark.parametrize("flags", [
    {"accelerator": "cpu", "devices": 4},
    {"accelerator": "cpu", "devices": "2"},
    {"accelerator": "auto", "devices": "auto"},
    {"accelerator": "cpu", "strategy": "DDP", "devices": 2},
    {"accelerator": "cpu", "precision": "bf16-mixed"},
    {"accelerator": "cpu", "precision": 32},
])
def test_lightning_flags_this_machine_can_honour_pass(flags, four_cores, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    validate_lightning_flags(TrainSettings(**flags))


@pytest.mark.parametrize("flags, message", [
    ({"accelerator": "cpu", "devices": 5}, "has 4 CPU core(s); ask for at most 4"),
    ({"accelerator": "cpu", "devices": 99}, "each CPU device is a training process"),
    ({"accelerator": "cpu", "devices": -1}, "ask for at most 4"),
    ({"accelerator": "cpu", "devices": 0}, "devices must be >= 1"),
    ({"accelerator": "cpu", "devices": [0, 1]}, "takes a count of processes"),
    ({"accelerator": "cpu", "devices": [0, 0]}, "distinct indices"),
    ({"accelerator": "cpu", "devices": "two"}, "devices 'two': expected auto"),
    ({"accelerator": "gpu"}, "no GPU is available here"),
    ({"accelerator": "quantum"}, "unknown accelerator 'quantum'; choose one of auto, gpu"),
    ({"accelerator": "cpu", "strategy": "bogus"}, "unknown strategy 'bogus'; choose one of auto"),
    ({"accelerator": "cpu", "precision": "8-bit"}, "Precision '8-bit' is invalid"),
    ({"accelerator": "cpu", "threads": 5}, "threads 5: this machine has 4 CPU core(s)"),
])
def test_lightning_flags_this_machine_cannot_honour_are_refused(flags, message, four_cores,
                                                                  monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ConfigError) as info:
        validate_lightning_flags(TrainSettings(**flags))
    assert message in str(info.value)


def test_multi_node_needs_a_launcher(four_cores, monkeypatch):
    """Without SLURM, torchrun, LSF or MASTER_ADDR, rank 0 of a multi-node run waits for
    the other machines for ever: refused. With MASTER_ADDR set it is left to Lightning."""
    for name in ("MASTER_ADDR", "SLURM_NTASKS", "SLURM_JOB_NAME", "TORCHELASTIC_RUN_ID",
                 "LSB_JOBID"):
        monkeypatch.delenv(name, raising=False)
    settings = TrainSettings(accelerator="cpu", devices=1, num_nodes=2)
    with pytest.raises(ConfigError, match="no multi-node launcher found"):
        validate_lightning_flags(settings)
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    validate_lightning_flags(settings)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(ConfigError, match="accelerator 'cuda': not available on this machine"):
        validate_lightning_flags(TrainSettings(accelerator="cuda"))


def test_output_and_checkpoint_paths(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    check_out_folder(tmp_path / "new" / "folder")  # not there yet: fine
    check_out_file(tmp_path / "new" / "result.json")
    with pytest.raises(ConfigError, match="it is a file"):
        check_out_folder(tmp_path / "file.txt")
    with pytest.raises(ConfigError, match=r"lies under .*file\.txt, which is a file"):
        check_out_folder(tmp_path / "file.txt" / "deeper")
    with pytest.raises(ConfigError, match="it is a folder"):
        check_out_file(tmp_path)
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        check_checkpoint(tmp_path / "missing")
    with pytest.raises(CheckpointError, match=r"config\.json: no such file"):
        check_checkpoint(tmp_path)


def test_generate_help_states_the_limits_it_enforces(capsys):
    from cli_helpers import run_cli
    from tunesmith.generation.generate import MAX_BARS, MAX_PIECES, MAX_SECONDS

    assert run_cli(["generate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())  # unwrap the box
    for limit in (MAX_BARS, MAX_PIECES, MAX_SECONDS):
        assert f"at most {limit}" in text


def test_registry_names_are_checked_without_importing_torch():
    """The CLI checks a model name before torch loads; the registry must stay import-light,
    and every name it lists must still resolve to a family."""
    script = ("import sys\n"
              "from tunesmith.models import registry\n"
              "for name in registry.family_names():\n"
              "    registry.check_name(name)\n"
              "print(sorted(m for m in ('torch', 'pytorch_lightning') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={"PYTHONPATH": str(SRC)}, timeout=60, check=True)
    assert result.stdout.strip() == "[]"

    from tunesmith.models import registry

    for name in registry.family_names():
        assert registry.get_family(name).config_class is not None
    with pytest.raises(ConfigError, match=r"unknown model 'wavnet'; available: .*wavenet"):
        registry.check_name("wavnet")
