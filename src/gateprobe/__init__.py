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
    "Workload": ("gateprobe.commands.load.workloads", "Workload"),
    "LatencyResult": ("gateprobe.core.loadresult", "LatencyResult"),
    "RateLimitResult": ("gateprobe.core.loadresult", "RateLimitResult"),
    "TasksResult": ("gateprobe.core.loadresult", "TasksResult"),
    "SoakResult": ("gateprobe.core.loadresult", "SoakResult"),
    "run": ("gateprobe.commands.pipeline", "run"),
    "RunOptions": ("gateprobe.commands.pipeline", "RunOptions"),
    "RunResult": ("gateprobe.commands.pipeline", "RunResult"),
    "run_gate": ("gateprobe.commands.gate", "run_gate"),
    "load_gate_config": ("gateprobe.commands.gate", "load_config"),
    "GateResult": ("gateprobe.commands.gate", "GateResult"),
    "run_compare": ("gateprobe.commands.compare", "run_compare"),
    "CompareOptions": ("gateprobe.commands.compare", "CompareOptions"),
    "CompareResult": ("gateprobe.commands.compare", "CompareResult"),
    # the types the functions above take or return
    "Console": ("gateprobe.core.console", "Console"),
    "GateConfig": ("gateprobe.commands.gate", "GateConfig"),
    "GateOptions": ("gateprobe.commands.gate", "GateOptions"),
    "Decision": ("gateprobe.commands.gate", "Decision"),
    "MirrorResult": ("gateprobe.commands.compare", "MirrorResult"),
    "ProbeResult": ("gateprobe.commands.compare", "ProbeResult"),
    "Allowance": ("gateprobe.commands.gate", "Allowance"),
    "Handler": ("gateprobe.core.events", "Handler"),
    "RunStarted": ("gateprobe.core.events", "RunStarted"),
    "PhaseStarted": ("gateprobe.core.events", "PhaseStarted"),
    "PhaseFinished": ("gateprobe.core.events", "PhaseFinished"),
    "RunFinished": ("gateprobe.core.events", "RunFinished"),
    "CheckFn": ("gateprobe.core.checks", "CheckFn"),
    "NotApplicable": ("gateprobe.core.checks", "NotApplicable"),
    "Golden": ("gateprobe.core.golden", "Golden"),
    "Generator": ("gateprobe.core.loadresult", "Generator"),
    "Percentiles": ("gateprobe.core.loadresult", "Percentiles"),
    "StreamStats": ("gateprobe.core.loadresult", "StreamStats"),
    "TierResult": ("gateprobe.core.loadresult", "TierResult"),
    "Redactor": ("gateprobe.core.redact", "Redactor"),
    "SSEEvent": ("gateprobe.core.sse", "Event"),
    "Note": ("gateprobe.core.sse", "Note"),
    "Propagation": ("gateprobe.core.targets", "Propagation"),
    "Upstream": ("gateprobe.core.targets", "Upstream"),
    # errors about the user or the tool (findings are about the gateway)
    "GateprobeError": ("gateprobe.core.errors", "GateprobeError"),
    "ConfigError": ("gateprobe.core.errors", "ConfigError"),
    "UsageError": ("gateprobe.core.errors", "UsageError"),
    "TargetUnreachable": ("gateprobe.core.errors", "TargetUnreachable"),
}

__all__ = [
    "Allowance", "Case", "CheckFn", "CheckResult", "CompareOptions", "CompareResult",
    "ConfigError", "ConformanceOptions", "ConformanceResult", "Console", "Context", "Decision",
    "Embedded", "Exchange", "Expectation", "Finding", "GateConfig", "GateOptions", "GateResult",
    "GateprobeError", "Generator", "Golden", "Handler", "LatencyResult", "LoadOptions",
    "LoadResult", "MirrorResult", "NOT_APPLICABLE", "NotApplicable", "Note", "Percentiles",
    "Phase", "PhaseFinished", "PhaseStarted", "ProbeResult", "Propagation", "RateLimitResult",
    "Redactor", "RunFinished", "RunOptions", "RunResult", "RunStarted", "SSEEvent", "Severity",
    "SoakResult", "StreamStats", "Target", "TargetChoice", "TargetUnreachable", "TasksResult",
    "TierResult", "Timeouts", "Upstream", "UsageError", "Workload", "check", "embedded_target",
    "load_gate_config", "open_target", "resolve_target", "run", "run_compare", "run_conformance",
    "run_gate", "run_load", "__version__",
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
    from gateprobe.commands.compare import CompareOptions, CompareResult, MirrorResult, run_compare
    from gateprobe.commands.conformance_runner import (
        ConformanceOptions,
        ConformanceResult,
        run_conformance,
    )
    from gateprobe.commands.gate import (
        Allowance,
        Decision,
        GateConfig,
        GateOptions,
        GateResult,
        run_gate,
    )
    from gateprobe.commands.gate import load_config as load_gate_config
    from gateprobe.commands.load.runner import LoadOptions, LoadResult, run_load
    from gateprobe.commands.load.workloads import Workload
    from gateprobe.commands.pipeline import RunOptions, RunResult, run
    from gateprobe.core.checks import (
        NOT_APPLICABLE,
        CheckFn,
        CheckResult,
        Context,
        Exchange,
        Expectation,
        NotApplicable,
        check,
    )
    from gateprobe.core.console import Console
    from gateprobe.core.errors import ConfigError, GateprobeError, TargetUnreachable, UsageError
    from gateprobe.core.events import (
        Handler,
        Phase,
        PhaseFinished,
        PhaseStarted,
        RunFinished,
        RunStarted,
    )
    from gateprobe.core.findings import Finding, Severity
    from gateprobe.core.golden import Golden
    from gateprobe.core.loadresult import (
        Generator,
        LatencyResult,
        Percentiles,
        RateLimitResult,
        SoakResult,
        StreamStats,
        TasksResult,
        TierResult,
    )
    from gateprobe.core.redact import Redactor
    from gateprobe.core.sse import Event as SSEEvent
    from gateprobe.core.sse import Note
    from gateprobe.core.targets import (
        Propagation,
        Target,
        TargetChoice,
        Timeouts,
        Upstream,
        resolve_target,
    )
    from gateprobe.engine.cases import Case
    from gateprobe.engine.embedded import Embedded, embedded_target, open_target
