"""Generation from checkpoints: :func:`generate_from_checkpoint`.

The sampling controls a call takes (:class:`SamplingControls`) and the filters behind them
live with the models that draw (:mod:`tunesmith.models.sampling`).
"""

from tunesmith.generation.generate import generate_from_checkpoint
from tunesmith.models.sampling import SamplingControls

__all__ = ["SamplingControls", "generate_from_checkpoint"]
