"""A short run of benchmarks/fuzz_loader.py (issue 14): a few hundred MIDI mutants, fixed
seed, read in a child process so that a parser crash fails this test instead of killing
pytest. Every mutant must load (with sane pitches, velocities and times) or raise
MusicFileError. The long campaign over MIDI, ABC and MusicXML is the script itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_loader.py"


def test_midi_mutants_load_or_raise_music_file_error():
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--midi", "400", "--abc", "0", "--musicxml", "0",
         "--seed", "14", "--json"],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.splitlines()[-1])
    counts = report["counts"]["midi"]
    assert sum(counts.values()) == 400
    bad = {outcome: report["examples"][outcome]
           for outcome in ("other exception", "crash", "hang") if counts[outcome]}
    assert not bad, bad
    # not vacuous: the mutants reach the parser as well as the gate
    assert counts["loaded"] >= 25 and counts["clean error"] >= 200
