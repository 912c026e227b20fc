"""Every transport fault through every conformance category, timed against the total timeout.

    .venv/bin/python benchmarks/transport_proof.py [--total-s 2] [FAULT ...]

The test suite (``tests/test_transport_faults.py``) runs every category, ``sdk`` and ``fuzz``
included, against a representative subset of the transport faults; this script runs all of
them, each as ``gateprobe conformance`` in its own process against a reference gateway started
with that one fault, and prints one row per fault: exit code, wall time as a multiple of the
total timeout, and whether the fault's declared check ids were reported. It exits 1 when a row
misses its checks, exits other than 1, or takes longer than ``RATIO`` totals.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateprobe.reference import Timing, running_gateway
from gateprobe.reference.config import default_keys_path, load_keys_file
from gateprobe.reference.faults import CATALOGUE

RATIO = 30
"""The bound the test suite states too (``CONFORMANCE_RATIO``)."""


def prove(fault: str, total_s: float) -> tuple[int, float, list[str]]:
    """Run the whole suite against a gateway with ``fault``: exit code, seconds, missed ids."""
    config = load_keys_file(default_keys_path()).config(
        timing=Timing(ttft_ms=5, itl_ms=1), faults=(fault,))
    env = {**os.environ, "GP_PROOF_KEY": "gp-vip-0001"}
    with running_gateway(config, log_level="critical") as gateway, \
            tempfile.TemporaryDirectory() as out:
        start = time.monotonic()
        code = subprocess.run(
            [sys.executable, "-m", "gateprobe", "conformance", "--base-url", gateway.base_url,
             "--api-key-env", "GP_PROOF_KEY", "--timeout-connect-s", "1",
             "--timeout-first-byte-s", "1", "--timeout-idle-s", "1",
             "--timeout-total-s", str(total_s), "--report-dir", out],
            env=env, capture_output=True, check=False).returncode
        took = time.monotonic() - start
        path = Path(out) / "conformance.json"
        found = {f["check_id"] for f in json.loads(path.read_text())["findings"]} \
            if path.exists() else set()
    return code, took, sorted(set(CATALOGUE[fault].trips) - found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-s", type=float, default=2.0)
    parser.add_argument("faults", nargs="*")
    args = parser.parse_args()
    faults = args.faults or [n for n, f in CATALOGUE.items() if f.proven_by == "transport"]
    failed = 0
    print(f"| fault | exit | seconds | x total ({args.total_s:g} s) | missed check ids |")
    print("| --- | --- | --- | --- | --- |")
    for fault in faults:
        code, took, missed = prove(fault, args.total_s)
        ratio = took / args.total_s
        failed += code != 1 or bool(missed) or ratio >= RATIO
        print(f"| {fault} | {code} | {took:.1f} | {ratio:.1f} | {', '.join(missed) or '-'} |",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
