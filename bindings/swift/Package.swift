// swift-tools-version:5.9
// The Swift binding for libtrodo. Build the library first (`cargo build` at
// the repository root), then link it, e.g.:
//   swift test -Xlinker -L../../target/debug
// with the library on the loader path at run time (LD_LIBRARY_PATH on Linux,
// DYLD_LIBRARY_PATH on macOS), or install libtrodo where the linker finds it.
import PackageDescription

let package = Package(
    name: "Trodo",
    products: [
        .library(name: "Trodo", targets: ["Trodo"]),
    ],
    targets: [
        // The C module: include/trodo.h, linked against libtrodo.
        .systemLibrary(name: "CTrodo", path: "Sources/CTrodo"),
        .target(name: "Trodo", dependencies: ["CTrodo"]),
        .testTarget(name: "TrodoTests", dependencies: ["Trodo"]),
    ]
)
