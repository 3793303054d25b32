"""Polyphonic likelihood benchmarks: our frame-level test NLL beside the published figures.

    python benchmarks/nll.py jsb-lstm jsb-tcn        # train + test these runs, then the table
    python benchmarks/nll.py --summary               # only the table, from benchmarks/results/
    python benchmarks/nll.py --summary runs/bench-mine/bench.json other/   # any result JSONs

Each run is exactly ``tunesmith bench nll`` with the options listed in RUNS (the command is
recorded in its JSON): the generic trainer with the protocol's objective
(:mod:`tunesmith.training.benchmark`; protocol: :mod:`tunesmith.models.likelihood`). Each
leaves its checkpoint in ``runs/bench/<name>`` (``generate``/``evaluate`` read it).

``--summary`` lists every ``bench nll`` result JSON it is given (files or folders; default
``benchmarks/results/``), named runs of RUNS first, then any other result (a user's own
``.mat`` benchmark included): a JSON is a result when it holds ``test_nll`` and
``benchmark``; other JSONs in a folder are passed over. The published row a result is set
beside is the named run's reference, else the one its model implies (see
:func:`reference_of`); a ``--seeds`` result shows its mean ± spread over its seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

#: (benchmark file stem, reference model) -> (published test NLL, source)
PUBLISHED = {
    ("JSB_Chorales", "LSTM"): (8.45, "Bai et al. 2018, Table 1"),
    ("JSB_Chorales", "GRU"): (8.43, "Bai et al. 2018, Table 1"),
    ("JSB_Chorales", "TCN"): (8.10, "Bai et al. 2018, Table 1"),
    ("JSB_Chorales", "RNN-NADE"): (5.56, "Boulanger-Lewandowski et al. 2012 (HF)"),
    ("Nottingham", "LSTM"): (3.29, "Bai et al. 2018, Table 1"),
    ("Nottingham", "GRU"): (3.46, "Bai et al. 2018, Table 1"),
    ("Nottingham", "TCN"): (3.07, "Bai et al. 2018, Table 1"),
    ("Nottingham", "RNN-NADE"): (2.31, "Boulanger-Lewandowski et al. 2012 (HF)"),
}

#: run name -> keyword arguments of bench_nll: TrainSettings names (epochs,
#: early_stopping_patience, gradient_clip, max_time in minutes...) (+ "reference": the
#: published row)
RUNS: dict[str, dict] = {
    "jsb-lstm": dict(
        model_name="lstm", data="jsb", options={}, batch_size=8, lr=2e-3,
        epochs=200, early_stopping_patience=10, max_time=25, reference="LSTM",
    ),
    "jsb-gru": dict(
        model_name="gru", data="jsb", options={}, batch_size=8, lr=2e-3,
        epochs=200, early_stopping_patience=10, max_time=25, reference="GRU",
    ),
    "jsb-tcn": dict(
        model_name="tcn", data="jsb", options={}, batch_size=8, lr=2e-3,
        epochs=200, early_stopping_patience=10, max_time=25, threads=1, reference="TCN",
    ),
    "jsb-lstm-nade": dict(
        model_name="lstm-nade", data="jsb", options={"hidden": 300, "dropout": 0.3},
        batch_size=8, lr=3e-3, lr_decay_patience=2, epochs=300, early_stopping_patience=10,
        max_time=28, threads=1, reference="RNN-NADE",
    ),
    "jsb-lstm-nade-range": dict(
        model_name="lstm-nade", data="jsb",
        options={"hidden": 300, "dropout": 0.3, "nade_low": 20, "nade_high": 78},
        batch_size=8, lr=3e-3, lr_decay_patience=2, epochs=300, early_stopping_patience=10,
        max_time=28, threads=1, reference="RNN-NADE",
    ),
    "jsb-tcn-nade": dict(  # Bai et al.'s JSB TCN with the NADE head instead of sigmoids
        model_name="tcn", data="jsb",
        options={"kernel_size": 3, "levels": 2, "dropout": 0.5, "head": "nade"},
        batch_size=8, lr=2e-3, gradient_clip=0.4, lr_decay_patience=2, epochs=300,
        early_stopping_patience=8, max_time=28, threads=1, reference="RNN-NADE",
    ),
    "jsb-frame-transformer-nade": dict(  # relative-attention Transformer + NADE head
        model_name="frame-transformer", data="jsb",
        options={"head": "nade", "d_model": 96, "n_layers": 2, "d_ff": 384, "dropout": 0.5},
        batch_size=8, lr=1e-3, lr_decay_patience=2, epochs=300, early_stopping_patience=8,
        max_time=28, threads=1, reference="RNN-NADE",
    ),
    "nottingham-lstm": dict(
        model_name="lstm", data="nottingham", options={}, batch_size=16, lr=2e-3,
        epochs=100, early_stopping_patience=6, max_time=150, threads=1, reference="LSTM",
    ),
    "nottingham-lstm-1m": dict(
        model_name="lstm", data="nottingham", options={"hidden": 450, "dropout": 0.2},
        batch_size=8, lr=2e-3, lr_decay_patience=2, epochs=300, early_stopping_patience=8,
        max_time=70, threads=1, reference="LSTM",
    ),
    "nottingham-tcn": dict(  # Bai et al.'s Nottingham settings: kernel 6, 4 levels, 150 ch.
        model_name="tcn", data="nottingham",
        options={"kernel_size": 6, "levels": 4, "dropout": 0.2}, batch_size=8, lr=1e-3,
        gradient_clip=0.4, lr_decay_patience=3, epochs=300, early_stopping_patience=8, max_time=120,
        threads=1, reference="TCN",
    ),
    "nottingham-lstm-nade": dict(
        model_name="lstm-nade", data="nottingham",
        options={"hidden": 300, "dropout": 0.2, "nade_low": 8, "nade_high": 76},
        batch_size=8, lr=2e-3, lr_decay_patience=2, epochs=300, early_stopping_patience=8,
        max_time=110, threads=1, reference="RNN-NADE",
    ),
    "nottingham-lstm-nade-400": dict(  # larger, more dropout: 2.399, worse than the above
        model_name="lstm-nade", data="nottingham",
        options={"hidden": 400, "nade_hidden": 200, "dropout": 0.3, "nade_low": 8,
                 "nade_high": 76},
        batch_size=8, lr=2e-3, lr_decay_patience=2, epochs=300, early_stopping_patience=8,
        max_time=45, threads=1, reference="RNN-NADE",
    ),
    "nottingham-frame-transformer-nade": dict(
        model_name="frame-transformer", data="nottingham",
        options={"head": "nade", "d_model": 128, "n_layers": 3, "dropout": 0.2,
                 "nade_low": 8, "nade_high": 76},
        batch_size=8, lr=1e-3, lr_decay_patience=2, epochs=300, early_stopping_patience=8,
        max_time=55, threads=1, reference="RNN-NADE",
    ),
    "nottingham-tcn-nade": dict(  # Bai et al.'s Nottingham TCN with the NADE head
        model_name="tcn", data="nottingham",
        options={"kernel_size": 6, "levels": 4, "dropout": 0.2, "head": "nade"},
        batch_size=8, lr=2e-3, gradient_clip=0.4, lr_decay_patience=2, epochs=300,
        early_stopping_patience=8, max_time=60, threads=1, reference="RNN-NADE",
    ),
}


def run(name: str, overwrite: bool = False) -> dict:
    from tunesmith.training.benchmark import bench_nll

    kwargs = {k: v for k, v in RUNS[name].items() if k != "reference"}
    return bench_nll(
        **kwargs, out_dir=Path("runs") / "bench" / name, overwrite=overwrite,
        json_out=RESULTS / f"{name}.json", command=f"python benchmarks/nll.py {name}",
    )


def reference_of(result: dict) -> str:
    """The published model a result compares with: a NADE head (or ``*-nade``) -> RNN-NADE,
    else the model's own kind (TCN, LSTM, GRU) where one was published; "" otherwise."""
    model = str(result.get("model", ""))
    if model.endswith("-nade") or result.get("config", {}).get("head") == "nade":
        return "RNN-NADE"
    return {"tcn": "TCN", "lstm": "LSTM", "gru": "GRU"}.get(model, "")


