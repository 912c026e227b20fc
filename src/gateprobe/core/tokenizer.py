"""The project's one offline tokenizer: ``gp-pretok-v1``.

Token counts matter in three places: the reference gateway's ``usage`` and its 90,000-token input
limit, and (later) the load metrics when a response reports no usage. Real BPE tokenizers need
vocabulary files that are downloaded at first use (tiktoken) or shipped per model, and no gateway
tells us which one it uses, so exact counts are not attainable anyway. We therefore use one
documented, dependency-free approximation everywhere, so that the numbers at least agree with
each other.

``gp-pretok-v1`` is the GPT-2 pre-tokenization pattern with its pieces capped in length, which
tracks cl100k counts on English prose within about 15%:

- a letter run of at most 8 letters, optionally preceded by one space (`` hello``);
- a digit run of at most 3 digits, optionally preceded by one space (cl100k splits numbers so);
- a run of at most 4 other symbols, optionally preceded by one space;
- whitespace runs (the last space before a word is left to that word).

Capping the length keeps adversarial input (one 400 KB "word") from counting as one token.
Concatenating the pieces of ``tokenize(text)`` gives back ``text`` exactly.
"""

from __future__ import annotations

import re

NAME = "gp-pretok-v1"
"""Identifier reported wherever a count from this tokenizer is shown."""

_PIECE = re.compile(
    r" ?[^\W\d_]{1,8}"  # letters
    r"| ?\d{1,3}"  # digits
    r"| ?(?:[^\s\w]|_){1,4}"  # punctuation and symbols (underscore is a word char in re)
    r"|\s+(?!\S)"  # whitespace not followed by a word: leaves one space for the next piece
    r"|\s+"
)


def tokenize(text: str) -> list[str]:
    """Split ``text`` into token pieces whose concatenation is ``text``."""
    return _PIECE.findall(text)


def count_tokens(text: str) -> int:
    """Number of ``gp-pretok-v1`` tokens in ``text``."""
    # Counting matches avoids building the list for the 90,000-token input checks.
    return sum(1 for _ in _PIECE.finditer(text))
