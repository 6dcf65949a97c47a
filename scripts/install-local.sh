#!/usr/bin/env bash
# Usage: scripts/install-local.sh PREFIX [CARGO-CINSTALL-ARGS...]
# Installs libtrodo into PREFIX the way a C or C++ developer does, with
# cargo-c: `cargo cinstall --release --prefix=PREFIX --libdir=PREFIX/lib`
# (cargo-c is installed first when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
# The newest cargo-c that builds with this machine's Rust (see the README).
CARGO_C_VERSION=0.10.24
# cargo-c treats a relative prefix as relative to itself: make it absolute.
prefix=$(realpath -m "$1")
shift
if ! cargo cinstall --version 2>/dev/null | grep "cargo-c $CARGO_C_VERSION" >/dev/null; then
    printf '\n==> installing cargo-c %s (once; a few minutes)\n' "$CARGO_C_VERSION"
    cargo install --quiet --locked cargo-c --version "$CARGO_C_VERSION"
fi
rm -rf "$prefix"
cargo cinstall --release --prefix="$prefix" --libdir="$prefix/lib" "$@"
