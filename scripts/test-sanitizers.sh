#!/usr/bin/env bash
# The C harness (every program in tests/c, natively) against libtrodo built
# with AddressSanitizer (LeakSanitizer on), the C and C++ programs themselves
# compiled with AddressSanitizer and UndefinedBehaviorSanitizer. Rust has no
# UndefinedBehaviorSanitizer; its unsafe code is checked by Miri instead
# (scripts/test-miri.sh). ThreadSanitizer: see TESTING.md. Needs the nightly
# toolchain (rustc's -Zsanitizer).
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-Zsanitizer=address" cargo +nightly build --quiet --target "$target" --target-dir target/asan
export TRODO_HARNESS_LIB_DIR=$PWD/target/asan/$target/debug
export TRODO_HARNESS_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
# A leak, an invalid access or undefined behaviour fails the program.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# All but c_fork: a child forked while other threads allocate can deadlock
# inside gcc 12's AddressSanitizer allocator, whose locks are not fork-safe
# (seen here: every thread of the child waiting on the allocator's mutex).
# c_fork runs natively and under valgrind in the ordinary suite.
cargo test --quiet --test c_harness native:: -- --skip c_fork 2>&1 |
    grep -v '^ *\(Compiling\|Finished\|Running\)'
