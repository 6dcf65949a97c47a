#!/usr/bin/env bash
# Installs libtrodo the way its users do and uses it from outside the
# checkout, as the README says:
#   C/C++   cargo cinstall into a prefix; the shared and static library, the
#           committed header, trodo.pc and the CMake package; programs built
#           with pkg-config (shared and static) and with find_package(trodo).
#   Python  pip wheel ./bindings/python (a platform wheel carrying the
#           library), auditwheel's verdict, and the wheel installed into a
#           fresh virtual environment with no Rust toolchain and no TRODO_LIB;
#           pip install ./bindings/python likewise.
# Ends with "N passed, 0 failed". Swift's install is tested by test-swift.sh.
set -euo pipefail
# Under pipefail, `cmd | grep -q` fails at random: grep exits at its first
# match and cmd dies of SIGPIPE. These checks use `grep >/dev/null`, which
# reads to the end.
cd "$(dirname "$0")/.."
repo=$PWD
passed=0
ok() {
    passed=$((passed + 1))
    echo "ok: $*"
}
fail() {
    echo "FAILED: $*" >&2
    exit 1
}

command -v pkg-config >/dev/null && command -v cmake >/dev/null || scripts/need-apt.sh pkg-config cmake
command -v readelf >/dev/null || scripts/need-apt.sh binutils

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- C and C++: cargo-c ---------------------------------------------------
prefix=$repo/target/install-prefix
scripts/install-local.sh "$prefix"
lib=$prefix/lib
for link in libtrodo.so libtrodo.so.0.1; do
    [ "$(readlink "$lib/$link")" = libtrodo.so.0.1.0 ] || fail "$link -> libtrodo.so.0.1.0"
done
readelf -d "$lib/libtrodo.so.0.1.0" | grep 'SONAME.*\[libtrodo\.so\.0\.1\]' >/dev/null || fail "soname"
ok "libtrodo.so.0.1.0 with soname libtrodo.so.0.1, and its symlinks"
[ -f "$lib/libtrodo.a" ] || fail "libtrodo.a"
ok "static library"
cmp -s include/trodo.h "$prefix/include/trodo.h" || fail "installed header is the committed one"
ok "the committed header"
pc=$lib/pkgconfig/trodo.pc
grep -q '^Libs.private:.*-l' "$pc" || fail "trodo.pc has Libs.private"
ok "trodo.pc with Libs.private"
for f in trodoConfig.cmake trodoConfigVersion.cmake; do
    [ -f "$prefix/share/cmake/trodo/$f" ] || fail "share/cmake/trodo/$f"
done
ok "CMake package"
others=$(nm -D --defined-only "$lib/libtrodo.so" | awk '$2 ~ /^[TDBRVW]$/ && $3 !~ /^trodo_/ {print $3}')
[ -z "$others" ] || fail "only trodo_* symbols are exported, also: $others"
ok "only trodo_* symbols exported"
readelf -S "$lib/libtrodo.so" | grep '\.symtab' >/dev/null && fail "the installed library is stripped"
ok "stripped: $(stat -c %s "$(readlink -f "$lib/libtrodo.so")") bytes"

# A C program, from outside the checkout, found through pkg-config only.
cp tests/consumers/app.c "$work/"
cp -r tests/consumers/cmake "$work/"
cd "$work"
export PKG_CONFIG_PATH=$lib/pkgconfig
# shellcheck disable=SC2046 # pkg-config's output is a list of flags
cc -Wall -Werror -o app app.c $(pkg-config --cflags --libs trodo) -Wl,-rpath,"$lib"
./app "$work/s1" | grep works >/dev/null || fail "pkg-config build runs"
ok "built with pkg-config, runs"
# shellcheck disable=SC2046
cc -Wall -Werror -o app-static app.c $(pkg-config --cflags trodo) \
    -Wl,-Bstatic -ltrodo -Wl,-Bdynamic $(pkg-config --static --libs trodo | sed 's/-ltrodo//')
