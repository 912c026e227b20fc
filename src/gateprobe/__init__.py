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
    "run": ("gateprobe.pipeline", "run"),
    "RunOptions": ("gateprobe.pipeline", "RunOptions"),
    "RunResult": ("gateprobe.pipeline", "RunResult"),
    "run_gate": ("gateprobe.gate", "run_gate"),
    "load_gate_config": ("gateprobe.gate", "load_config"),
    "GateResult": ("gateprobe.gate", "GateResult"),
    "run_compare": ("gateprobe.compare", "run_compare"),
    "CompareOptions": ("gateprobe.compare", "CompareOptions"),
    "CompareResult": ("gateprobe.compare", "CompareResult"),
    # the types the functions above take or return
    "Console": ("gateprobe.console", "Console"),
    "GateConfig": ("gateprobe.gate", "GateConfig"),
    "GateOptions": ("gateprobe.gate", "GateOptions"),
    "Decision": ("gateprobe.gate", "Decision"),
    "MirrorResult": ("gateprobe.compare", "MirrorResult"),
    "ProbeResult": ("gateprobe.compare", "ProbeResult"),
    "Allowance": ("gateprobe.gate", "Allowance"),
    "Handler": ("gateprobe.events", "Handler"),
    "RunStarted": ("gateprobe.events", "RunStarted"),
    "PhaseStarted": ("gateprobe.events", "PhaseStarted"),
    "PhaseFinished": ("gateprobe.events", "PhaseFinished"),
    "RunFinished": ("gateprobe.events", "RunFinished"),
    "CheckFn": ("gateprobe.checks", "CheckFn"),
    "NotApplicable": ("gateprobe.checks", "NotApplicable"),
    "Golden": ("gateprobe.golden", "Golden"),
    "Generator": ("gateprobe.loadresult", "Generator"),
    "Percentiles": ("gateprobe.loadresult", "Percentiles"),
    "StreamStats": ("gateprobe.loadresult", "StreamStats"),
    "TierResult": ("gateprobe.loadresult", "TierResult"),
    "Redactor": ("gateprobe.redact", "Redactor"),
    "SSEEvent": ("gateprobe.sse", "Event"),
    "Note": ("gateprobe.sse", "Note"),
    "Propagation": ("gateprobe.targets", "Propagation"),
    "Upstream": ("gateprobe.targets", "Upstream"),
    # errors about the user or the tool (findings are about the gateway)
    "GateprobeError": ("gateprobe.errors", "GateprobeError"),
    "ConfigError": ("gateprobe.errors", "ConfigError"),
    "UsageError": ("gateprobe.errors", "UsageError"),
    "TargetUnreachable": ("gateprobe.errors", "TargetUnreachable"),
}

__all__ = [
    "Allowance", "Case", "CheckFn", "CheckResult", "CompareOptions", "CompareResult",
    "ConfigError", "ConformanceOptions", "ConformanceResult", "Console", "Context", "Decision",
    "Embedded", "Exchange", "Expectation", "Finding", "GateConfig", "GateOptions", "GateResult",
    "GateprobeError", "Generator", "Golden", "Handler", "LatencyResult", "LoadOptions",
    "LoadResult", "MirrorResult", "NOT_APPLICABLE", "NotApplicable", "Note", "Percentiles",
    "Phase", "PhaseFinished", "PhaseStarted", "ProbeResult", "Propagation", "RateLimitResult",
    "Redactor", "RunFinished", "RunOptions", "RunResult", "RunStarted", "SSEEvent", "Severity",
    "StreamStats", "Target", "TargetChoice", "TargetUnreachable", "TasksResult", "TierResult",
    "Timeouts", "Upstream", "UsageError", "check", "embedded_target", "load_gate_config",
    "open_target", "resolve_target", "run", "run_compare", "run_conformance", "run_gate",
    "run_load", "__version__",
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
    from gateprobe.checks import (
        NOT_APPLICABLE,
        CheckFn,
        CheckResult,
        Context,
        Exchange,
        Expectation,
        NotApplicable,
        check,
    )
    from gateprobe.compare import CompareOptions, CompareResult, MirrorResult, run_compare
    from gateprobe.conformance_runner import (
        ConformanceOptions,
        ConformanceResult,
        run_conformance,
    )
    from gateprobe.console import Console
    from gateprobe.embedded import Embedded, embedded_target, open_target
    from gateprobe.errors import ConfigError, GateprobeError, TargetUnreachable, UsageError
    from gateprobe.events import (
        Handler,
        Phase,
        PhaseFinished,
        PhaseStarted,
        RunFinished,
        RunStarted,
    )
    from gateprobe.findings import Finding, Severity
    from gateprobe.gate import Allowance, Decision, GateConfig, GateOptions, GateResult, run_gate
    from gateprobe.gate import load_config as load_gate_config
    from gateprobe.golden import Golden
    from gateprobe.load.runner import LoadOptions, LoadResult, run_load
    from gateprobe.loadresult import (
        Generator,
        LatencyResult,
        Percentiles,
        RateLimitResult,
        StreamStats,
        TasksResult,
        TierResult,
    )
    from gateprobe.pipeline import RunOptions, RunResult, run
    from gateprobe.redact import Redactor
    from gateprobe.sse import Event as SSEEvent
    from gateprobe.sse import Note
    from gateprobe.targets import (
        Propagation,
        Target,
        TargetChoice,
        Timeouts,
        Upstream,
        resolve_target,
    )
