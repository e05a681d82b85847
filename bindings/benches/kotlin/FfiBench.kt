// The FFI's per-call cost from Kotlin (JVM + JNA), run by `cargo xtask bench-device`:
// `ping(value)` (a u64 in, a u64 out, nothing else) and `coreVersion()` (a string
// back). Wall time and the calling thread's CPU time are both reported
// (`RESULT key=value`); JNA and the JVM run other threads (JIT, GC, JNA's cleaner)
// that wall time includes and CPU time does not.
//
// Method: a warm-up long enough for C2 to compile the call path (the first
// 200,000 calls of an earlier version still ran partly in C1 code), then the
// measured calls in ROUNDS rounds; the figure is the median round, so one round
// disturbed by a GC or another process does not move it.
//
// Where a call's time goes, each part measured alone in the same run (this file
// is compiled with the generated bindings, so their `internal` helpers are in
// reach; nothing generated is changed):
// * `jna_direct`: a JNA direct-mapped call that takes and returns plain ints
//   (the contract-version function): JNA's floor.
// * `ping_reused_status`: the generated `ping` native method with one
//   `UniffiRustCallStatus` reused: JNA's copy of that Structure to native memory
//   and back around the call (by reflection), without allocating it.
// * `status_alloc`: `UniffiRustCallStatus()` alone, which uniffi's generated
//   `uniffiRustCall` does for every call: a JNA Structure (native memory,
//   registered with JNA's cleaner) plus its nested RustBuffer Structure.
// Ends with `N passed, N failed` like the binding tests.
package org.countersign.bench

import java.lang.management.ManagementFactory
import kotlin.system.exitProcess
import org.countersign.IntegrityCheckingUniffiLib
import org.countersign.UniffiLib
import org.countersign.UniffiRustCallStatus
import org.countersign.coreVersion
import org.countersign.ping

/** Rounds the measured calls are split into; the median round is reported. */
const val ROUNDS = 5

private val threads = ManagementFactory.getThreadMXBean()

/** CPU and wall nanoseconds per call of one round. */
private class Round(val cpuNs: Double, val wallNs: Double)

/** Runs `calls` calls of `body` and times them. */
private inline fun round(calls: Long, body: (Long) -> Unit): Round {
    val cpu0 = threads.currentThreadCpuTime
    val wall0 = System.nanoTime()
    for (i in 0 until calls) body(i)
    val wall = System.nanoTime() - wall0
    val cpu = threads.currentThreadCpuTime - cpu0
    return Round(cpu.toDouble() / calls, wall.toDouble() / calls)
}

/** Warms `body` up for `warmup` calls, then the median of ROUNDS rounds. */
private inline fun measure(warmup: Long, calls: Long, body: (Long) -> Unit): Round {
    round(warmup, body)
    val rounds = (1..ROUNDS).map { round(maxOf(calls / ROUNDS, 1L), body) }
    return Round(
        rounds.map { it.cpuNs }.sorted()[ROUNDS / 2],
        rounds.map { it.wallNs }.sorted()[ROUNDS / 2],
    )
}

fun main(args: Array<String>) {
    val iterations = args.firstOrNull()?.toLongOrNull() ?: 5_000_000L
    var passed = 0
    var failed = 0
    fun check(name: String, ok: Boolean) {
        if (ok) passed++ else { failed++; println("FAILED: $name") }
    }
    check("ping returns its argument", ping(42uL) == 42uL && ping(ULong.MAX_VALUE) == ULong.MAX_VALUE)
    check("coreVersion is not empty", coreVersion().isNotEmpty())

    // C2 compiles a method after ~10,000 calls plus its loop back-edges; a
    // fifth of the measured calls (1,000,000 in the full run) is well past that.
    val warmup = maxOf(iterations / 5, 20_000L)
    var sink = 0uL
    val pingRound = measure(warmup, iterations) { i -> sink += ping(i.toULong()) }
    check("every ping answered", sink != 0uL)

    var direct = 0L
    val directRound = measure(warmup, iterations) {
        direct += IntegrityCheckingUniffiLib.ffi_countersign_ffi_uniffi_contract_version()
    }
    check("the contract version answered", direct != 0L)

    val status = UniffiRustCallStatus()
    var raw = 0L
    val reusedRound = measure(warmup, iterations) { i ->
        raw += UniffiLib.uniffi_countersign_ffi_fn_func_ping(i, status)
    }
    check("raw ping answered with success", raw != 0L && status.isSuccess())

    var statuses = 0L
    val allocRound = measure(warmup, iterations) {
        if (UniffiRustCallStatus().isSuccess()) statuses++
    }
    check("call statuses allocated", statuses != 0L)

    val versions = maxOf(iterations / 10, 1_000L)
    var length = 0L
    val versionRound = measure(minOf(versions, 20_000L), versions) { length += coreVersion().length }
    check("coreVersion answered", length > 0)

    println("RESULT kotlin_ping_wall_ns=%.1f".format(pingRound.wallNs))
    println("RESULT kotlin_ping_cpu_ns=%.1f".format(pingRound.cpuNs))
    println("RESULT kotlin_jna_direct_cpu_ns=%.1f".format(directRound.cpuNs))
    println("RESULT kotlin_ping_reused_status_cpu_ns=%.1f".format(reusedRound.cpuNs))
    println("RESULT kotlin_status_alloc_cpu_ns=%.1f".format(allocRound.cpuNs))
    println("RESULT kotlin_core_version_cpu_ns=%.1f".format(versionRound.cpuNs))
    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
