"""The reference gateway's own metrics, in Prometheus' text format (``GET /_gateprobe/metrics``).

What a soak (``gateprobe load soak --metrics-url``) scrapes from a gateway to tell a leak from
a plateau: the process's resident memory, its open connections and the requests it served. The
names are the ones real exporters use where one exists (``process_resident_memory_bytes`` is
what every ``prometheus_client`` process exports, LiteLLM's among them), so a soak reads a real
gateway's endpoint the same way.

Resident memory is the process's own (``/proc/self/statm``); under the ``memory-leak`` fault
the leak is simulated, added to it and shown apart (``gateprobe_reference_leaked_bytes``):
allocating it for real would take the test machine's memory with it.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable, Sized

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from gateprobe.reference.call import GatewayState
from gateprobe.reference.faults import LEAK_BYTES, MEMORY_LEAK

MEMORY = "process_resident_memory_bytes"
CONNECTIONS = "gateprobe_reference_open_connections"
SERVED = "gateprobe_reference_requests_served"
CONNECTIONS_KEY = "gateprobe.connections"
"""Scope key of the server's set of open connections (``server.ArrivalStampingProtocol`` puts
it there; under another server the in-flight requests stand in for it)."""


def resident_bytes() -> int:
    """This process's resident memory now (``/proc/self/statm``), or its peak where there is
    no ``/proc`` (``getrusage``: kilobytes on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if os.uname().sysname == "Darwin" else peak * 1024


class GatewayCollector(Collector):
    """The metrics of one gateway, read when scraped."""

    def __init__(self, state: GatewayState, connections: Sized | None) -> None:
        self.state = state
        self.connections = connections

    def leaked(self) -> int:
        """The ``memory-leak`` fault's simulated bytes (0 without it)."""
        leaking = MEMORY_LEAK.name in self.state.config.faults
        return self.state.served * LEAK_BYTES if leaking else 0

    def collect(self) -> Iterable[Metric]:
        """Resident memory, open connections, requests served (and the simulated leak)."""
        leaked = self.leaked()
        yield GaugeMetricFamily(MEMORY, "Resident memory size in bytes.",
                                value=resident_bytes() + leaked)
        yield GaugeMetricFamily("gateprobe_reference_leaked_bytes", "What the memory-leak "
                                "fault adds to the resident memory (simulated).", value=leaked)
        open_now = len(self.connections) if self.connections is not None \
            else self.state.inflight
        yield GaugeMetricFamily(CONNECTIONS, "Client connections open now (in-flight requests "
                                "where the server does not say).", value=open_now)
        yield CounterMetricFamily(SERVED, "API requests answered with a success.",
                                  value=self.state.served)


async def metrics(request: Request) -> Response:
    """The gateway's metrics, in Prometheus' text format."""
    state: GatewayState = request.app.state.gateway
    collector = GatewayCollector(state, request.scope.get(CONNECTIONS_KEY))
    return Response(generate_latest(collector), media_type=CONTENT_TYPE_LATEST)
