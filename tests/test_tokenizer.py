"""Tests of the one offline tokenizer, gp-pretok-v1."""

from __future__ import annotations

import pytest

from gateprobe.core.tokenizer import count_tokens, tokenize


@pytest.mark.parametrize(
    "text",
    ["", "Hello, world!", " leading space", "trailing  \n\n", "\n\nHuman: hi\n\nAssistant:",
     "numbers 1234567 and_under_scores", "ünïcödé 日本語 ✓✓✓✓✓", "a" * 1000],
)
def test_pieces_concatenate_back_to_the_text(text: str) -> None:
    assert "".join(tokenize(text)) == text
    assert count_tokens(text) == len(tokenize(text))


def test_words_carry_their_leading_space() -> None:
    assert tokenize("Say test now.") == ["Say", " test", " now", "."]


def test_long_runs_are_capped_so_one_huge_word_is_many_tokens() -> None:
    assert count_tokens("a" * 800) == 100
    assert count_tokens("1234567") == 3  # digits in runs of at most 3


def test_prose_count_is_in_a_plausible_range() -> None:
    text = "The quick brown fox jumps over the lazy dog, again and again. " * 10
    assert 120 <= count_tokens(text) <= 160
