"""gateprobe: protocol conformance and load testing for LLM API gateways.

The public API, for scripts and for checks of your own::

    import gateprobe

    with gateprobe.embedded_target(gateprobe.Embedded()) as target:
        result = gateprobe.run_conformance(target, gateprobe.ConformanceOptions(
            select="endpoint"))
    for finding in result.findings:
        print(finding.check_id, finding.endpoint, finding.observed)

Names resolve on first use, so ``import gateprobe`` stays cheap (the pytest plugin and the
command line import only what they need).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, tuple[str, str]] = {
    # targets
    "Target": ("gateprobe.targets", "Target"),
    "TargetChoice": ("gateprobe.targets", "TargetChoice"),
    "Timeouts": ("gateprobe.targets", "Timeouts"),
    "resolve_target": ("gateprobe.targets", "resolve_target"),
    "Embedded": ("gateprobe.embedded", "Embedded"),
    "embedded_target": ("gateprobe.embedded", "embedded_target"),
    "open_target": ("gateprobe.embedded", "open_target"),
    # cases, exchanges, checks, findings
    "Case": ("gateprobe.cases", "Case"),
    "Exchange": ("gateprobe.checks", "Exchange"),
    "Context": ("gateprobe.checks", "Context"),
    "Expectation": ("gateprobe.checks", "Expectation"),
    "CheckResult": ("gateprobe.checks", "CheckResult"),
    "NOT_APPLICABLE": ("gateprobe.checks", "NOT_APPLICABLE"),
    "check": ("gateprobe.checks", "check"),
    "Finding": ("gateprobe.findings", "Finding"),
    "Severity": ("gateprobe.findings", "Severity"),
    "Phase": ("gateprobe.events", "Phase"),
    # the commands
    "run_conformance": ("gateprobe.conformance_runner", "run_conformance"),
    "ConformanceOptions": ("gateprobe.conformance_runner", "ConformanceOptions"),
    "ConformanceResult": ("gateprobe.conformance_runner", "ConformanceResult"),
    "run_load": ("gateprobe.load.runner", "run_load"),
    "LoadOptions": ("gateprobe.load.runner", "LoadOptions"),
    "LoadResult": ("gateprobe.load.runner", "LoadResult"),
    "LatencyResult": ("gateprobe.loadresult", "LatencyResult"),
    "RateLimitResult": ("gateprobe.loadresult", "RateLimitResult"),
    "TasksResult": ("gateprobe.loadresult", "TasksResult"),
    "SoakResult": ("gateprobe.loadresult", "SoakResult"),
    "run": ("gateprobe.pipeline", "run"),
    "RunOptions": ("gateprobe.pipeline", "RunOptions"),
    "RunResult": ("gateprobe.pipeline", "RunResult"),
    "run_gate": ("gateprobe.gate", "run_gate"),
    "load_gate_config": ("gateprobe.gate", "load_config"),
    "GateResult": ("gateprobe.gate", "GateResult"),
    "run_compare": ("gateprobe.compare", "run_compare"),
    "CompareOptions": ("gateprobe.compare", "CompareOptions"),
    "CompareResult": ("gateprobe.compare", "CompareResult"),
    # errors about the user or the tool (findings are about the gateway)
    "GateprobeError": ("gateprobe.errors", "GateprobeError"),
    "ConfigError": ("gateprobe.errors", "ConfigError"),
    "UsageError": ("gateprobe.errors", "UsageError"),
    "TargetUnreachable": ("gateprobe.errors", "TargetUnreachable"),
}

__all__ = [
    "Case", "CheckResult", "CompareOptions", "CompareResult", "ConfigError", "ConformanceOptions",
    "ConformanceResult", "Context", "Embedded", "Exchange", "Expectation", "Finding", "GateResult",
    "GateprobeError", "LatencyResult", "LoadOptions", "LoadResult", "NOT_APPLICABLE", "Phase",
    "RateLimitResult", "RunOptions", "RunResult", "Severity", "SoakResult", "Target",
    "TargetChoice",
    "TargetUnreachable", "TasksResult", "Timeouts",
    "UsageError", "check", "embedded_target", "load_gate_config", "open_target", "resolve_target",
    "run", "run_compare", "run_conformance", "run_gate", "run_load", "__version__",
]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'gateprobe' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from gateprobe.cases import Case
    from gateprobe.checks import NOT_APPLICABLE, CheckResult, Context, Exchange, Expectation, check
    from gateprobe.compare import CompareOptions, CompareResult, run_compare
    from gateprobe.conformance_runner import (
        ConformanceOptions,
        ConformanceResult,
        run_conformance,
    )
    from gateprobe.embedded import Embedded, embedded_target, open_target
    from gateprobe.errors import ConfigError, GateprobeError, TargetUnreachable, UsageError
    from gateprobe.events import Phase
    from gateprobe.findings import Finding, Severity
    from gateprobe.gate import GateResult, run_gate
    from gateprobe.gate import load_config as load_gate_config
    from gateprobe.load.runner import LoadOptions, LoadResult, run_load
    from gateprobe.loadresult import LatencyResult, RateLimitResult, SoakResult, TasksResult
    from gateprobe.pipeline import RunOptions, RunResult, run
    from gateprobe.targets import Target, TargetChoice, Timeouts, resolve_target
