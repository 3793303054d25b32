"""benchmarks/nll.py --summary lists any ``bench nll`` result JSON (issue 17, item 6):
named runs, a user's own benchmark with no named entry, run folders and --seeds results."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "nll.py"


def load_script():
    spec = importlib.util.spec_from_file_location("nll_benchmark_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def result(benchmark, model, test_nll, **extra):
    return {"model": model, "benchmark": benchmark, "test_nll": test_nll, "valid_nll": 9.0,
            "parameters": 1234, "epochs": 3, "best_epoch": 2, "wall_minutes": 0.5,
            "config": extra.pop("config", {}), **extra}


def test_summary_lists_user_benchmarks_run_folders_and_seed_results(tmp_path):
    nll = load_script()
    results = tmp_path / "results"
    results.mkdir()
    (results / "my-piano-tcn.json").write_text(json.dumps(
        result("MyPiano", "tcn", 7.25, config={"head": "nade"})))
    (results / "jsb-lstm.json").write_text(json.dumps(result("JSB_Chorales", "lstm", 8.3)))
    (results / "other.json").write_text(json.dumps({"runs": [1, 2]}))  # not a result
    (results / "broken.json").write_text("{not json")
    run = results / "bench-orchestra-gru"
    run.mkdir()
    (run / "bench.json").write_text(json.dumps(result("Orchestra", "gru", 6.5)))
    (tmp_path / "seeds.json").write_text(json.dumps(
        result("JSB_Chorales", "tcn", 5.33, config={"head": "nade"}, test_nll_std=0.02,
               seeds=[{"seed": 0, "test_nll": 5.31}, {"seed": 1, "test_nll": 5.35}])))

    found = nll.find_results([results, tmp_path / "seeds.json"])
    names = [name for name, _ in found]
    assert names == ["jsb-lstm", "bench-orchestra-gru", "my-piano-tcn", "seeds"]

    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--summary", str(results), str(tmp_path / "seeds.json")],
        capture_output=True, text=True, check=True).stdout
    assert "MyPiano" in out and "Orchestra" in out and "my-piano-tcn" in out
    assert "7.250" in out and "6.500" in out
    assert "5.330 ± 0.020 (2 seeds)" in out
    assert "-0.230" in out  # the JSB seeds mean beside RNN-NADE's 5.56
    assert "broken.json: skipped" in out
    rows = [line for line in out.splitlines() if "│" in line and "nats" not in line]
    assert len([r for r in rows if r.split("│")[1].strip()]) == 4  # the 4 results only


def test_reference_follows_the_model():
    nll = load_script()
    assert nll.reference_of({"model": "tcn", "config": {"head": "nade"}}) == "RNN-NADE"
    assert nll.reference_of({"model": "lstm-nade"}) == "RNN-NADE"
    assert nll.reference_of({"model": "tcn", "config": {}}) == "TCN"
    assert nll.reference_of({"model": "biaxial"}) == ""
