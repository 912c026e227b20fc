"""A user's own locustfile (``gateprobe load latency --locustfile``) through the public load
API (``gateprobe.load``): the example of ``docs/howto/load-at-scale.md``, run as written."""

from __future__ import annotations

import importlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateprobe.cli import main
from gateprobe.core.console import Console
from gateprobe.reference import Timing
from gateway_fixtures import MakeGateway

DOC = Path(__file__).resolve().parents[2] / "docs" / "howto" / "load-at-scale.md"


def example() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Your own locustfile"):]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "the doc's example locustfile"
    return found.group(1)


def gateprobe(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Console(out, err))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_the_documented_locustfile_runs_and_is_judged(make_gateway: MakeGateway,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=10, itl_ms=1))
    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")
    locustfile = tmp_path / "my_workload.py"
    locustfile.write_text(example())
    slo = tmp_path / "slo.yaml"
    slo.write_text("ttft_p95_ms: 5000\nerror_rate_max: 0\nstream_findings_max: 0\n")
    code, out, err = gateprobe("load", "latency", "--base-url", gateway.base_url,
                               "--api-key-env", "GP_TEST_KEY", "--locustfile", str(locustfile),
                               "--users", "2", "--duration", "3", "--max-tokens", "8",
                               "--slo", str(slo), "--report-dir", str(tmp_path / "run"))
    assert code == 0, out + err
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text()
               .splitlines()]
    assert samples and {s["endpoint"] for s in samples} <= {"/v1/chat/completions",
                                                           "/v1/messages"}
    assert all(s["ok"] and s["ttft_ms"] is not None for s in samples)
    assert '"ChatUser"' in (tmp_path / "run" / "locust.log").read_text()  # its users ran
    assert json.loads((tmp_path / "run" / "verdict.json").read_text())["requests"] == \
        len(samples)
    assert (tmp_path / "run" / "report.html").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["rate-limits", "--locustfile", __file__], "--locustfile is for latency and tasks"),
    (["latency", "--locustfile", "/nonexistent/my.py"], "no such Python file"),
])
def test_a_locustfile_it_cannot_use_is_refused(argv: list[str], message: str) -> None:
    code, _, err = gateprobe("load", *argv)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.slow
def test_importing_the_package_does_not_import_locust() -> None:
    """The public names resolve on first use only: a process importing ``gateprobe.commands.load``
    (the pytest process, the CLI) never gets Locust's gevent."""
    api = importlib.import_module("gateprobe.load")
    assert set(api.PUBLIC) == {"session", "StreamingUser", "TaskUser"}
    with pytest.raises(AttributeError):
        _ = api.Nothing
    probe = ("import sys, gateprobe.load, gateprobe.commands.load.runner; "
             "print('locust' in sys.modules, 'gevent' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.split() == ["False", "False"]
