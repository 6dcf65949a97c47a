#!/usr/bin/env bash
# Builds libtrodo for Apple apps: Trodo.xcframework (static library + header
# + module map, for iOS devices, the iOS simulator and macOS) and a SwiftPM
# package around it, dist/apple/TrodoBinary, whose Trodo library is this
# repository's Swift wrapper over a `binaryTarget`. No pkg-config involved:
# that is the route for iOS apps (the pkg-config route stays for Linux and
# macOS command-line use).
#
# Runs on macOS only, with Xcode and rustup: it has never run on the Linux
# machines this repository is tested on (see the README's "Platforms").
#
# Usage: scripts/build-xcframework.sh [--no-http]
#   --no-http  without the built-in HTTP client: the app sends through its
#              URLSession (TrodoTransport.urlSession), and the library is smaller.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(uname -s)" != Darwin ] || ! command -v xcodebuild >/dev/null; then
    echo "build-xcframework.sh needs macOS with Xcode (xcodebuild); nothing was built" >&2
    exit 2
fi
features=()
[ "${1:-}" = --no-http ] && features=(--no-default-features)

device=(aarch64-apple-ios)
simulator=(aarch64-apple-ios-sim x86_64-apple-ios)
mac=(aarch64-apple-darwin x86_64-apple-darwin)
for t in "${device[@]}" "${simulator[@]}" "${mac[@]}"; do
    rustup target add "$t" >/dev/null
    cargo build --release --lib --target "$t" "${features[@]}"
done

out=dist/apple
rm -rf "$out"
mkdir -p "$out/headers" "$out/lib"
cp include/trodo.h "$out/headers/"
cat >"$out/headers/module.modulemap" <<'MAP'
module CTrodo {
    header "trodo.h"
    export *
}
MAP
fat() { # name targets...
    local name=$1
    shift
    mkdir -p "$out/lib/$name"
    lipo -create "${@/#/target/}" -output "$out/lib/$name/libtrodo.a"
}
mkdir -p "$out/lib/ios"
cp "target/${device[0]}/release/libtrodo.a" "$out/lib/ios/"
fat ios-simulator "${simulator[@]/%//release/libtrodo.a}"
fat macos "${mac[@]/%//release/libtrodo.a}"

xcodebuild -create-xcframework \
    -library "$out/lib/ios/libtrodo.a" -headers "$out/headers" \
    -library "$out/lib/ios-simulator/libtrodo.a" -headers "$out/headers" \
    -library "$out/lib/macos/libtrodo.a" -headers "$out/headers" \
    -output "$out/TrodoBinary/CTrodo.xcframework"

# The package: the wrapper's sources over the binary target.
pkg=$out/TrodoBinary
mkdir -p "$pkg/Sources"
cp -R bindings/swift/Sources/Trodo "$pkg/Sources/"
cat >"$pkg/Package.swift" <<'SWIFT'
// swift-tools-version:5.9
// libtrodo's Swift wrapper over a prebuilt XCFramework (made by
// scripts/build-xcframework.sh). Add this directory as a local package, or
// publish CTrodo.xcframework.zip and use `.binaryTarget(url:checksum:)`.
import PackageDescription

let package = Package(
    name: "Trodo",
    platforms: [.iOS(.v13), .macOS(.v11)],
    products: [.library(name: "Trodo", targets: ["Trodo"])],
    targets: [
        .binaryTarget(name: "CTrodo", path: "CTrodo.xcframework"),
        .target(name: "Trodo", dependencies: ["CTrodo"],
                linkerSettings: [.linkedFramework("Security"), .linkedFramework("CoreFoundation")]),
    ]
)
SWIFT
(cd "$pkg" && zip -qry CTrodo.xcframework.zip CTrodo.xcframework &&
    echo "checksum for .binaryTarget(url:checksum:): $(swift package compute-checksum CTrodo.xcframework.zip)")
(cd "$pkg" && swift build)
echo "built $pkg (add it to an app as a local Swift package)"
