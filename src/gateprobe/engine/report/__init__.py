"""The run folder: ``reports/<timestamp>-<command>/``, with ``reports/latest`` pointing at the
newest ``run`` or ``gate`` and ``reports/latest-<command>`` at the newest of another command."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from gateprobe.core.errors import ConfigError

DEFAULT_ROOT = Path("reports")


def new_run_dir(command: str, root: Path = DEFAULT_ROOT, explicit: Path | None = None) -> Path:
    """A fresh folder for one run (``explicit`` if given), and ``latest`` pointed at it."""
    try:
        if explicit is not None:
            explicit.mkdir(parents=True, exist_ok=True)
            return explicit.resolve()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        root.mkdir(parents=True, exist_ok=True)
        path, n = root / f"{stamp}-{command}", 1
        while path.exists():
            n += 1
            path = root / f"{stamp}-{command}-{n}"
        path.mkdir()
        _point_latest(root, path, latest_name(command))
        return path.resolve()
    except OSError as exc:
        raise ConfigError(f"cannot create the report folder: {exc.strerror}: "
                          f"{exc.filename}") from None


def latest_name(command: str) -> str:
    """``latest`` for the runs people open the report of (``run``, ``gate``); another command
    gets its own ``latest-<command>``, so a compare or a load run does not move ``latest``
    away from the last run's report."""
    return "latest" if command in ("run", "gate") else f"latest-{command}"


def _point_latest(root: Path, path: Path, name: str) -> None:
    latest = root / name
    temporary = root / f".latest-{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(path.name, target_is_directory=True)
    temporary.replace(latest)  # atomic: a reader never sees it missing
