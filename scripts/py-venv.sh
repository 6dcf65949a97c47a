#!/usr/bin/env bash
# Usage: scripts/py-venv.sh VENV [PIP-REQUIREMENT...]
# Makes the virtual environment VENV on first use, installs the requirements,
# and (re)installs the trodo_native binding from bindings/python into it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$1
shift
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
fi
if [ $# -gt 0 ]; then
    "$venv/bin/python" -m pip install -q "$@"
fi
# A stale build/ from an earlier install must not be reused, nor left behind.
# The library itself is not built into it: callers point TRODO_LIB at theirs.
rm -rf bindings/python/build bindings/python/*.egg-info
TRODO_NATIVE_SKIP_LIBRARY=1 "$venv/bin/python" -m pip install -q --force-reinstall --no-deps ./bindings/python
rm -rf bindings/python/build bindings/python/*.egg-info
