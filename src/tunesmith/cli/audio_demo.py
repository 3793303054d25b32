"""``tunesmith audio demo``: the audio domain end to end in a few minutes on 2 cores.

On ``rendered:bach-chorales`` at 16 kHz (first 4 s of each chorale) it trains, through
the one trainer, a VQ-VAE (hop 64, 512 codes: 2.25 kbps), a Transformer prior over its
codes and a piano-roll-conditioned audio WaveNet, then writes for a held-out (test)
chorale, each beside the SoundFont rendering of the same notes (WAV + spectrogram PNG):

* ``recon``: the VQ-VAE's reconstruction of the chorale's audio;
* ``sample``: an unconditional sample (prior codes decoded by the VQ-VAE);
* ``synth``: the WaveNet's MIDI-to-audio synthesis of the chorale's notes;

and ``demo.json`` with the log-mel distance of each to the SoundFont rendering.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from tunesmith.cli.demo import lightning_output_to
from tunesmith.data.audio import prepare_audio
from tunesmith.evaluation.audio import log_mel_distance, si_sdr
from tunesmith.generation.audio import synthesize_roll
from tunesmith.models.sampling import SamplingControls
from tunesmith.render.spectrogram import write_wav_and_png
from tunesmith.training.audio import train_audio, train_prior
from tunesmith.training.checkpoint import load_checkpoint

RATE = 16000
SECONDS = 4.0


def run_demo(out: Path, minutes: float = 5.0, threads: int = 2) -> Iterator[str]:
    """Train and write the demo's files under ``out``; yields progress lines."""
    start = time.monotonic()
    out = Path(out)
    data = prepare_audio("rendered:bach-chorales", RATE, max_seconds=SECONDS)
    yield f"data: {data.describe()['pieces']} pieces, {data.seconds():.0f} s at {RATE} Hz"
    common: dict[str, Any] = {
        "overwrite": True, "epochs": None, "threads": threads, "progress_bar": True,
        "model_summary": False, "loggers": False, "early_stopping_patience": 0,
        "lr_schedule": "constant", "limit_val_batches": 5}
    log_path = out / "train.log"  # Lightning's banner, summaries and notices go here
    with lightning_output_to(log_path):
        vq_run = train_audio("vq-vae", data, {"channels": 48}, out / "vq-vae", window=8000,
                             batch_size=8, max_time=0.35 * minutes, lr=2e-3, **common)
    yield f"vq-vae: {vq_run}"
    with lightning_output_to(log_path):
        prior_run = train_prior(vq_run, data, {"context": 250, "d_model": 128, "n_layers": 3,
                                               "n_heads": 4, "d_ff": 256}, out / "prior",
                                window=250, batch_size=16, max_time=0.15 * minutes, lr=1e-3,
                                **common)
    yield f"prior: {prior_run}"
    with lightning_output_to(log_path):
        wn_run = train_audio("audio-wavenet", data, {"roll_conditioned": True, "channels": 32,
                                                      "skip_channels": 64, "levels": 9,
                                                      "blocks": 1},
                             out / "wavenet", window=4000, batch_size=8,
                             max_time=0.4 * minutes, lr=2e-3, **common)
    yield f"audio-wavenet: {wn_run} (Lightning's log: {log_path})"

    torch.set_num_threads(threads)
    vq, _ = load_checkpoint(vq_run)
    prior, _ = load_checkpoint(prior_run)
    wavenet, _wn_meta = load_checkpoint(wn_run)
    piece = data.indices("test")[0]
    chorale = Path(data.ids[piece]).stem.replace("/", "-")
    reference = data.audio(piece)  # the SoundFont rendering of the chorale's notes
    roll = data.roll(piece).astype("float32")
    controls = SamplingControls(seed=0)
    with torch.no_grad():
        recon = vq.reconstruct(torch.tensor(reference)[None])[0].numpy()
        codes = prior.generate(1, len(reference) // vq.config.hop, controls)
        sample = vq.decode([codes], len(reference))[0].numpy()
    synth = synthesize_roll(wavenet, roll, controls)
    results = {"chorale": data.ids[piece], "seconds": SECONDS,
               "vq-vae bitrate (bits/s)": vq.config.bitrate}
    written = write_wav_and_png(out / f"{chorale}-soundfont", reference, RATE,
                                f"{chorale}: SoundFont rendering")
    for name, audio in (("recon", recon), ("sample", sample), ("synth", synth)):
        written += write_wav_and_png(out / f"{chorale}-{name}", audio, RATE, f"{chorale}: {name}")
        results[f"{name}: log-mel distance to the SoundFont rendering"] = \
            log_mel_distance(audio, reference, RATE)
    results["recon: SI-SDR (dB)"] = si_sdr(recon, reference)
    results["minutes"] = (time.monotonic() - start) / 60
    (out / "demo.json").write_text(json.dumps(results, indent=1))
    for path in written:
        yield f"wrote {path}"
    for key, value in results.items():
        yield f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}"
