"""tunesmith: train, sample and evaluate deep generative models of symbolic music."""

__version__ = "0.1.0"
