"""``tunesmith gan``: generation from MidiNet / MuseGAN checkpoints.

* ``generate --checkpoint DIR --bars N [--chords "C G Am F"]``: MidiNet melodies over a
  chord progression (one chord per bar), or MuseGAN multi-track phrases;
* ``interpolate --checkpoint DIR --steps N``: outputs along a slerp between two latent
  draws (MidiNet: one bar over the first chord).
"""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.errors import ConfigError


def _check_gan(model, meta) -> None:
    from tunesmith.models.gan import GANModel

    if not isinstance(model, GANModel):
        raise ConfigError(f"the checkpoint holds {meta.get('model_name')!r}, not a GAN")


def register(app: typer.Typer) -> None:
    gan_app = typer.Typer(help="GANs (MidiNet, MuseGAN): chord-conditioned generation.")
    app.add_typer(gan_app, name="gan")

    @gan_app.command("generate")
    def generate_command(
        checkpoint: Path = typer.Option(..., "--checkpoint", help="A trained GAN run folder."),
        bars: int = typer.Option(8, help="Bars to generate."),
        chords: str = typer.Option(None, help='MidiNet: one chord per bar, e.g. "C G Am F".'),
        n: int = typer.Option(2, help="Number of pieces."),
        threshold: float = typer.Option(
            None, help="Note on where the output exceeds this (default: MidiNet 0, the "
                       "highest pitch of each step; MuseGAN 0.5)."),
        seed: int = typer.Option(None, help="Random seed."),
        out: Path = typer.Option(Path("gan-out"), "--out", help="Folder for the MIDI files."),
        wav: bool = typer.Option(False, "--wav", help="Also render WAV audio."),
        png: bool = typer.Option(False, "--png", help="Also draw PNG piano-rolls."),
    ) -> None:
        """Generate pieces (MidiNet over --chords; MuseGAN phrases)."""
        from tunesmith.cli.generate import empty_pieces
        from tunesmith.cli.vae import _report, check_inputs, controls_from, load_model

        check_inputs(checkpoint, out)

        from tunesmith.generation.generate import check_length, write_outputs
        from tunesmith.models.midinet import MidiNet, generate_with_chords

        check_length(bars=bars, n=n)
        model, meta = load_model(checkpoint, _check_gan)
        if threshold is None:
            threshold = 0.0 if isinstance(model, MidiNet) else 0.5
        controls = controls_from(1.0, seed, threshold)
        if isinstance(model, MidiNet):
            pieces = generate_with_chords(model, chords or "C G Am F", bars, n, controls)
        else:
            if chords:
                raise ConfigError(f"{meta.get('model_name')} is not chord-conditioned; "
                                  "drop --chords")
            pieces = model.generate(n, bars * model.config.steps_per_bar, controls)
        with empty_pieces() as empty:
            paths = write_outputs(pieces.cpu().numpy(), meta, out, "gan", wav, png,
                                  controls=controls)
        _report(paths, empty)

    @gan_app.command("interpolate")
    def interpolate_command(
        checkpoint: Path = typer.Option(..., "--checkpoint", help="A trained GAN run folder."),
        steps: int = typer.Option(5, "--steps", help="Points on the path, both ends included."),
        chord: str = typer.Option("C", help="MidiNet: the chord of the bar."),
        threshold: float = typer.Option(
            None, help="Note on where the output exceeds this (default: MidiNet 0, the "
                       "highest pitch of each step; MuseGAN 0.5)."),
        seed: int = typer.Option(None, help="Random seed."),
        out: Path = typer.Option(Path("gan-out"), "--out", help="Folder for the MIDI files."),
    ) -> None:
        """Generate along a spherical path between two random latent vectors."""
        from tunesmith.cli.generate import empty_pieces
        from tunesmith.cli.vae import _report, check_inputs, controls_from, load_model

        check_inputs(checkpoint, out)
        if steps < 2:
            raise ConfigError(f"--steps must be >= 2 (both ends), got {steps}")

        from tunesmith.generation.generate import write_outputs
        from tunesmith.models.gan import interpolate_latents
        from tunesmith.models.midinet import MidiNet, parse_chord_progression

        model, meta = load_model(checkpoint, _check_gan)
        condition = {"chords": parse_chord_progression(chord, 1)} if isinstance(
            model, MidiNet) else None
        if threshold is None:  # as generate: MidiNet's own binarisation is its default
            threshold = 0.0 if isinstance(model, MidiNet) else 0.5
        controls = controls_from(1.0, seed, threshold)
        path = interpolate_latents(model, steps, condition, controls)
        with empty_pieces() as empty:
            paths = write_outputs(path.cpu().numpy(), meta, out, "gan-interpolation", False,
                                  False, controls=controls)
        _report(paths, empty)
