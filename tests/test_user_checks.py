"""Checks of a user's own: loaded with ``--checks`` or from the ``gateprobe.checks`` entry
point, their findings join the run's; and a user's own pytest suite uses the plugin's fixtures.

Each run is a separate process, as a user runs it: a user module registers its checks in the
process-wide registry, which the project's own test process must not keep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway_fixtures import MakeGateway

CHECK_MODULE = '''
import gateprobe

@gateprobe.check("policy.no_retired_models", gateprobe.Severity.MEDIUM,
                 "the model list names no retired model")
def no_retired_models(ctx, ex):
    if ex.endpoint != "/v1/models" or ex.status != 200:
        return gateprobe.NOT_APPLICABLE
    if b'"gpt-3.5-turbo"' in ex.body:
        return [gateprobe.Finding("policy.no_retired_models", ex.endpoint,
                                  gateprobe.Severity.MEDIUM, "no retired model listed",
                                  "gpt-3.5-turbo is listed")]
    return []
'''


def gateprobe(*args: str, cwd: Path, pythonpath: Path | None = None,
              ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GP_USER_KEY": "gp-vip-0001"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-m", "gateprobe", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


def found(report: Path) -> set[str]:
    return {f["check_id"] for f in
            json.loads((report / "conformance.json").read_text())["findings"]}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["module name", "file path"])
def test_a_check_module_adds_its_finding(make_gateway: MakeGateway, tmp_path: Path,
                                         how: str) -> None:
    (tmp_path / "my_checks.py").write_text(CHECK_MODULE)
    gw = make_gateway()
    checks = "my_checks" if how == "module name" else str(tmp_path / "my_checks.py")
    result = gateprobe("conformance", "--base-url", gw.base_url, "--api-key-env", "GP_USER_KEY",
                       "--select", "endpoint", "--checks", checks, "--report-dir",
                       str(tmp_path / "report"), cwd=tmp_path)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert found(tmp_path / "report") == {"policy.no_retired_models"}


@pytest.mark.slow
def test_an_installed_entry_point_adds_its_finding(make_gateway: MakeGateway,
                                                   tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "my_gateway_checks-1.0.dist-info").mkdir(parents=True)
    (site / "my_gateway_checks-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: my-gateway-checks\nVersion: 1.0\n")
    (site / "my_gateway_checks-1.0.dist-info" / "entry_points.txt").write_text(
        "[gateprobe.checks]\nretired = my_gateway_checks\n")
    (site / "my_gateway_checks.py").write_text(CHECK_MODULE)
    gw = make_gateway()
    result = gateprobe("conformance", "--base-url", gw.base_url, "--api-key-env", "GP_USER_KEY",
                       "--select", "endpoint", "--report-dir", str(tmp_path / "report"),
                       cwd=tmp_path, pythonpath=site)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert found(tmp_path / "report") == {"policy.no_retired_models"}


@pytest.mark.slow
def test_a_module_that_does_not_import_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import no_such_package_here\n")
    result = gateprobe("conformance", "--dry-run", "--checks", "broken", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--checks broken" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_users_own_suite_uses_the_plugin_fixtures(make_gateway: MakeGateway,
                                                    tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text('''
from gateprobe.engine.cases import endpoint_cases

def test_models_are_served(gateprobe_target, judge):
    [case] = [c for c in endpoint_cases(gateprobe_target) if c.path == "/v1/models"]
    assert judge(case) == []
''')
    gw = make_gateway()
    env = {**os.environ, "GP_USER_KEY": "gp-vip-0001"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "test_mine.py", "--base-url", gw.base_url, "--api-key-env",
                             "GP_USER_KEY"], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
