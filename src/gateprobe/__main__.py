"""``python -m gateprobe``: the same as the ``gateprobe`` command."""

from __future__ import annotations

from gateprobe.cli import entrypoint

entrypoint()
