"""Evaluation: metrics as pure functions of a Score, set-level comparisons, reports.

Submodules are imported where they are used (``from tunesmith.evaluation import metrics``);
this package file stays import-light on purpose.
"""
