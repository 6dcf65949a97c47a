#!/usr/bin/env bash
# The Python binding's pytest suite, in a virtual environment under target/
# (created on first use), against the library built by `cargo build`.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/py-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q "pytest>=7,<9"
fi
# A stale build/ from an earlier install must not be reused.
rm -rf bindings/python/build bindings/python/*.egg-info
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps ./bindings/python
rm -rf bindings/python/build bindings/python/*.egg-info
export TRODO_LIB="$PWD/target/debug/libtrodo.so"
[ "$(uname)" = Darwin ] && export TRODO_LIB="$PWD/target/debug/libtrodo.dylib"
# Run from the tests folder so the installed package, not the source tree, is imported.
cd bindings/python/tests
exec "../../../$venv/bin/python" -m pytest -q -p no:cacheprovider .
