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
rm -rf bindings/python/build bindings/python/*.egg-info
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps ./bindings/python
rm -rf bindings/python/build bindings/python/*.egg-info
