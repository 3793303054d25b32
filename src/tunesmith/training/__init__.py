"""Generic training (PyTorch Lightning), safe checkpoints (safetensors + JSON), plots.

The names below are imported on first use: :mod:`tunesmith.training.settings` (run
configs, ``--set``, Lightning flag checks) must load without torch and Lightning, so the
command line can check a run's options before it pays for them.
"""

_EXPORTS = {
    "TrainSettings": "tunesmith.training.settings",
    "fit": "tunesmith.training.trainer",
    "train": "tunesmith.training.trainer",
    "load_checkpoint": "tunesmith.training.checkpoint",
    "save_checkpoint": "tunesmith.training.checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tunesmith.training' has no attribute {name!r}")
