#!/usr/bin/env bash
# Usage: scripts/need-apt.sh PACKAGE...
# Installs the Debian packages that are missing (CI runs as root).
set -euo pipefail
missing=()
for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    printf '\n==> installing %s\n' "${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "missing packages: ${missing[*]} (install them, or run as root)" >&2
    exit 1
fi
