"""``tunesmith evaluate`` end to end on small MIDI folders built in code."""

from __future__ import annotations

import json

import numpy as np
import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from tunesmith.cli import main
from tunesmith.music import save_midi


def random_piece(rng: np.random.Generator, n_notes: int = 80) -> Score:
    """Two tracks of random quarter/eighth notes in C major at tpq 480."""
    score = Score(480)
    score.tempos.append(Tempo(0, 100))
    score.time_signatures.append(TimeSignature(0, 4, 4))
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    for name, low in (("upper", 60), ("lower", 48)):
        track = Track(name, 0, False)
        time = 0
        for _ in range(n_notes):
            duration = int(rng.choice([240, 480]))
            pitch = int(low + scale[rng.integers(0, 7)] + 12 * rng.integers(0, 2))
            track.notes.append(Note(time, duration, pitch, int(rng.integers(60, 100))))
            time += duration
        score.tracks.append(track)
    return score


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    reference = [random_piece(rng) for _ in range(12)]
    for i, score in enumerate(reference):
        save_midi(score, tmp_path / "ref" / f"piece{i:02d}.mid")
    generated = tmp_path / "gen"
    save_midi(reference[5], generated / "copy_of_piece05.mid")
    for i in range(5):
        save_midi(random_piece(rng), generated / f"new{i}.mid")
    (generated / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02")
    (generated / "notes.txt").write_text("not music, not counted")
    return tmp_path / "ref", generated


def test_evaluate_folder_writes_report(folders, tmp_path, capsys):
    reference, generated = folders
    out = tmp_path / "out"
    main(["evaluate", str(generated), "--reference", f"folder:{reference}:all",
          "--out", str(out), "--workers", "1"])
    for name in ("report.md", "report.json", "metrics.png", "pitch_classes.png",
                 "plagiarism.png", "yang_lerch.png"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert report["n_generated"] == 6 and report["n_reference"] == 12
    assert [name for name, _ in report["skipped_generated"]] == ["broken.mid"]
    pieces = {p["piece"]: p for p in report["plagiarism"]["pieces"]}
    assert pieces["copy_of_piece05.mid"]["flagged"]
    assert pieces["copy_of_piece05.mid"]["lcs_ratio"] == 1.0
    assert pieces["copy_of_piece05.mid"]["lcs_match"] == "piece05.mid"
    assert report["plagiarism"]["n_flagged"] == 1
    assert report["context"]["reference_from_cache"] is False
    assert "broken.mid" in (out / "report.md").read_text()
    # an 'all' reference has no held-out split: the report says so, and the two-sample
    # test compares with the reference pieces
    assert report["band"] is None and report["two_sample"]["real"] == "reference"
    assert "No held-out band" in (out / "report.md").read_text()
    assert set(report["voice_activity"]["tracks"]) == {"upper", "lower"}
    assert "flagged as copies" in capsys.readouterr().out

    # the second run reads the reference summary from the cache
    main(["evaluate", str(generated), "--reference", f"folder:{reference}:all",
          "--out", str(out), "--workers", "1", "--no-plots"])
    again = json.loads((out / "report.json").read_text())
    assert again["context"]["reference_from_cache"] is True
    assert again["metrics"] == report["metrics"]
    assert again["plagiarism"] == report["plagiarism"]


def test_reference_against_itself(folders, tmp_path):
    from tunesmith.evaluation.report import run_evaluation

    reference, _ = folders
    results, _ = run_evaluation(reference, f"folder:{reference}:all", tmp_path / "self",
                                workers=1, progress=False, plots=False)
    assert results["pitch_class_js"]["pooled"] == pytest.approx(0.0, abs=1e-12)
    assert results["plagiarism"]["n_flagged"] == 12


def test_a_shipped_model_is_taken_by_name_and_an_unknown_name_lists_the_shipped(
        folders, tmp_path, capsys):
    """``evaluate pretrained:NAME`` reaches the checkpoint loader (it once stopped at the
    file check: "no such file or folder")."""
    reference, _ = folders
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "pretrained:no-such-model", "--reference", f"folder:{reference}:all",
              "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown pretrained model 'no-such-model'" in err and "nottingham" in err
    assert "no such file" not in err


@pytest.mark.parametrize("bars", [None, 3])
def test_samples_evaluated_from_a_checkpoint_have_the_bars_asked_for(tmp_path, bars):
    """``evaluate CHECKPOINT --bars N`` generates pieces of N bars (default 8): metrics that
    grow with length compare fairly only with pieces about as long as the reference's."""
    from symusic import Score

    from tunesmith.evaluation.report import generate_samples

    folder = generate_samples("pretrained:nottingham", 2, tmp_path / "s", seed=0, bars=bars)
    for midi in sorted(folder.glob("*.mid")):
        score = Score(str(midi))
        quarters = score.end() / score.ticks_per_quarter  # a sample may end on a rest
        assert 4 * (bars or 8) - 4 < quarters <= 4 * (bars or 8)


def test_unreadable_generated_folder_is_a_clear_error(folders, tmp_path):
    reference, _ = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "bad.mid").write_bytes(b"garbage")
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(empty), "--reference", f"folder:{reference}:all",
              "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2


def test_band_from_the_test_split_leads_the_report(tmp_path):
    rng = np.random.default_rng(1)
    reference = tmp_path / "ref"
    for i in range(30):  # the hash split puts 3 of these names in test
        save_midi(random_piece(rng), reference / f"piece{i:02d}.mid")
    good, gappy = tmp_path / "good", tmp_path / "gappy"
    for i in range(6):
        score = random_piece(rng)
        save_midi(score, good / f"new{i}.mid")
        lower = score.tracks[1]
        lower.notes = lower.notes.filter(lambda n: n.time % 960 == 0, inplace=False)
        save_midi(score, gappy / f"new{i}.mid")

    out = tmp_path / "out"
    main(["evaluate", str(good), "--reference", f"folder:{reference}", "--out", str(out),
          "--workers", "1"])
    report = json.loads((out / "report.json").read_text())
    band = report["band"]
    assert band["n_test"] == 3 and report["n_reference"] == 26
    rows = band["rows"]
    assert {"voice_activity[upper]", "voice_activity[lower]", "pitch_class_js",
            "two_sample_accuracy"} <= set(rows)
    # random_piece never rests: a voice is silent only after its last note
    assert rows["voice_activity[lower]"]["samples"] > 0.95
    assert rows["voice_activity[lower]"]["within"] is True  # same generator as the data
    assert report["two_sample"]["real"] == "held-out test split"
    assert report["two_sample"]["samples"]["pieces"] == [3, 6]
    assert 0 <= report["two_sample"]["samples"]["accuracy"] <= 1
    text = (out / "report.md").read_text()
    first_table = next(line for line in text.splitlines() if line.startswith("|"))
    assert first_table == "| metric | samples | test-split band | within band |"
    assert text.index("within band |") < text.index("## Summary")
    assert (out / "band.png").stat().st_size > 0

    main(["evaluate", str(gappy), "--reference", f"folder:{reference}", "--out", str(out),
          "--workers", "1", "--no-two-sample", "--no-plots"])
    report = json.loads((out / "report.json").read_text())
    lower = report["band"]["rows"]["voice_activity[lower]"]
    assert lower["samples"] < 0.6 and lower["within"] is False  # half the time silent
    assert report["two_sample"] is None and "two_sample_accuracy" not in report["band"]["rows"]
    assert report["context"]["reference_from_cache"] is True


def test_band_from_the_valid_split_is_measured_on_the_valid_pieces(tmp_path):
    """--band-split valid: the band is valid vs train (to choose sampling controls without
    looking at test); it is computed from the valid pieces and differs from the test band."""
    from tunesmith.errors import ConfigError
    from tunesmith.evaluation import metrics
    from tunesmith.evaluation.reference import held_out_split, reference_summary

    rng = np.random.default_rng(2)
    reference = tmp_path / "ref"
    for i in range(40):
        # pieces of different lengths, so a mean differs from split to split
        save_midi(random_piece(rng, n_notes=int(rng.integers(20, 120))),
                  reference / f"piece{i:02d}.mid")
    generated = tmp_path / "gen"
    for i in range(6):
        save_midi(random_piece(rng), generated / f"new{i}.mid")
    spec = f"folder:{reference}"
    valid, _, _ = reference_summary(spec, "valid", workers=1, progress=False)
    test, _, _ = reference_summary(spec, "test", workers=1, progress=False)
    assert len(valid) >= 2 and len(test) >= 2 and set(valid.names).isdisjoint(test.names)

    reports = {}
    for split in ("test", "valid"):
        out = tmp_path / split
        main(["evaluate", str(generated), "--reference", spec, "--out", str(out),
              "--workers", "1", "--no-plots", "--band-split", split])
        reports[split] = json.loads((out / "report.json").read_text())
        first = next(line for line in (out / "report.md").read_text().splitlines()
                     if line.startswith("|"))
        assert first == f"| metric | samples | {split}-split band | within band |"
    band = reports["valid"]["band"]
    assert band["split"] == "valid" and reports["test"]["band"]["split"] == "test"
    assert band["n_test"] == len(valid)
    assert reports["valid"]["two_sample"]["real"] == "held-out valid split"
    assert reports["valid"]["two_sample"]["samples"]["pieces"][0] == len(valid)
    # each metric's held-out value is the mean over the valid pieces, not the test ones
    for name in metrics.feature_vector(metrics.NoteTable.of(random_piece(rng))):
        row, row_test = band["rows"].get(name), reports["test"]["band"]["rows"].get(name)
        if row is None or row["kind"] != "mean" or row["test"] is None:
            continue
        assert row["test"] == pytest.approx(np.nanmean(valid.column(name)))
        assert row_test["test"] == pytest.approx(np.nanmean(test.column(name)))
    # the samples and train are the same in both runs; only the band moved
    assert reports["valid"]["metrics"] == reports["test"]["metrics"]
    moved = [n for n, r in band["rows"].items()
             if r["test"] is not None and r["test"] != reports["test"]["band"]["rows"][n]["test"]]
    assert len(moved) > len(band["rows"]) // 2

    assert held_out_split("train", "valid") == "valid"
    assert held_out_split("valid", "valid") is None  # valid against itself has no band
    with pytest.raises(ConfigError, match="band split"):
        held_out_split("train", "train")
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(generated), "--reference", spec, "--out", str(tmp_path / "x"),
              "--band-split", "train"])
    assert exit_info.value.code == 2
