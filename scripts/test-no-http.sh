#!/usr/bin/env bash
# libtrodo built without its HTTP client (`--no-default-features`): clippy
# clean, none of the HTTP stack's crates in it, trodo_init refused until a
# host transport is set, and the host-transport C program passing against it
# (natively and under valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo clippy --quiet --no-default-features --lib --target-dir target/no-http -- -D warnings
cargo build --quiet --no-default-features --target-dir target/no-http
linked=$(cargo tree --no-default-features -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
for crate in ureq rustls ring rustls-native-certs rustls-platform-verifier; do
    if grep -qx "$crate" <<<"$linked"; then
        echo "FAILED: $crate is linked into the build without the http feature" >&2
        exit 1
    fi
done
echo "no HTTP client, TLS or ring crate in the --no-default-features build"
TRODO_HARNESS_LIB_DIR=$PWD/target/no-http/debug TRODO_TEST_NO_HTTP=1 \
    cargo test --quiet --test c_harness c_transport 2>&1 | grep -v '^ *\(Compiling\|Finished\|Running\)'
