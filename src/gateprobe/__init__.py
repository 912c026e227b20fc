"""gateprobe: protocol conformance and load testing for LLM API gateways."""

from __future__ import annotations

from gateprobe.errors import ConfigError, GateprobeError, TargetUnreachable, UsageError

__version__ = "0.1.0"

__all__ = ["ConfigError", "GateprobeError", "TargetUnreachable", "UsageError", "__version__"]
