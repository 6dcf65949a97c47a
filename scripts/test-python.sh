#!/usr/bin/env bash
# The Python binding's pytest suite, in a virtual environment under target/
# (created on first use), against the library built by `cargo build`.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/py-venv
# celery, fastapi, uvicorn, gunicorn: the server and task-queue tests only
# (never dependencies of the package).
scripts/py-venv.sh "$venv" "pytest>=7,<9" "celery>=5.3,<6" "fastapi>=0.100,<1" \
    "uvicorn>=0.23,<1" "gunicorn>=21,<24"
export TRODO_LIB="$PWD/target/debug/libtrodo.so"
[ "$(uname)" = Darwin ] && export TRODO_LIB="$PWD/target/debug/libtrodo.dylib"
# Run from the tests folder so the installed package, not the source tree, is imported.
cd bindings/python/tests
exec "../../../$venv/bin/python" -m pytest -q -p no:cacheprovider .
