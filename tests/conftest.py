"""Shared fixtures: tiny real pieces, built in code or taken from music21's corpus."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
POLYPHONIC = SHARED / "benchmarks" / "polyphonic"
_STARTED = pytest.StashKey[float]()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session writes prepared data to a temporary cache, never the user's."""
    cache = tmp_path_factory.getbasetemp() / "tunesmith-cache"
    monkeypatch.setenv("TUNESMITH_CACHE", str(cache))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield


@pytest.fixture(scope="session")
def chorale_paths() -> list[Path]:
    """A few Bach chorale MusicXML files shipped with music21."""
    from music21 import corpus

    paths = sorted(corpus.getComposer("bach"), key=str)
    return [Path(p) for p in paths[:3]]


@pytest.fixture(scope="session")
def polyphonic_dir() -> Path:
    if not (POLYPHONIC / "JSB_Chorales.mat").exists():
        pytest.skip(f"benchmark files not found in {POLYPHONIC}")
    return POLYPHONIC


def pytest_configure(config):
    os.environ.setdefault("MPLBACKEND", "Agg")
    # Tests use tiny tensors: one thread per test process (pytest-xdist runs one process
    # per core) beats threads that spin against each other on a small machine.
    import torch

    torch.set_num_threads(1)


def studio_artifacts_dir() -> Path:
    """Where the studio's browser tests save screenshots: ``$TUNESMITH_ARTIFACTS``, else
    ``tunesmith-studio-artifacts`` in the system's temporary folder (one place for every
    xdist worker, so that the run can print it)."""
    import tempfile

    return Path(os.environ.get("TUNESMITH_ARTIFACTS")
                or Path(tempfile.gettempdir()) / "tunesmith-studio-artifacts")


@pytest.fixture(scope="session")
def studio_artifacts() -> Path:
    folder = studio_artifacts_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pytest_sessionstart(session):
    session.config.stash[_STARTED] = time.time()


def pytest_terminal_summary(terminalreporter, config):
    """Say where the browser tests left this run's screenshots."""
    folder = studio_artifacts_dir()
    started = config.stash.get(_STARTED, 0.0)
    shots = [p for p in folder.glob("*.png") if p.stat().st_mtime >= started] \
        if folder.is_dir() else []
    if shots:
        terminalreporter.write_line(f"studio screenshots ({len(shots)}): {folder}")
