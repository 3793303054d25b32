"""``tunesmith models``: the registered families, their representations and options."""

from __future__ import annotations

import dataclasses

import typer


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models_command(
        name: str = typer.Argument(None, help="Show one model's options in full."),
    ) -> None:
        """List model families, the representation each reads, and their options."""
        from tunesmith.models import registry

        if name:
            registry.check_name(name)  # before the families (and torch) load

        from rich.console import Console
        from rich.table import Table

        console = Console()
        names = [name] if name else registry.family_names()
        table = Table(title="tunesmith models")
        table.add_column("model")
        table.add_column("representation")
        table.add_column("options (default)")
        for model_name in names:
            cls = registry.get_family(model_name)
            config = cls.config_class.from_dict(registry.preset_options(model_name))
            options = ", ".join(
                f"{f.name}={getattr(config, f.name)!r}" for f in dataclasses.fields(config)
            )
            table.add_row(model_name, cls.representation, options)
        console.print(table)
