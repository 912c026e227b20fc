"""Benchmark: Midjourney time-to-SUCCESS under concurrency, and what polling adds to it.

    .venv/bin/python benchmarks/mj_time_to_success.py [--quick] [--step-ms 40]

Starts the reference gateway in this process (a uvicorn thread on 127.0.0.1) with tasks that
move one stage per ``--step-ms`` (seven stages to SUCCESS), then, for each concurrency level,
that many threads each create an imagine task and poll it to its end through
``gateprobe.engine.tasks`` (the harness's own bounded poller), every ``--interval-ms``. Reported per
level: time from the creation request to the snapshot that said SUCCESS (p50, p95, max), polls
per task, and the task's own floor (seven stages: the gateway cannot finish sooner, and a
query never shows more than one stage past the last one it showed). The difference to the
floor is the polling's and the machine's cost. Numbers from one run on a shared 2-core
machine: quote ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from gateprobe.core.metrics import summarize
from gateprobe.core.targets import Target
from gateprobe.engine.runstate import RunState
from gateprobe.engine.tasks import Polling, create, poll
from gateprobe.reference import running_gateway
from gateprobe.reference.config import default_keys_path, load_keys_file
from gateprobe.reference.midjourney import STAGES


def one_task(target: Target, polling: Polling) -> tuple[float, int, str]:
    """(seconds to the end, polls, final status) of one task."""
    run = RunState()
    with httpx.Client(timeout=30) as http:
        start = time.perf_counter()
        _, task_id = create(http, target, run)
        if task_id is None:
            return float("nan"), 0, "NOT CREATED"
        polled = poll(http, target, run, task_id, polling)
        elapsed = time.perf_counter() - start
    last = json.loads(polled.events[-1].data) if polled.events[-1].type == "snapshot" else {}
    return elapsed, len(polled.events), str(last.get("status", "GAVE UP"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="levels 1 and 10 only")
    parser.add_argument("--step-ms", type=float, default=40.0)
    parser.add_argument("--interval-ms", type=float, default=20.0)
    args = parser.parse_args()
    levels = [1, 10] if args.quick else [1, 10, 50, 100]
    config = dataclasses.replace(load_keys_file(default_keys_path()).config(),
                                 task_step_ms=args.step_ms)
    polling = Polling(interval_s=args.interval_ms / 1000, deadline_s=60.0)
    floor_ms = (len(STAGES) - 1) * args.step_ms
    print(f"step {args.step_ms:g} ms, poll every {args.interval_ms:g} ms, floor "
          f"{floor_ms:g} ms to SUCCESS")
    print(f"{'tasks':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'polls/task':>10} "
          f"{'not SUCCESS':>11}")
    with running_gateway(config) as gateway:
        target = Target(gateway.base_url, "ohmygpt", "gp-vip-0001",
                        endpoints=frozenset({"midjourney"}))
        for level in levels:
            with ThreadPoolExecutor(max_workers=level) as pool:
                results = list(pool.map(lambda _: one_task(target, polling), range(level)))
            stats = summarize([r[0] * 1000 for r in results])
            polls = sum(r[1] for r in results) / len(results)
            bad = sum(r[2] != "SUCCESS" for r in results)
            print(f"{level:>6} {stats['p50']:>8.0f} {stats['p95']:>8.0f} {stats['max']:>8.0f} "
                  f"{polls:>10.1f} {bad:>11}")


if __name__ == "__main__":
    main()
