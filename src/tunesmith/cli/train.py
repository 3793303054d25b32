"""``tunesmith train``: train a registered model on a corpus (see :mod:`tunesmith.training`)."""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.cli.options import check_out_folder, parse_assignments, parse_value
from tunesmith.cli.run_config import apply_overrides, load_config_file
from tunesmith.errors import ConfigError


def whole_pieces_by_default(cls) -> bool:
    """Families that read whole examples rather than windows: GANs (manual optimisation;
    Lightning counts each of their ``opt.step()`` calls as a step) and MusicVAE, which
    cut their own fixed-length phrases."""
    return not cls.automatic_optimization or cls.__module__.endswith(".music_vae")


def build_run(
    model: str | None, data: str | None, repr_set: list[str] | None, path: Path | None,
    config_file: Path | None, overrides: list[str] | None, flags: dict,
) -> tuple[str | None, dict | None, dict, dict]:
    """(model name, data spec, model options, train settings) from a config file,
    ``--set`` overrides and the command-line flags (flags win)."""
    config = load_config_file(config_file) if config_file else {"model": {}, "data": {},
                                                                 "train": {}}
    config = apply_overrides(config, overrides or [])
    options = dict(config["model"])
    name = model or options.pop("name", None)
    options.pop("name", None)
    data_spec = dict(config["data"])
    if data:
        data_spec["corpus"] = data
    if path is not None:
        data_spec["path"] = str(path)
    if repr_set:
        data_spec["options"] = {**dict(data_spec.get("options") or {}),
                                **parse_assignments(repr_set, "--repr-set")}
    settings = dict(config["train"])
    settings.update({k: v for k, v in flags.items() if v is not None})
    return name, (data_spec if data_spec.get("corpus") else None), options, settings


def check_names_first(name: str, data_spec: dict, settings: dict) -> None:
    """The model name, the corpus and the train settings, checked before torch and
    Lightning load (seconds on a busy machine), so a typo is reported at once."""
    from tunesmith.models import registry
    from tunesmith.training.settings import TrainSettings

    registry.check_name(name)
    TrainSettings.from_dict(settings)

    from tunesmith.data.corpora import get_corpus  # numpy and symusic: a few tenths of a second

    get_corpus(str(data_spec["corpus"]), data_spec.get("path"))


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_command(
        model: str = typer.Option(None, "--model", "-m", help="Registry name (tunesmith models)."),
        data: str = typer.Option(None, "--data", "-d",
                                 help="Corpus name (tunesmith data list) or folder:PATH."),
        repr_set: list[str] = typer.Option(
            None, "--repr-set", help="Representation option key=value (repeatable), "
                                     "e.g. resolution=4, pitch_low=36, merge_tracks=false."),
        path: Path = typer.Option(None, "--path", help="Where the corpus's files are."),
        config: Path = typer.Option(None, "--config",
                                    help="TOML file with \\[model], \\[data], \\[train] sections."),
        set_: list[str] = typer.Option(
            None, "--set", help="Override: model.x=..., data.x=..., train.x=... (repeatable)."),
        out: Path = typer.Option(..., "--out", "-o", help="Run folder (the checkpoint)."),
        epochs: int = typer.Option(None, "--epochs", help="Most epochs."),
        max_time: float = typer.Option(None, "--max-time", help="Most minutes of training."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
        init_from: str = typer.Option(
            None, "--init-from", help="Fine-tune: start from this checkpoint's weights (a run "
                                      "folder or pretrained:NAME); --model and the model "
                                      "options default to its own."),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Start again in an --out that holds a run (removes "
                                       "only what a run writes there)."),
        accelerator: str = typer.Option(None, help="Lightning accelerator: cpu, gpu, auto..."),
        devices: str = typer.Option(None, help="Lightning devices: 1, 4, auto, [0,1]..."),
        num_nodes: int = typer.Option(None, help="Machines in a multi-node DDP run."),
        strategy: str = typer.Option(None, help="Lightning strategy: auto, ddp, fsdp..."),
        threads: int = typer.Option(None, help="torch CPU threads (default: torch's)."),
    ) -> None:
        """Train a model; the run folder holds the best-validation checkpoint."""
        from tunesmith.models import registry

        check_out_folder(out)
        flags = {"epochs": epochs, "max_time": max_time, "accelerator": accelerator,
                 "devices": None if devices is None else parse_value(devices),
                 "num_nodes": num_nodes, "strategy": strategy, "threads": threads,
                 "init_from": init_from}
        name, data_spec, options, settings = build_run(model, data, repr_set, path, config,
                                                       set_, flags)
        if max_time is not None and epochs is None:
            settings.setdefault("epochs", None)
        if not resume:
            if name is None and settings.get("init_from"):  # fine-tuning: the checkpoint's
                from tunesmith.training.checkpoint import checkpoint_model_options

                name = checkpoint_model_options(settings["init_from"])[0]
            if name is None:
                raise ConfigError("give a model with --model (see tunesmith models)")
            if data_spec is None:
                raise ConfigError("give data with --data (see tunesmith data list)")
            check_names_first(name, data_spec, settings)
            if "window" not in settings and whole_pieces_by_default(registry.get_family(name)):
                settings["window"] = None
        else:
            if not out.is_dir():
                raise ConfigError(f"{out}: nothing to resume: no such run folder")
            if name is not None:
                registry.check_name(name)

        from rich.console import Console

        from tunesmith.training.settings import first_process
        from tunesmith.training.trainer import train

        run_dir = train(name, data_spec, options, out, resume=resume, overwrite=overwrite,
                        **settings)
        if not first_process():  # DDP's other processes: the first one reports
            return
        console = Console()
        console.print(f"checkpoint: [bold]{run_dir}[/] (model.safetensors + config.json); "
                      f"curves: {run_dir / 'loss.png'}")
        console.print(f"next: tunesmith generate --checkpoint {run_dir} --out {run_dir}/samples")
