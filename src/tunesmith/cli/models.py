"""``tunesmith models``: the registered families, their representations and options;
``--pretrained``: the checkpoints shipped in the package, with their figures."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models_command(
        name: str = typer.Argument(None, help="Show one model's options in full."),
        pretrained: bool = typer.Option(
            False, "--pretrained",
            help="List the shipped models (use as --checkpoint pretrained:NAME)."),
        json_out: bool = typer.Option(
            False, "--json",
            help="Print the listing as JSON (model, domain, representation, data, train "
                 "command, options)."),
    ) -> None:
        """List model families (symbolic and audio), the data each takes, and their options."""
        from tunesmith.models import registry

        if name:
            registry.check_name(name)  # before the families (and torch) load

        from rich.console import Console
        from rich.table import Table

        console = Console()
        if pretrained:
            console.print(pretrained_table())
            return
        rows = registry.listing([name] if name else None)
        if json_out:
            print(json.dumps(rows, indent=1))
            return
        table = Table(title="tunesmith models")
        for column in ("model", "domain", "data", "options (default)"):
            table.add_column(column)
        for row in rows:
            options = ", ".join(f"{k}={v!r}" for k, v in row["options"].items())
            table.add_row(row["model"], row["domain"], row["data"], options)
        console.print(table)


def _figure(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def pretrained_table():
    """A Rich table of the shipped models: corpus, family, held-out NLL, quality figures."""
    from rich.table import Table

    from tunesmith import pretrained

    table = Table(title="tunesmith pretrained models",
                  caption="use: tunesmith generate --checkpoint pretrained:NAME; "
                          "figures: held-out test split (NLL), tunesmith evaluate of "
                          "samples vs the train split with its test band")
    for column in ("name", "corpus", "family", "tracks", "held-out NLL", "voice activity",
                   "within band", "two-sample acc.", "MB"):
        table.add_column(column)
    for card in pretrained.cards():
        nll = card.get("held_out_nll") or {}
        quality = card.get("quality") or {}
        activity = quality.get("voice_activity") or {}
        sounding = [v for v in activity.values() if v is not None]
        voices = "–" if not sounding else (
            f"{sounding[0]:.2f}" if len(sounding) == 1 else
            f"{min(sounding):.2f}–{max(sounding):.2f}")
        band = quality.get("within_band")
        two = quality.get("two_sample_accuracy")
        two_band = quality.get("two_sample_band")
        table.add_row(
            card["name"], card.get("corpus", "?"), card.get("family", "?"),
            str(len(card.get("tracks") or [])),
            f"{_figure(nll.get('value'))} {nll.get('unit', '')}".strip(),
            voices,
            "–" if band is None else f"{band}/{quality.get('judged')}",
            _figure(two) + ("" if two_band is None else f" (band {two_band:.3f})"),
            f"{pretrained.size_bytes(card['name']) / 1e6:.1f}",
        )
    if not table.rows:
        table.add_row("(none shipped)", *[""] * 8)
    return table
