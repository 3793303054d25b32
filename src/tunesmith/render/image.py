"""A Score as a piano-roll picture (PNG, matplotlib Agg).

Every track gets its own colour and a legend entry; time runs in bars on the x axis
(numbered bar lines, beat ticks between them, from the Score's first time signature,
4/4 without one); pitch names (C4 = MIDI 60) label the y axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from symusic import Score

PITCH_NAMES = ("C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B")


def pitch_name(pitch: int) -> str:
    """MIDI pitch -> scientific pitch name (60 -> "C4")."""
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"


def bar_geometry(score: Score) -> tuple[float, int]:
    """(quarter notes per bar, beats per bar) from the first time signature (4/4 if none)."""
    if len(score.time_signatures):
        ts = score.time_signatures[0]
        return ts.numerator * 4.0 / ts.denominator, int(ts.numerator)
    return 4.0, 4


def render_png(score: Score, path: str | Path, title: str | None = None) -> Path:
    """Draw ``score`` as a piano-roll PNG at ``path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tpq = score.ticks_per_quarter
    quarters_per_bar, beats_per_bar = bar_geometry(score)
    ticks_per_bar = tpq * quarters_per_bar
    end_bars = max(score.end() / ticks_per_bar, 1.0)
    bars = int(np.ceil(end_bars))
    pitches = [int(p) for t in score.tracks for p in t.notes.numpy()["pitch"]] or [60]
    low, high = min(pitches) - 1, max(pitches) + 1

    width = float(np.clip(2.0 + 0.55 * bars, 8.0, 24.0))
    height = float(np.clip(0.12 * (high - low) + 1.8, 3.5, 9.0))
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    colours = plt.get_cmap("tab10")(np.arange(10))  # (10, 4) RGBA
    for index, track in enumerate(score.tracks):
        notes = track.notes.numpy()
        if not len(notes["pitch"]):
            continue
        label = track.name or f"Track {index + 1}"
        if track.is_drum:
            label += " (drums)"
        ax.barh(
            notes["pitch"], notes["duration"] / ticks_per_bar, left=notes["time"] / ticks_per_bar,
            height=0.8, color=colours[index % len(colours)], edgecolor="black", linewidth=0.3,
            alpha=0.85, label=label, align="center",
        )

    # time in bars: numbered bar lines, beat ticks in between
    label_every = max(1, bars // 16)
    ax.set_xticks(np.arange(0, bars + 1))
    ax.set_xticklabels([str(b + 1) if b % label_every == 0 else "" for b in range(bars + 1)])
    ax.set_xticks(np.arange(0, bars, 1 / beats_per_bar), minor=True)
    ax.grid(axis="x", which="major", color="grey", linewidth=0.8, alpha=0.6)
    ax.grid(axis="x", which="minor", color="grey", linewidth=0.3, alpha=0.3)
    ax.set_xlim(0, end_bars)
    ax.set_xlabel(f"bar ({beats_per_bar} beats a bar; thin lines = beats)")

    # pitch names: every note name in a narrow range, else the Cs and Gs
    step_names = range(low, high + 1) if high - low <= 24 else [
        p for p in range(low, high + 1) if p % 12 in (0, 7)]
    ax.set_yticks(list(step_names))
    ax.set_yticklabels([pitch_name(p) for p in step_names], fontsize=8)
    for c in range(low, high + 1):
        if c % 12 == 0:
            ax.axhline(c - 0.5, color="grey", linewidth=0.4, alpha=0.4)
    ax.set_ylim(low - 0.5, high + 0.5)
    ax.set_ylabel("pitch")
    if title:
        ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
