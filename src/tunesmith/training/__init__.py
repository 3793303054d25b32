"""Generic training (PyTorch Lightning), safe checkpoints (safetensors + JSON), plots."""

from tunesmith.training.checkpoint import load_checkpoint, save_checkpoint
from tunesmith.training.trainer import TrainSettings, fit, train

__all__ = ["TrainSettings", "fit", "load_checkpoint", "save_checkpoint", "train"]
