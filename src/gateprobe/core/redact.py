"""The one place that removes secrets from anything gateprobe writes or logs.

Secrets are the values of the environment variables a target names for its keys. Redaction is by
value (a key can be echoed back anywhere: a header, a URL, an error message), plus by header name
for the headers that carry credentials even when the value is unknown to us.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

MASK = "[REDACTED]"
"""What a secret is replaced with."""

CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization"})
"""Header names whose values are always masked, whatever they hold."""

_MIN_SECRET_LEN = 6
"""Shorter values are not treated as secrets: masking them would mangle ordinary text."""


class Redactor:
    """Masks a fixed set of secret values wherever they occur."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(
            {s for s in secrets if s and len(s) >= _MIN_SECRET_LEN}, key=len, reverse=True
        )

    def text(self, value: str) -> str:
        """Return ``value`` with every known secret masked."""
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Return a copy of ``headers`` with credential headers and known secrets masked."""
        return {
            name: MASK if name.lower() in CREDENTIAL_HEADERS else self.text(value)
            for name, value in headers.items()
        }


TEXT_SUFFIXES = frozenset({".json", ".jsonl", ".md", ".html", ".xml", ".csv", ".log", ".txt",
                           ".out", ".yaml", ".yml"})


def redact_tree(root: Path, redactor: Redactor) -> int:
    """Mask secrets in every text file under ``root``, in place; returns the files changed.

    The last line of defence for files written by tools we do not control (Locust's CSV, HTML
    and log; JUnit; Allure): whatever they captured, no key survives in the run folder.
    """
    return sum(redact_file(path, redactor) for path in sorted(root.rglob("*"))
               if path.is_file() and not path.is_symlink()
               and path.suffix.lower() in TEXT_SUFFIXES)


def redact_file(path: Path, redactor: Redactor) -> bool:
    """Mask secrets in one text file, in place; whether it changed."""
    original = path.read_text(encoding="utf-8", errors="surrogateescape")
    masked = redactor.text(original)
    if masked != original:
        path.write_text(masked, encoding="utf-8", errors="surrogateescape")
    return masked != original
