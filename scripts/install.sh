#!/usr/bin/env bash
# Set-up on a fresh machine, as the README's first two commands and .ci/run do it: a venv in
# .venv with exactly the pinned, hash-checked packages of requirements/dev.txt, then this
# checkout (editable) with no further download. A new release of any dependency changes
# nothing here until scripts/lock.sh is run and its result committed.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --require-hashes -r requirements/dev.txt 2>&1 | { grep -v "is ignored" || true; } >&2
.venv/bin/pip install -q --no-deps --no-build-isolation -e . 2>&1 | { grep -v "is ignored" || true; } >&2
# The real gateway the propagation tests put in front of gateprobe's upstream (Portkey, pinned
# with its lock file). Without Node.js those tests skip and say why.
if command -v npm >/dev/null; then
    npm ci --prefix tests/gateways --no-audit --no-fund --loglevel=error >&2
else
    echo "install.sh: no npm here: tests/test_portkey.py will skip" >&2
fi