def is_result(data) -> bool:
    """A ``bench nll`` result (one run or a ``--seeds`` summary)?"""
    return isinstance(data, dict) and "test_nll" in data and "benchmark" in data


def find_results(paths: list[Path]) -> list[tuple[str, Path]]:
    """(name, file) of every result among ``paths`` (files, or folders: their ``*.json``
    and run folders' ``bench.json``): named runs in RUNS order first, the rest by name."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob("*.json")) + sorted(path.glob("*/bench.json"))
        elif path.is_file():
            files.append(path)
        else:
            raise SystemExit(f"error: {path}: no such file or folder")
    found: dict[str, Path] = {}
    for file in files:
        try:
            data = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            print(f"note: {file}: skipped, not readable JSON ({error})")
            continue
        if not is_result(data):
            continue
        name = file.parent.name if file.name == "bench.json" else file.stem
        while name in found:  # two files of one name in different folders
            name += "'"
        found[name] = file
    order = {name: i for i, name in enumerate(RUNS)}
    return sorted(found.items(), key=lambda item: (item[0] not in order,
                                                   order.get(item[0], 0), item[0]))


def summary(results: list[tuple[str, Path | None]]) -> None:
    """Print the table of ``(name, result file)`` (None: a named run not run yet)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Frame-level test NLL (nats), ours vs published")
    for column in ("run", "benchmark", "model", "ours", "published", "ours − published",
                   "ratio", "params", "epochs", "minutes", "source"):
        table.add_column(column)
    machines = set()
    for name, path in results:
        if path is None or not path.exists():
            table.add_row(name, "", "(not run)", *[""] * 8)
            continue
        result = json.loads(path.read_text())
        reference = RUNS[name]["reference"] if name in RUNS else reference_of(result)
        published, source = PUBLISHED.get((result["benchmark"], reference), (None, ""))
        ours = result["test_nll"]
        model = result.get("model", "?")
        if result.get("config", {}).get("head") == "nade" and not model.endswith("-nade"):
            model += " + NADE head"
        runs = result.get("seeds") or []
        shown = f"{ours:.3f}"
        if runs:
            shown += f" ± {result.get('test_nll_std', 0.0):.3f} ({len(runs)} seeds)"
        table.add_row(
            name, str(result["benchmark"]), model, shown,
            f"{published:.2f} ({reference})" if published else "",
            f"{ours - published:+.3f}" if published else "",
            f"{ours / published:.3f}" if published else "",
            f"{result['parameters']:,}" if "parameters" in result else "",
            f"{result['epochs']} ({result['best_epoch']})" if "epochs" in result else "",
            f"{result['wall_minutes']:.1f}" if "wall_minutes" in result else "", source,
        )
        machine = result.get("machine")
        if machine:
            machines.add(f"{machine['platform']}, {machine['cpu_count']} CPUs, "
                         f"{machine['torch_threads']} torch threads, torch {machine['torch']}")
    console = Console(width=200)
    console.print(table)
    for machine in sorted(machines):
        console.print(f"machine: {machine}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*",
                        help=f"runs to train: {', '.join(RUNS)}; with --summary also result "
                             "JSON files or folders of them")
    parser.add_argument("--summary", action="store_true",
                        help="only print the table (of benchmarks/results/ if no runs given)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again in runs/bench/<name> if a run is there")
    args = parser.parse_args()
    if args.summary:
        paths = [RESULTS / f"{n}.json" if n in RUNS else Path(n) for n in args.runs]
        summary(find_results(paths or [RESULTS]))
        return
    unknown = sorted(set(args.runs) - set(RUNS))
    if unknown:
        parser.error(f"unknown run(s) {', '.join(unknown)}; known: {', '.join(RUNS)}")
    for name in args.runs:
        run(name, overwrite=args.overwrite)
    summary([(name, RESULTS / f"{name}.json") for name in args.runs])


if __name__ == "__main__":
    main()
