"""What a target does that it does not declare either way is information in the report,
never a finding: the documented gateway names Bearer only; a gateway that also takes the key
in ``x-api-key`` is not wrong unless its entry says it refuses it (``auth: [bearer]``)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gateprobe.commands.conformance_runner import ConformanceOptions, run_conformance
from gateprobe.core.console import Console
from gateprobe.core.targets import DEFAULT_MODELS, Target
from gateway_fixtures import FAST, MakeGateway


def _target(base_url: str, auth: frozenset[str] | None) -> Target:
    return Target(base_url, "ohmygpt", "gp-vip-0001", "GP_INFO_KEY", dict(DEFAULT_MODELS),
                  auth_styles=auth)


@pytest.mark.slow
@pytest.mark.parametrize(("faults", "said"), [((), "refused (status 401)"),
                                              (("accept-x-api-key",), "accepted (status 200)")])
def test_an_undeclared_auth_style_is_information(make_gateway: MakeGateway, tmp_path: Path,
                                                 faults: tuple[str, ...], said: str) -> None:
    gateway = make_gateway(timing=FAST, faults=faults)
    result = run_conformance(_target(gateway.base_url, None),
                             ConformanceOptions(select="auth", report_dir=tmp_path),
                             Console(io.StringIO(), io.StringIO()))
    assert result.exit_code == 0 and result.findings == []
    [line] = result.information
    assert "x-api-key instead of Bearer" in line and said in line and "auth:" in line


@pytest.mark.slow
def test_a_declared_refusal_is_judged(make_gateway: MakeGateway, tmp_path: Path) -> None:
    gateway = make_gateway(timing=FAST, faults=("accept-x-api-key",))
    result = run_conformance(_target(gateway.base_url, frozenset({"bearer"})),
                             ConformanceOptions(select="auth", report_dir=tmp_path),
                             Console(io.StringIO(), io.StringIO()))
    assert result.exit_code == 1 and result.information == []
    assert {f.check_id for f in result.findings} == {"auth.rejected"}
