#!/usr/bin/env bash
# Every benchmark, one table: the Rust harness (caller cost, floor, throughput,
# backlog, init) and the side-by-side against trodo-python. Not part of the
# tests: numbers are reported, never asserted. `scripts/bench.sh --quick` runs
# the Rust part at a tenth of the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
TRODO_PYTHON_VERSION=2.26.2

# The side-by-side loads the library as users install it (cargo-c).
scripts/install-local.sh target/install-prefix >/dev/null 2>&1
printf '%-58s %s\n' "measurement" "result"
printf '%-58s %s\n' "-----------" "------"
cargo bench --quiet --bench calls -- "$@" 2>/dev/null

venv=target/bench-venv
scripts/py-venv.sh "$venv" "trodo-python==$TRODO_PYTHON_VERSION"
TRODO_LIB="$PWD/target/install-prefix/lib/libtrodo.so" "$venv/bin/python" benches/side_by_side.py
