#!/usr/bin/env bash
# Runs each fuzz target (fuzz/, cargo-fuzz) for a few seconds on its
# committed corpus, so whatever a longer fuzzing run once found stays
# found: a crash, a hang (-timeout) or one allocation over 32 MB
# fails. Needs the nightly toolchain; cargo-fuzz is installed when missing.
# Longer runs: `cargo +nightly fuzz run TARGET fuzz/corpus/TARGET` (TESTING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${TRODO_FUZZ_SECONDS:-5}
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz --version 0.13.2
cargo +nightly fuzz build 2>&1 | grep -v '^ *\(Compiling\|Finished\|Running\)' || true
passed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $(cargo +nightly fuzz list); do
    # New inputs go to a scratch copy: the committed corpus stays small.
    mkdir -p "$work/$target"
    cp fuzz/corpus/"$target"/* "$work/$target/"
    if cargo +nightly fuzz run "$target" "$work/$target" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -malloc_limit_mb=32 -rss_limit_mb=1024 \
        >"$work/$target.log" 2>&1; then
        echo "ok: $target ($(grep -o 'Done [0-9]* runs' "$work/$target.log" || echo 'ran'))"
        passed=$((passed + 1))
    else
        tail -40 "$work/$target.log" >&2
        echo "FAILED: $target (the input is in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
done
echo "fuzz: $passed passed, 0 failed"
