// swift-tools-version:5.9
// The Countersign Swift package.
//
// Apple platforms: the Rust library comes as an XCFramework binary target, built on a
// Mac with `cargo xtask apple` (bindings/swift/countersignFFI.xcframework).
// Linux (the binding tests): the C module is a system library linked against the host
// build of countersign-ffi; `cargo xtask bindings` writes the generated files and
// `cargo xtask test` runs `swift test` against a live server. Set COUNTERSIGN_LIB_DIR
// to the folder holding libcountersign_ffi.so (default: target/debug).
//
// The generated Swift (`countersign.swift`) is compiled into the `Countersign` module
// together with the async facade, so apps `import Countersign` only.
import PackageDescription

#if os(Linux)
let libDir = Context.environment["COUNTERSIGN_LIB_DIR"] ?? (Context.packageDirectory + "/target/debug")
let ffiTarget: Target = .systemLibrary(name: "countersignFFI", path: "bindings/swift/Sources/countersignFFI")
let linkerSettings: [LinkerSetting] = [.unsafeFlags(["-L", libDir])]
#else
let ffiTarget: Target = .binaryTarget(name: "countersignFFI", path: "bindings/swift/countersignFFI.xcframework")
let linkerSettings: [LinkerSetting] = []
#endif

let package = Package(
    name: "Countersign",
    platforms: [.iOS(.v16), .macOS(.v13)],  // Swift Duration (the bindings' time spans)
    products: [
        .library(name: "Countersign", targets: ["Countersign"]),
        // The iOS sample's platform-independent logic (used by ios-sample/ and the tests).
        .library(name: "CountersignSampleKit", targets: ["CountersignSampleKit"]),
    ],
    targets: [
        ffiTarget,
        .target(
            name: "Countersign",
            dependencies: ["countersignFFI"],
            path: "bindings/swift/Sources/Countersign",
            linkerSettings: linkerSettings
        ),
        .target(
            name: "CountersignSampleKit",
            dependencies: ["Countersign"],
            path: "ios-sample/Shared"
        ),
        .testTarget(
            name: "CountersignTests",
            dependencies: ["Countersign", "CountersignSampleKit"],
            path: "tests/swift/CountersignTests"
        ),
    ]
)
