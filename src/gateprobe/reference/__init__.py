"""The reference gateway: a faithful, fast, deterministic double of the documented gateway.

Only ``gateprobe serve``, ``gateprobe run`` and the tests import this package (ARCHITECTURE.md).
"""

from __future__ import annotations

from gateprobe.reference.app import build_app
from gateprobe.reference.config import GatewayConfig, Timing
from gateprobe.reference.server import RunningGateway, Tls, running_gateway, serve

__all__ = ["GatewayConfig", "RunningGateway", "Timing", "Tls", "build_app", "running_gateway",
           "serve"]
