"""Reading a YAML file a user wrote: one ``ConfigError`` line when it cannot be read or parsed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateprobe.core.errors import ConfigError


def read_yaml(path: Path, what: str) -> Any:
    """The parsed document; ``what`` names the file's role in the error (``keys file``)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML") from None
