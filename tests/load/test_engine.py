"""``gateprobe.commands.load.runner`` called from Python: typed options, a ``Target``, a
``LoadResult``; no key ever written into this process's environment."""

from __future__ import annotations

import io
import os
from dataclasses import replace
from pathlib import Path

import pytest

from gateprobe.commands.load.results import findings_of, summary_line
from gateprobe.commands.load.runner import LoadOptions, dry_run, plan_load, run_load
from gateprobe.core.console import Console
from gateprobe.core.errors import ConfigError, UsageError
from gateprobe.core.findings import Severity
from gateprobe.core.targets import Target
from gateprobe.engine.embedded import Embedded, embedded_target

FAST = Embedded(rate_window_s=4.0)


@pytest.mark.parametrize(("options", "message"), [
    (LoadOptions("latency", users=0), "--users must be at least 1"),
    (LoadOptions("latency", max_rps=5000), "--max-rps is capped"),
    (LoadOptions("latency", arrival="poisson"), "needs --rate > 0"),
    (LoadOptions("latency", weights={"embeddings": 1.0}), "unknown endpoint 'embeddings'"),
    (LoadOptions("latency", weights={"chat": -1.0}), "--weight chat=-1: must be positive"),
    (LoadOptions("sweep-nope"), "unknown load scenario 'sweep-nope'"),
])
def test_options_check_refuses_a_bad_value(options: LoadOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        options.check()


@pytest.mark.slow
def test_run_load_leaves_os_environ_unchanged(tmp_path: Path) -> None:
    """The embedded gateway's keys reach the Locust child in its environment only."""
    before = dict(os.environ)
    out = io.StringIO()
    options = LoadOptions("latency", users=2, duration_s=2, max_tokens=8, slo={},
                          report_dir=tmp_path)
    with embedded_target(FAST) as target:
        result = run_load(target, options, Console(out, io.StringIO()))
    assert dict(os.environ) == before
    assert not [k for k in os.environ if k.startswith("GATEPROBE_EMBEDDED")]
    assert result.ok and result.exit_code == 0, out.getvalue()
    assert result.verdict is not None and result.verdict["requests"] > 0
    assert result.findings == [] and result.reason.endswith("errors 0")
    assert result.out_dir == tmp_path.resolve()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert target.api_key not in path.read_text(errors="replace"), path


def test_a_target_that_may_not_be_loaded_is_refused(tmp_path: Path) -> None:
    paid = Target("https://gateway.example", "ohmygpt", "sk-secret-value")
    with pytest.raises(ConfigError, match="load against https://gateway.example refused"):
        run_load(paid, LoadOptions("latency", report_dir=tmp_path / "run"), Console())
    assert not (tmp_path / "run").exists()


def test_rate_limits_needs_tier_keys() -> None:
    local = Target("http://127.0.0.1:9", "ohmygpt", "sk-secret-value")
    with pytest.raises(UsageError, match="needs tier keys"):
        plan_load(local, LoadOptions("rate-limits"))


def test_the_plan_names_variables_never_keys() -> None:
    target = Target("http://127.0.0.1:9", "ohmygpt", "sk-latency-key", "MY_KEY",
                    tier_keys={"free": "sk-free-key"}, tier_key_envs={"free": "MY_FREE"},
                    limits={"free": 3}, window_s=4.0)
    plan = plan_load(target, LoadOptions("rate-limits", slo={"rate_limit_tolerance": 0.1}))
    assert (plan.api_key_env, plan.tier_keys, plan.limits) == ("MY_KEY", {"free": "MY_FREE"},
                                                              {"free": 3})
    assert plan.duration_s == 3 * 4.0 + 15 and plan.slo == {"rate_limit_tolerance": 0.1}
    assert "sk-" not in repr(plan)


def test_dry_run_of_the_embedded_gateway() -> None:
    out = io.StringIO()
    with embedded_target(FAST) as target:
        assert dry_run(target, LoadOptions("rate-limits"), Console(out)) == 0
    assert "(the embedded reference gateway)" in out.getvalue()
    assert "GATEPROBE_EMBEDDED_FREE_KEY" in out.getvalue() and "nothing was sent" in out.getvalue()


def test_findings_and_reason_of_a_verdict() -> None:
    rate = {"scenario": "rate-limits", "reasons": ["ratelimit.limit [free]: 15 accepted"],
            "rate_limits": {"tiers": [{"tier": "free", "accepted": 15, "limit": 12,
                                       "ok": False}],
                            "problems": [{"check_id": "ratelimit.limit", "tier": "free",
                                          "message": "15 accepted"}]}}
    [finding] = findings_of(rate)
    assert (finding.check_id, finding.case, finding.severity) == (
        "ratelimit.limit", "tier free", Severity.HIGH)
    assert summary_line(rate) == "free 15/12 FAIL; ratelimit.limit [free]: 15 accepted"
    latency = {"scenario": "latency", "reasons": [],
               "latency": {"requests": 9, "errors": 0, "ttft_ms": {"p95": None}},
               "breaches": [{"slo": "ttft_p95_ms", "limit": 150.0, "observed": None}]}
    [finding] = findings_of(latency)
    assert (finding.check_id, finding.case, finding.observed) == (
        "slo.ttft_p95_ms", "slo ttft_p95_ms", "no data")
    assert summary_line(latency) == "9 streams, no TTFT sample, errors 0"


def test_the_openai_profile_is_never_sent_an_anthropic_route() -> None:
    target = Target("http://127.0.0.1:9", "openai", "k")
    plan = plan_load(target, LoadOptions(scenario="latency"), sending=False)
    assert plan.weights == {"chat": 1.0, "messages": 0.0, "complete": 0.0, "speech": 0.0,
                            "responses": 0.0}
    with pytest.raises(UsageError, match="does not serve /v1/messages"):
        plan_load(target, LoadOptions(scenario="latency", weights={"messages": 1.0}),
                  sending=False)
    anthropic = plan_load(Target("http://127.0.0.1:9", "ohmygpt", "k"),
                          LoadOptions(scenario="latency"), sending=False)
    # speech and responses are opt-in: 0 unless asked, even where declared
    assert anthropic.weights == {"chat": 1.0, "messages": 1.0, "complete": 1.0, "speech": 0.0,
                                 "responses": 0.0}


@pytest.mark.slow
def test_a_load_run_whose_key_is_refused_stops_and_names_the_variable(tmp_path: Path) -> None:
    """Past the preflight (a key revoked, a Python caller): the first answers all 401, the
    run stops there, and its verdict is the user's mistake (exit 2), not an SLO miss."""
    out, err = io.StringIO(), io.StringIO()
    with embedded_target(FAST) as target:
        wrong = replace(target, api_key="gp-nobody-0001", api_key_env="GP_WRONG_KEY")
        result = run_load(wrong, LoadOptions("latency", users=2, duration_s=30,
                                             report_dir=tmp_path), Console(out, err))
    assert result.exit_code == 2 and result.findings == []
    assert result.verdict is not None and result.verdict["refused_key"]["variable"] == \
        "GP_WRONG_KEY"
    assert "refused the key in GP_WRONG_KEY" in err.getvalue()
    assert "stopping: the first 20 answers refused the key" in \
        (tmp_path / "locust.log").read_text()
    assert "gp-nobody-0001" not in out.getvalue() + err.getvalue()
