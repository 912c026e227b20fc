"""Fuzzing every operation of ``specs/`` with schemathesis, judged by gateprobe's checks too.

schemathesis sends schema-valid requests (must be served) and schema-violating ones (must be
refused with a 4xx), and validates every answer and stream event against the spec. On top, the
``gateprobe`` check below runs this project's checks on each answer: the family's error
envelope and error type, the key never echoed, and streams through their grammar.

Cost guard (``gateprobe.engine.fuzz_guard``): one global ``before_call`` hook, the only place that
reaches every phase, caps ``max_tokens``-like values, counts requests and stops at the cap, and
puts the target's model names (and, for legacy prompts, a valid prompt) into schema-valid
bodies so they exercise the gateway rather than its 404. Off loopback the coverage phase,
which sends about 90 requests per operation whatever the example count, is switched off.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest

from gateprobe.core import transport
from gateprobe.core.findings import Finding, Severity, collapse
from gateprobe.core.redact import CREDENTIAL_HEADERS
from gateprobe.core.targets import ENDPOINTS, Target, trusted_cas
from gateprobe.engine.cases import models_family
from gateprobe.engine.fuzz_guard import (
    Guard,
    RequestCapReached,
    ShareUsed,
    examples_for,
    max_tokens_of,
    parse_phases,
    phases_for,
)
from gateprobe.engine.probe import OutOfBounds, bounded_session
from gateprobe.engine.pytest_plugin import admit_tokens, current_config, current_target, run_state

schemathesis = pytest.importorskip("schemathesis", reason="the fuzz category needs schemathesis "
                                   "(pip install 'gateprobe[fuzz]')")

pytestmark = pytest.mark.fuzz

UPLOAD_OPERATIONS = ("/v1/images/edits", "/v1/audio/transcriptions")
"""Multipart operations whose file must be a real image or audio file (not fuzzed)."""
fuzz_guard: dict[str, Any] = {}
"""The run's Guard and pytest config, set at import below."""


def _forget_earlier_imports() -> None:
    """schemathesis keeps hooks in a process-wide registry, appended at each import: an earlier
    run's hook (its guard, its budget, its target) would still run before every call of this
    one. Checks are kept by name, so this module's ``gateprobe`` check replaces its old one."""
    from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

    for old in GLOBAL_HOOK_DISPATCHER.get_all_by_name("before_call"):
        if getattr(old, "__module__", None) == __name__:
            GLOBAL_HOOK_DISPATCHER.unregister(old)


_forget_earlier_imports()


def _forget_at_the_end() -> None:
    """This run's hook and check leave schemathesis's process-wide registries when it ends.
    Left there, every later schemathesis call in the process (a caller of the Python API, the
    project's own tests) went through this run's guard: its breaker, open after a hung
    target's timeouts, skipped another test's request as "earlier requests of this kind to
    the target timed out"."""
    from schemathesis.checks import CHECKS
    from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

    GLOBAL_HOOK_DISPATCHER.unregister(before_call)
    if gateprobe in CHECKS.get_all():
        CHECKS.unregister(gateprobe.__name__)


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
    state = run_state(fuzz_guard["config"])
    state.start()
    if state.breaker.is_open(guard.target.base_url, streaming):
        pytest.skip("not sent: earlier requests of this kind to the target timed out")
    if state.spent():
        pytest.skip("the run's budget is spent")
    try:
        # schemathesis serializes case.body after this hook: the guard changes it in place.
        guard.admit(case.operation.path, case.body)
    except RequestCapReached as exc:
        pytest.skip(f"{exc}; raise it with --fuzz-max-requests")
    if state.token_cap is not None:  # under a token cap every request carries one
        guard.cap(case.operation.path, case.body)
    admit_tokens(state, max_tokens_of(case.body))
    state.pace()
    _log_case(case)


def _log_case(case: Any) -> None:
    """The request as it will be sent, one JSON line in ``--fuzz-log`` (what a seed replays).
    Only this module's fuzzed operations: the management category's stateful run comes
    through the same hook, and its bodies carry the keys it creates (secrets)."""
    log = fuzz_guard["config"].getoption("--fuzz-log")
    if not log or not fuzz_guard.get("logging"):
        return
    body = case.body if isinstance(case.body, (dict, list, str, int, float, bool)) else \
        repr(type(case.body).__name__)
    line = json.dumps({"method": case.method, "path": case.formatted_path,
                       "query": case.query or {}, "body": body}, sort_keys=True, default=str)
    with open(log, "a", encoding="utf-8") as out:
        out.write(line + "\n")


