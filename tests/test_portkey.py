"""The propagation category against a real gateway: the Portkey AI gateway (npm
``@portkey-ai/gateway``, pinned in tests/gateways/package.json) in front of gateprobe's upstream.

Portkey routes per request: ``x-portkey-provider`` names the provider's wire and
``x-portkey-custom-host`` its address; the client's key is the provider key (bring your own
key: declared as the documented deviation ``forwards_client_key``), and
``x-portkey-request-timeout`` (ms) its upstream timeout (declared ``timeout_s``). Its findings
must equal ``REVIEWED``, each justified there. Skipped, saying so, where node or the npm
install (``npm ci --prefix tests/gateways``) is absent.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.test_propagation import CLIENT_KEY, outcomes, upstream  # noqa: F401  (fixture)

from gateprobe.targets import Propagation, Target, Upstream

GATEWAYS = Path(__file__).resolve().parent / "gateways"
START = GATEWAYS / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
TIMEOUT_MS = 2000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def portkey() -> Iterator[str]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not START.exists():
        pytest.skip("Portkey is not installed: npm ci --prefix tests/gateways")
    port = _free_port()
    process = subprocess.Popen(["node", str(START), f"--port={port}"], cwd=GATEWAYS,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(url + "/", timeout=1.0)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("Portkey did not start within 30 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def portkey_target(gateway: str, upstream_url: str, protocol: str) -> Target:
    host, _, port = upstream_url.removeprefix("http://").rpartition(":")
    return Target(gateway, "openai" if protocol == "openai" else "anthropic", CLIENT_KEY,
                  upstream=Upstream(host, int(port), protocol),
                  headers={"x-portkey-provider": protocol,
                           "x-portkey-custom-host": upstream_url + "/v1",
                           "x-portkey-request-timeout": str(TIMEOUT_MS)},
                  propagation=Propagation(frozenset({"forwards_client_key"}),
                                          timeout_s=TIMEOUT_MS / 1000, cancel_within_s=3.0))


STREAMS_FAIL = ("the gateway does not relay an uncut upstream stream either (status 500: "
                "'{\"status\":\"failure\",\"message\":\"Something went wrong\"}')")
REVIEWED: dict[str, dict[str, list[str] | str]] = {
    # Every streamed request through Portkey 1.15.2 on Node answers 500 "Something went
    # wrong", whatever the upstream sends (its log: "TypeError: immutable" in
    # ResponseService.updateHeaders). The upstream served each stream whole (its record: 200,
    # finished); a bare Python upstream with exact `text/event-stream` headers gets the same.
    # Portkey's defect, not the request's: it appends x-portkey-* headers to a Response built
    # around the upstream fetch Response's immutable headers (@hono/node-server's lightweight
    # Response keeps them; Portkey-AI/gateway#1389, #1550; pinning @hono/node-server to 1.14.2
    # does not help for streams). So the stream cases cannot tell: inconclusive.
    "openai": {
        "propagation.truncation": f"inconclusive: {STREAMS_FAIL}",
        "propagation.retries": f"inconclusive: {STREAMS_FAIL}",
        # Portkey copies every upstream response header to the client (its response handler
        # builds the answer from Object.fromEntries(upstream.headers)): the upstream's own
        # x-upstream-internal and x-upstream-url (a private 10.x address) reach the client.
        "propagation.header_leak": ["propagation upstream-only headers"],
        # After answering the client 500 (the stream failure above), Portkey never cancels the
        # upstream fetch: the upstream stream stays open, generating, after the client is
        # gone.
        "propagation.cancel": ["propagation client hangs up mid-stream"],
    },
    "anthropic": {
        "propagation.truncation": f"inconclusive: {STREAMS_FAIL}",
        "propagation.retries": f"inconclusive: {STREAMS_FAIL}",
        "propagation.header_leak": ["propagation upstream-only headers"],
        "propagation.cancel": ["propagation client hangs up mid-stream"],
        # On /v1/messages Portkey answers upstream errors in OpenAI's envelope plus a
        # "provider" key ({"error": {"message": "anthropic error: ...", "type":
        # "overloaded_error", ...}, "provider": "anthropic"}), not Anthropic's {"type":
        # "error", "error": {...}}: an Anthropic client cannot read the error's type. The
        # statuses themselves are kept (529, 503, 500; 408 at its request timeout).
        "propagation.status": ["propagation upstream 529", "propagation upstream 503",
                               "propagation upstream 500",
                               "propagation upstream slower than the gateway's timeout"],
    },
}
"""Portkey's findings (the cases that failed) and inconclusive cases, per upstream protocol;
every other case passes (retry_after, key_isolation as declared, usage, params)."""


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_portkey_findings_are_the_reviewed_ones(protocol: str, portkey: str,
                                                upstream: str) -> None:  # noqa: F811
    results = outcomes(portkey_target(portkey, upstream, protocol), upstream)
    seen = {check_id: result if isinstance(result, str) else
            sorted(dict.fromkeys(f.case for f in result))
            for check_id, result in results.items() if result}
    reviewed = {k: v if isinstance(v, str) else sorted(v)
                for k, v in REVIEWED[protocol].items()}
    assert seen == reviewed
    for check_id, result in results.items():
        assert isinstance(result, str) or all(f.check_id == check_id for f in result)
