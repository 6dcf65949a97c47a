#!/usr/bin/env bash
# The Rust tests that run the library's threads hardest (delivery: eight
# threads of callers against the worker, writer and adopter; server mode's
# 8 threads x 1 000 users over the delivery lanes; processes; identity and
# groups), under ThreadSanitizer, with the standard library
# rebuilt instrumented (-Zbuild-std), so a data race or a misordered atomic
# fails them. Needs the nightly toolchain with rust-src (added when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component list --toolchain nightly --installed 2>/dev/null | grep '^rust-src' >/dev/null ||
    rustup component add --toolchain nightly rust-src
target=$(rustc -vV | sed -n 's/^host: //p')
export TSAN_OPTIONS=halt_on_error=1
RUSTFLAGS="-Zsanitizer=thread" cargo +nightly test --quiet -Zbuild-std --target "$target" \
    --target-dir target/tsan --test delivery --test users --test processes --test identity --test groups 2>&1 |
    grep -v '^ *\(Compiling\|Finished\|Running\)'
