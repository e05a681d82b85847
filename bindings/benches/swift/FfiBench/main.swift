// The FFI's per-call cost from Swift (Linux), run by `cargo xtask bench-device`
// (`swift build -c release --product FfiBench`): `ping(value:)` (a u64 in and out,
// nothing else) and `coreVersion()` (a string back). Prints `RESULT key=value`
// lines and ends with `N passed, N failed` like the binding tests.
import Countersign
import Foundation

let iterations = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 50_000_000
var passed = 0
var failed = 0
func check(_ name: String, _ ok: Bool) {
    if ok { passed += 1 } else { failed += 1; print("FAILED: \(name)") }
}

check("ping returns its argument", ping(value: 42) == 42 && ping(value: UInt64.max) == UInt64.max)
check("coreVersion is not empty", !coreVersion().isEmpty)

var sink: UInt64 = 0
for i in 0..<min(iterations, 100_000) { sink &+= ping(value: UInt64(i)) }

let start = DispatchTime.now().uptimeNanoseconds
for i in 0..<iterations { sink &+= ping(value: UInt64(i)) }
let elapsed = DispatchTime.now().uptimeNanoseconds - start
check("every ping answered", sink != 0)

let versions = max(iterations / 20, 1_000)
var length = 0
let vstart = DispatchTime.now().uptimeNanoseconds
for _ in 0..<versions { length += coreVersion().count }
let velapsed = DispatchTime.now().uptimeNanoseconds - vstart
check("coreVersion answered", length > 0)

print(String(format: "RESULT swift_ping_ns=%.2f", Double(elapsed) / Double(iterations)))
print(String(format: "RESULT swift_core_version_ns=%.1f", Double(velapsed) / Double(versions)))
print("\(passed) passed, \(failed) failed")
exit(failed == 0 ? 0 : 1)