ldd app-static | grep libtrodo >/dev/null && fail "the static build does not need libtrodo.so"
./app-static "$work/s2" | grep works >/dev/null || fail "static build runs"
ok "linked statically with Libs.private, runs"
cmake -S cmake -B cmake-build -DCMAKE_PREFIX_PATH="$prefix" >cmake.log 2>&1 || {
    cat cmake.log
    fail "find_package(trodo CONFIG REQUIRED)"
}
cmake --build cmake-build >>cmake.log 2>&1 || {
    cat cmake.log
    fail "cmake --build"
}
./cmake-build/app "$work/s3" | grep works >/dev/null || fail "CMake build runs"
ok "find_package(trodo) + trodo::trodo, runs"
# Where there is no pkg-config (most Windows machines), from the prefix's files.
cmake -S cmake -B cmake-plain -DCMAKE_PREFIX_PATH="$prefix" -DTRODO_NO_PKG_CONFIG=ON >cmake.log 2>&1 &&
    cmake --build cmake-plain >>cmake.log 2>&1 || {
    cat cmake.log
    fail "find_package(trodo) without pkg-config"
}
./cmake-plain/app "$work/s4" | grep works >/dev/null || fail "CMake build without pkg-config runs"
ok "find_package(trodo) without pkg-config, runs"
unset PKG_CONFIG_PATH
cd "$repo"

# --- Python: the wheel carries the library ----------------------------------
python3 -m venv "$work/build-venv"
"$work/build-venv/bin/python" -m pip install -q --upgrade pip auditwheel
rm -rf bindings/python/build bindings/python/*.egg-info
"$work/build-venv/bin/python" -m pip wheel -q --no-deps -w "$work/dist" ./bindings/python
rm -rf bindings/python/build bindings/python/*.egg-info
wheel=$(ls "$work"/dist/trodo_native-*.whl)
case "$wheel" in
*-cp38-abi3-linux_*.whl) ok "platform wheel $(basename "$wheel")" ;;
*) fail "wheel tag: $(basename "$wheel")" ;;
esac
"$work/build-venv/bin/python" -m zipfile -l "$wheel" | grep 'trodo_native/libtrodo.abi3.so' >/dev/null ||
    fail "the wheel holds the library"
"$work/build-venv/bin/auditwheel" show "$wheel" >"$work/auditwheel.txt" 2>&1 || true
grep 'manylinux_[0-9]*_[0-9]*_[a-z0-9_]*' "$work/auditwheel.txt" >/dev/null || {
    cat "$work/auditwheel.txt"
    fail "auditwheel names a manylinux policy"
}
ok "auditwheel: $(grep -o -m1 '"manylinux_[0-9]*_[0-9]*_[a-z0-9_]*"' "$work/auditwheel.txt")"

# Installed with no Rust on PATH and no TRODO_LIB, used from another folder.
quickstart='
import tempfile, trodo_native as trodo
assert trodo.__version__ == trodo.version(), (trodo.__version__, trodo.version())
trodo.init("YOUR_SITE_ID", api_base="http://127.0.0.1:9", storage_dir=tempfile.mkdtemp(),
           exit_flush_timeout=0)
trodo.add_group("team", "team-a")
trodo.track("dashboard_viewed", {"widgets": 4})
assert trodo.get_groups() == {"team": ["team-a"]}
try:
    trodo.shutdown(0)
except trodo.TrodoTimeoutError:
    pass  # offline: the event stays on disk
print("trodo_native", trodo.__version__, "from", trodo._lib.find())
'
plain_path=/usr/local/bin:/usr/bin:/bin
python3 -m venv "$work/user-venv"
env -u TRODO_LIB PATH="$plain_path" "$work/user-venv/bin/python" -m pip install -q "$wheel"
(cd "$work" && env -u TRODO_LIB PATH="$plain_path" "$work/user-venv/bin/python" -c "$quickstart") |
    grep "from $work/user-venv/.*/trodo_native/libtrodo.abi3.so" >/dev/null || fail "the wheel's quick start"
ok "wheel installed without Rust or TRODO_LIB, quick start runs"

python3 -m venv "$work/source-venv"
"$work/source-venv/bin/python" -m pip install -q ./bindings/python
rm -rf bindings/python/build bindings/python/*.egg-info
(cd "$work" && env -u TRODO_LIB "$work/source-venv/bin/python" -c "$quickstart") |
    grep "from $work/source-venv/" >/dev/null || fail "pip install ./bindings/python"
ok "pip install ./bindings/python builds the library into the package"

echo "install: $passed passed, 0 failed"
