"""Time to first audio byte of ``/v1/audio/speech``, measured against the reference gateway.

    .venv/bin/python benchmarks/speech_ttfb.py [--samples N] [--ttft-ms MS] [--itl-ms MS]

The reference sends an answer's first audio chunk at its configured time to first token and
the next ones an inter-token interval apart (chunked transfer), so the measured time to first
audio byte (TTFAB) must sit just above the configured TTFT, and the whole answer about
``chunks - 1`` intervals later. This measures both per ``response_format`` from a client on
loopback (httpx, sequential requests), and prints percentiles and the error against the
schedule. Numbers belong here, never in a test's assertion.
"""

from __future__ import annotations

import argparse
import time

import httpx

from gateprobe.core.metrics import percentile
from gateprobe.reference import Timing, running_gateway
from gateprobe.reference.config import SERVE_SPIN_MS, default_keys_path, load_keys_file

FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")


def measure(client: httpx.Client, base_url: str, fmt: str) -> tuple[float, float, int]:
    """(time to first audio byte ms, end-to-end ms, chunks) of one speech request."""
    body = {"model": "tts-1", "voice": "alloy", "response_format": fmt,
            "input": "Say test, slowly and clearly, please, for the benchmark."}
    start = time.perf_counter_ns()
    first, chunks = 0, 0
    with client.stream("POST", base_url + "/v1/audio/speech", json=body,
                       headers={"authorization": "Bearer gp-vip-0001"}) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            if chunk and not first:
                first = time.perf_counter_ns()
            chunks += 1
    end = time.perf_counter_ns()
    return (first - start) / 1e6, (end - start) / 1e6, chunks


def main() -> None:
    """Run the samples and print one line per format."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--ttft-ms", type=float, default=200.0)
    parser.add_argument("--itl-ms", type=float, default=20.0)
    args = parser.parse_args()
    config = load_keys_file(default_keys_path()).config(
        timing=Timing(ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, spin_ms=SERVE_SPIN_MS))
    with running_gateway(config) as gateway, httpx.Client(timeout=30) as client:
        print(f"speech TTFAB, {args.samples} sequential requests per format, configured TTFT "
              f"{args.ttft_ms:g} ms, ITL {args.itl_ms:g} ms")
        for fmt in FORMATS:
            runs = [measure(client, gateway.base_url, fmt) for _ in range(args.samples)]
            ttfab = [r[0] for r in runs]
            e2e = [r[1] for r in runs]
            print(f"{fmt:5} TTFAB p50 {percentile(ttfab, 50):7.1f} ms  p95 "
                  f"{percentile(ttfab, 95):7.1f} ms  (p50 error vs TTFT "
                  f"{percentile(ttfab, 50) - args.ttft_ms:+.1f} ms)  e2e p50 "
                  f"{percentile(e2e, 50):7.1f} ms  reads {runs[0][2]}")


if __name__ == "__main__":
    main()
