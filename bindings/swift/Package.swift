// swift-tools-version:5.9
// The Swift binding for libtrodo. Install libtrodo first (the README's C
// install: `cargo cinstall --release --prefix=PREFIX --libdir=PREFIX/lib`)
// and point pkg-config at it (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig); then
// `swift build` and `swift test` need no linker flags. At run time the
// library must be on the loader path (LD_LIBRARY_PATH=PREFIX/lib on Linux,
// unless PREFIX is a system one such as /usr/local).
import PackageDescription

let package = Package(
    name: "Trodo",
    products: [
        .library(name: "Trodo", targets: ["Trodo"]),
    ],
    targets: [
        // The C module: trodo.h and libtrodo, found through trodo.pc. No
        // `providers`: no system package manager ships libtrodo yet.
        .systemLibrary(name: "CTrodo", path: "Sources/CTrodo", pkgConfig: "trodo"),
        .target(name: "Trodo", dependencies: ["CTrodo"]),
        .testTarget(name: "TrodoTests", dependencies: ["Trodo"]),
    ]
)
