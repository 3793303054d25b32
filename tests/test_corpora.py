import random
from collections import Counter

import pytest
from symusic import Note, Score, Track

from tunesmith.data.corpora import (
    CORPORA,
    PALESTRINA_TRACKS,
    FolderCorpus,
    PalestrinaMasses,
    abc_tune_ids,
    find_benchmark_file,
    get_corpus,
    palestrina_tracks,
    select_satb,
    split_abc_tunes,
    split_of,
)
from tunesmith.errors import ConfigError, MusicFileError


def test_split_depends_only_on_the_id():
    # pinned values: changing the hash would silently move pieces between splits
    assert {i: split_of(i) for i in ("id1", "id9", "id10", "id14", "id0", "bwv1.6.mxl")} == {
        "id1": "test", "id9": "test", "id10": "valid", "id14": "valid", "id0": "train",
        "bwv1.6.mxl": "train",
    }
    ids = [f"piece-{i}" for i in range(2000)]
    first = {i: split_of(i) for i in ids}
    shuffled = ids[:]
    random.Random(3).shuffle(shuffled)
    assert {i: split_of(i) for i in shuffled[:500]} == {i: first[i] for i in shuffled[:500]}


def test_split_fractions_are_80_10_10():
    counts = Counter(split_of(f"piece-{i}") for i in range(10000))
    assert counts == {"train": 7971, "valid": 1002, "test": 1027}


def test_unknown_corpus_lists_the_known_ones():
    with pytest.raises(ConfigError) as error:
        get_corpus("no-such-corpus")
    for name in CORPORA:
        assert name in str(error.value)


def test_abc_files_split_into_tunes_with_stable_ids(tmp_path):
    text = "%comment\nM:4/4\n\nX:1\nT:one\nK:C\nCDEF|\n\nX:7\nT:two\nK:G\nGABc|\n\nX:7\nK:C\nC|\n"
    path = tmp_path / "tunes.abc"
    path.write_text(text)
    tunes = split_abc_tunes(text)
    assert [number for number, _ in tunes] == ["1", "7", "7"]
    assert tunes[1][1].startswith("X:7\nM:4/4\nT:two")  # file header copied into each tune
    assert abc_tune_ids(path, "tunes.abc") == [
        ("tunes.abc#X-1", 0), ("tunes.abc#X-7", 1), ("tunes.abc#X-7~2", 2)
    ]


def _part(name, pitches):
    track = Track(name, 0, False)
    for i, pitch in enumerate(pitches):
        track.notes.append(Note(i * 480, 480, pitch, 80))
    return track


def _score(*tracks):
    score = Score(480)
    for track in tracks:
        score.tracks.append(track)
    return score


def test_satb_voices_are_picked_by_name_and_ordered():
    score = _score(
        _part("Horn 2", [60]), _part("Bass Continuo", [48]), _part("Tenor\rViola", [55]),
        _part("Alto", [62]), _part("Soprano Oboe 1 Violin1", [67, 69]),
    )
    chorale = select_satb(score)
    assert [t.name for t in chorale.tracks] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert [t.notes[0].pitch for t in chorale.tracks] == [67, 62, 55, 48]
    assert chorale.tracks[0].note_num() == 2


def test_unnamed_four_parts_are_satb_when_they_descend():
    score = _score(*(_part(f"spine_{i}", [p]) for i, p in enumerate([70, 64, 57, 45])))
    assert [t.notes[0].pitch for t in select_satb(score).tracks] == [70, 64, 57, 45]
    crossed = _score(*(_part(f"spine_{i}", [p]) for i, p in enumerate([45, 64, 57, 70])))
    with pytest.raises(MusicFileError, match="not a 4-part SATB"):
        select_satb(crossed, "x.krn")


def test_double_choir_is_refused_with_the_reason():
    score = _score(_part("Soprano 1", [67]), _part("Soprano 2", [65]), _part("Alto", [60]),
                   _part("Tenor", [55]), _part("Bass", [48]))
    with pytest.raises(MusicFileError, match="2 soprano parts"):
        select_satb(score, "bwv27.6.mxl")


