"""The media families (images, speech, transcriptions, moderations) end to end: the reference
gateway serves them cleanly, each media fault trips its check and nothing else, and a target
that does not declare a family gets none of its cases."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import gateprobe.protocols.conformance  # noqa: F401  (registers the built-in checks)
from gateprobe.core.checks import Context, run_checks
from gateprobe.core.findings import Finding
from gateprobe.core.targets import CORE_ENDPOINTS, Target, profile_endpoints
from gateprobe.engine.cases import Case, all_cases, media_cases
from gateprobe.engine.probe import send
from gateprobe.engine.runstate import RunState
from gateprobe.protocols.conformance import checks_for
from gateprobe.reference import RunningGateway, Timing
from gateprobe.reference.faults import CATALOGUE, IMAGES, MODERATIONS, SPEECH, TRANSCRIPTIONS
from gateway_fixtures import MakeGateway

INSTANT = Timing(ttft_ms=0, itl_ms=0)
MEDIA = frozenset({"images", "image_edits", "speech", "transcriptions", "moderations"})
MEDIA_PATHS = IMAGES | SPEECH | TRANSCRIPTIONS | MODERATIONS
MEDIA_FAULTS = [n for n, f in CATALOGUE.items() if f.endpoints <= MEDIA_PATHS]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def media_target(gateway: RunningGateway, profile: str = "ohmygpt") -> Target:
    return Target(gateway.base_url, profile, "gp-vip-0001",
                  endpoints=profile_endpoints(profile) | MEDIA)


def judge(http: httpx.Client, target: Target, case: Case, run: RunState) -> list[Finding]:
    exchange = send(http, target, case, run)
    ctx = Context.of(target, case.family, case.expect, run.seen_ids, run.input_tokens)
    return run_checks(ctx, exchange, checks_for(ctx, exchange))


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["ohmygpt", "openai"])
def test_clean_gateway_passes_every_media_case(make_gateway: MakeGateway, http: httpx.Client,
                                               profile: str) -> None:
    target = media_target(make_gateway(profile=profile, timing=INSTANT), profile)
    cases = media_cases(target)
    assert {c.category for c in cases} == {"endpoint", "errors", "auth"}
    assert {c.encoding for c in cases} == {"json", "form", "multipart"}
    run = RunState()
    for case in cases:
        assert judge(http, target, case, run) == [], case.id


@pytest.mark.parametrize("name", MEDIA_FAULTS)
def test_media_fault_trips_its_checks_and_nothing_elsewhere(
        make_gateway: MakeGateway, http: httpx.Client, name: str) -> None:
    fault = CATALOGUE[name]
    target = media_target(make_gateway(faults=(name,), timing=INSTANT))
    found: set[str] = set()
    run = RunState()
    for case in media_cases(target):
        ids = {f.check_id for f in judge(http, target, case, run)}
        if case.path in fault.endpoints:
            found |= ids
        else:
            assert ids == set(), f"{name} leaked into {case.id}: {sorted(ids)}"
    assert set(fault.trips) <= found, f"{name} tripped {sorted(found)}"


def test_every_media_check_has_a_fault() -> None:
    from gateprobe.core import checks

    media_checks = {c.id for c in checks.all_checks()
                    if c.module == "gateprobe.protocols.media"}
    tripped = {t for name in MEDIA_FAULTS for t in CATALOGUE[name].trips}
    assert media_checks == tripped
    assert len(MEDIA_FAULTS) == 7


@pytest.mark.slow
def test_a_target_gets_only_the_media_families_it_declares() -> None:
    undeclared = Target("http://127.0.0.1:9", "ohmygpt", "k")
    assert not [c for c in all_cases(undeclared) if c.path in MEDIA_PATHS]
    only_speech = Target("http://127.0.0.1:9", "ohmygpt", "k",
                         endpoints=CORE_ENDPOINTS | {"speech"})
    paths = {c.path for c in all_cases(only_speech) if c.path.startswith(("/v1/images",
                                                                           "/v1/audio",
                                                                           "/v1/moder"))}
    assert paths == {"/v1/audio/speech"}


def test_embedded_target_declares_the_media_families() -> None:
    from gateprobe.engine.embedded import EMBEDDED_ENDPOINTS

    assert MEDIA <= EMBEDDED_ENDPOINTS


@pytest.mark.slow
def test_compare_probes_each_declared_media_family(make_gateway: MakeGateway,
                                                   tmp_path: Path) -> None:
    """One plain request per declared media family in ``gateprobe compare``: the clean
    mirror passes them, the one whose moderation results come reversed is told apart."""
    from gateprobe.commands.compare import CompareOptions, compare_cases, run_compare
    from gateprobe.core.console import Console

    timing = Timing(ttft_ms=5, itl_ms=1)
    clean = make_gateway(timing=timing)
    faulty = make_gateway(timing=timing, faults=("moderation-score-percent",))
    base = media_target(clean)
    assert {c.path for c in compare_cases(base)} >= MEDIA_PATHS
    assert not {c.path for c in compare_cases(Target(clean.base_url, "ohmygpt", "k"))} & \
        MEDIA_PATHS
    result = run_compare(
        base,
        CompareOptions(samples=1, long_request_s=0.2, report_dir=tmp_path,
                       mirrors={"clean": clean.base_url, "faulty": faulty.base_url}),
        Console(io.StringIO(), io.StringIO()))
    good, bad = result.mirrors
    assert good.findings == []
    assert {f.check_id for f in bad.findings} >= {"moderation.results"}
    assert {f.endpoint for f in bad.findings} == {"/v1/moderations"}


def _fuzz(base_url: str, *extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "GATEPROBE_API_KEY"}
    env["GATEPROBE_API_KEY"] = "gp-vip-0001"
    done = subprocess.run([sys.executable, "-m", "gateprobe", "conformance", "--base-url",
                           base_url, "--select", "fuzz", "--max-examples", "2", "-v", *extra],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.deep_fuzz
@pytest.mark.slow
def test_fuzz_reaches_a_media_family_only_when_declared(gateway: RunningGateway) -> None:
    """The reference serves every media route, so only the declaration keeps fuzzing away."""
    undeclared = _fuzz(gateway.base_url, "--endpoints", "models")
    assert "/v1/moderations" not in undeclared and "/v1/audio/speech" not in undeclared
    declared = _fuzz(gateway.base_url, "--endpoints", "models,moderations,speech")
    assert "/v1/moderations" in declared and "/v1/audio/speech" in declared
    assert "/v1/images" not in declared


def test_curl_style_json_labelled_as_a_form_is_read_as_json(gateway: RunningGateway) -> None:
    """``curl -d '{...}'`` sends JSON labelled form-urlencoded; the chat routes read it as
    JSON, and so do the media routes (a real form body is still a form)."""
    with httpx.Client(base_url=gateway.base_url,
                      headers={"authorization": "Bearer gp-vip-0001"}) as client:
        labelled = client.post("/v1/audio/speech", content=b'{"model": "tts-1", "input": "x",'
                               b' "voice": "alloy", "response_format": "wav"}',
                               headers={"content-type": "application/x-www-form-urlencoded"})
        assert labelled.status_code == 200 and labelled.content.startswith(b"RIFF")
        form = client.post("/v1/moderations", data={"input": "Say test"})
        assert form.status_code == 200 and len(form.json()["results"]) == 1
