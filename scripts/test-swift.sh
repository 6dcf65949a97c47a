#!/usr/bin/env bash
# The Swift binding's XCTest suite, against libtrodo installed with cargo-c.
# Uses a `swift` on PATH when there is one; otherwise (Debian 12 packages no
# Swift) a Debian 13 chroot with the `swiftlang` package, made once with
# debootstrap and kept in a cache directory outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# Installed as a user installs it (cargo-c), found through pkg-config: the
# package needs no linker flags.
prefix=$repo/target/install-prefix
scripts/install-local.sh "$prefix"
lib_dir=$prefix/lib

if command -v swift >/dev/null 2>&1; then
    cd bindings/swift
    PKG_CONFIG_PATH=$lib_dir/pkgconfig LD_LIBRARY_PATH=$lib_dir DYLD_LIBRARY_PATH=$lib_dir exec swift test
fi

root=${TRODO_SWIFT_CHROOT:-/var/cache/trodo/swift-trixie}
if [ "$(id -u)" != 0 ]; then
    echo "no swift on PATH, and making or entering the Swift chroot needs root" >&2
    exit 1
fi

# Mounts left under the chroot by a run that was killed: undo them first, and
# never delete a chroot that still has something (like the repository) mounted.
unmount_all_under() {
    local m
    for m in $(awk -v r="$1/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    ! awk -v r="$1/" 'index($2, r) == 1 {found=1} END {exit !found}' /proc/mounts
}
unmount_all_under "$root" || { echo "cannot unmount everything under $root" >&2; exit 1; }

# /usr/bin/swift is an absolute symlink into the chroot's /usr/lib: test the link.
if [ ! -L "$root/usr/bin/swift" ] && [ ! -e "$root/usr/bin/swift" ]; then
    command -v debootstrap >/dev/null || {
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    # The Debian mirror this machine's apt already uses.
    mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | awk '!/security/ && !found {print; found = 1}')
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    echo "making the Swift chroot in $root from $mirror (about a minute, about 3 GB)"
    unmount_all_under "$root.tmp" || exit 1
    rm -rf "$root.tmp"
    mkdir -p "$(dirname "$root")"
    debootstrap --variant=minbase --include=swiftlang,libc6-dev,pkgconf trixie "$root.tmp" "$mirror" >"$root.log" 2>&1 ||
        { tail -20 "$root.log" >&2; exit 1; }
    rm -rf "$root"
    mv "$root.tmp" "$root"
fi

mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount -l "${mounted[$i]}" 2>/dev/null || true
    done
}
trap cleanup EXIT
bind() { # source target
    mkdir -p "$2"
    mount --bind "$1" "$2"
    mounted+=("$2")
}
mkdir -p "$root/proc"
mount -t proc proc "$root/proc"
mounted+=("$root/proc")
bind /dev "$root/dev"
# The repository at the same path inside, so the library's path is the same.
bind "$repo" "$root$repo"

# A chroot made before pkg-config was needed gets it now.
if [ ! -x "$root/usr/bin/pkg-config" ]; then
    cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        /bin/sh -c 'apt-get update -qq >/dev/null && apt-get install -y -qq pkgconf >/dev/null'
fi

chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin LANG=C.UTF-8 \
    PKG_CONFIG_PATH="$lib_dir/pkgconfig" LD_LIBRARY_PATH="$lib_dir" \
    /bin/bash -c "cd '$repo/bindings/swift' && swift test"
