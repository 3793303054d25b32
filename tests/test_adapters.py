"""Representation adapters: one registry, each adapter a codec whose decode inverts its
encode, and a representation added by one adapter class is usable by DataInfo, the
output mask, the datasets' collate and the data CLI without touching them."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from tunesmith.cli.data import repr_options
from tunesmith.data.datasets import collate
from tunesmith.errors import ConfigError
from tunesmith.representations import adapter as adapter_module
from tunesmith.representations import get_representation, representation_names
from tunesmith.representations.adapter import RepresentationAdapter
from tunesmith.representations.info import DataInfo
from tunesmith.representations.output_mask import OutputMask


def _score(drum: bool = False) -> Score:
    """Two bars of 4/4 at 480 ticks a quarter: a rising line of quarter notes."""
    score = Score(480)
    score.tempos.append(Tempo(0, 120.0))
    score.time_signatures.append(TimeSignature(0, 4, 4))
    track = Track("Drums" if drum else "Melody", 0, drum)
    pitches = [36, 38, 42, 36, 38, 42, 46, 49] if drum else [60, 62, 64, 65, 67, 69, 71, 72]
    for i, pitch in enumerate(pitches):
        track.notes.append(Note(i * 480, 240 if drum else 480, pitch, 100))
    score.tracks.append(track)
    return score


def _notes(score: Score) -> list[tuple[int, int, int]]:
    return sorted((n.time, n.duration, n.pitch) for t in score.tracks for n in t.notes)


def test_the_registry_holds_the_four_representations_and_refuses_others():
    assert set(representation_names()) == {"pianoroll", "melody", "events", "drums"}
    for name in representation_names():
        assert get_representation(name).name == name
    with pytest.raises(ConfigError, match="unknown representation 'abc'"):
        get_representation("abc")


@pytest.mark.parametrize("name", ["pianoroll", "melody", "events", "drums"])
def test_each_adapter_decodes_what_it_encodes(name):
    codec = get_representation(name)()
    score = _score(drum=name == "drums")
    arrays = codec.encode(score)
    info = codec.info()
    assert info.representation == name
    assert DataInfo.from_dict(info.to_dict()) == info
    decoded = codec.decode(arrays["data"])
    if name == "drums":  # drums keep onsets and pitches (durations are written anew)
        assert [(t, p) for t, _, p in _notes(decoded)] == [(t, p) for t, _, p in _notes(score)]
    else:
        assert _notes(decoded) == _notes(score)
    # a codec rebuilt from its stored options is the same codec
    again = get_representation(name)(codec.options())
    assert again.options() == codec.options()
    np.testing.assert_array_equal(again.encode(score)["data"], arrays["data"])


def test_primers_are_ready_to_continue():
    events = get_representation("events")()
    tokens = events.encode(_score())["data"]
    primer = events.primer(_score())
    assert tokens[-1] == 2 and primer[-1] != 2  # EOS dropped: a primer is continued
    np.testing.assert_array_equal(primer, tokens[:-1])
    np.testing.assert_array_equal(get_representation("events").open(tokens), tokens[:-1])
    melody = get_representation("melody")({"track": "Soprano"})
    with pytest.raises(Exception, match="no track named"):  # preparing needs the track
        melody.encode(_score())
    assert len(melody.primer(_score())) == 32  # a primer falls back to the whole score


class _Beats(RepresentationAdapter):
    """A new representation: one onset flag per step of a 4-step-a-quarter grid."""

    name: ClassVar[str] = "beats"
    vocabulary = True
    integer_data = True
    batch_key = "beats"

    def __init__(self, options=None, corpus=None):
        self.options_ = dict(options or {})

    def options(self):
        return dict(self.options_)

    def encode(self, score):
        onsets = np.zeros(score.end() // 120 + 1, np.int64)
        for track in score.tracks:
            for note in track.notes:
                onsets[note.time // 120] = 1
        return {"data": onsets}

    def info(self, facts=None):
        return DataInfo(representation="beats", repr_config=self.options(), pitch_low=0,
                        pitch_high=127, steps_per_quarter=4, steps_per_bar=16,
                        track_names=("Beats",), programs=(0,), is_drum=(True,), vocab_size=2)


def test_a_new_representation_is_one_adapter_class(monkeypatch):
    monkeypatch.setitem(adapter_module._REGISTRY, "beats", _Beats)
    codec = get_representation("beats")()
    info = codec.info()  # DataInfo checks it with the adapter's class attributes
    stored = {k: v for k, v in info.to_dict().items() if k != "version"}
    with pytest.raises(ConfigError, match="beats data needs vocab_size >= 1"):
        DataInfo.from_dict({**info.to_dict(), "vocab_size": 0})
    with pytest.raises(ConfigError, match="beats data stores no onset grid"):
        DataInfo(**{**stored, "onsets": True})
    piece = codec.encode(_score())["data"]
    mask = OutputMask.from_pieces(info, [piece])
    assert mask is not None and mask.size == 2 and mask.allowed == (0, 1)
    batch = collate([{"data": piece}, {"data": piece[:3]}], "beats")
    assert batch["beats"].dtype.is_floating_point is False
    assert batch["beats"].shape == (2, len(piece)) and batch["mask"].sum() == len(piece) + 3
    assert repr_options("beats", 8, None, None) == {"steps_per_quarter": 8}
