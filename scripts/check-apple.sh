#!/usr/bin/env bash
# A compile check for Apple targets, nothing more: `cargo clippy -D warnings`
# for aarch64-apple-darwin (macOS) and aarch64-apple-ios. There is no Apple
# SDK on Linux, so ring's C sources are compiled by clang against the stub
# headers in scripts/apple-stubs (never linked or run). Building, linking and
# testing for Apple happens on a Mac: see the README's "Platforms".
# Usage: scripts/check-apple.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang >/dev/null || scripts/need-apt.sh clang
stubs=$PWD/scripts/apple-stubs
export SDKROOT=$stubs
for target in aarch64-apple-darwin aarch64-apple-ios; do
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
    var=${target//-/_}
    export "CC_$var=clang"
    export "CFLAGS_$var=-nostdlibinc -ffreestanding -isystem $stubs"
    cargo clippy --quiet --target "$target" --all-targets -- -D warnings
    echo "$target: clippy clean (compile check only)"
done
