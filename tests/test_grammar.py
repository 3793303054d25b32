"""Constrained decoding: every sequence drawn under the grammar decodes without errors."""

from __future__ import annotations

import miditok
import pytest
import torch

from tunesmith.representations.events import EventsConfig, build_tokenizer
from tunesmith.representations.grammar import BatchGrammar, TokenGrammar, TokenVocabulary


def _random_walk(grammar: TokenGrammar, n: int, length: int, seed: int) -> list[list[int]]:
    """Sequences drawn uniformly among the allowed tokens at every step."""
    generator = torch.Generator().manual_seed(seed)
    batch = BatchGrammar(grammar, n)
    rows = []
    for t in range(length):
        allowed = batch.mask(length - t)  # (n, V)
        weights = allowed.float()
        token = torch.multinomial(weights, 1, generator=generator).squeeze(1)
        batch.advance(token)
        rows.append(token)
    return torch.stack(rows, dim=1).tolist()


def _errors(tokenizer, row: list[int]) -> float:
    return tokenizer.tokens_errors(miditok.TokSequence(ids=row))


@pytest.mark.parametrize("name", ["REMI", "MIDILike", "TSD"])
@pytest.mark.parametrize("programs", [True, False])
def test_random_walks_under_the_grammar_have_no_token_errors(name, programs):
    tokenizer = build_tokenizer(EventsConfig(tokenizer=name, use_programs=programs))
    grammar = TokenGrammar(tokenizer)
    for length in (7, 40, 150):
        for row in _random_walk(grammar, 4, length, seed=length):
            assert _errors(tokenizer, row) == 0, [tokenizer[i] for i in row]
    # and they decode to notes
    rows = _random_walk(grammar, 2, 120, seed=0)
    seq = miditok.TokSequence(ids=rows[0])
    score = tokenizer.decode(seq if tokenizer.one_token_stream else [seq])
    assert score.note_num() > 0


def test_unconstrained_random_walks_do_have_errors():
    """The check above can fail: without the grammar, uniform tokens break the rules."""
    tokenizer = build_tokenizer(EventsConfig(tokenizer="REMI"))
    generator = torch.Generator().manual_seed(0)
    row = torch.randint(3, len(tokenizer), (100,), generator=generator).tolist()
    assert _errors(tokenizer, row) > 0


def _ids(tokenizer, names: list[str]) -> list[int]:
    return [tokenizer.vocab[n] for n in names]


def _allowed_names(grammar, tokenizer, names, remaining=100) -> set[str]:
    state = grammar.start()
    for token in _ids(tokenizer, names):
        grammar.advance(state, token)
    mask = grammar.mask(state, remaining)
    return {tokenizer[i] for i in torch.nonzero(mask).flatten().tolist()}


def test_remi_rules():
    tokenizer = build_tokenizer(EventsConfig(tokenizer="REMI", use_programs=True))
    grammar = TokenGrammar(tokenizer)
    assert _allowed_names(grammar, tokenizer, []) == {"Bar_None"}
    after_pitch = _allowed_names(grammar, tokenizer, ["Bar_None", "TimeSig_4/4", "Position_8",
                                                      "Program_0", "Pitch_60"])
    assert {n.split("_")[0] for n in after_pitch} == {"Velocity"}
    after_note = _allowed_names(grammar, tokenizer, ["Bar_None", "TimeSig_3/4", "Position_8",
                                                     "Program_0", "Pitch_60", "Velocity_63",
                                                     "Duration_1.0.8"])
    positions = sorted(int(n.split("_")[1]) for n in after_note if n.startswith("Position"))
    assert positions == list(range(9, 24))  # forward in time, inside a 3/4 bar (8 per beat)
    assert "Bar_None" in after_note and "Program_0" in after_note
    assert not any(n.startswith(("PAD", "BOS", "EOS")) for n in after_note)
    drums = _allowed_names(grammar, tokenizer, ["Bar_None", "TimeSig_4/4", "Position_0",
                                                "Program_-1"])
    assert drums and all(n.startswith("PitchDrum") for n in drums)
    # two tokens left: a note (4 tokens) cannot start any more
    near_end = _allowed_names(grammar, tokenizer, ["Bar_None", "TimeSig_4/4", "Position_0",
                                                   "Program_0", "Pitch_60", "Velocity_63",
                                                   "Duration_1.0.8"], remaining=2)
    assert not any(n.startswith("Program") for n in near_end)


def test_midilike_note_off_only_for_sounding_pitches():
    tokenizer = build_tokenizer(EventsConfig(tokenizer="MIDILike", use_programs=False))
    grammar = TokenGrammar(tokenizer)
    prefix = ["TimeSig_4/4", "NoteOn_60", "Velocity_63", "NoteOn_64", "Velocity_63"]
    # same time as the onsets: no NoteOff at all, and no second NoteOn_60
    now = _allowed_names(grammar, tokenizer, prefix)
    assert not any(n.startswith("NoteOff") for n in now)
    assert "NoteOn_60" not in now and "NoteOn_62" in now
    later = _allowed_names(grammar, tokenizer, [*prefix, "TimeShift_1.0.8"])
    assert {n for n in later if n.startswith("NoteOff")} == {"NoteOff_60", "NoteOff_64"}
    # with 3 tokens left, no new note: only the closing NoteOffs
    closing = _allowed_names(grammar, tokenizer, [*prefix, "TimeShift_1.0.8"], remaining=3)
    assert closing == {"NoteOff_60", "NoteOff_64"}


def test_transpose_shifts_pitched_tokens_within_range():
    tokenizer = build_tokenizer(EventsConfig(tokenizer="REMI", use_programs=True))
    vocab = TokenVocabulary(tokenizer)
    names = ["Bar_None", "Position_0", "Program_0", "Pitch_60", "Velocity_63",
             "Duration_1.0.8", "Program_-1", "PitchDrum_36", "Velocity_63", "Duration_1.0.8",
             "Program_0", "Pitch_105", "Velocity_63", "Duration_1.0.8"]
    tokens = torch.tensor([_ids(tokenizer, names)] * 2)
    shifted = vocab.transpose(tokens, torch.tensor([-2, 5]))
    down = [tokenizer[i] for i in shifted[0].tolist()]
    up = [tokenizer[i] for i in shifted[1].tolist()]
    assert down == [n.replace("Pitch_60", "Pitch_58").replace("Pitch_105", "Pitch_103")
                    for n in names]
    # +5 would take 105 past the highest Pitch token (109): clipped to +4; drums never move
    assert "Pitch_109" in tokenizer.vocab and "Pitch_110" not in tokenizer.vocab
    assert up == [n.replace("Pitch_60", "Pitch_64").replace("Pitch_105", "Pitch_109")
                  for n in names]
