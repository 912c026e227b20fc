"""The README's first command, many times in a row: does it pass every time?

    .venv/bin/python benchmarks/run_repeatability.py [--runs 20] [--keep DIR]

Each run is `gateprobe run` exactly as a new user types it (the embedded reference gateway,
the default suites, a fresh empty folder as the working directory, a fresh fuzz seed each
time), one after the other. It prints a row per run (exit code, wall seconds, findings,
the fuzz seed it printed) and a closing line: every run must exit 0. A failing run's seed
replays it: `gateprobe run --fuzz-seed N`. Not a test: it takes about a minute a run.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GATEPROBE = Path(sys.executable).parent / "gateprobe"


def one_run(folder: Path) -> tuple[int, float, int | None, str]:
    """(exit code, seconds, findings or None when no summary, fuzz seed or '?')."""
    t0 = time.monotonic()
    done = subprocess.run([str(GATEPROBE), "run"], cwd=folder, capture_output=True,
                          text=True, timeout=1800)
    seconds = time.monotonic() - t0
    (folder / "stdout.txt").write_text(done.stdout + done.stderr)
    seed = re.search(r"fuzz seed (\d+)", done.stdout)
    summaries = sorted(folder.glob("reports/*-run/summary.json"))
    findings = None
    if summaries:
        findings = len(json.loads(summaries[-1].read_text())["findings"])
    return done.returncode, seconds, findings, seed.group(1) if seed else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="keep each run's folder here")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="gp-repeat-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"{'run':>4} {'exit':>4} {'seconds':>8} {'findings':>8}  fuzz seed")
    failed = []
    for n in range(1, args.runs + 1):
        folder = base / f"run-{n:02d}"
        folder.mkdir()
        code, seconds, findings, seed = one_run(folder)
        print(f"{n:>4} {code:>4} {seconds:>8.1f} {'-' if findings is None else findings:>8}"
              f"  {seed}", flush=True)
        if code != 0:
            failed.append(f"run {n} (seed {seed}, output in {folder / 'stdout.txt'})")
    print(f"{args.runs - len(failed)} of {args.runs} runs exited 0"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
