#!/usr/bin/env bash
# Regenerate requirements/dev.txt, the lock CI and the README's test command install: every
# package of gateprobe[dev] pinned with its hashes, resolved from pyproject.toml's ranges.
# pyproject.toml keeps ranges for users; this file is what makes a red CI reproducible.
#   bash scripts/lock.sh                            keep the pins that still fit the ranges
#   bash scripts/lock.sh --upgrade                  the newest releases the ranges allow
#   bash scripts/lock.sh --upgrade-package openai   one package moved, the rest kept
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.8  # the resolver is pinned too: a newer one may resolve the same ranges differently
tool=$(mktemp -d)
trap 'rm -rf "$tool"' EXIT
python3 -m venv "$tool/venv"
"$tool/venv/bin/pip" install -q "uv==$UV_VERSION" 2>&1 | grep -v "is ignored" >&2 || true
# --universal: one lock for every platform and Python >= 3.11 (markers where they differ).
"$tool/venv/bin/uv" pip compile pyproject.toml --extra dev --generate-hashes --universal \
    --python-version 3.11 --no-header --quiet --output-file requirements/dev.txt "$@"
echo "requirements/dev.txt: $(grep -c '^[a-z0-9]' requirements/dev.txt) packages pinned" >&2
