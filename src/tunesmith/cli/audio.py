"""``tunesmith audio``: the raw-audio domain (μ-law WaveNet, VQ-VAE + prior).

* ``train``: an audio family on ``folder:PATH`` or ``rendered:CORPUS`` (the one trainer);
* ``synth FILE.mid``: a roll-conditioned WaveNet renders a MIDI file (beside the
  SoundFont rendering of the same notes and their log-mel distance);
* ``sample``: unconditional audio from a WaveNet, or from a VQ-VAE's codes drawn by its
  prior (``--prior``);
* ``encode FILE`` / ``decode CODES``: a VQ-VAE's codes (safetensors) and back, with the
  bitrate;
* ``prior``: train the Transformer prior over a VQ-VAE's codes;
* ``evaluate``: test NLL and sampling speed (WaveNet), or STFT / log-mel distances,
  SI-SDR, codebook usage and bitrate (VQ-VAE), as report.json;
* ``demo``: all of it, briefly, on ``rendered:bach-chorales`` at 16 kHz.

Every command that makes audio writes a WAV and a spectrogram PNG beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from tunesmith.cli.options import (
    check_checkpoint,
    check_file,
    check_out_folder,
    parse_assignments,
)
from tunesmith.errors import ConfigError


def _print(message: str) -> None:
    from rich.console import Console

    Console().print(message, highlight=False, soft_wrap=True)


def _controls(temperature: float, seed: int | None):
    from tunesmith.models.sampling import SamplingControls

    return SamplingControls(temperature=temperature, seed=seed)


def _load(checkpoint: Path, family: str):
    from tunesmith.training.checkpoint import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    if type(model).family != family:
        raise ConfigError(f"{checkpoint} holds {meta['model_name']!r}, not {family!r}")
    return model, meta


def _write(stem: Path, audio, rate: int, title: str = "") -> None:
    from tunesmith.render.spectrogram import write_wav_and_png

    for path in write_wav_and_png(stem, audio, rate, title):
        _print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    audio_app = typer.Typer(help="Raw audio: μ-law WaveNet, neural synthesis, VQ-VAE + prior.",
                            no_args_is_help=True)
    app.add_typer(audio_app, name="audio")
    checkpoint_option = typer.Option(..., "--checkpoint", help="A trained audio run folder.")
    seed_option = typer.Option(0, "--seed", help="Random seed.")
    temperature_option = typer.Option(1.0, "--temperature", help="Softmax temperature.")

    @audio_app.command("train")
    def train_command(
        model: str = typer.Option(None, "--model", help="audio-wavenet or vq-vae."),
        data: str = typer.Option(None, "--data", help="folder:PATH or rendered:CORPUS."),
        out: Path = typer.Option(Path("runs/audio"), "--out", help="Run folder."),
        sample_rate: int = typer.Option(16000, "--sample-rate", help="Hz."),
        seconds: float = typer.Option(None, "--seconds", help="Keep the first seconds of "
                                      "each piece."),
        limit: int = typer.Option(None, "--limit", help="Keep the first pieces."),
        window: int = typer.Option(None, "--window",
                                   help="Samples per training item (new run: 8000)."),
        batch_size: int = typer.Option(None, "--batch-size", help="New run: 8."),
        epochs: int = typer.Option(None, "--epochs"),
        max_steps: int = typer.Option(None, "--max-steps", help="Most steps."),
        max_time: float = typer.Option(None, "--max-time", help="Minutes."),
        lr: float = typer.Option(None, "--lr", help="New run: 0.001."),
        threads: int = typer.Option(1, "--threads"),
        resume: bool = typer.Option(
            False, "--resume", help="Continue the run in --out from its last saved state "
                                    "(model, data and settings from its run.json; the "
                                    "options given here override its settings)."),
        overwrite: bool = typer.Option(False, "--overwrite"),
        set_: list[str] = typer.Option(None, "--set", help="Model option key=value."),
    ) -> None:
        """Train an audio family through the generic trainer (or --resume a run)."""
        check_out_folder(out)
        from tunesmith.training.audio import train_audio

        given = {"window": window, "batch_size": batch_size, "epochs": epochs,
                 "max_steps": max_steps, "max_time": max_time, "lr": lr, "threads": threads}
        settings: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if resume:
            if not out.is_dir():
                raise ConfigError(f"{out}: nothing to resume: no such run folder")
        else:
            if model is None or data is None:
                raise ConfigError("give a model (--model) and data (--data), or --resume a run")
            settings = {"window": 8000, "batch_size": 8, "lr": 1e-3, "max_steps": -1,
                        **settings}
            if epochs is None and max_steps is None and max_time is None:
                settings["epochs"] = 10
        run = train_audio(model, data, parse_assignments(set_), out, sample_rate=sample_rate,
                          max_seconds=seconds, limit=limit, resume=resume,
                          overwrite=overwrite, **settings)
        _print(f"checkpoint: {run}")

    @audio_app.command("synth")
    def synth_command(
        file: Path = typer.Argument(..., help="A MIDI (or other music) file."),
        checkpoint: Path = checkpoint_option,
        out: Path = typer.Option(Path("audio-out"), "--out"),
        seconds: float = typer.Option(None, "--seconds", help="Render the first seconds."),
        temperature: float = temperature_option,
        seed: int = seed_option,
    ) -> None:
        """Render a MIDI file through a roll-conditioned WaveNet (a neural synthesiser)."""
        check_file(file, "FILE")
        check_checkpoint(checkpoint)
        check_out_folder(out)
        from tunesmith.evaluation.audio import log_mel_distance
        from tunesmith.generation.audio import midi_roll, soundfont_rendering, synthesize_roll

        model, meta = _load(checkpoint, "audio-wavenet")
        rate = model.config.sample_rate
        roll = midi_roll(file, meta, seconds)
        audio = synthesize_roll(model, roll, _controls(temperature, seed))
        reference = soundfont_rendering(roll, meta, rate)
        _write(out / f"{file.stem}-synth", audio, rate, f"{file.stem}: WaveNet synthesis")
        _write(out / f"{file.stem}-soundfont", reference, rate, f"{file.stem}: SoundFont")
        _print(f"log-mel distance to the SoundFont rendering: "
               f"{log_mel_distance(audio, reference, rate):.3f}")

    @audio_app.command("sample")
    def sample_command(
        checkpoint: Path = checkpoint_option,
        prior: Path = typer.Option(None, "--prior", help="VQ-VAE: a prior run over its codes."),
        seconds: float = typer.Option(2.0, "--seconds"),
        n: int = typer.Option(1, "--n", help="Number of samples."),
        out: Path = typer.Option(Path("audio-out"), "--out"),
        temperature: float = temperature_option,
        seed: int = seed_option,
    ) -> None:
        """Unconditional audio: a WaveNet's samples or a VQ-VAE's decoded prior samples."""
        check_checkpoint(checkpoint)
        if prior is not None:
            check_checkpoint(prior)
        check_out_folder(out)
        from tunesmith.training.checkpoint import load_checkpoint

        model, meta = load_checkpoint(checkpoint)
        rate = model.config.sample_rate
        steps = int(seconds * rate)
        controls = _controls(temperature, seed)
        if type(model).family == "vq-vae":
            if prior is not None:
                prior_model, _ = load_checkpoint(prior)
                codes = prior_model.generate(n, -(-steps // model.config.hop), controls)
                if model.config.top_strides:
                    raise ConfigError("the prior covers the bottom codes of one-level VQ-VAEs")
                audio = model.decode([codes], steps)
            else:
                audio = model.generate(n, steps, controls)
            _print(f"bitrate of the codes: {model.config.bitrate:.0f} bits/s")
        elif model.config.local_channels:
            raise ConfigError("this WaveNet is conditioned on a piano-roll: use "
                              "`tunesmith audio synth FILE.mid`")
        else:
            audio = model.generate(n, steps, controls)
        for i, row in enumerate(audio.cpu().numpy()):
            _write(out / f"sample-{i}", row, rate, f"{meta['model_name']} sample {i}")

    @audio_app.command("encode")
    def encode_command(
        file: Path = typer.Argument(..., help="A WAV/FLAC/OGG file."),
        checkpoint: Path = checkpoint_option,
        out: Path = typer.Option(Path("audio-out"), "--out"),
    ) -> None:
        """A VQ-VAE's codes of an audio file (STEM.codes.safetensors) + its reconstruction."""
        check_file(file, "FILE")
        check_checkpoint(checkpoint)
        check_out_folder(out)
        import torch
        from safetensors.torch import save_file

        from tunesmith.audio.io import load_audio

        model, _ = _load(checkpoint, "vq-vae")
        rate = model.config.sample_rate
        audio = torch.tensor(load_audio(file, rate))[None]
        codes = model.encode(audio)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{file.stem}.codes.safetensors"
        save_file({f"level{i}": c[0].contiguous() for i, c in enumerate(codes)}, str(path),
                  metadata={"samples": str(audio.shape[1]), "sample_rate": str(rate)})
        _print(f"wrote {path}: {sum(c.numel() for c in codes)} codes, "
               f"bitrate {model.config.bitrate:.0f} bits/s")
        _write(out / f"{file.stem}-input", audio[0].numpy(), rate, f"{file.stem}: input")
        _write(out / f"{file.stem}-recon", model.decode(codes, audio.shape[1])[0].numpy(), rate,
               f"{file.stem}: reconstruction at {model.config.bitrate:.0f} bits/s")

    @audio_app.command("decode")
    def decode_command(
        codes_file: Path = typer.Argument(..., help="A .codes.safetensors file from encode."),
        checkpoint: Path = checkpoint_option,
        out: Path = typer.Option(Path("audio-out"), "--out"),
    ) -> None:
        """Decode a VQ-VAE code file to audio."""
        check_file(codes_file, "CODES_FILE")
        check_checkpoint(checkpoint)
        check_out_folder(out)
        from safetensors import safe_open

        model, _ = _load(checkpoint, "vq-vae")
        try:
            with safe_open(str(codes_file), "pt") as f:
                levels = sorted(f.keys())
                codes = [f.get_tensor(k).long()[None] for k in levels]
                samples = int((f.metadata() or {}).get("samples", 0)) or None
        except Exception as exc:
            raise ConfigError(f"{codes_file}: not a code file ({exc})") from exc
        k = model.config.codebook_size
        if any(c.min() < 0 or c.max() >= k for c in codes):
            raise ConfigError(f"{codes_file}: codes outside the codebook (0..{k - 1})")
        audio = model.decode(codes, samples)[0].numpy()
        stem = codes_file.name.removesuffix(".codes.safetensors")
        _print(f"bitrate {model.config.bitrate:.0f} bits/s")
        _write(out / f"{stem}-decoded", audio, model.config.sample_rate, f"{stem}: decoded")

    @audio_app.command("prior")
    def prior_command(
        checkpoint: Path = typer.Option(..., "--checkpoint", help="A VQ-VAE run folder."),
        data: str = typer.Option(..., "--data", help="folder:PATH or rendered:CORPUS."),
        out: Path = typer.Option(Path("runs/prior"), "--out"),
        seconds: float = typer.Option(None, "--seconds"),
        window: int = typer.Option(256, "--window", help="Code tokens per training item."),
        batch_size: int = typer.Option(16, "--batch-size"),
        max_steps: int = typer.Option(-1, "--max-steps"),
        max_time: float = typer.Option(None, "--max-time", help="Minutes."),
        epochs: int = typer.Option(None, "--epochs"),
        threads: int = typer.Option(1, "--threads"),
        overwrite: bool = typer.Option(False, "--overwrite"),
        set_: list[str] = typer.Option(None, "--set", help="Prior option key=value."),
    ) -> None:
        """Train the Transformer prior over a VQ-VAE's codes."""
        check_checkpoint(checkpoint)
        check_out_folder(out)
        from tunesmith.training.audio import train_prior

        if epochs is None and max_steps < 0 and max_time is None:
            epochs = 10
        options = {"context": window, **parse_assignments(set_)}
        run = train_prior(checkpoint, data, options, out, max_seconds=seconds,
                          overwrite=overwrite, window=window, batch_size=batch_size,
                          max_steps=max_steps, max_time=max_time, epochs=epochs,
                          threads=threads)
        _print(f"checkpoint: {run}")

    @audio_app.command("evaluate")
    def evaluate_command(
        checkpoint: Path = checkpoint_option,
        data: str = typer.Option(None, "--data", help="Audio data (default: the checkpoint's)."),
        seconds: float = typer.Option(4.0, "--seconds", help="Seconds of each test piece."),
        pieces: int = typer.Option(None, "--pieces", help="At most this many test pieces."),
        out: Path = typer.Option(Path("audio-eval"), "--out"),
    ) -> None:
        """Test NLL and speed (WaveNet) or codec distances and codebook use (VQ-VAE)."""
        check_checkpoint(checkpoint)
        check_out_folder(out)
        import torch

        from tunesmith.data.audio import prepare_audio
        from tunesmith.evaluation.audio import vqvae_report, wavenet_report
        from tunesmith.training.checkpoint import load_checkpoint

        torch.set_num_threads(1)
        model, meta = load_checkpoint(checkpoint)
        rate = model.config.sample_rate
        spec = data or (meta.get("corpus") or {}).get("spec")
        if not spec:
            raise ConfigError("give --data (the checkpoint records no audio data)")
        prepared = prepare_audio(spec, rate, max_seconds=max(seconds, 1.0), progress=False)
        if type(model).family == "vq-vae":
            report = vqvae_report(model, prepared, seconds, pieces)
            piece = (prepared.indices("test") or prepared.indices(None))[0]
            first = torch.tensor(prepared.audio(piece)[: int(seconds * rate)])
            _write(out / "test-recon", model.reconstruct(first[None])[0].numpy(), rate,
                   "test piece: reconstruction")
        else:
            report = wavenet_report(model, prepared, seconds, pieces)
            if not model.config.local_channels:
                _write(out / "sample", model.generate(1, rate)[0].numpy(), rate, "sample")
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=1))
        for key, value in report.items():
            _print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
        _print(f"wrote {out / 'report.json'}")

    @audio_app.command("demo")
    def demo_command(
        out: Path = typer.Option(Path("audio-demo"), "--out"),
        minutes: float = typer.Option(5.0, "--minutes", help="Total training time budget."),
        threads: int = typer.Option(2, "--threads"),
    ) -> None:
        """Train briefly on rendered:bach-chorales at 16 kHz; write a VQ-VAE reconstruction,
        an unconditional sample and a MIDI-to-audio synthesis of a held-out chorale, each
        beside the SoundFont rendering."""
        check_out_folder(out)
        from tunesmith.cli.audio_demo import run_demo

        for line in run_demo(out, minutes, threads):
            _print(line)