def test_folder_corpus_lists_music_files_and_skips_others(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.mid", "sub/a.MIDI", "notes.txt", "c.abc"):
        (tmp_path / name).write_text("X:1\nK:C\nC|\n" if name.endswith("abc") else "x")
    corpus = get_corpus(f"folder:{tmp_path}")
    sources, skipped = corpus.sources()
    assert [s.id for s in sources] == ["b.mid", "c.abc", "sub/a.MIDI"]
    assert skipped == [("notes.txt", "not a music file tunesmith reads (.txt)")]
    assert isinstance(get_corpus(str(tmp_path)), FolderCorpus)


def test_bach_chorales_list_without_parsing():
    sources, skipped = get_corpus("bach-chorales").sources()
    assert len(sources) == 413  # 408 .mxl + 2 .xml + 3 .krn in music21 10.5
    assert len(skipped) == 20 and all(r.startswith("roman-numeral") for _, r in skipped)
    assert len({s.id for s in sources}) == len(sources)


def test_palestrina_keeps_the_bass_in_the_last_track():
    pitches = [72, 67, 62, 57, 52, 45]
    for voices in (4, 5, 6):
        parts = [_part(f"spine_{i}", [p]) for i, p in enumerate(pitches[:voices - 1])]
        parts.append(_part("Bass", [40]))
        out = palestrina_tracks(_score(*parts, Track("empty", 0, False)))
        assert [t.name for t in out.tracks] == list(PALESTRINA_TRACKS)
        heard = [t.notes[0].pitch if t.note_num() else None for t in out.tracks]
        assert heard == [*pitches[:voices - 1], *[None] * (6 - voices), 40]
        assert {t.program for t in out.tracks} == {52}
    with pytest.raises(MusicFileError, match="3 voices with notes"):
        palestrina_tracks(_score(*(_part("v", [p]) for p in (60, 55, 48))), "x.krn")


def test_palestrina_lists_4_to_6_voices_and_splits_by_mass(tmp_path):
    def kern(name, spines, mass):
        head = "\t".join(["**kern"] * spines)
        notes = "\t".join(["1c"] * spines)
        (tmp_path / name).write_text(f"!!!OPR: {mass}\n{head}\n{notes}\n*-\n")

    kern("Kyrie_1.krn", 4, "Missa Brevis")
    kern("Gloria_1.krn", 6, "Missa Brevis")
    kern("Credo_1.krn", 3, "Missa Brevis")
    kern("Kyrie_2.krn", 8, "Missa Papae Marcelli")
    kern("Kyrie_3.krn", 5, "Missa Papae Marcelli")
    corpus = PalestrinaMasses(tmp_path)
    sources, skipped = corpus.sources()
    assert [s.id for s in sources] == ["Gloria_1.krn", "Kyrie_1.krn", "Kyrie_3.krn"]
    assert skipped == [("Credo_1.krn", "3 voices (kept: 4 to 6)"),
                       ("Kyrie_2.krn", "8 voices (kept: 4 to 6)")]
    splits = {s.id: corpus.split(s) for s in sources}
    assert splits["Gloria_1.krn"] == splits["Kyrie_1.krn"] == split_of("mass:Missa Brevis")
    assert corpus.split_method.startswith("hash of the mass title")


def test_palestrina_from_music21_has_its_movements_and_loads_six_tracks():
    corpus = get_corpus("palestrina")
    sources, skipped = corpus.sources()
    assert len(sources) == 1191 and len(skipped) == 127  # music21 10.5: 1,318 kern files
    assert Counter(corpus.split(s) for s in sources) == {"train": 1044, "valid": 62,
                                                         "test": 85}
    score = corpus.load(next(s for s in sources if s.id == "Kyrie_02.krn"))  # 4 voices
    assert [t.name for t in score.tracks] == list(PALESTRINA_TRACKS)
    assert [t.note_num() > 0 for t in score.tracks] == [True] * 3 + [False, False, True]
    means = [float(t.notes.numpy()["pitch"].mean()) for t in score.tracks if t.note_num()]
    assert means == sorted(means, reverse=True)  # score order is top to bottom here
    assert "music21" in corpus.source and "licen" in corpus.source


def test_benchmark_files_are_found_from_a_folder_or_a_file(polyphonic_dir, tmp_path):
    found = find_benchmark_file("JSB_Chorales.mat", polyphonic_dir)
    assert found == (polyphonic_dir / "JSB_Chorales.mat").resolve()
    assert find_benchmark_file("JSB_Chorales.mat", found) == found
    with pytest.raises(ConfigError, match=r"cannot find JSB_Chorales\.mat"):
        find_benchmark_file("JSB_Chorales.mat", tmp_path)
    sources, _ = get_corpus("jsb", polyphonic_dir).sources()
    assert Counter(s.split for s in sources) == {"train": 229, "valid": 76, "test": 77}


def test_folder_listing_reports_link_loops_and_broken_links(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "deep" / "x.mid").write_text("x")
    (tmp_path / "b" / "y.mid").write_text("y")
    (tmp_path / "a" / "deep" / "root").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "a" / "up").symlink_to(tmp_path / "a", target_is_directory=True)
    (tmp_path / "b2").symlink_to(tmp_path / "b", target_is_directory=True)  # listed as b/
    (tmp_path / "gone.mid").symlink_to(tmp_path / "missing.mid")
    (tmp_path / "self.abc").symlink_to(tmp_path / "self.abc")
    sources, skipped = get_corpus(f"folder:{tmp_path}").sources()
    assert [s.id for s in sources] == ["a/deep/x.mid", "b/y.mid"]  # real paths, once each
    reasons = dict(skipped)
    assert set(reasons) == {"a/deep/root", "a/up", "b2", "gone.mid", "self.abc"}
    assert reasons["a/deep/root"] == "symbolic link loop: leads back to the corpus folder"
    assert reasons["a/up"] == "symbolic link loop: leads back to 'a'"
    assert reasons["b2"] == "symbolic link to a folder already listed as 'b'"
    assert reasons["gone.mid"].startswith("broken symbolic link")
    assert reasons["self.abc"].startswith("symbolic link loop")


def test_latin1_abc_files_load_alike_with_one_tune_or_several(tmp_path):
    tune = "X:{}\nT:Der Müller\nM:2/4\nL:1/4\nK:C\nC D | E F | G2 |]\n"
    (tmp_path / "one.abc").write_bytes(tune.format(1).encode("latin-1"))
    (tmp_path / "two.abc").write_bytes((tune.format(1) + "\n" + tune.format(2)).encode(
        "latin-1"))
    corpus = get_corpus(f"folder:{tmp_path}")
    sources, skipped = corpus.sources()
    assert [s.id for s in sources] == ["one.abc", "two.abc#X-1", "two.abc#X-2"] and not skipped
    pitches = [[n.pitch for n in corpus.load(s).tracks[0].notes] for s in sources]
    assert pitches == [[60, 62, 64, 65, 67]] * 3
