"""Sampling controls and generation from checkpoints."""

from tunesmith.generation.sampling import (
    FILTER_LOGITS_FN,
    SamplingControls,
    filter_top_k,
    filter_top_p,
    sample_bernoulli,
    sample_categorical,
)

__all__ = [
    "FILTER_LOGITS_FN",
    "SamplingControls",
    "filter_top_k",
    "filter_top_p",
    "generate_from_checkpoint",
    "sample_bernoulli",
    "sample_categorical",
]


def __getattr__(name: str):
    if name == "generate_from_checkpoint":  # imported on first use (it pulls in the models)
        from tunesmith.generation.generate import generate_from_checkpoint

        return generate_from_checkpoint
    raise AttributeError(f"module 'tunesmith.generation' has no attribute {name!r}")
