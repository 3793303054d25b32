"""Drums as a grid picture (PNG, matplotlib Agg): drum voices as rows (the 9 of
:mod:`tunesmith.representations.drums`, whose caller splits its (T, 27) arrays into hits,
velocities and offsets), sixteenth steps as columns.

Each hit is a box in its voice's row, shifted from its step by its micro-timing offset
(a box centred on its step's line is on the grid, one left of it early, right of it
late) and coloured by its velocity (the colour bar maps 0-127). Thin lines mark steps,
thicker ones beats, the thickest bars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def render_drum_grid(hits: np.ndarray, velocities: np.ndarray, offsets: np.ndarray,
                     voices: list[str] | tuple[str, ...], path: str | Path,
                     title: str | None = None, steps_per_quarter: int = 4) -> Path:
    """Draw drums as a PNG at ``path``; returns the path. ``hits`` (T, V) in {0, 1},
    ``velocities`` (T, V) in [0, 1], ``offsets`` (T, V) in [-0.5, 0.5] of a step;
    ``voices`` names the V rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    hits = np.asarray(hits, dtype=np.float64)
    velocities = np.asarray(velocities, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.float64)
    n_voices = len(voices)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    steps = len(hits)
    per_bar = 4 * steps_per_quarter
    width = float(np.clip(2.5 + 0.22 * steps, 8.0, 26.0))
    fig, ax = plt.subplots(figsize=(width, 3.6), dpi=100)
    cmap = plt.get_cmap("viridis")
    for step, voice in zip(*np.nonzero(hits > 0.5), strict=True):
        velocity = velocities[step, voice]
        offset = offsets[step, voice]
        ax.add_patch(Rectangle((step + offset - 0.4, voice - 0.4), 0.8, 0.8,
                               facecolor=cmap(velocity), edgecolor="black", linewidth=0.4))
    for step in range(steps + 1):  # a hit on the grid is centred on its step's line
        strength = 3 if step % per_bar == 0 else 2 if step % steps_per_quarter == 0 else 1
        ax.axvline(step, color="grey", linewidth=0.3 * strength ** 1.5,
                   alpha=0.25 + 0.2 * strength, zorder=0)
    ax.set_xlim(-0.9, steps - 0.1)
    ax.set_ylim(-0.6, n_voices - 0.4)
    ax.set_yticks(range(n_voices))
    ax.set_yticklabels(list(voices), fontsize=8)
    bars = max(1, steps // per_bar)
    ax.set_xticks([b * per_bar for b in range(bars)])
    ax.set_xticklabels([f"bar {b + 1}" for b in range(bars)])
    ax.set_xlabel("sixteenth steps (box shifted by its micro-timing offset)")
    mappable = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 127))
    fig.colorbar(mappable, ax=ax, label="velocity", pad=0.01, fraction=0.03)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
