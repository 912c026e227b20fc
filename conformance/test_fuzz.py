"""Fuzzing every operation of ``specs/`` with schemathesis, judged by gateprobe's checks too.

schemathesis sends schema-valid requests (must be served) and schema-violating ones (must be
refused with a 4xx), and validates every answer and stream event against the spec. On top, the
``gateprobe`` check below runs this project's checks on each answer: the family's error
envelope and error type, the key never echoed, and streams through their grammar.

Cost guard (``gateprobe.fuzz_guard``): one global ``before_call`` hook, the only place that
reaches every phase, caps ``max_tokens``-like values, counts requests and stops at the cap, and
puts the target's model names (and, for legacy prompts, a valid prompt) into schema-valid
bodies so they exercise the gateway rather than its 404. Off loopback the coverage phase,
which sends about 90 requests per operation whatever the example count, is switched off.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateprobe import transport
from gateprobe.fuzz_guard import Guard, RequestCapReached, examples_for
from gateprobe.probe import BREAKER
from gateprobe.pytest_plugin import budget_spent, current_config, current_target
from gateprobe.targets import Target, trusted_cas

schemathesis = pytest.importorskip("schemathesis", reason="the fuzz category needs schemathesis "
                                   "(pip install 'gateprobe[fuzz]')")

pytestmark = pytest.mark.fuzz

fuzz_guard: dict[str, Any] = {}
"""The run's Guard and pytest config, set at import below."""


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Cap cost, count requests, aim schema-valid bodies at the target's models, and trust
    the CAs every other runner trusts (requests would not read ``SSL_CERT_FILE``)."""
    cafile, capath = trusted_cas()
    if cafile or capath:
        kwargs.setdefault("verify", cafile or capath)
    guard: Guard | None = fuzz_guard.get("guard")
    if guard is None:
        return
    streaming = isinstance(case.body, dict) and bool(case.body.get("stream"))
    if BREAKER.is_open(guard.target.base_url, streaming):
        pytest.skip("not sent: earlier requests of this kind to the target timed out")
    if budget_spent():
        pytest.skip("the run's budget is spent")
    try:
        # schemathesis serializes case.body after this hook: the guard changes it in place.
        guard.admit(case.operation.path, case.body)
    except RequestCapReached as exc:
        pytest.skip(f"{exc}; raise it with --fuzz-max-requests")


@schemathesis.check
def gateprobe(ctx: Any, response: Any, case: Any) -> bool | None:
    """This project's checks on the answer (see gateprobe.protocols.conformance)."""
    import gateprobe.protocols.conformance  # noqa: F401  (registers the built-in checks)
    from gateprobe import checks
    from gateprobe.checks import Context, Exchange, Expectation
    from gateprobe.pytest_plugin import describe
    from gateprobe.redact import Redactor
    from gateprobe.sse import parse_all

    guard: Guard | None = fuzz_guard.get("guard")
    if guard is None:
        return None
    target = guard.target
    headers = {k.lower(): ", ".join(v) for k, v in response.headers.items()}
    body = case.body if isinstance(case.body, dict) else {}
    stream = headers.get("content-type", "").startswith("text/event-stream")
    events, notes = parse_all(response.content) if stream else ([], [])
    family = "anthropic" if case.operation.path.startswith(("/v1/complete", "/v1/messages")) \
        else "openai"
    version = str(case.headers.get("anthropic-version", "2023-06-01")) if case.headers else \
        "2023-06-01"
    expect = Expectation(stream_body={k: v for k, v in body.items() if k != "stream"}
                         if stream else None, anthropic_version=version)
    exchange = Exchange(case.operation.path, case.method, body, response.status_code, headers,
                        response.content, events, notes)
    names = ["error.envelope", "error.type", "security.key_echoed"]
    # A stream schemathesis read only in part (max_stream_events, timeout) cannot be judged
    # by its grammar: its end is missing by construction, not by the gateway's fault.
    if not (getattr(response, "stream_cut_short", False) or response.is_truncated):
        names.append("stream.grammar")
    selected = checks.select(names)
    findings = checks.run_checks(Context(family, target.profile, Redactor(target.secrets),
                                         expect, target.secrets), exchange, selected)
    config = fuzz_guard.get("config")
    if config is not None:
        from gateprobe.pytest_plugin import FINDINGS_KEY, OUTCOMES_KEY

        config.stash[OUTCOMES_KEY][case.operation.path] += 1
        config.stash[FINDINGS_KEY][case.operation.path].extend(findings)
    if findings:
        raise AssertionError(describe(findings))
    return None


def _schema(name: str, target: Target, max_examples: int) -> Any:
    from gateprobe.specs import spec_path

    schema = schemathesis.openapi.from_path(str(spec_path(name)))  # type: ignore[arg-type]
    anthropic = name == "anthropic"
    if anthropic and target.profile == "anthropic":
        headers = {"x-api-key": target.api_key, "anthropic-version": "2023-06-01"}
    else:
        headers = {"authorization": f"Bearer {target.api_key}"}
    schema.config.update(base_url=target.base_url, headers=headers,
                         request_timeout=target.timeouts.total_s)
    schema.config.generation.update(max_examples=max_examples)
    # Auth is judged precisely, per profile, by the auth category; with two alternative
    # schemes in the spec, schemathesis's own auth check cannot tell a bypass from the other.
    schema.config.checks.update(excluded_check_names=["ignored_auth"])
    schema.config.max_stream_events = 5000
    if not target.is_loopback:
        schema.config.phases.update(phases=["examples", "fuzzing"])
    return schema


def _configure(target: Target, config: Any) -> int:
    """Arm the guard from the run's options; return the examples per operation."""
    fuzz_guard["guard"] = Guard.for_target(target, config.getoption("--fuzz-max-tokens"),
                                           config.getoption("--fuzz-max-requests"))
    fuzz_guard["config"] = config
    return examples_for(target, config.getoption("--max-examples"))


# schemathesis's lazy from_fixture does not run under pytest 9.2 (it reads a node attribute
# pytest removed), so the schemas are built here, at import, from the configured run.
_target = current_target()
_config = current_config()
if _target is None or _config is None:
    pytest.skip("the fuzz category needs --base-url", allow_module_level=True)
assert _target is not None
_examples = _configure(_target, _config)
openai_api = _schema("openai", _target, _examples)


def _call(case: Any) -> None:
    """Call and validate; a timeout counts towards the breaker, as the other categories'."""
    try:
        case.call_and_validate()
    except Exception as exc:
        streaming = isinstance(case.body, dict) and bool(case.body.get("stream"))
        BREAKER.record(_target.base_url, streaming,
                       transport.classify(exc, got_headers=False, streaming=streaming))
        raise


@openai_api.parametrize()
def test_openai_operation(case: Any) -> None:
    """Every operation of specs/openai.yaml, positive and negative."""
    _call(case)


if _target.serves_anthropic:
    anthropic_api = _schema("anthropic", _target, _examples)

    @anthropic_api.parametrize()
    def test_anthropic_operation(case: Any) -> None:
        """Every operation of specs/anthropic.yaml, positive and negative."""
        _call(case)
