"""``tunesmith groove``: GrooVAE's modes (Gillick et al. 2019) on a checkpoint.

* ``sample``: 2-bar grooves from z ~ N(0, I);
* ``humanize FILE``: quantised drums in (any velocities and timing are dropped), the
  same hits out with velocities and micro-timing;
* ``drumify FILE``: any rhythm (every note of every track: a melody's onsets, a tapped
  part) becomes a full kit pattern;
* ``infill FILE --voices hihat``: the named voices regenerated, every other voice kept;
* ``interpolate A B --steps N``: codes slerped from the first 2 bars of A to those of B.

Input files must be 4/4; long files are processed 2 bars at a time (the output keeps the
input's length). Every output is a
MIDI file with one drum track (channel 10), a WAV through the General MIDI kit of the
SoundFont (``--no-wav`` skips it) and a drum-grid PNG (velocity as colour, micro-timing
as a shift; ``--no-png``). The default checkpoint is the shipped ``pretrained:groove``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from tunesmith.cli.options import check_checkpoint, check_file, check_out_folder
from tunesmith.errors import ConfigError

DEFAULT_CHECKPOINT = "pretrained:groove"


def load_groove_model(checkpoint: Path):
    """(model, drums config) of a GrooVAE checkpoint; another family is a one-line error."""
    from tunesmith.models.groove_vae import GrooVAE
    from tunesmith.representations import drums
    from tunesmith.training.checkpoint import checkpoint_data_info, load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    if not isinstance(model, GrooVAE):
        raise ConfigError(f"{checkpoint}: the checkpoint holds {meta.get('model_name')!r}, "
                          "not a GrooVAE (train one with --model groovae --data groove)")
    info = checkpoint_data_info(meta)
    cfg = drums.DrumsConfig.from_dict(info.repr_config) if info else drums.DrumsConfig()
    return model, cfg


def read_drums(path: Path, cfg) -> tuple[np.ndarray, float]:
    """(drums (T, 27), tempo in quarters per minute) of a 4/4 drum file."""
    from tunesmith.music import load
    from tunesmith.representations import drums

    score = load(path)
    return drums.encode(score, cfg, where=str(path)), _tempo(score, cfg)


def read_tap(path: Path, cfg) -> tuple[np.ndarray, float]:
    """(tap (T, 3), tempo) of any 4/4 file: every note of every track is a tap."""
    from tunesmith.music import load
    from tunesmith.representations import drums

    score = load(path)
    return drums.tap_from_onsets(score, cfg, where=str(path)), _tempo(score, cfg)


def _tempo(score, cfg) -> float:
    return float(score.tempos[0].qpm) if len(score.tempos) else cfg.qpm


def write_drums(x: np.ndarray, path: Path, cfg, qpm: float, wav: bool, png: bool) -> list[Path]:
    """Write drums (T, 27) as MIDI (channel 10) at ``path``, + WAV and drum-grid PNG."""
    from tunesmith.music import save_midi
    from tunesmith.render import render_wav
    from tunesmith.render.drum_grid import render_drum_grid
    from tunesmith.representations import drums

    path.parent.mkdir(parents=True, exist_ok=True)
    score = drums.decode(x, cfg, qpm=qpm)
    written = [save_midi(score, path)]
    if wav:
        written.append(render_wav(score, path.with_suffix(".wav")))
    if png:
        n = drums.N_CLASSES
        written.append(render_drum_grid(x[:, :n], x[:, n:2 * n], x[:, 2 * n:], drums.CLASSES,
                                        path.with_suffix(".png"), title=path.stem,
                                        steps_per_quarter=cfg.steps_per_quarter))
    return written


def _report(paths: list[Path]) -> None:
    from rich.console import Console

    console = Console()
    for path in paths:
        console.print(f"wrote {path}")


def _controls(temperature: float, seed: int | None):
    from tunesmith.models.sampling import SamplingControls

    if not temperature > 0:
        raise ConfigError(f"--temperature must be > 0, got {temperature}")
    return SamplingControls(temperature=temperature, seed=seed)


def register(app: typer.Typer) -> None:
    groove_app = typer.Typer(help="GrooVAE drums: sample, humanize, drumify, infill, "
                                  "interpolate.")
    app.add_typer(groove_app, name="groove")

    checkpoint_option = typer.Option(Path(DEFAULT_CHECKPOINT), "--checkpoint",
                                     help="A GrooVAE checkpoint (default: the shipped one).")
    out_option = typer.Option(Path("groove-out"), "--out", help="Folder for the outputs.")
    wav_option = typer.Option(True, "--wav/--no-wav", help="Render WAV audio (GM drum kit).")
    png_option = typer.Option(True, "--png/--no-png", help="Draw drum-grid PNGs.")
    temperature_option = typer.Option(1.0, help="Temperature of the hit probabilities.")
    seed_option = typer.Option(None, help="Random seed.")

    def start(checkpoint: Path, out: Path, **files: Path):
        check_checkpoint(checkpoint)
        check_out_folder(out)
        for option, path in files.items():
            check_file(path, option)
        return load_groove_model(checkpoint)

    @groove_app.command("sample")
    def sample_command(
        checkpoint: Path = checkpoint_option,
        n: int = typer.Option(4, help="Number of 2-bar grooves."),
        qpm: float = typer.Option(120.0, help="Tempo of the output (quarters per minute)."),
        temperature: float = temperature_option, seed: int = seed_option,
        out: Path = out_option, wav: bool = wav_option, png: bool = png_option,
    ) -> None:
        """Decode grooves from random codes z ~ N(0, I)."""
        if n < 1:
            raise ConfigError(f"--n must be >= 1, got {n}")
        model, cfg = start(checkpoint, out)
        from tunesmith.models.groove_vae import sample

        grooves = sample(model, n, _controls(temperature, seed))
        paths = []
        for i, x in enumerate(grooves):
            paths += write_drums(x, out / f"sample-{i:02d}.mid", cfg, qpm, wav, png)
        _report(paths)

    @groove_app.command("humanize")
    def humanize_command(
        file: Path = typer.Argument(..., help="A 4/4 drum MIDI file (taken as quantised)."),
        checkpoint: Path = checkpoint_option,
        temperature: float = temperature_option, seed: int = seed_option,
        out: Path = out_option, wav: bool = wav_option, png: bool = png_option,
    ) -> None:
        """Velocities and micro-timing for quantised drums; the hits stay exactly."""
        model, cfg = start(checkpoint, out, FILE=file)
        from tunesmith.models.groove_vae import humanize
        from tunesmith.representations import drums

        x, qpm = read_drums(file, cfg)
        score = drums.quantise(x)
        paths = write_drums(score, out / f"{file.stem}-quantised.mid", cfg, qpm, wav, png)
        result = humanize(model, score, _controls(temperature, seed))[: len(score)]
        paths += write_drums(result, out / f"{file.stem}-humanized.mid", cfg, qpm, wav, png)
        _report(paths)

    @groove_app.command("drumify")
    def drumify_command(
        file: Path = typer.Argument(..., help="Any 4/4 file: its notes' onsets are the tap."),
        checkpoint: Path = checkpoint_option,
        temperature: float = temperature_option, seed: int = seed_option,
        out: Path = out_option, wav: bool = wav_option, png: bool = png_option,
    ) -> None:
        """A full kit pattern from any rhythm (a melody's onsets, a tapped part)."""
        model, cfg = start(checkpoint, out, FILE=file)
        from tunesmith.models.groove_vae import drumify

        tap, qpm = read_tap(file, cfg)
        result = drumify(model, tap, _controls(temperature, seed))[: len(tap)]
        _report(write_drums(result, out / f"{file.stem}-drumified.mid", cfg, qpm, wav, png))

    @groove_app.command("infill")
    def infill_command(
        file: Path = typer.Argument(..., help="A 4/4 drum MIDI file."),
        voices: str = typer.Option("hihat", help="Voices to regenerate, comma-separated: "
                                   "kick, snare, closed-hihat, open-hihat, hihat, low-tom, "
                                   "mid-tom, high-tom, toms, crash, ride, cymbals."),
        checkpoint: Path = checkpoint_option,
        temperature: float = temperature_option, seed: int = seed_option,
        out: Path = out_option, wav: bool = wav_option, png: bool = png_option,
    ) -> None:
        """Regenerate the chosen voices; every other voice is kept exactly."""
        from tunesmith.representations import drums

        chosen = drums.voices(voices)
        model, cfg = start(checkpoint, out, FILE=file)
        from tunesmith.models.groove_vae import infill

        x, qpm = read_drums(file, cfg)
        result = infill(model, x, chosen, _controls(temperature, seed))[: len(x)]
        _report(write_drums(result, out / f"{file.stem}-infilled.mid", cfg, qpm, wav, png))

    @groove_app.command("interpolate")
    def interpolate_command(
        start_file: Path = typer.Argument(..., metavar="A", help="First 4/4 drum file."),
        end_file: Path = typer.Argument(..., metavar="B", help="Second 4/4 drum file."),
        checkpoint: Path = checkpoint_option,
        steps: int = typer.Option(5, "--steps", help="Grooves on the path, both ends included."),
        out: Path = out_option, wav: bool = wav_option, png: bool = png_option,
    ) -> None:
        """Decode codes slerped from μ(A's first 2 bars) to μ(B's)."""
        if steps < 2:
            raise ConfigError(f"--steps must be >= 2 (both ends), got {steps}")
        model, cfg = start(checkpoint, out, A=start_file, B=end_file)
        from tunesmith.models.groove_vae import interpolate

        a, qpm = read_drums(start_file, cfg)
        b, _ = read_drums(end_file, cfg)
        paths = []
        for i, x in enumerate(interpolate(model, a, b, steps)):
            paths += write_drums(x, out / f"interpolation-{i:02d}.mid", cfg, qpm, wav, png)
        _report(paths)
