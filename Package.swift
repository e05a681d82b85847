// swift-tools-version:5.9
// The Countersign Swift package.
//
// Apple platforms: the Rust library comes as an XCFramework binary target, built on a
// Mac with `cargo xtask apple` (bindings/swift/countersignFFI.xcframework, plus the
// zip and checksum a release publishes), or downloaded from the release URL below.
// Linux (the binding tests): the C module is a system library linked against the host
// build of countersign-ffi; `cargo xtask bindings` writes the generated files and
// `cargo xtask test` runs `swift test` against a live server. Set COUNTERSIGN_LIB_DIR
// to the folder holding libcountersign_ffi.so (default: target/debug).
//
// The generated Swift (`countersign.swift`) is compiled into the `Countersign` module
// together with the async facade, so apps `import Countersign` only.
import Foundation
import PackageDescription

#if os(Linux)
let libDir = Context.environment["COUNTERSIGN_LIB_DIR"] ?? (Context.packageDirectory + "/target/debug")
let ffiTarget: Target = .systemLibrary(name: "countersignFFI", path: "bindings/swift/Sources/countersignFFI")
let linkerSettings: [LinkerSetting] = [.unsafeFlags(["-L", libDir])]
#else
// Apple platforms: a local XCFramework (`cargo xtask apple`) wins; without one, the
// released zip is downloaded and checked against its checksum, which is what an app
// gets when it adds this package by its git URL in Xcode. `cargo xtask apple
// --release-url <url of the zip>` rewrites the two lines below for a release.
let localXCFramework = "bindings/swift/countersignFFI.xcframework"
let releaseURL = "https://downloads.countersign.invalid/v0.1.0/countersignFFI.xcframework.zip"
let releaseChecksum = "0000000000000000000000000000000000000000000000000000000000000000"
let ffiTarget: Target = FileManager.default.fileExists(atPath: Context.packageDirectory + "/" + localXCFramework)
    ? .binaryTarget(name: "countersignFFI", path: localXCFramework)
    : .binaryTarget(name: "countersignFFI", url: releaseURL, checksum: releaseChecksum)
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
        // Test support shared by the tests and the second-process harness.
        .target(
            name: "CountersignTestKit",
            dependencies: ["CountersignSampleKit"],
            path: "tests/swift/CountersignTestKit"
        ),
        // Stands in for the Notification Service Extension as a second process.
        .executableTarget(
            name: "NotificationExtensionHarness",
            dependencies: ["Countersign", "CountersignSampleKit", "CountersignTestKit"],
            path: "tests/swift/NotificationExtensionHarness"
        ),
        // The FFI's per-call cost from Swift (`cargo xtask bench-device`).
        .executableTarget(
            name: "FfiBench",
            dependencies: ["Countersign"],
            path: "bindings/benches/swift/FfiBench"
        ),
        .testTarget(
            name: "CountersignTests",
            dependencies: ["Countersign", "CountersignSampleKit", "CountersignTestKit"],
            path: "tests/swift/CountersignTests"
        ),
    ]
)
