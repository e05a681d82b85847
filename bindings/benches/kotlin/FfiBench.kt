// The FFI's per-call cost from Kotlin (JVM + JNA), run by `cargo xtask bench-device`:
// `ping(value)` (a u64 in, a u64 out, nothing else) and `coreVersion()` (a string
// back), after a warm-up so the JIT has compiled the call path. Wall time and the
// calling thread's CPU time are both reported (`RESULT key=value`); JNA and the JVM
// run other threads (JIT, GC) that wall time includes and CPU time does not.
// Ends with `N passed, N failed` like the binding tests.
package org.countersign.bench

import java.lang.management.ManagementFactory
import kotlin.system.exitProcess
import org.countersign.coreVersion
import org.countersign.ping

fun main(args: Array<String>) {
    val iterations = args.firstOrNull()?.toLongOrNull() ?: 5_000_000L
    var passed = 0
    var failed = 0
    fun check(name: String, ok: Boolean) {
        if (ok) passed++ else { failed++; println("FAILED: $name") }
    }
    check("ping returns its argument", ping(42uL) == 42uL && ping(ULong.MAX_VALUE) == ULong.MAX_VALUE)
    check("coreVersion is not empty", coreVersion().isNotEmpty())

    val threads = ManagementFactory.getThreadMXBean()
    var sink = 0uL
    // Warm-up: the JIT compiles the generated call path and JNA's.
    val warmup = minOf(iterations, 200_000L)
    for (i in 0 until warmup) sink += ping(i.toULong())

    val cpu0 = threads.currentThreadCpuTime
    val wall0 = System.nanoTime()
    for (i in 0 until iterations) sink += ping(i.toULong())
    val wall = System.nanoTime() - wall0
    val cpu = threads.currentThreadCpuTime - cpu0
    check("every ping answered", sink != 0uL)

    val versions = maxOf(iterations / 10, 1_000L)
    var length = 0L
    for (i in 0 until minOf(versions, 20_000L)) length += coreVersion().length
    val vcpu0 = threads.currentThreadCpuTime
    for (i in 0 until versions) length += coreVersion().length
    val vcpu = threads.currentThreadCpuTime - vcpu0
    check("coreVersion answered", length > 0)

    println("RESULT kotlin_ping_wall_ns=%.1f".format(wall.toDouble() / iterations))
    println("RESULT kotlin_ping_cpu_ns=%.1f".format(cpu.toDouble() / iterations))
    println("RESULT kotlin_core_version_cpu_ns=%.1f".format(vcpu.toDouble() / versions))
    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
