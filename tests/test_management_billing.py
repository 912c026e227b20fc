"""The management and billing categories: clean against the reference gateway, each of their
faults caught by its check and no other, every created key deleted, the safety switches."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from gateprobe.commands.conformance_runner import ConformanceOptions, run_conformance
from gateprobe.core.errors import ConfigError, UsageError
from gateprobe.core.targets import Target, load_targets
from gateprobe.engine.billing import reconcile
from gateprobe.engine.management import MAX_KEYS_PER_RUN, key_admin, lifecycle
from gateprobe.reference import RunningGateway
from gateprobe.reference.faults import CATALOGUE
from gateway_fixtures import MakeGateway

STATEFUL_FAULTS = [n for n, f in CATALOGUE.items() if f.proven_by in ("management", "billing")]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def target_for(gateway: RunningGateway, **overrides: object) -> Target:
    """The reference gateway as the embedded target declares it: management API, two admins."""
    target = Target(gateway.base_url, "ohmygpt", "gp-vip-0001", management=True,
                    admin_key="gp-admin-0001", admin_key_env="ADMIN",
                    other_admin_key="gp-admin-0002")
    return replace(target, **overrides)  # type: ignore[arg-type]


def created_keys_alive(gateway: RunningGateway) -> list[str]:
    return [r.key for r in gateway.state.store.records.values()
            if r.created_by_api and not r.deleted]


@pytest.mark.slow
def test_clean_gateway_both_categories_pass_and_leave_no_key(make_gateway: MakeGateway,
                                                             tmp_path: Path) -> None:
    gateway = make_gateway()
    result = run_conformance(target_for(gateway), ConformanceOptions(
        select="management or billing", report_dir=tmp_path))
    assert result.findings == [], result.findings
    assert result.outcomes["passed"] == 6 and result.exit_code == 0, result.tests
    assert created_keys_alive(gateway) == []
    assert any(r.created_by_api for r in gateway.state.store.records.values())
    table = (tmp_path / "billing.json").read_text(encoding="utf-8")
    for kind in ("chat stream", "complete", "embeddings", "refused (400)", "429 burst",
                 "max_fee cap"):
        assert f'"{kind}"' in table
    # The capped key stops at the first whole request past its cap: what the table expects.
    cap_row = next(r for r in json.loads(table)["rows"] if r["kind"] == "max_fee cap")
    assert cap_row["status"] == 402 and abs(cap_row["difference"]) <= 0.05, cap_row
    created = [r.key for r in gateway.state.store.records.values() if r.created_by_api]
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not any(k in text for k in ("gp-admin-0001", "gp-admin-0002", *created)), path


@pytest.mark.parametrize("name", STATEFUL_FAULTS)
def test_fault_trips_its_check_and_no_other(make_gateway: MakeGateway, http: httpx.Client,
                                            name: str) -> None:
    gateway = make_gateway(faults=(name,))
    with key_admin(http, target_for(gateway)) as admin:
        found = {f.check_id for f in lifecycle(admin)}
        found |= {f.check_id for f in reconcile(admin).findings}
    assert found == set(CATALOGUE[name].trips)
    assert created_keys_alive(gateway) == []


def test_every_stateful_check_has_a_fault() -> None:
    tripped = {t for n in STATEFUL_FAULTS for t in CATALOGUE[n].trips}
    assert tripped == {"management.created_key", "management.permissions",
                       "management.disabled_key", "management.expired_key",
                       "management.deleted_key", "management.admin_grant",
                       "management.list_isolation", "management.admin_only",
                       "billing.charge", "billing.stream", "billing.refused", "billing.max_fee"}


def test_keys_are_deleted_even_when_a_case_fails(make_gateway: MakeGateway,
                                                 http: httpx.Client) -> None:
    gateway = make_gateway()
    with pytest.raises(RuntimeError), key_admin(http, target_for(gateway)) as admin:
        admin.create()
        admin.create(admin_key="gp-admin-0002")
        assert len(created_keys_alive(gateway)) == 2
        raise RuntimeError("a case failed halfway")
    assert created_keys_alive(gateway) == []


def test_a_run_creates_at_most_ten_keys(make_gateway: MakeGateway, http: httpx.Client) -> None:
    gateway = make_gateway()
    with key_admin(http, target_for(gateway)) as admin:
        for _ in range(MAX_KEYS_PER_RUN):
            admin.create()
        with pytest.raises(UsageError, match="at most 10 keys"):
            admin.create()
    assert created_keys_alive(gateway) == []


def test_remote_targets_need_both_switches() -> None:
    remote = Target("https://gateway.example", "ohmygpt", "k", management=True,
                    admin_key="a", name="prod")
    assert "allow_management: true" in remote.management_refusal
    allowed = replace(remote, allow_management=True)
    assert allowed.management_refusal == ""
    assert "allow_spend" in allowed.spend_refusal
    assert replace(allowed, allow_spend=50.0).spend_refusal == ""
    assert "declares no management API" in Target("http://127.0.0.1:1", "ohmygpt", "k") \
        .management_refusal


@pytest.mark.parametrize("select", ["management", "billing"])
def test_selecting_a_refused_category_is_a_usage_error(select: str) -> None:
    remote = Target("https://gateway.example", "ohmygpt", "k", management=True,
                    admin_key="a", name="prod", allow_management=select == "billing")
    with pytest.raises(UsageError, match="allow_"):
        run_conformance(remote, ConformanceOptions(select=select))


@pytest.mark.slow
def test_a_plain_target_runs_neither_category(make_gateway: MakeGateway) -> None:
    gateway = make_gateway()
    plain = target_for(gateway, management=False)
    with pytest.raises(UsageError, match="declares no management API"):
        run_conformance(plain, ConformanceOptions(select="management or auth"))
    others = " or ".join(("endpoint", "stream", "errors", "legacy_prompt", "golden", "fuzz",
                          "sdk"))
    result = run_conformance(plain, ConformanceOptions(select=f"not ({others})"))
    assert result.tests and all("test_auth" in node for node, _ in result.tests)
    assert created_keys_alive(gateway) == []


def test_targets_file_management_switches(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text("targets:\n  prod:\n    base_url: https://gw.example\n    profile: ohmygpt\n"
                    "    api_key_env: GW_KEY\n    management: true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="admin_key_env"):
        load_targets(path)
    path.write_text(path.read_text(encoding="utf-8") + "    admin_key_env: GW_ADMIN\n"
                    "    allow_management: true\n    allow_spend: 25\n", encoding="utf-8")
    monkeypatch.setenv("GW_KEY", "k-1")
    monkeypatch.setenv("GW_ADMIN", "admin-secret-1")
    target = load_targets(path)["prod"].resolve()
    assert target.management and target.allow_management and target.allow_spend == 25
    assert "admin-secret-1" in target.secrets and "admin-secret-1" not in repr(target)


@pytest.mark.slow
def test_dry_run_states_the_worst_case_spend() -> None:
    import io

    from gateprobe.core.console import Console
    from gateprobe.engine.dryrun import conformance

    remote = Target("https://gateway.example", "ohmygpt", "k", management=True, admin_key="a",
                    name="prod", allow_management=True, allow_spend=40.0)
    out = io.StringIO()
    assert conformance(remote, "management or billing", 64, None, None,
                       Console(out, io.StringIO())) == 0
    text = out.getvalue()
    assert "worst-case spend: 40 credits" in text and "at most 10 keys" in text
    out = io.StringIO()
    conformance(replace(remote, allow_spend=None), "billing", 64, None, None,
                Console(out, io.StringIO()))
    assert "refused: not loopback" in out.getvalue()


def test_billing_stops_at_the_spend_allowed(make_gateway: MakeGateway,
                                            http: httpx.Client) -> None:
    """The spend allowed caps every billing key (as max_fee) and ends the run once spent."""
    gateway = make_gateway()
    with key_admin(http, target_for(gateway)) as admin:
        result = reconcile(admin, spend=50.0)
    assert "50" in result.stopped and result.findings == []
    assert 50 <= sum(r.seen for r in result.rows) < 50 + 500  # one request past it at most
    assert [r.kind for r in result.rows][-1] == "refused (400)"  # no burst, no cap case
    assert created_keys_alive(gateway) == []


def test_stateful_run_is_clean_bounded_and_leaves_no_key(make_gateway: MakeGateway,
                                                         http: httpx.Client) -> None:
    pytest.importorskip("schemathesis")
    from gateprobe.engine.management import run_workflow

    gateway = make_gateway()
    with key_admin(http, target_for(gateway)) as admin:
        for _ in range(MAX_KEYS_PER_RUN - 1):
            admin.create()
        assert run_workflow(admin) == []
        assert len(admin.created) <= MAX_KEYS_PER_RUN
    assert created_keys_alive(gateway) == []


def test_stateful_run_reports_what_the_spec_forbids(make_gateway: MakeGateway,
                                                    http: httpx.Client, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a spec that says a created key is a number, each creation is a finding."""
    pytest.importorskip("schemathesis")
    from gateprobe.core import specs
    from gateprobe.engine.management import run_workflow

    spec = specs.spec_path("management").read_text(encoding="utf-8")
    changed = spec.replace("data: {type: string, minLength: 8}", "data: {type: integer}")
    assert changed != spec
    (tmp_path / "management.yaml").write_text(changed, encoding="utf-8")
    (tmp_path / "openai.yaml").write_text(  # the links' use-the-key step is defined there
        specs.spec_path("openai").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(specs, "spec_path", lambda name: tmp_path / f"{name}.yaml")
    gateway = make_gateway()
    with key_admin(http, target_for(gateway)) as admin:
        found = run_workflow(admin)
    assert found and all(f.check_id.startswith("fuzz.") for f in found), found
    assert created_keys_alive(gateway) == []


def test_report_html_shows_the_billing_table(tmp_path: Path) -> None:
    from gateprobe.engine.report.html import render

    summary = {"ok": True, "command": "run", "started": "now", "duration_s": 1.0,
               "exit_code": 0, "gateprobe": "0", "phases": [], "findings": [],
               "target": {"name": "embedded", "base_url": "http://127.0.0.1:1",
                          "profile": "ohmygpt"}}
    assert "Billing" not in render(summary, tmp_path)
    (tmp_path / "billing.json").write_text(json.dumps({"stopped": "", "rows": [
        {"kind": "chat stream", "status": 200, "input_tokens": 5, "output_tokens": 16,
         "expected": 26.5, "seen": 53.0, "difference": 26.5}]}), encoding="utf-8")
    page = render(summary, tmp_path)
    assert "<h2>Billing (credits)</h2>" in page
    cells = re.sub(r' data-label="[^"]*"', "", page)  # narrow screens label each cell
    assert "<td>chat stream</td><td>200</td><td>5</td><td>16</td><td>26.50</td><td>53.00</td>" \
        "<td>26.50</td>" in cells


def test_the_client_waits_out_a_qps_429(make_gateway: MakeGateway, http: httpx.Client) -> None:
    from gateway_fixtures import FakeClock

    gateway = make_gateway(management_qps=True)
    clock = FakeClock()
    gateway.state.store.clock = clock
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    with key_admin(http, target_for(gateway)) as admin:
        admin.sleep = sleep
        assert admin.keys() and admin.keys()  # the second listing meets 1 QPS, then passes
    assert waits == [1.0]


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["anthropic", "openai"])
def test_both_categories_pass_under_the_other_profiles(make_gateway: MakeGateway,
                                                       profile: str) -> None:
    gateway = make_gateway(profile=profile)
    result = run_conformance(target_for(gateway, profile=profile),
                             ConformanceOptions(select="management or billing"))
    assert result.findings == [] and result.outcomes["passed"] == 6, result.tests
    assert created_keys_alive(gateway) == []
