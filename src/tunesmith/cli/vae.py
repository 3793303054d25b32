"""``tunesmith vae``: MusicVAE modes on a trained checkpoint.

* ``sample``: phrases decoded from z ~ N(0, I);
* ``reconstruct FILE``: encode a file's first phrase to μ and decode it again;
* ``interpolate A B --steps N``: decode codes slerped from μ(A) to μ(B);
* ``attribute FILE --data CORPUS``: add scale × (mean μ of dense − mean μ of sparse
  phrases of a corpus) to a file's code (Roberts et al. 2018, §5.3).

Every output is a MIDI file (and ``--wav``/``--png`` renderings). The helpers here that
turn files into the checkpoint's representation and back are shared with
``tunesmith gan``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.errors import ConfigError, MusicFileError

# ---------------------------------------------------------------------- checkpoint <-> files


def load_model(checkpoint: Path, family_check=None):
    """(model, meta) of a checkpoint; ``family_check(model)`` raises for a wrong family."""
    from tunesmith.training.checkpoint import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    if family_check is not None:
        family_check(model, meta)
    return model, meta


def _repr_options(meta: dict) -> dict:
    info = meta.get("data_info") or {}
    return dict(meta.get("repr_config") or info.get("repr_config") or {})


def file_to_array(path: Path, meta: dict):
    """A music file in the checkpoint's representation: melody (T,) events or (T, K) roll."""
    import numpy as np

    from tunesmith.music import load
    from tunesmith.music.transforms import merge_tracks, select_tracks

    score = select_tracks(load(path), drums=False)
    options = _repr_options(meta)
    representation = meta.get("representation")
    if representation == "melody":
        from tunesmith.representations import melody

        track = options.pop("track", None)
        if track is not None:
            named = select_tracks(score, names=[track])
            score = named if len(named.tracks) else score  # no such track: the whole score
        cfg = melody.MelodyConfig(**options)
        return np.asarray(melody.encode(score, cfg), dtype=np.int64)
    if representation == "pianoroll":
        from tunesmith.representations import pianoroll

        merge = options.pop("merge_tracks", True)
        cfg = pianoroll.PianorollConfig(**options)
        n_tracks = len(cfg.track_names) or 1
        if merge:
            score = merge_tracks(score, name=cfg.track_names[0] if cfg.track_names else "Piano")
        if len(score.tracks) != n_tracks:
            raise MusicFileError(path, f"has {len(score.tracks)} pitched tracks, the model "
                                       f"was trained on {n_tracks}")
        grid = pianoroll.encode(score, cfg)  # (tracks, steps, pitches)
        return grid.transpose(1, 0, 2).reshape(grid.shape[1], -1)  # (steps, tracks·pitches)
    raise ConfigError(f"cannot read files for the {representation!r} representation here")


def array_to_score(array, meta: dict):
    """A generated (T,) melody or (T, K) piano-roll -> a Score, with the data's settings."""
    import numpy as np

    array = np.asarray(array)
    options = _repr_options(meta)
    if meta.get("representation") == "melody":
        from tunesmith.representations import melody

        options.pop("track", None)
        return melody.decode(array.astype(np.int64), melody.MelodyConfig(**options))
    from tunesmith.representations import pianoroll

    options.pop("merge_tracks", None)
    cfg = pianoroll.PianorollConfig(**options)
    grid = array.reshape(array.shape[0], -1, cfg.n_pitches).transpose(1, 0, 2)
    return pianoroll.decode((grid > 0.5).astype(np.uint8), cfg)


def write_outputs(arrays, meta: dict, out_dir: Path, stem: str, wav: bool, png: bool):
    """Write each array as ``out_dir/stem-i.mid`` (+ .wav / .png); returns the MIDI paths."""
    from tunesmith.music import save_midi

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, array in enumerate(arrays):
        score = array_to_score(array, meta)
        path = save_midi(score, out_dir / f"{stem}-{i:02d}.mid")
        if wav:
            from tunesmith.render import render_wav

            render_wav(score, path.with_suffix(".wav"))
        if png:
            from tunesmith.render import render_png

            render_png(score, path.with_suffix(".png"), title=path.stem)
        paths.append(path)
    return paths


def controls_from(temperature: float, seed: int | None, threshold: float | None = None):
    from tunesmith.generation.sampling import SamplingControls

    return SamplingControls(temperature=temperature, seed=seed, threshold=threshold)


def _check_vae(model, meta) -> None:
    from tunesmith.models.music_vae import MusicVAE

    if not isinstance(model, MusicVAE):
        raise ConfigError(f"the checkpoint holds {meta.get('model_name')!r}, not a MusicVAE")


def _report(paths) -> None:
    from rich.console import Console

    console = Console()
    for path in paths:
        console.print(f"wrote {path}")


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
        from tunesmith.models.music_vae import sample_prior

        model, meta = load_model(checkpoint, _check_vae)
        phrases = sample_prior(model, n, controls_from(temperature, seed))
        _report(write_outputs(phrases.cpu().numpy(), meta, out, "sample", wav, png))

    @vae_app.command("reconstruct")
    def reconstruct_command(
        file: Path = typer.Argument(..., help="A music file; its first phrase is encoded."),
        checkpoint: Path = checkpoint_option,
        out: Path = out_option, wav: bool = wav_option, png: bool = png_option,
    ) -> None:
        """Encode a file's first phrase to μ and decode it (argmax)."""
        from tunesmith.models.music_vae import reconstruct

        model, meta = load_model(checkpoint, _check_vae)
        array = file_to_array(file, meta)
        phrases = reconstruct(model, [array]).cpu().numpy()
        original = array[: model.config.steps]
        _report(write_outputs([original, phrases[0]], meta, out, f"{file.stem}-input-recon",
                              wav, png))

    @vae_app.command("interpolate")
    def interpolate_command(
        start: Path = typer.Argument(..., help="First music file."),
        end: Path = typer.Argument(..., help="Second music file."),
        checkpoint: Path = checkpoint_option,
        steps: int = typer.Option(5, "--steps", help="Phrases on the path, both ends included."),
        out: Path = out_option, wav: bool = wav_option, png: bool = png_option,
    ) -> None:
        """Decode codes spherically interpolated from μ(START) to μ(END)."""
        from tunesmith.models.music_vae import interpolate

        model, meta = load_model(checkpoint, _check_vae)
        _, phrases = interpolate(model, file_to_array(start, meta), file_to_array(end, meta),
                                 steps)
        _report(write_outputs(phrases.cpu().numpy(), meta, out, "interpolation", wav, png))

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
        from tunesmith.data import prepare
        from tunesmith.models.music_vae import apply_attribute, attribute_vector

        model, meta = load_model(checkpoint, _check_vae)
        try:
            values = [float(s) for s in scales.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(
                f"--scales expects numbers separated by commas, got {scales!r}"
            ) from None
        options = _repr_options(meta)
        prepared = prepare(data, meta["representation"], options)
        pieces = [p for p in prepared.pieces(split) if len(p) >= model.config.steps][:limit]
        vector = attribute_vector(model, pieces)
        decoded = apply_attribute(model, [file_to_array(file, meta)], vector, values)
        arrays = [d[0].cpu().numpy() for d in decoded]
        _report(write_outputs(arrays, meta, out, f"{file.stem}-density", wav, png))
