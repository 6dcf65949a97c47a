#!/usr/bin/env bash
# Side by side in one run: the benchmark harness (benches/calls.rs: caller
# cost, floor, throughput, backlog, init) and the system calls on the
# caller's thread (benches/syscalls.c under strace) for BASE (a git revision)
# and the working tree, alternately, ROUNDS times each (default 2). Both
# libraries are measured by the working tree's harness (it uses the C API
# only), copied into BASE's worktree. Extra arguments go to the harness
# (`--throughput` runs only that part). Numbers are reported, never
# asserted (BENCHMARKS.md).
# Usage: scripts/bench-compare.sh BASE [ROUNDS] [HARNESS-ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: scripts/bench-compare.sh BASE [ROUNDS]}
rounds=${2:-2}
shift $(($# < 2 ? $# : 2))
command -v strace >/dev/null || scripts/need-apt.sh strace
here=$PWD
tree=$here/target/bench-base
# A worktree under target/, kept (with its build) for the next comparison.
git worktree prune
if [ -e "$tree/.git" ]; then
    # --force: the harness copied in last time is the only local change.
    git -C "$tree" checkout -q --force --detach "$base"
else
    git worktree add --detach --force "$tree" "$base" >/dev/null
fi
git -C "$tree" checkout -q -- benches
cp benches/calls.rs "$tree/benches/calls.rs"

build() { # dir [rustflags]
    (cd "$1" && export RUSTFLAGS="${2:-}" && cargo build --quiet --release &&
        cargo bench --no-run --bench calls 2>&1 |
        sed -n 's/.*(\(.*calls-[0-9a-f]*\)).*/\1/p' | tail -n1)
}
# A base from before the host transport (e.g. the code before #20) is
# measured without that row.
base_flags=
grep -q trodo_set_transport "$tree/include/trodo.h" || base_flags="--cfg trodo_bench_no_host_transport"
bench_base=$tree/$(build "$tree" "$base_flags")
bench_here=$here/$(build "$here")
for dir in "$tree" "$here"; do
    cc -O2 -I"$dir/include" benches/syscalls.c -o "$dir/target/release/syscalls" \
        -L"$dir/target/release" -ltrodo -Wl,-rpath,"$dir/target/release"
done

syscalls() { # dir
    local work
    work=$(mktemp -d)
    strace -ff -o "$work/trace" "$1/target/release/syscalls" http://127.0.0.1:9 "$work/storage" >/dev/null 2>&1
    local main
    main=$(grep -l 'getppid()' "$work"/trace.* | head -n1)
    awk '/^getppid\(\)/ { n++; next } n == 1 { count++ } END { print count + 0 }' "$main"
    rm -rf "$work"
}

for round in $(seq "$rounds"); do
    for side in base here; do
        if [ "$side" = base ]; then bin=$bench_base dir=$tree; else bin=$bench_here dir=$here; fi
        echo "== $side ($( [ "$side" = base ] && echo "$base" || echo working tree)), round $round"
        (cd "$dir" && "$bin" --bench "$@")
        printf '%-58s %s\n' "system calls on the caller's thread per 10 000 trodo_track" "$(syscalls "$dir")"
    done
done
