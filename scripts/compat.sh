#!/usr/bin/env bash
# Run the test suite at both ends of pyproject.toml's ranges, each in a venv of its own under
# ${COMPAT_DIR:-/tmp/gateprobe-compat}: "newest" (every dependency at the newest release the
# ranges allow today) and "oldest" (every direct dependency at the lowest its range allows:
# openai 1.92, anthropic 0.60, schemathesis 4.0, locust 2.30, httpx 0.27, ...). CI runs the
# lock; this is how a range is shown to hold, or to need moving.
#   bash scripts/compat.sh                      both ends, the whole suite
#   bash scripts/compat.sh oldest -- tests/test_findings.py -k sdk
set -uo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.8
ends=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do ends+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#ends[@]} -gt 0 ] || ends=(newest oldest)
root=${COMPAT_DIR:-/tmp/gateprobe-compat}
mkdir -p "$root"
[ -x "$root/uv/bin/uv" ] || { python3 -m venv "$root/uv" && \
    "$root/uv/bin/pip" install -q "uv==$UV_VERSION" 2>&1 | grep -v "is ignored" >&2; }
uv="$root/uv/bin/uv"
status=0
for end in "${ends[@]}"; do
    case "$end" in
        newest) resolution=highest ;;
        oldest) resolution=lowest-direct ;;
        *) echo "compat.sh: unknown end '$end' (newest or oldest)" >&2; exit 2 ;;
    esac
    venv="$root/$end"
    rm -rf "$venv"
    "$uv" venv -q --python python3 "$venv"
    if ! VIRTUAL_ENV="$venv" "$uv" pip install -q --resolution "$resolution" -e '.[dev]'; then
        echo "$end: the ranges do not install" >&2; status=1; continue
    fi
    echo "== $end: $(VIRTUAL_ENV="$venv" "$uv" pip freeze 2>/dev/null | grep -iE \
        '^(openai|anthropic|schemathesis|locust|httpx|starlette|pytest)==' | tr '\n' ' ')"
    "$venv/bin/python" -m pytest -p no:cacheprovider "$@" || status=1
done
exit $status
