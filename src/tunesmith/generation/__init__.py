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
    "sample_bernoulli",
    "sample_categorical",
]
