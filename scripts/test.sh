#!/usr/bin/env bash
# Runs every test: formatting and lints, the header check, the Rust tests,
# the C harness (natively and under valgrind), the Windows build with its C
# harness and Rust tests under wine, the Apple compile check (clippy for
# macOS and iOS), the language bindings, and the
# installs (cargo-c prefix, pkg-config, CMake, the Python wheel), the C
# harness under AddressSanitizer/UndefinedBehaviorSanitizer, the threaded
# Rust tests under ThreadSanitizer, src/ffi under Miri, and a few seconds of
# each fuzz target on its corpus.
# Usage: scripts/test.sh        (.ci/run calls exactly this)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Every runner's output is kept so the totals can be added up at the end.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
run_logged() { # name command...
    local name=$1
    shift
    "$@" 2>&1 | tee "$logs/$name.log"
}

command -v valgrind >/dev/null || scripts/need-apt.sh valgrind
command -v cc >/dev/null && command -v c++ >/dev/null || scripts/need-apt.sh gcc g++
# The header is checked with clang as well as gcc (tests/header.rs).
command -v clang >/dev/null || scripts/need-apt.sh clang
# The host-transport C program sends through libcurl.
[ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -e /usr/include/curl/curl.h ] ||
    scripts/need-apt.sh libcurl4-openssl-dev
export TRODO_REQUIRE_CLANG=1
python3 -c "import venv, ensurepip" 2>/dev/null || scripts/need-apt.sh python3-venv

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets -- -D warnings

step "cargo build (the shared library the C harness links)"
cargo build

step "cargo test (Rust tests, header check, C harness + valgrind)"
export TRODO_REQUIRE_VALGRIND=1
run_logged cargo cargo test

for extra in scripts/test-no-http.sh scripts/test-windows.sh scripts/check-apple.sh scripts/test-python.sh scripts/test-install.sh scripts/test-sanitizers.sh \
    scripts/test-tsan.sh scripts/test-miri.sh scripts/test-fuzz.sh scripts/test-swift.sh; do
    if [ -x "$extra" ]; then
        step "$extra"
        run_logged "$(basename "$extra" .sh)" "$extra"
    fi
done
# cargo test and pytest close with "N passed"; XCTest with "Executed N tests"
# (repeated per suite: the last one is the total).
passed=$(cat "$logs"/cargo.log "$logs"/test-no-http.log "$logs"/test-windows.log "$logs"/test-python.log "$logs"/test-install.log \
    "$logs"/test-sanitizers.log "$logs"/test-tsan.log "$logs"/test-miri.log "$logs"/test-fuzz.log 2>/dev/null |
    sed -n -E 's/.*(^|[^0-9])([0-9]+) passed.*/\2/p' | awk '{s+=$1} END {print s+0}')
swift_passed=$(sed -n -E 's/.*Executed ([0-9]+) tests?, with 0 failures.*/\1/p' "$logs"/test-swift.log 2>/dev/null | tail -n1)
passed=$((passed + ${swift_passed:-0}))
step "all tests passed"
echo "total: $passed passed, 0 failed"
