"""``tunesmith vae``: MusicVAE modes on a trained checkpoint.

* ``sample``: phrases decoded from z ~ N(0, I);
* ``reconstruct FILE``: encode a file's first phrase to μ and decode it again;
* ``interpolate A B --steps N``: decode codes slerped from μ(A) to μ(B);
* ``attribute FILE --data CORPUS``: add scale × (mean μ of dense − mean μ of sparse
  phrases of a corpus) to a file's code (Roberts et al. 2018, §5.3).

Every output is a MIDI file (and ``--wav``/``--png`` renderings), written by the shared
helpers of :mod:`tunesmith.generation.generate`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import typer

from tunesmith.cli.options import check_checkpoint, check_file, check_out_folder
from tunesmith.errors import ConfigError

# ---------------------------------------------------------------------- checkpoint <-> files


def check_inputs(checkpoint: Path, out: Path | None, **files: Path) -> None:
    """The checkpoint folder, the output folder and the input files (by option name),
    checked before torch loads, so a wrong path is reported at once."""
    check_checkpoint(checkpoint)
    check_out_folder(out)
    for option, path in files.items():
        check_file(path, option)


def load_model(checkpoint: Path, family_check=None):
    """(model, meta) of a checkpoint; ``family_check(model)`` raises for a wrong family."""
    from tunesmith.training.checkpoint import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    if family_check is not None:
        family_check(model, meta)
    return model, meta


def controls_from(temperature: float, seed: int | None, threshold: float | None = None):
    from tunesmith.models.sampling import SamplingControls

    return SamplingControls(temperature=temperature, seed=seed, threshold=threshold)


def _check_vae(model, meta) -> None:
    from tunesmith.models.music_vae import MusicVAE

    if not isinstance(model, MusicVAE):
        raise ConfigError(f"the checkpoint holds {meta.get('model_name')!r}, not a MusicVAE")


def _report(paths, empty: Sequence[str] = ()) -> None:
    """Print the written files, and how many hold no notes (``empty``: their warnings,
    from :func:`tunesmith.cli.generate.empty_pieces`)."""
    from rich.console import Console

    from tunesmith.cli.generate import empty_summary

    console = Console()
    for path in paths:
        console.print(f"wrote {path}")
    summary = empty_summary(len(empty), len(paths))
    if summary:
        console.print(f"[bold yellow]{summary}[/]", highlight=False)


# ---------------------------------------------------------------------- commands


def register(app: typer.Typer) -> None:
    vae_app = typer.Typer(help="MusicVAE: sample, reconstruct, interpolate, attribute vectors.")
    app.add_typer(vae_app, name="vae")

    checkpoint_option = typer.Option(..., "--checkpoint", help="A trained MusicVAE run folder.")
    out_option = typer.Option(Path("vae-out"), "--out", help="Folder for the MIDI files.")
    wav_option = typer.Option(False, "--wav", help="Also render WAV audio.")
    png_option = typer.Option(False, "--png", help="Also draw PNG piano-rolls.")

    @vae_app.command("sample")
    def sample_command(
        checkpoint: Path = checkpoint_option,
        n: int = typer.Option(4, help="Number of phrases."),
        temperature: float = typer.Option(1.0, help="Softmax temperature of the decoder."),
        seed: int = typer.Option(None, help="Random seed."),
        out: Path = out_option, wav: bool = wav_option, png: bool = png_option,
    ) -> None:
        """Decode phrases from random codes z ~ N(0, I)."""
        from tunesmith.cli.generate import empty_pieces
        check_inputs(checkpoint, out)

        from tunesmith.generation.generate import check_length, write_outputs
        from tunesmith.models.music_vae import sample_prior

        check_length(n=n)

        model, meta = load_model(checkpoint, _check_vae)
        controls = controls_from(temperature, seed)
        phrases = sample_prior(model, n, controls)
        with empty_pieces() as empty:
            paths = write_outputs(phrases.cpu().numpy(), meta, out, "sample", wav, png,
                                  controls=controls)
        _report(paths, empty)

    @vae_app.command("reconstruct")
    def reconstruct_command(
        file: Path = typer.Argument(..., help="A music file; its first phrase is encoded."),
        checkpoint: Path = checkpoint_option,
        out: Path = out_option, wav: bool = wav_option, png: bool = png_option,
    ) -> None:
        """Encode a file's first phrase to μ and decode it (argmax)."""
        from tunesmith.cli.generate import empty_pieces
        check_inputs(checkpoint, out, FILE=file)

        from tunesmith.generation.generate import file_to_array, write_outputs
        from tunesmith.models.music_vae import reconstruct

        model, meta = load_model(checkpoint, _check_vae)
        array = file_to_array(file, meta)
        phrases = reconstruct(model, [array]).cpu().numpy()
        original = array[: model.config.steps]
        with empty_pieces() as empty:
            paths = write_outputs([original, phrases[0]], meta, out, f"{file.stem}-input-recon",
                                  wav, png)
        _report(paths, empty)

    @vae_app.command("interpolate")
    def interpolate_command(
        start: Path = typer.Argument(..., help="First music file."),
        end: Path = typer.Argument(..., help="Second music file."),
        checkpoint: Path = checkpoint_option,
        steps: int = typer.Option(5, "--steps", help="Phrases on the path, both ends included."),
        out: Path = out_option, wav: bool = wav_option, png: bool = png_option,
    ) -> None:
        """Decode codes spherically interpolated from μ(START) to μ(END)."""
        from tunesmith.cli.generate import empty_pieces
        check_inputs(checkpoint, out, START=start, END=end)
        if steps < 2:
            raise ConfigError(f"--steps must be >= 2 (both ends), got {steps}")

        from tunesmith.generation.generate import file_to_array, write_outputs
        from tunesmith.models.music_vae import interpolate

        model, meta = load_model(checkpoint, _check_vae)
        _, phrases = interpolate(model, file_to_array(start, meta), file_to_array(end, meta),
                                 steps)
        with empty_pieces() as empty:
            paths = write_outputs(phrases.cpu().numpy(), meta, out, "interpolation", wav, png)
        _report(paths, empty)

    @vae_app.command("attribute")
    def attribute_command(
        file: Path = typer.Argument(..., help="The music file to change."),
        checkpoint: Path = checkpoint_option,
        data: str = typer.Option(..., help="Corpus whose pieces define the attribute vector."),
        split: str = typer.Option("train", help="Split of the corpus to use."),
        limit: int = typer.Option(500, help="At most this many phrases of the corpus."),
        scales: str = typer.Option("-2,-1,0,1,2", help="Comma-separated multiples of the vector."),
        out: Path = out_option, wav: bool = wav_option, png: bool = png_option,
    ) -> None:
        """Note-density attribute vector: decode μ(FILE) + s·v for each scale s."""
        from tunesmith.cli.generate import empty_pieces
        check_inputs(checkpoint, out, FILE=file)
        try:
            values = [float(s) for s in scales.split(",") if s.strip()]
        except ValueError:
            values = []
        if not values or not all(math.isfinite(v) for v in values):
            raise ConfigError(f"--scales expects finite numbers separated by commas, "
                              f"got {scales!r}")
        if split not in ("train", "valid", "test"):
            raise ConfigError(f"--split must be train, valid or test, got {split!r}")
        if limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {limit}")

        from tunesmith.data import prepare
        from tunesmith.generation.generate import file_to_array, repr_options, write_outputs
        from tunesmith.models.music_vae import apply_attribute, attribute_vector

        model, meta = load_model(checkpoint, _check_vae)
        options = repr_options(meta)
        prepared = prepare(data, meta["representation"], options)
        pieces = [p for p in prepared.pieces(split) if len(p) >= model.config.steps][:limit]
        vector = attribute_vector(model, pieces)
        decoded = apply_attribute(model, [file_to_array(file, meta)], vector, values)
        arrays = [d[0].cpu().numpy() for d in decoded]
        with empty_pieces() as empty:
            paths = write_outputs(arrays, meta, out, f"{file.stem}-density", wav, png)
        _report(paths, empty)
