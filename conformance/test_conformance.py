"""The conformance suite: every case of gateprobe.engine.cases against the target, by category.

Run it with ``gateprobe conformance`` (which can start the embedded reference gateway), or
directly: ``pytest conformance -c conformance/pytest.ini --base-url URL --profile P
--api-key-env VAR``. Select categories with ``-m``, e.g. ``-m "stream or errors"``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateprobe.core.findings import Finding
from gateprobe.engine.cases import Case
from gateprobe.engine.pytest_plugin import describe

Judge = Callable[[Case], list[Finding]]


def _assert_conforms(judge: Judge, case: Case) -> None:
    """Fail with the findings, one line each: a finding is about the gateway, and a Python
    traceback of this module would bury it."""
    findings = judge(case)
    if findings:
        pytest.fail(describe(findings), pytrace=False)


@pytest.mark.endpoint
def test_endpoint(case: Case, judge: Judge) -> None:
    """A plain request answers 2xx with the body its spec describes."""
    _assert_conforms(judge, case)


@pytest.mark.stream
def test_stream(case: Case, judge: Judge) -> None:
    """A stream follows its protocol's grammar, framing and event schemas."""
    _assert_conforms(judge, case)


@pytest.mark.errors
def test_error(case: Case, judge: Judge) -> None:
    """Bad input gets the documented 4xx in the family's envelope."""
    _assert_conforms(judge, case)


@pytest.mark.auth
def test_auth(case: Case, judge: Judge) -> None:
    """Credentials that must not work do not."""
    _assert_conforms(judge, case)


@pytest.mark.legacy_prompt
def test_legacy_prompt(case: Case, judge: Judge) -> None:
    """Legacy prompts are validated as Anthropic validated them, before generating."""
    _assert_conforms(judge, case)


@pytest.mark.golden
def test_golden(case: Case, judge: Judge) -> None:
    """The answer matches the golden recorded from a trusted gateway, once normalized."""
    _assert_conforms(judge, case)
