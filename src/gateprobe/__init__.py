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
    "Target": ("gateprobe.core.targets", "Target"),
    "TargetChoice": ("gateprobe.core.targets", "TargetChoice"),
    "Timeouts": ("gateprobe.core.targets", "Timeouts"),
    "resolve_target": ("gateprobe.core.targets", "resolve_target"),
    "Embedded": ("gateprobe.engine.embedded", "Embedded"),
    "embedded_target": ("gateprobe.engine.embedded", "embedded_target"),
    "open_target": ("gateprobe.engine.embedded", "open_target"),
    # cases, exchanges, checks, findings
    "Case": ("gateprobe.engine.cases", "Case"),
    "Exchange": ("gateprobe.core.checks", "Exchange"),
    "Context": ("gateprobe.core.checks", "Context"),
    "Expectation": ("gateprobe.core.checks", "Expectation"),
    "CheckResult": ("gateprobe.core.checks", "CheckResult"),
    "NOT_APPLICABLE": ("gateprobe.core.checks", "NOT_APPLICABLE"),
    "check": ("gateprobe.core.checks", "check"),
    "Finding": ("gateprobe.core.findings", "Finding"),
    "Severity": ("gateprobe.core.findings", "Severity"),
    "Phase": ("gateprobe.core.events", "Phase"),
    # the commands
    "run_conformance": ("gateprobe.commands.conformance_runner", "run_conformance"),
    "ConformanceOptions": ("gateprobe.commands.conformance_runner", "ConformanceOptions"),
    "ConformanceResult": ("gateprobe.commands.conformance_runner", "ConformanceResult"),
    "run_load": ("gateprobe.commands.load.runner", "run_load"),
    "LoadOptions": ("gateprobe.commands.load.runner", "LoadOptions"),
    "LoadResult": ("gateprobe.commands.load.runner", "LoadResult"),
    "LatencyResult": ("gateprobe.core.loadresult", "LatencyResult"),
    "RateLimitResult": ("gateprobe.core.loadresult", "RateLimitResult"),
    "TasksResult": ("gateprobe.core.loadresult", "TasksResult"),
    "run": ("gateprobe.commands.pipeline", "run"),
    "RunOptions": ("gateprobe.commands.pipeline", "RunOptions"),
    "RunResult": ("gateprobe.commands.pipeline", "RunResult"),
    "run_gate": ("gateprobe.commands.gate", "run_gate"),
    "load_gate_config": ("gateprobe.commands.gate", "load_config"),
    "GateResult": ("gateprobe.commands.gate", "GateResult"),
    "run_compare": ("gateprobe.commands.compare", "run_compare"),
    "CompareOptions": ("gateprobe.commands.compare", "CompareOptions"),
    "CompareResult": ("gateprobe.commands.compare", "CompareResult"),
    # errors about the user or the tool (findings are about the gateway)
    "GateprobeError": ("gateprobe.core.errors", "GateprobeError"),
    "ConfigError": ("gateprobe.core.errors", "ConfigError"),
    "UsageError": ("gateprobe.core.errors", "UsageError"),
    "TargetUnreachable": ("gateprobe.core.errors", "TargetUnreachable"),
}

__all__ = [
    "Case", "CheckResult", "CompareOptions", "CompareResult", "ConfigError", "ConformanceOptions",
    "ConformanceResult", "Context", "Embedded", "Exchange", "Expectation", "Finding", "GateResult",
    "GateprobeError", "LatencyResult", "LoadOptions", "LoadResult", "NOT_APPLICABLE", "Phase",
    "RateLimitResult", "RunOptions", "RunResult", "Severity", "Target", "TargetChoice",
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
    from gateprobe.commands.compare import CompareOptions, CompareResult, run_compare
    from gateprobe.commands.conformance_runner import (
        ConformanceOptions,
        ConformanceResult,
        run_conformance,
    )
    from gateprobe.commands.gate import GateResult, run_gate
    from gateprobe.commands.gate import load_config as load_gate_config
    from gateprobe.commands.load.runner import LoadOptions, LoadResult, run_load
    from gateprobe.commands.pipeline import RunOptions, RunResult, run
    from gateprobe.core.checks import (
        NOT_APPLICABLE,
        CheckResult,
        Context,
        Exchange,
        Expectation,
        check,
    )
    from gateprobe.core.errors import ConfigError, GateprobeError, TargetUnreachable, UsageError
    from gateprobe.core.events import Phase
    from gateprobe.core.findings import Finding, Severity
    from gateprobe.core.loadresult import LatencyResult, RateLimitResult, TasksResult
    from gateprobe.core.targets import Target, TargetChoice, Timeouts, resolve_target
    from gateprobe.engine.cases import Case
    from gateprobe.engine.embedded import Embedded, embedded_target, open_target