@schemathesis.check
def gateprobe(ctx: Any, response: Any, case: Any) -> bool | None:
    """This project's checks on the answer (see gateprobe.protocols.conformance)."""
    import gateprobe.protocols.conformance  # noqa: F401  (registers the built-in checks)
    from gateprobe.core import checks
    from gateprobe.core.checks import Context, Exchange, Expectation
    from gateprobe.core.sse import parse_all
    from gateprobe.engine.pytest_plugin import describe

    guard: Guard | None = fuzz_guard.get("guard")
    if guard is None:
        return None
    target = guard.target
    headers = {k.lower(): ", ".join(v) for k, v in response.headers.items()}
    body = case.body if isinstance(case.body, dict) else {}
    stream = headers.get("content-type", "").startswith("text/event-stream")
    events, notes = parse_all(response.content) if stream else ([], [])
    path = case.operation.path
    family = models_family(target) if path.startswith("/v1/models") else \
        "anthropic" if path.startswith(("/v1/complete", "/v1/messages")) else \
        "gateway" if path.startswith("/api/") else "openai"
    version = str(case.headers.get("anthropic-version", "2023-06-01")) if case.headers else \
        "2023-06-01"
    expect = Expectation(stream_body={k: v for k, v in body.items() if k != "stream"}
                         if stream else None, anthropic_version=version)
    exchange = Exchange(case.operation.path, case.method, body, response.status_code, headers,
                        response.content, events, notes)
    names = ["error.envelope", "gateway.envelope", "error.type", "security.key_echoed",
             "response.retry_after"]
    # A stream schemathesis read only in part (max_stream_events, timeout) cannot be judged
    # by its grammar: its end is missing by construction, not by the gateway's fault.
    if not (getattr(response, "stream_cut_short", False) or response.is_truncated):
        names.append("stream.grammar")
    selected = checks.select(names)
    findings = checks.run_checks(Context.of(target, family, expect), exchange, selected)
    repro = _repro(response.request)
    _REPROS[(case.method, path)] = repro
    findings = collapse(replace(f, case=_label(case), repro=repro) for f in findings)
    config = fuzz_guard.get("config")
    if config is not None:
        from gateprobe.engine.pytest_plugin import (
            OUTCOMES_KEY,
            attach_exchange,
            attach_findings,
            attached_answer,
            record,
        )

        config.stash[OUTCOMES_KEY][case.operation.path] += 1
        record(config, case.operation.path, findings)
        if findings:  # the call that failed, not every example's
            from gateprobe.core.redact import Redactor

            answer = attached_answer(response.content, Redactor(target.secrets))
            attach_exchange(repro, response.status_code, answer)
            attach_findings(findings)
    if findings:
        raise AssertionError(describe(findings))
    return None


_REPROS: dict[tuple[str, str], str] = {}
"""(method, path) -> the ``curl`` repro of the operation's last request: schemathesis's own
failures of that call are reported with it."""


def _label(case: Any) -> str:
    return f"fuzz {case.method} {case.operation.path}"


def _repro(request: Any) -> str:
    """The ``curl`` command of a request as requests sent it (a ``PreparedRequest``), the
    key as ``$VARIABLE``."""
    from gateprobe.core.redact import Redactor
    from gateprobe.engine.probe import curl_of

    target = fuzz_guard["guard"].target
    headers = {k: str(v) for k, v in request.headers.items()}
    body = request.body
    streaming = isinstance(body, (bytes, str)) and re.search(
        r'"stream"\s*:\s*true', body if isinstance(body, str) else body.decode("utf-8", "replace"))
    return curl_of(request.method, request.url, headers, body, streaming=bool(streaming),
                   key=target.api_key, variable=target.api_key_env,
                   redactor=Redactor(target.secrets))


def _case_repro(case: Any) -> str:
    """The repro of a call that got no answer, rebuilt from the case as it would be sent."""
    import requests

    kwargs = case.as_transport_kwargs(base_url=_target.base_url)
    prepared = requests.Request(
        kwargs["method"], kwargs["url"], headers={**kwargs.get("headers", {}),
                                                  **_auth_headers(case.operation.path)},
        params=kwargs.get("params"), json=kwargs.get("json"), data=kwargs.get("data")).prepare()
    return _repro(prepared)


def _spec_headers(name: str, target: Target) -> dict[str, str]:
    """The credentials (and version) every fuzzed request of a spec carries."""
    if name == "anthropic" and target.profile == "anthropic":
        return {"x-api-key": target.api_key, "anthropic-version": "2023-06-01"}
    return {"authorization": f"Bearer {target.api_key}"}


