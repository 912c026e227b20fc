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
