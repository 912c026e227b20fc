"""llmock (PyPI ``llmock``, pinned 0.2.2) serves ``POST /v1/responses``: the Responses family's
cases, flows, goldens, SDK calls and fuzzing run against it, declared as ``responses`` only.

Its stream follows the grammar (event names, sequence numbers, order, deltas that add up,
usage on the final response) and it passes the protocol-level goldens; what is found must be
exactly its reviewed deviations, one justified line each (a new finding is a regression of
gateprobe or a change of llmock; a missing one, a check that no longer fires). llmock serves
no ``GET``/``DELETE /v1/responses/{id}``, ``/cancel`` or ``/input_items`` (404), stores
nothing and reads no ``previous_response_id``; it serves no Conversations and no stored chat
completions, which are not declared.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("llmock")

from test_llmock import KEY, KEY_ENV, RUN_TIMEOUT_S, _clean_env, _fuzz_failures, _serve

SELECT = "endpoint or stream or errors or auth or golden or sdk or fuzz"
R = "/v1/responses"
EXPECTED = {
    ("response.status", R, f"{R} malformed JSON"),
    # a body that is not JSON is served (200, a mock answer); OpenAI answers 400
    ("response.status", R, f"{R} unknown model"),
    # any model name is served (200, echoed as the model); OpenAI answers 404 model_not_found
    ("response.status", R, f"{R} max_output_tokens below 16"),
    # max_output_tokens 8 is served; OpenAI refuses values below 16 with 400
    ("response.status", R, f"{R} input a number"),
    # input 5 is served; OpenAI answers 400 (input is a string or a list of items)
    ("response.status", R, f"{R} unknown previous_response_id"),
    # an unknown previous_response_id is served; OpenAI answers 404 (previous response not found)
    ("auth.rejected", R, f"{R} bad key"),
    # llmock checks no key: a bad key is served (200); OpenAI answers 401
    ("auth.rejected", f"{R}/resp_gateprobe_none", f"{R}/resp_gateprobe_none missing key"),
    # no GET route at all: 404 before any key check; OpenAI answers 401 to a missing key
    ("responses.stored", R, "state flow: stored"),
    # GET /v1/responses/{id} of a response it just created answers 404: nothing is stored
    ("responses.previous", R, "state flow: previous"),
    # previous_response_id is accepted but not read: the continuation bills 4 input tokens,
    # as much as the same input alone (OpenAI bills the whole chain as input)
}
EXPECTED_FUZZ = {
    ("ST201", R),  # schema-violating bodies are served (200): llmock validates nothing
}


@pytest.fixture(scope="module")
def llmock_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory)


@pytest.mark.deep_fuzz
@pytest.mark.slow
def test_llmock_responses_deviations_are_exactly_the_reviewed_ones(llmock_url: str,
                                                                   tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "gateprobe", "conformance", "--base-url", llmock_url,
           "--profile", "openai", "--api-key-env", KEY_ENV, "--endpoints", "responses",
           "--model", "responses=gpt-4o-mini", "--select", SELECT, "--max-examples", "3",
           "--fuzz-max-requests", "80", "--budget-s", "180", "--report-dir", str(tmp_path)]
    proc = subprocess.run(cmd, env={**_clean_env(), KEY_ENV: KEY}, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S, cwd=Path(__file__).parents[1])
    out = proc.stdout[-1500:] + proc.stderr[-1500:]
    assert proc.returncode == 1, f"exit code {proc.returncode}:\n{out}"
    assert KEY not in proc.stdout + proc.stderr, "the key was printed"
    result = json.loads((tmp_path / "conformance.json").read_text())
    findings = result["findings"]
    assert all(f["endpoint"].startswith(R) for f in findings), out
    found = {(f["check_id"], f["endpoint"], f["case"]) for f in findings
             if not f["check_id"].startswith("fuzz.")}
    detail = {(f["check_id"], f["endpoint"], f["case"]): f["observed"] for f in findings}
    problems = [f"unexpected finding {k}: {detail[k][:300]}" for k in sorted(found - EXPECTED)]
    problems += [f"missing finding {k}" for k in sorted(EXPECTED - found)]
    sdk = [t for t in result["tests"] if t["test"].startswith("test_sdk.py")
           and "responses" in t["test"]]
    if len(sdk) != 2 or [t for t in sdk if t["outcome"] != "passed"]:
        problems.append(f"sdk: {sdk}")  # the SDK, its stream helper too, takes its answers
    fuzz = _fuzz_failures(tmp_path / "junit.xml", "")
    problems += [f"unexpected fuzz failure {k}" for k in sorted(fuzz - EXPECTED_FUZZ)]
    problems += [f"missing fuzz failure {k}" for k in sorted(EXPECTED_FUZZ - fuzz)]
    assert not problems, "\n".join(problems) + "\n" + out