def _auth_headers(path: str) -> dict[str, str]:
    anthropic = path.startswith(("/v1/complete", "/v1/messages"))
    return _spec_headers("anthropic" if anthropic else "openai", _target)


def _schema(name: str, target: Target, max_examples: int) -> Any:
    from gateprobe.core.specs import spec_path

    schema = schemathesis.openapi.from_path(str(spec_path(name)))  # type: ignore[arg-type]
    headers = _spec_headers(name, target)
    # No retries of schemathesis's own: a timeout counts towards the breaker, once. Its
    # request timeout is where it stops reading an event stream: the total timeout (the
    # session's per-read timeouts are the target's, ``_SESSION``).
    schema.config.update(base_url=target.base_url, headers=headers,
                         request_timeout=target.timeouts.total_s, request_retries=0)
    # One seed for every operation (schemathesis derives each operation's from it), and no
    # example database: an earlier run's failures replayed first would make the same seed
    # send other cases.
    seed = _config.getoption("--fuzz-seed")
    if seed is not None:
        schema.config.seed = seed
    schema.config.generation.update(max_examples=max_examples, database="none")
    # Auth is judged precisely, per profile, by the auth category; with two alternative
    # schemes in the spec, schemathesis's own auth check cannot tell a bypass from the other.
    schema.config.checks.update(excluded_check_names=["ignored_auth"])
    schema.config.max_stream_events = 5000
    # Its reproductions mask by name markers ("token" in max_tokens, "key" in any key field):
    # a repro must show the real parameters, and only credential headers are secrets (the
    # keys' values are masked in every written file anyway, by gateprobe.core.redact).
    sanitization = schema.config.output.sanitization
    sanitization.keys_to_sanitize = tuple(sorted(CREDENTIAL_HEADERS))
    sanitization.sensitive_markers = tuple(sorted(CREDENTIAL_HEADERS))
    phases = _config.getoption("--fuzz-phases")
    schema.config.phases.update(
        phases=list(phases_for(target, parse_phases(phases, "--fuzz-phases") if phases
                                else None)))
    # Every endpoint the target does not serve, the opt-in families it does not declare too
    # (``not_served`` leaves those out of what a report says, not out of what is sent).
    unserved = [p for name, p in ENDPOINTS.items() if name not in target.served]
    if name == "openai" and models_family(target) == "anthropic":
        # An Anthropic target lists its models in Anthropic's shape, which the OpenAI spec
        # does not describe: the endpoint category judges it, not the OpenAI spec's fuzzing.
        unserved.append("/v1/models")
    # A fuzzer's "file" is random text, which an image edit or a transcription must refuse as
    # no PNG or audio: no schema-valid upload exists for it to send. Their cases (endpoint,
    # errors, auth) send real ones.
    unserved += list(UPLOAD_OPERATIONS)
    if unserved:  # nothing is sent to an endpoint the target does not serve
        schema = schema.exclude(path_regex="^(" + "|".join(map(re.escape, unserved)) + ")(/|$)")
    if name == "openai" and "chat_store" not in target.served:  # its list shares chat's path
        schema = schema.exclude(method="GET", path="/v1/chat/completions")
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
_config.add_cleanup(_forget_at_the_end)
_examples = _configure(_target, _config)
openai_api = _schema("openai", _target, _examples)


# Bounded like every other category's exchanges (``gateprobe.engine.probe.bounded_session``):
# the target's connect, first-byte and idle timeouts, its total timeout and the body cap, a
# JSON body or an event stream alike; a bound passed is ``OutOfBounds``, a finding below.
_SESSION = bounded_session(_target.timeouts)


def _call(case: Any) -> None:
    """Call and validate within the run's bounds; a broken exchange is a finding, and a
    timeout counts towards the breaker, as in the other categories."""
    from gateprobe.engine.pytest_plugin import allure_story

    path = case.operation.path
    allure_story("anthropic" if path.startswith(("/v1/complete", "/v1/messages")) else
                 "openai", path)
    fuzz_guard["logging"] = True  # this call's requests go into --fuzz-log
    try:
        _call_bounded(case)
    finally:
        fuzz_guard["logging"] = False


