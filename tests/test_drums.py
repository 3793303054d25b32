"""The drums representation (hits | velocities | offsets) and the groove corpus, on real
Groove MIDI Dataset files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from symusic import Note, Score, TimeSignature, Track

from tunesmith.errors import ConfigError, MusicFileError
from tunesmith.representations import drums

GROOVE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "groove"


@pytest.fixture(scope="module")
def groove_dir() -> Path:
    if not (GROOVE / "info.csv").is_file():
        pytest.skip(f"the Groove MIDI Dataset is not in {GROOVE}")
    return GROOVE


@pytest.fixture(scope="module")
def gmd_rows(groove_dir) -> list[dict]:
    with open(groove_dir / "info.csv", newline="") as f:
        return list(csv.DictReader(f))


def gmd_files(groove_dir, rows, n: int) -> list[Path]:
    """``n`` 4/4 performances spread over the data set (beats and fills, all drummers)."""
    four = [r for r in rows if r["time_signature"] == "4-4"]
    picked = four[:: max(1, len(four) // n)][:n]
    return [groove_dir / r["midi_filename"] for r in picked]


#: the classes of GrooVAE's 9-voice kit for every pitch the Roland TD-11 of GMD sends
#: (GMD's documentation, "Drum Mapping"), written out by hand
GMD_PITCHES = {
    36: "kick", 38: "snare", 40: "snare", 37: "snare", 48: "high-tom", 50: "high-tom",
    45: "mid-tom", 47: "mid-tom", 43: "low-tom", 58: "low-tom", 46: "open-hihat",
    26: "open-hihat", 42: "closed-hihat", 22: "closed-hihat", 44: "closed-hihat",
    49: "crash", 55: "crash", 57: "crash", 52: "crash", 51: "ride", 59: "ride", 53: "ride",
}


def test_every_gmd_pitch_maps_to_its_class(groove_dir, gmd_rows):
    seen = set()
    for row in gmd_rows:
        score = Score(str(groove_dir / row["midi_filename"]))
        for track in score.tracks:
            seen |= set(track.notes.numpy()["pitch"].tolist())
    assert seen <= set(GMD_PITCHES), f"pitches without a class: {seen - set(GMD_PITCHES)}"
    assert len(seen) >= 20  # the data set uses (nearly) the whole kit
    for pitch in seen:
        assert drums.CLASSES[drums.PITCH_TO_CLASS[pitch]] == GMD_PITCHES[pitch], pitch
    assert (drums.PITCH_TO_CLASS[[p for p in range(128) if p not in GMD_PITCHES
                                  and p not in (35, 39, 41)]] == -1).all()


def canonical_notes(score: Score, tpq_step: float):
    """What the representation keeps of a performance: per (class, nearest step) the
    loudest hit (the first on a tie), as (tick, canonical pitch, velocity) sorted."""
    ticks, classes, velocity = drums.drum_notes(score)
    best: dict[tuple[int, int], tuple[int, int, int]] = {}
    for i, (t, c, v) in enumerate(zip(ticks.tolist(), classes.tolist(), velocity.tolist(),
                                      strict=True)):
        key = (int(np.floor(t / tpq_step + 0.5)), c)
        if key not in best or v > best[key][2]:
            best[key] = (t, c, v, i)
    return sorted((t, drums.CANONICAL_PITCHES[c], v) for t, c, v, _ in best.values())


def decoded_notes(score: Score):
    notes = score.tracks[0].notes.numpy()
    return sorted(zip(notes["time"].tolist(), notes["pitch"].tolist(),
                      notes["velocity"].tolist(), strict=True))


def test_performance_round_trip_within_one_tick(groove_dir, gmd_rows):
    total = 0
    for path in gmd_files(groove_dir, gmd_rows, 12):
        score = Score(str(path))
        tpq = score.ticks_per_quarter
        x = drums.encode(score, where=str(path))
        assert x.shape[1] == 27 and len(x) % 16 == 0
        assert ((x[:, drums.OFFSETS] >= -0.5) & (x[:, drums.OFFSETS] < 0.5)).all()
        assert ((x[:, drums.VELOCITIES] >= 0) & (x[:, drums.VELOCITIES] <= 1)).all()
        back = decoded_notes(drums.decode(x, ticks_per_quarter=tpq))
        want = canonical_notes(score, tpq / 4)
        assert len(back) == len(want) > 10, path
        total += len(want)
        for (t0, p0, v0), (t1, p1, v1) in zip(want, back, strict=True):
            assert abs(t0 - t1) <= 1 and p0 == p1 and v0 == v1, path
    assert total > 2000


def test_quantised_round_trip_is_exact(groove_dir, gmd_rows):
    for path in gmd_files(groove_dir, gmd_rows, 6):
        score = Score(str(path))
        tpq = score.ticks_per_quarter
        step = tpq // 4
        # the performance's canonical notes moved onto the grid: a quantised drum score
        quantised = Score(tpq)
        track = Track("Drums", 0, True)
        for t, p, v in canonical_notes(score, step):
            track.notes.append(Note(int(np.floor(t / step + 0.5)) * step, step // 2, p, v))
        quantised.tracks.append(track)
        x = drums.encode(quantised)
        assert (x[:, drums.OFFSETS] == 0).all()
        assert decoded_notes(drums.decode(x, ticks_per_quarter=tpq)) == decoded_notes(quantised)
        np.testing.assert_array_equal(drums.encode(drums.decode(x, ticks_per_quarter=tpq)), x)


def test_loudest_hit_of_a_step_wins_and_other_meters_are_refused():
    score = Score(480)
    track = Track("Drums", 0, True)
    track.notes.extend([Note(0, 60, 38, 40), Note(10, 60, 37, 90), Note(130, 60, 36, 70),
                        Note(240, 60, 60, 127)])  # 60: not a kit pitch, dropped
    score.tracks.append(track)
    x = drums.encode(score)
    assert x.shape == (16, 27)
    assert x[0, drums.HITS].tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert x[0, 9 + 1] == pytest.approx(90 / 127)
    assert x[0, 18 + 1] == pytest.approx(10 / 120)
    assert x[1, 0] == 1 and x[1, 18] == pytest.approx(10 / 120)
    assert x[2:].sum() == 0
    score.time_signatures.append(TimeSignature(0, 6, 8))
    with pytest.raises(MusicFileError, match="6/8"):
        drums.encode(score, where="x.mid")


def test_quantise_and_flatten_to_tap():
    rng = np.random.default_rng(0)
    x = np.zeros((32, 27), np.float32)
    hits = rng.random((32, 9)) < 0.2
    x[:, drums.HITS] = hits
    x[:, drums.VELOCITIES] = hits * rng.uniform(0.1, 1, (32, 9))
    x[:, drums.OFFSETS] = hits * rng.uniform(-0.5, 0.5, (32, 9))
    q = drums.quantise(x)
    np.testing.assert_array_equal(q[:, drums.HITS], hits)
    assert (q[:, drums.OFFSETS] == 0).all()
    np.testing.assert_allclose(q[:, drums.VELOCITIES], hits * drums.SCORE_VELOCITY)
    tap = drums.flatten_to_tap(x)
    assert tap.shape == (32, 3)
    for t in range(32):
        if not hits[t].any():
            assert tap[t].tolist() == [0, 0, 0]
            continue
        loudest = np.argmax(np.where(hits[t], x[t, drums.VELOCITIES], -1))
        assert tap[t, 0] == 1
        assert tap[t, 1] == x[t, 9 + loudest] and tap[t, 2] == x[t, 18 + loudest]


def test_windows_and_voices():
    x = np.zeros((80, 27), np.float32)  # 5 bars
    x[::4, 0] = 1
    x[64:, :] = 0  # the last bar is silent
    wins = drums.windows(x)
    assert [w.shape for w in wins] == [(32, 27)] * 4  # starts at bars 0..3
    assert len(drums.windows(x[:20])) == 1 and drums.windows(x[:20])[0].shape == (32, 27)
    assert drums.voices("hihat") == [2, 3]
    assert drums.voices("kick,ride,hihat") == [0, 2, 3, 8]
    with pytest.raises(ConfigError, match="unknown drum voice"):
        drums.voices("cowbell")


def test_groove_corpus_split_and_meters(groove_dir, gmd_rows):
    from tunesmith.data.corpora import get_corpus

    corpus = get_corpus("groove", groove_dir)
    sources, skipped = corpus.sources()
    four = [r for r in gmd_rows if r["time_signature"] == "4-4"]
    assert len(sources) == len(four)
    assert len(skipped) == len(gmd_rows) - len(four)
    assert all("is not 4/4" in reason for _, reason in skipped)
    by_id = {r["midi_filename"].removesuffix(".mid"): r for r in four}
    mapping = {"train": "train", "validation": "valid", "test": "test"}
    assert all(mapping[by_id[s.id]["split"]] == s.split for s in sources)
    beats = get_corpus("groove-beats", groove_dir).sources()[0]
    assert 0 < len(beats) < len(sources)
    assert all(by_id[s.id]["beat_type"] == "beat" for s in beats)
    assert "CC BY 4.0" in corpus.source
    with pytest.raises(ConfigError, match="Groove MIDI Dataset"):
        get_corpus("groove", groove_dir / "drummer1")
