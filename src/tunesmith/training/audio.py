"""Train an audio family (``tunesmith audio train``) through the one generic trainer.

:func:`train_audio` prepares ``folder:`` or ``rendered:`` audio
(:func:`tunesmith.data.audio.prepare_audio`), builds the family from the registry with
the sizes the data decides (``config_for_audio``: sample rate, roll channels and hop),
serves fixed windows of ``window`` samples and hands model and loaders to
:func:`tunesmith.training.trainer.fit`: the same Lightning run, progress bar, early
stopping, safetensors checkpoint (+ JSON config) and loss plot as every symbolic family.
The checkpoint's ``corpus`` records the audio data (spec, rate, hop, pieces per split).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from tunesmith.data.audio import AudioData, audio_loader, prepare_audio
from tunesmith.errors import CheckpointError, ConfigError
from tunesmith.models import registry
from tunesmith.training.checkpoint import build_model, require_fields, write_json
from tunesmith.training.settings import TrainSettings
from tunesmith.training.trainer import RUN_FILE, clear_run, fit, open_run


def build_audio_model(model_name: str, options: dict | None, data: AudioData | None):
    """A registered audio family, its sizes taken from ``data`` (when given)."""
    if model_name not in registry.audio_family_names():
        raise ConfigError(f"{model_name!r} is not an audio model; audio models: "
                          f"{', '.join(registry.audio_family_names())}")
    cls = registry.get_family(model_name)
    config = cls.config_class.from_dict({**registry.preset_options(model_name),
                                         **(options or {})})
    if data is not None:
        config = cls.config_for_audio(config, data)
    return cls(config)


def train_audio(model_name: str | None, data: str | AudioData | None,
                options: dict | None = None, out_dir: str | Path = "runs/audio", *,
                sample_rate: int = 16000, max_seconds: float | None = None,
                limit: int | None = None, windows_per_piece: int | None = None,
                resume: bool = False, overwrite: bool = False,
                callbacks: Sequence[pl.Callback] = (), **settings: Any) -> Path:
    """Train ``model_name`` on audio; return the run folder (a checkpoint).

    ``data``: ``folder:PATH``, ``rendered:CORPUS`` or a prepared :class:`AudioData`;
    ``max_seconds``/``limit`` cut pieces/corpus when preparing; ``settings`` are
    :class:`TrainSettings` fields, ``window`` in samples (a multiple of the roll hop for
    rendered data). ``resume`` continues the run in ``out_dir`` exactly as
    :func:`tunesmith.training.trainer.train` does (the same :func:`open_run` and
    ``last/`` state): model, options, data (spec, rate, cuts) and settings come from its
    ``run.json``, those given here override the settings; ``model_name`` and ``data``
    may be None. ``callbacks``: more Lightning callbacks for the run.
    """
    out_dir = Path(out_dir)
    run_file = out_dir / RUN_FILE
    if resume and not isinstance(data, AudioData):
        data = None  # the run's own data (run.json), as train() does for a spec
    start = open_run(out_dir, model_name, data, options, settings, resume=resume,
                     overwrite=overwrite)
    model_name, options, train_settings = start.model_name, start.options, start.settings
    if start.run:  # resumed (or restarted from step 0): the data as the run prepared it
        saved = start.run["data"]
        require_fields(saved, {"spec": (str,), "sample_rate": (int,)}, run_file)
        sample_rate = saved["sample_rate"]
        max_seconds, limit = saved.get("max_seconds"), saved.get("limit")
        if windows_per_piece is None:
            windows_per_piece = start.run.get("windows_per_piece")
        data = data if isinstance(data, AudioData) else saved["spec"]
    if train_settings.window is None:
        raise ConfigError("audio training needs a window (samples per training item)")
    if model_name not in registry.audio_family_names():
        raise ConfigError(f"{model_name!r} is not an audio model; audio models: "
                          f"{', '.join(registry.audio_family_names())}")
    registry.get_family(model_name).config_class.from_dict(  # typos fail before data work
        {**registry.preset_options(model_name), **(options or {})})
    if data is None:
        raise ConfigError("give the audio to train on (--data folder:PATH or rendered:CORPUS)")
    if not isinstance(data, AudioData):
        data = prepare_audio(data, sample_rate, max_seconds=max_seconds, limit=limit,
                             progress=train_settings.progress_bar)
    corpus = data.describe()
    if start.run:
        saved = start.run["data"]
        for key in ("spec", "sample_rate", "pieces", "seconds"):
            if key in saved and saved[key] != corpus[key]:
                raise CheckpointError(run_file, f"the run trained on {key} {saved[key]}, the "
                                      f"data has {corpus[key]}; resume it on the same data")
    pl.seed_everything(train_settings.seed, workers=True, verbose=False)
    if start.resume:
        model = build_model(lambda: build_audio_model(model_name, options, data), run_file)
    else:
        model = build_audio_model(model_name, options, data)
    window = train_settings.window
    rolls = bool(getattr(model.config, "local_channels", 0))  # only a synthesiser reads them
    train_loader = audio_loader(data, "train", window, train_settings.batch_size,
                                seed=train_settings.seed, windows_per_piece=windows_per_piece,
                                rolls=rolls)
    val_loader = None
    if data.indices("valid"):
        val_loader = audio_loader(data, "valid", window, train_settings.batch_size,
                                  shuffle=False, windows_per_piece=windows_per_piece,
                                  rolls=rolls)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_file, {"model_name": model_name, "options": dict(options or {}),
                          "data": corpus,  # with the cuts it was prepared with
                          "settings": train_settings.to_dict(),
                          "windows_per_piece": windows_per_piece})
    split = {"counts": corpus["pieces"], "method": "hash of piece id or the corpus's split",
             "test_ids": [data.ids[i] for i in data.indices("test")][:1000]}
    return fit(model, train_loader, val_loader, out_dir, model_name=model_name,
               settings=train_settings, data_info=None, corpus=corpus, split=split,
               resume=start.resume, callbacks=callbacks)


# ------------------------------------------------------------------------------ the prior


class CodeWindows(Dataset):
    """Windows of ``context`` code tokens over the pieces' code sequences (piece by
    piece, non-overlapping, the last one padded and masked)."""

    def __init__(self, sequences: list[torch.Tensor], context: int):
        self.sequences, self.context = sequences, context
        self.items = [(i, start) for i, seq in enumerate(sequences)
                      for start in range(0, max(1, len(seq) - 1), context)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        piece, start = self.items[index]
        seq = self.sequences[piece][start : start + self.context]
        tokens = torch.zeros(self.context, dtype=torch.long)
        mask = torch.zeros(self.context, dtype=torch.bool)
        tokens[: len(seq)], mask[: len(seq)] = seq, True
        return {"tokens": tokens, "mask": mask}


@torch.no_grad()
def encode_pieces(vq_model, data: AudioData, split: str, level: int = 0,
                  chunk_seconds: float = 8.0) -> list[torch.Tensor]:
    """The code sequence (N,) of each piece of a split (level 0: the bottom codes)."""
    chunk = int(chunk_seconds * data.sample_rate)
    chunk -= chunk % vq_model.frame
    out = []
    for i in data.indices(split):
        audio = torch.tensor(data.audio(i))
        parts = [vq_model.encode(audio[s : s + chunk][None])[level][0]
                 for s in range(0, len(audio), chunk)]
        out.append(torch.cat(parts))
    return out


def train_prior(vq_checkpoint: str | Path, data: str | AudioData, options: dict | None = None,
                out_dir: str | Path = "runs/prior", *, prior: str = "music-transformer",
                max_seconds: float | None = None, overwrite: bool = False,
                **settings: Any) -> Path:
    """Train an autoregressive token family (default the ``music-transformer``) over the
    bottom-level codes of a VQ-VAE checkpoint on ``data``'s pieces; returns the run."""
    from tunesmith.data.datasets import EpochSampler
    from tunesmith.models.vq_vae import VQVAE
    from tunesmith.training.checkpoint import load_checkpoint

    out_dir = Path(out_dir)
    if (out_dir / RUN_FILE).exists() and not overwrite:
        raise ConfigError(f"{out_dir} already holds a training run; pass --overwrite")
    if (out_dir / RUN_FILE).exists():
        clear_run(out_dir)
    vq_model, vq_meta = load_checkpoint(vq_checkpoint)
    if not isinstance(vq_model, VQVAE):
        raise ConfigError(f"{vq_checkpoint} holds {vq_meta['model_name']!r}, not a vq-vae")
    train_settings = TrainSettings.from_dict(settings)
    if not isinstance(data, AudioData):
        data = prepare_audio(data, vq_model.config.sample_rate, max_seconds=max_seconds,
                             progress=train_settings.progress_bar)
    if data.sample_rate != vq_model.config.sample_rate:
        raise ConfigError(f"the data is at {data.sample_rate} Hz, the VQ-VAE at "
                          f"{vq_model.config.sample_rate} Hz")
    k = vq_model.config.codebook_size
    model_options = {"vocab_size": k, "constrained": False, "transpose": 0,
                     **(options or {})}
    model = registry.build(prior, model_options)
    context = train_settings.window or model.config.context
    pl.seed_everything(train_settings.seed, workers=True, verbose=False)
    loaders: list[DataLoader | None] = []
    for split, shuffle in (("train", True), ("valid", False)):
        if not data.indices(split):
            loaders.append(None)
            continue
        dataset = CodeWindows(encode_pieces(vq_model, data, split), context)
        generator = torch.Generator()
        generator.manual_seed(train_settings.seed)
        loaders.append(DataLoader(dataset, batch_size=train_settings.batch_size,
                                  sampler=EpochSampler(len(dataset), shuffle=shuffle,
                                                       seed=train_settings.seed),
                                  generator=generator))
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = {**data.describe(), "vq_vae": str(vq_checkpoint),
              "codes_per_second": vq_model.config.sample_rate / vq_model.config.hop}
    write_json(out_dir / RUN_FILE, {"model_name": prior, "options": model_options,
                                    "data": corpus, "settings": train_settings.to_dict()})
    return fit(model, loaders[0], loaders[1], out_dir, model_name=prior,
               settings=train_settings, data_info=None, corpus=corpus, split=None)