def _call_bounded(case: Any) -> None:
    streaming = isinstance(case.body, dict) and bool(case.body.get("stream"))
    try:
        case.call_and_validate(session=_SESSION)
    except BaseExceptionGroup as group:  # schemathesis's failures of one call
        _record_failures(case, list(group.exceptions))
        raise
    except Exception as exc:
        if isinstance(exc.__cause__, ShareUsed):  # raised in before_call, wrapped by it:
            return  # this operation had its share of the cap, the example is not sent
        if getattr(exc, "code", None):  # one schemathesis failure
            _record_failures(case, [exc])
            raise
        kind = exc.kind if isinstance(exc, OutOfBounds) else \
            transport.classify(exc, got_headers=False, streaming=streaming)
        run_state(_config).breaker.record(_target.base_url, streaming, kind)
        if kind != transport.OTHER:
            from gateprobe.core.checks import clip_evidence
            from gateprobe.core.redact import Redactor
            from gateprobe.engine.pytest_plugin import record

            detail = Redactor(_target.secrets).text(f"{type(exc).__name__}: {exc}")
            record(_config, case.operation.path, [Finding(
                kind, case.operation.path, Severity.HIGH, "a whole response in time",
                detail[:300], clip_evidence(f"no answer: {detail}"), _label(case),
                repro=_case_repro(case))])
        raise


SEVERITIES = {s.value: s for s in Severity}


def _record_failures(case: Any, failures: list[BaseException]) -> None:
    """schemathesis's own failures (an undocumented status, a body the spec does not allow)
    as findings of the run, once each per operation, so reports and the gate see them too.
    ST901 is a custom check's: this module's ``gateprobe`` check recorded those already."""
    from gateprobe.engine.pytest_plugin import FINDINGS_KEY, attach_exchange, attach_findings

    path = case.operation.path
    recorded = _config.stash[FINDINGS_KEY][path]
    repro = _REPROS.get((case.method, path)) or _case_repro(case)
    for failure in failures:
        code = getattr(failure, "code", None)
        if not isinstance(code, str) or code == "ST901":
            continue
        check = (getattr(failure, "checks", ()) or (code.lower(),))[0]
        severity = str(getattr(getattr(failure, "severity", None), "name", "medium")).lower()
        message = f"{getattr(failure, 'title', code)}: {getattr(failure, 'message', '')}"
        finding = Finding(f"fuzz.{check}", path, SEVERITIES.get(severity, Severity.MEDIUM),
                          f"what the spec says ({code})", message[:300],
                          _failure_evidence(failure, message), _label(case), repro=repro)
        same = next((i for i, f in enumerate(recorded) if f.key == finding.key), None)
        if same is None:
            recorded.append(finding)
            attach_exchange(repro, None, finding.evidence)
            attach_findings([finding])
        else:  # once per operation, counted
            recorded[same] = replace(recorded[same], count=recorded[same].count + 1)


def _failure_evidence(failure: BaseException, message: str) -> str:
    """What schemathesis saw: the failure's own text (its message quotes the answer),
    redacted before it is cut (a key cut in half would not be recognized)."""
    from gateprobe.core.checks import clip_evidence
    from gateprobe.core.redact import Redactor

    return clip_evidence(Redactor(_target.secrets).text(message or str(failure)))


def _test_name(family: str, operation: Any) -> str:
    """``test_openai_post_v1_chat_completions``: one name per operation, so JUnit, Allure (its
    historyId comes from the test's id) and the terminal count and name each on its own."""
    slug = re.sub(r"[^a-z0-9]+", "_", operation.path.lower()).strip("_")
    return f"test_{family}_{operation.method.lower()}_{slug}"


def _has_operations(schema: Any) -> bool:
    """Whether anything is left to fuzz once unserved endpoints are excluded."""
    return any(True for _ in schema.get_all_operations())


def _add_operation_tests(family: str, schema: Any) -> int:
    """One test function per operation of ``schema``, in this module's namespace (pytest
    collects them by name). A single ``@schema.parametrize()`` test would run every operation
    as a subtest of one test id: JUnit would name each ``test_openai_operation`` and Allure
    would fold them into one history entry, counting fewer tests than the terminal."""
    added = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation is None:
            continue
        name = _test_name(family, operation)

        def test(case: Any) -> None:
            _call(case)

        test.__name__ = test.__qualname__ = name
        test.__doc__ = f"{operation.label} of specs/{family}.yaml, positive and negative."
        globals()[name] = schema.include(name=operation.label).parametrize()(test)
        added += 1
    return added


_operations = _add_operation_tests("openai", openai_api)
if _target.serves_anthropic:
    _operations += _add_operation_tests("anthropic", _schema("anthropic", _target, _examples))


# The gateway's own APIs (Midjourney tasks, search proxies): only where the target declares them.
gateway_api = _schema("gateway", _target, _examples)
if _has_operations(gateway_api):
    _operations += _add_operation_tests("gateway", gateway_api)
# Each operation gets a fair share of the request cap; the management category's stateful run
# goes through the same hook after them, so a target serving that API keeps a share for it.
fuzz_guard["guard"].operations = _operations + (1 if _target.management else 0)
