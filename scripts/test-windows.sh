#!/usr/bin/env bash
# Windows (x86_64-pc-windows-gnu), cross-built with mingw-w64 and run under
# wine: clippy -D warnings for the target, trodo.dll and its import library,
# the C harness programs (all but c_fork; c_transport sends through WinHTTP)
# and the Rust tests, against the loopback servers. Wine is not Windows: see TESTING.md
# for what this does not prove.
# Usage: scripts/test-windows.sh
set -euo pipefail
cd "$(dirname "$0")/.."
T=x86_64-pc-windows-gnu
command -v x86_64-w64-mingw32-gcc >/dev/null && command -v x86_64-w64-mingw32-g++ >/dev/null ||
    scripts/need-apt.sh gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64
command -v wine >/dev/null || scripts/need-apt.sh wine wine64
rustup target list --installed | grep -qx "$T" || rustup target add "$T"

started=$(date +%s)
cargo clippy --quiet --target "$T" --all-targets -- -D warnings
cargo build --quiet --target "$T"
out=target/$T/debug
ls "$out/trodo.dll" "$out/libtrodo.dll.a" >/dev/null

# The C programs, cross-compiled beside the DLL (tests/c_harness.rs runs them).
cc=x86_64-w64-mingw32-gcc
cxx=x86_64-w64-mingw32-g++
c=$out/c-harness
mkdir -p "$c"
cp "$out/trodo.dll" "$c/"
warn=(-Wall -Wextra -Werror -pedantic -g -Iinclude -Itests/c)
# winpthreads and the C++ runtime linked in statically: the programs need no mingw DLL.
libs=(-L"$out" -ltrodo -static-libgcc -static-libstdc++ -Wl,-Bstatic -lpthread -Wl,-Bdynamic)
$cc -std=c99 "${warn[@]}" -c tests/c/harness.c -o "$c/harness.o"
for src in tests/c/c_*.c; do
    name=$(basename "$src" .c)
    case $name in
    c_fork) continue ;; # no fork() on Windows (marked ignored in c_harness.rs)
    c_unload) # loads trodo.dll at run time: neither it nor harness.o is linked
        $cc -std=c99 "${warn[@]}" "$src" -o "$c/$name.exe"
        continue
        ;;
    esac
    extra=()
    [ "$name" = c_transport ] && extra=(-lwinhttp) # its transport: Windows's own HTTP client
    $cc -std=c99 "${warn[@]}" "$src" "$c/harness.o" -o "$c/$name.exe" "${libs[@]}" "${extra[@]}"
done
$cxx -std=c++11 "${warn[@]}" tests/c/c_cxx.cpp "$c/harness.o" -o "$c/c_cxx.exe" "${libs[@]}"
$cc -std=c99 "${warn[@]}" examples/quickstart.c -o "$c/quickstart.exe" "${libs[@]}"
cargo test --quiet --target "$T" --no-run 2>/dev/null
built=$(date +%s)

# Wine: a prefix of our own, quiet, and the test-only bcryptprimitives.dll.
export WINEPREFIX=$PWD/target/wine/prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
shim=$PWD/target/wine/shim
mkdir -p "$shim" "$WINEPREFIX"
$cc -O2 -shared -o "$shim/bcryptprimitives.dll" tests/windows/bcryptprimitives.c \
    tests/windows/bcryptprimitives.def -lbcrypt
export WINEPATH="Z:${shim//\//\\}"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
cargo test --no-fail-fast --target "$T" 2>&1 | grep -v '^ *\(Compiling\|Finished\)'
status=${PIPESTATUS[0]}

# Installed as a Windows developer would (cargo cinstall: bin/trodo.dll,
# lib/trodo.dll.a, the header, the CMake package) and found by CMake without
# pkg-config, from a MinGW cross build; the program runs under wine.
command -v cmake >/dev/null || scripts/need-apt.sh cmake
prefix=$PWD/target/install-prefix-windows
scripts/install-local.sh "$prefix" --target "$T" >"$prefix.log" 2>&1 || { cat "$prefix.log"; exit 1; }
work=$(mktemp -d)
cp tests/consumers/app.c "$work/"
cp -r tests/consumers/cmake "$work/"
(
    cd "$work"
    cmake -S cmake -B build -DCMAKE_SYSTEM_NAME=Windows -DCMAKE_C_COMPILER="$cc" \
        -DCMAKE_PREFIX_PATH="$prefix" >cmake.log 2>&1 && cmake --build build >>cmake.log 2>&1 ||
        { cat cmake.log; exit 1; }
    cp "$prefix/bin/trodo.dll" build/
    wine build/app.exe "Z:$work/state" | grep works
) && echo "test result: ok. 1 passed (find_package(trodo) without pkg-config, MinGW, under wine)" || status=1
rm -rf "$work"
wineserver -k 2>/dev/null || true
finished=$(date +%s)
echo "windows: build $((built - started)) s, wine test run $((finished - built)) s"
exit "$status"
