"""Tests of the deterministic fake model."""

from __future__ import annotations

from gateprobe.core.tokenizer import count_tokens, tokenize
from gateprobe.reference.fakemodel import MAX_NATURAL_TOKENS, MIN_NATURAL_TOKENS, generate


def test_same_inputs_same_text_and_different_seed_differs() -> None:
    a = generate("m", "prompt", max_tokens=None, seed=1)
    assert a == generate("m", "prompt", max_tokens=None, seed=1)
    assert a.text != generate("m", "prompt", max_tokens=None, seed=2).text
    assert a.text != generate("m", "prompt", max_tokens=None, seed=1, index=1).text


def test_natural_length_and_usage_match_the_tokenizer() -> None:
    for i in range(50):
        g = generate("m", f"p{i}", max_tokens=None)
        assert g.cause == "natural"
        assert MIN_NATURAL_TOKENS <= g.tokens <= MAX_NATURAL_TOKENS + 1
        assert count_tokens(g.text) == g.tokens
        assert list(g.pieces) == tokenize(g.text)


def test_max_tokens_truncates() -> None:
    g = generate("m", "p", max_tokens=3)
    assert g.tokens == 3 and g.cause == "max_tokens" and g.stop_sequence is None


def test_stop_sequence_cuts_before_it_and_is_reported() -> None:
    full = generate("m", "p", max_tokens=None).text
    word = full.split()[3]
    g = generate("m", "p", max_tokens=None, stop=["zzz-absent", word])
    assert g.cause == "stop_sequence" and g.stop_sequence == word
    assert g.text == full[: full.find(word)]
    assert word not in g.text


def test_earliest_stop_sequence_wins() -> None:
    full = generate("m", "p", max_tokens=None).text
    words = full.split()
    g = generate("m", "p", max_tokens=None, stop=[words[5], words[1]])
    assert g.stop_sequence == words[1]
