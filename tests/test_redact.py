"""Tests of the one redaction function."""

from __future__ import annotations

from gateprobe.core.redact import MASK, Redactor


def test_masks_every_occurrence_of_every_secret() -> None:
    r = Redactor(["gp-vip-0001", "sk-secret-key-xyz"])
    text = "key gp-vip-0001 in url ?k=gp-vip-0001 and sk-secret-key-xyz"
    assert r.text(text) == f"key {MASK} in url ?k={MASK} and {MASK}"


def test_longer_secret_containing_a_shorter_one_is_masked_whole() -> None:
    r = Redactor(["abcdef", "abcdefghij"])
    assert r.text("abcdefghij") == MASK


def test_credential_headers_are_masked_even_with_unknown_values() -> None:
    r = Redactor([])
    out = r.headers({"Authorization": "Bearer zzz", "X-Api-Key": "k", "content-type": "x"})
    assert out == {"Authorization": MASK, "X-Api-Key": MASK, "content-type": "x"}


def test_short_values_are_not_treated_as_secrets() -> None:
    assert Redactor(["", "ab"]).text("ab cd") == "ab cd"
