"""A tiny studio to test against: a real (untrained) WaveNet checkpoint over a folder
corpus of small MIDI pieces, and a ``tunesmith studio`` process serving it on a free port."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch

from tiny_model import roll_info
from tunesmith.data.corpora import split_of
from tunesmith.music import save_midi
from tunesmith.representations import pianoroll
from tunesmith.training.checkpoint import save_checkpoint

SRC = Path(__file__).resolve().parents[1] / "src"
#: 2 voices × 2 octaves, sixteenth notes: 16 steps a bar, 2 s a bar at 120 quarters a minute
STUDIO_INFO = roll_info(("Upper", "Lower"), pitch_low=55, pitch_high=79, resolution=4,
                        programs=[0, 33])
SECONDS_PER_BAR = 2.0


def corpus_pieces(folder: Path, n: int = 40, bars: int = 4, seed: int = 0) -> Path:
    """``n`` small two-voice MIDI pieces (random walks on the C major scale) in ``folder``,
    at least two of them in each split."""
    rng = np.random.default_rng(seed)
    cfg = pianoroll.PianorollConfig(**{k: v for k, v in STUDIO_INFO.repr_config.items()
                                       if k != "merge_tracks"})
    scale = [p - 55 for p in range(55, 80) if p % 12 in (0, 2, 4, 5, 7, 9, 11)]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        grid = np.zeros((2, bars * 16, 25), np.uint8)  # (tracks, steps, pitches)
        for track, start in ((0, 10), (1, 3)):
            index = start
            for step in range(0, bars * 16, 4):  # quarter notes
                index = int(np.clip(index + rng.integers(-2, 3), 0, len(scale) - 1))
                grid[track, step:step + 4, scale[index]] = 1
        save_midi(pianoroll.decode(grid, cfg), folder / f"piece{i:02d}.mid")
    splits = {split_of(f"piece{i:02d}.mid") for i in range(n)}
    assert {"train", "test"} <= splits, splits
    return folder


def studio_checkpoint(root: Path) -> Path:
    """An untrained two-voice WaveNet ("voices" head) trained on nothing, over
    ``root/corpus``: what the studio needs of a checkpoint, in milliseconds."""
    from tunesmith.models import registry

    corpus = corpus_pieces(root / "corpus")
    torch.manual_seed(0)
    model = registry.build("wavenet", {"levels": 3, "channels": 8, "skip_channels": 8,
                                       "head": "voices"}, STUDIO_INFO)
    return save_checkpoint(root / "run", model, model_name="wavenet", data_info=STUDIO_INFO,
                           corpus={"corpus": f"folder:{corpus}"})


class StudioProcess:
    """``tunesmith studio`` in a child process; ``url`` is its address."""

    def __init__(self, checkpoint: Path, out: Path, cache: Path, *extra: str):
        env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONUNBUFFERED": "1",
               "TUNESMITH_CACHE": str(cache), "COLUMNS": "200"}
        self.out = out
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tunesmith", "studio", "--checkpoint", str(checkpoint),
             "--port", "0", "--out", str(out), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.banner = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.banner += line
            match = re.search(r"(http://\S+?)/\s", line)
            if match:
                self.url = match.group(1)
                return
        self.stop()
        raise RuntimeError(f"the studio did not start: {self.banner}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def request(self, path: str, body=None, data: bytes | None = None, timeout: float = 60):
        """``(status, parsed JSON or bytes)`` of a GET (no body) or POST."""
        if body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data,
                                         method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, payload, kind = response.status, response.read(), \
                    response.headers.get("content-type", "")
        except urllib.error.HTTPError as exc:
            status, payload, kind = exc.code, exc.read(), exc.headers.get("content-type", "")
        return status, json.loads(payload) if "json" in kind else payload


def grid_cells(piece: dict, steps_per_quarter: int = 4) -> set[tuple[int, int, int]]:
    """The (track, pitch, step) cells a page piece's notes sound on."""
    cells = set()
    for track, pitch, start, duration in piece["notes"]:
        first = round(start * steps_per_quarter)
        for step in range(first, first + round(duration * steps_per_quarter)):
            cells.add((track, pitch, step))
    return cells


def notes_clear_of(piece: dict, start_q: float, end_q: float) -> list[tuple]:
    """Notes that end before ``start_q`` or start after ``end_q`` (quarters): the ones a
    regeneration of the bars between can neither cut nor join."""
    return sorted(tuple(n) for n in piece["notes"]
                  if n[2] + n[3] < start_q or n[2] > end_q)
