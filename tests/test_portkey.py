"""The propagation category against a real gateway: the Portkey AI gateway (npm
``@portkey-ai/gateway``, pinned in tests/gateways/package.json) in front of gateprobe's upstream.

Portkey routes per request: ``x-portkey-provider`` names the provider's wire and
``x-portkey-custom-host`` its address; the client's key is the provider key (bring your own
key: declared as the documented deviation ``forwards_client_key``), and
``x-portkey-request-timeout`` (ms) its upstream timeout (declared ``timeout_s``). Its findings
must equal ``REVIEWED``, each justified there. Skipped, saying so, where node or the npm
install (``npm ci --prefix tests/gateways``) is absent.

"Something went wrong": installed as npm resolves it today, Portkey 1.15.2 answers every
streamed request with 500 ``{"status":"failure","message":"Something went wrong"}`` (its log:
``TypeError: immutable`` in ``ResponseService.updateHeaders``), whatever the upstream's
headers (a bare upstream with exact ``text/event-stream`` headers too), while the upstream
served the stream whole: Portkey's defect, not the request's. It declares
``@hono/node-server: ^1.3.3``; from 1.14 on that package's lightweight Response keeps the
upstream fetch's immutable headers, to which Portkey then appends its ``x-portkey-*`` ones
(Portkey-AI/gateway#1389, #1550; 1.14.2 fails streams too, 1.12.2 works). The lock file holds
it at 1.12.2 (``overrides``) so that the streamed cases judge Portkey's streaming itself.
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

from gateprobe.core.targets import Propagation, Target, Upstream

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


REVIEWED: dict[str, dict[str, list[str]]] = {
    "openai": {
        # An upstream reset mid-stream reaches the client as a normal end of an unterminated
        # stream: Portkey's stream pump catches the read error, logs "Error during stream
        # processing" and closes its writer as if the upstream had finished. The client sees
        # no error (the openai SDK ends the iteration quietly: a partial answer taken whole).
        # An upstream that closed cleanly without its terminator is relayed as it is: fine.
        "propagation.truncation": ["propagation upstream stream reset after 3 events"],
        # Portkey copies every upstream response header to the client (its response handler
        # builds the answer from Object.fromEntries(upstream.headers)): the upstream's own
        # x-upstream-internal and x-upstream-url (a private 10.x address) reach the client.
        "propagation.header_leak": ["propagation upstream-only headers"],
        # The client closes the stream after 3 events; the upstream request stays open (it
        # still was after 15 s, measured): Portkey does not cancel its upstream fetch when
        # its client goes away, so the upstream keeps generating (and billing).
        "propagation.cancel": ["propagation client hangs up mid-stream"],
    },
    "anthropic": {
        "propagation.truncation": ["propagation upstream stream reset after 3 events"],
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
"""Portkey's findings (the cases that failed), per upstream protocol; every other case passes
(retry_after, key_isolation as declared, usage, params, retries: it does not retry)."""


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_portkey_findings_are_the_reviewed_ones(protocol: str, portkey: str,
                                                upstream: str) -> None:  # noqa: F811
    results = outcomes(portkey_target(portkey, upstream, protocol), upstream)
    seen = {check_id: result if isinstance(result, str) else
            sorted(dict.fromkeys(f.case for f in result))
            for check_id, result in results.items() if result}
    assert seen == {k: sorted(v) for k, v in REVIEWED[protocol].items()}
    for check_id, result in results.items():
        assert isinstance(result, str) or all(f.check_id == check_id for f in result)
