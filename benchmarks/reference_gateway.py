"""Benchmark of the reference gateway: throughput, streams held, send-time accuracy.

    .venv/bin/python benchmarks/reference_gateway.py [--quick]

Starts ``gateprobe serve`` as one server process (uvloop and httptools where installed) and
loads it from this process over loopback. It measures:

1. non-streaming requests/s per endpoint, with a zero generation schedule so the number is the
   server's own cost (target on the 2-core machine: >= 2,000 req/s on chat completions);
2. concurrent streams held: N streaming requests opened at once must all be in flight together
   (the gateway's own in-flight count says so) and all complete in full (target: 500);
3. the gap between each event's scheduled and actual send time, read from the gateway's own
   traces, at 200 concurrent streams (target: p99 < 2 ms).

The load generator is a minimal HTTP/1.1 client on raw asyncio streams rather than httpx:
httpx costs several times more CPU per request than the server does, and on two cores the
client would be what is measured. The server and the client share the machine's two cores, so
every number here is a lower bound for the server alone. Quote ratios from one run: the
machine is noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from gateprobe.core.metrics import summarize

try:
    import uvloop
except ImportError:  # pragma: no cover - platform without uvloop
    uvloop = None  # type: ignore[assignment]

KEY = "gp-premium-0001"


@dataclass
class Server:
    proc: subprocess.Popen[str]
    host: str
    port: int

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_server(*flags: str) -> Server:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateprobe", "serve", "--port", "0", *flags],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    host, port = line.rsplit("//", 1)[1].strip().split(":")
    return Server(proc, host, int(port))


class Conn:
    """One keep-alive HTTP/1.1 connection; just enough protocol for this benchmark."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: Sequence[tuple[str, str]] = ()) -> tuple[int, dict[str, str], bytes]:
        head = [f"{method} {path} HTTP/1.1", "host: bench", f"content-length: {len(body)}",
                "content-type: application/json", *(f"{k}: {v}" for k, v in headers)]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        hdrs = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if "content-length" in hdrs:
            data = await self.reader.readexactly(int(hdrs["content-length"]))
        else:  # chunked: a streaming response
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            data = b"".join(parts)
        return status, hdrs, data

    def close(self) -> None:
        self.writer.close()


AUTH = [("authorization", f"Bearer {KEY}"), ("anthropic-version", "2023-06-01")]
BODIES = {
    "chat": ("/v1/chat/completions", {"model": "gpt-3.5-turbo", "max_tokens": 16,
                                      "messages": [{"role": "user", "content": "Say test"}]}),
    "messages": ("/v1/messages", {"model": "claude-3-sonnet", "max_tokens": 16,
                                  "messages": [{"role": "user", "content": "Say test"}]}),
    "complete": ("/v1/complete", {"model": "claude-2", "max_tokens_to_sample": 16,
                                  "prompt": "\n\nHuman: Say test\n\nAssistant:"}),
}


async def throughput(host: str, port: int, name: str, seconds: float,
                     connections: int) -> tuple[float, int]:
    path, body = BODIES[name]
    raw = json.dumps(body).encode()
    conns = [await Conn.open(host, port) for _ in range(connections)]
    done = errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(conn: Conn) -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            status, _, _ = await conn.request("POST", path, raw, AUTH)
            done += 1
            errors += status != 200

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return done / elapsed, errors


async def streams(host: str, port: int, n: int, max_tokens: int,
                  stagger_ms: float = 0.0) -> dict[str, float]:
    """Open n streams (all at once, or spread evenly over ``stagger_ms``); report how many were
    in flight together and the error of every event's send time against its schedule."""
    path, body = BODIES["chat"]
    raw = json.dumps({**body, "stream": True, "max_tokens": max_tokens}).encode()
    conns = [await Conn.open(host, port) for _ in range(n)]
    probe = await Conn.open(host, port)
    peak = 0
    finished = False

    async def watch() -> None:
        nonlocal peak
        while not finished:
            _, _, data = await probe.request("GET", "/_gateprobe/health")
            peak = max(peak, json.loads(data)["inflight"])
            await asyncio.sleep(0.05)

    async def one(k: int, conn: Conn) -> tuple[str, bool]:
        if stagger_ms:
            await asyncio.sleep(stagger_ms / 1000 * k / n)
        status, hdrs, data = await conn.request("POST", path, raw, AUTH)
        return hdrs.get("x-request-id", ""), status == 200 and data.endswith(b"data: [DONE]\n\n")

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(*(one(k, c) for k, c in enumerate(conns)))
    finished = True
    await watcher
    errors_ms: list[float] = []
    for request_id, _ in results:
        _, _, data = await probe.request("GET", f"/_gateprobe/traces/{request_id}")
        trace = json.loads(data)
        errors_ms += [(e["sent_ns"] - e["scheduled_ns"]) / 1e6 for e in trace["events"]]
    for c in [*conns, probe]:
        c.close()
    stats = summarize(errors_ms)
    return {"streams": n, "complete": sum(ok for _, ok in results), "peak_inflight": peak,
            "events": stats["count"], "p50": stats["p50"], "p99": stats["p99"],
            "max": stats["max"]}


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    print(f"\n{title}")
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for r in cells:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer streams")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else 10.0
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, client loop "
          f"{'uvloop' if uvloop else 'asyncio'}; one server process")

    server = start_server("--ttft-ms", "0", "--itl-ms", "0")
    try:
        rows = []
        for name in BODIES:
            for conns in (16, 64):
                rps, errors = asyncio.run(throughput(server.host, server.port, name, seconds,
                                                     conns))
                rows.append([name, conns, f"{rps:,.0f}", errors])
        table(f"1. non-streaming throughput ({seconds:g} s each, zero generation time; "
              "target >= 2,000 req/s)", ["endpoint", "connections", "req/s", "errors"], rows)
    finally:
        server.stop()

    cases = [(50, 500), (200, 500), (200, 0)] if args.quick else \
        [(50, 500), (200, 500), (200, 0), (500, 500)]
    rows = []
    for spin in ("2", "0"):
        server = start_server("--ttft-ms", "200", "--itl-ms", "20", "--spin-ms", spin)
        try:
            for n, stagger in cases:
                cpu0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
                s = asyncio.run(streams(server.host, server.port, n, 40, stagger))
                busy = (cpu_seconds(server.proc.pid) - cpu0) / (time.perf_counter() - t0)
                rows.append([spin, n, "at once" if not stagger else f"over {stagger} ms",
                             int(s["complete"]), int(s["peak_inflight"]), int(s["events"]),
                             f"{s['p50']:.3f}", f"{s['p99']:.3f}", f"{s['max']:.3f}",
                             f"{busy:.0%}"])
        finally:
            server.stop()
    table("2-3. concurrent streams (TTFT 200 ms, ITL 20 ms, 40 tokens, 1 s each): all held "
          "together?, and send time minus scheduled time in ms (target p99 < 2 ms at 200)",
          ["spin ms", "streams", "started", "complete", "peak in flight", "events", "p50 ms",
           "p99 ms", "max ms", "server CPU"], rows)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
