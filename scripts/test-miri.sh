#!/usr/bin/env bash
# The unsafe code of the C boundary (src/ffi: string and handle conversion,
# strings handed out and freed, the panic guard) under Miri, which fails on
# undefined behaviour, leaks, double frees and uses after free. Needs the
# nightly toolchain with its miri and rust-src components (added when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup component add --toolchain nightly miri rust-src
fi
cargo +nightly miri test --quiet --lib ffi:: 2>&1 | grep -v '^ *\(Compiling\|Finished\|Running\)'
