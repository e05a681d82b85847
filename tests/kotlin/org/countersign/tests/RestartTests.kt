// Failures and restarts: a verifier that throws, answers after process death, an
// answer queued while offline, and two OS processes answering on one storage.
package org.countersign.tests

import java.io.File
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking
import org.countersign.Authenticator
import org.countersign.CountersignException
import org.countersign.Decision
import org.countersign.Delivery
import org.countersign.HttpClient
import org.countersign.HttpException
import org.countersign.HttpRequest
import org.countersign.HttpResponse
import org.countersign.OutboxState
import org.countersign.UserVerifier
import org.countersign.Verification
import org.countersign.VerificationOutcome
import org.countersign.VerificationPrompt
import org.countersign.sample.ActionResult
import org.countersign.sample.OutboxNotice
import org.countersign.sample.PushController
import org.countersign.UrlConnectionHttpClient
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class RestartTests {
    /** A PIN pad that crashes: a plain RuntimeException, not a HookException. */
    class CrashingVerifier : UserVerifier {
        override suspend fun verify(prompt: VerificationPrompt): VerificationOutcome =
            throw RuntimeException("the PIN pad crashed")
    }

    @Test
    fun throwingVerifierIsATypedException() = runBlocking {
        val device = Device()
        val (user, accountId) = activate(device, "hook", pin = "246810")
        val (tx, _) = Rp.push(user, ""","number_matching":"off","verification":"pin"""")
        receiveAll(device.authenticator, listOf(tx))

        // Another instance on the same storage, with the crashing verifier.
        val crashing = device.open(CrashingVerifier())
        assertThrows(CountersignException.HookFailed::class.java) {
            runBlocking { crashing.approve(accountId, tx) }
        }
        // The sample maps it to a retry; nothing was sent, nothing counted.
        val card = PushController(crashing).cards().single { it.txId == tx }
        assertEquals(ActionResult.Retry("Could not verify: try again"), PushController(crashing).approve(card))
        crashing.close()
        assertEquals("pending", rpState(tx))
        assertEquals(0u, device.authenticator.account(accountId).pinFailures, "a crash is no wrong PIN")
        assertEquals(listOf(tx), device.authenticator.pendingRequests().map { it.txId })
        assertTrue(device.authenticator.outbox().isEmpty())

        // A working verifier then approves it.
        device.ui.pins.add("246810")
        val outcome = device.authenticator.approve(accountId, tx)
        assertEquals(Verification.PIN, outcome.verification)
        assertEquals(Delivery.DELIVERED, outcome.delivery)
        assertEquals("approved", rpState(tx, wait = 5))
    }

    @Test
    fun approveAndDenyAfterProcessDeath() = runBlocking {
        val device = Device()
        var app: Authenticator? = device.open()
        val (user, accountId) = activate(app!!, "restart")
        val push = mapOf("device_id" to deviceId(app, accountId))

        // Received by the push handler, then the process dies.
        val (approveTx, _) = Rp.push(user, ""","number_matching":"off"""")
        assertEquals(approveTx, app.handlePush(push + ("tx_id" to approveTx)).txId)
        app.close()
        app = null

        // The restarted app finds the request in storage and approves it.
        app = device.open()
        assertEquals(listOf(approveTx), app.pendingRequests().map { it.txId })
        val outcome = app.approve(accountId, approveTx)
        assertEquals(Delivery.DELIVERED, outcome.delivery)
        assertEquals("approved", rpState(approveTx, wait = 5))

        // Received by long-poll, then the process dies.
        val (denyTx, _) = Rp.push(user, ""","number_matching":"off"""")
        receiveAll(app, listOf(denyTx))
        // Started now, never received: "not me" below locks new pushes to the user.
        val (unseenTx, _) = Rp.push(user, ""","number_matching":"off"""")
        app.close()
        app = null

        // The notification's Deny action in a fresh process: ids only, no UI.
        app = device.open()
        assertEquals(ActionResult.Denied(), PushController(app).deny(accountId, denyTx, notMe = true))
        val status = Rp.status(denyTx, wait = 5)
        assertEquals("denied", jsonString(status, "state"), status)
        assertEquals("not_me", jsonString(status, "deny_reason"), status)
        assertTrue(status.contains("\"fraud_reported\":true"), status)

        // A request this device never received is fetched again by its ids.
        app.close()
        app = device.open()
        assertEquals(Delivery.DELIVERED, app.approve(accountId, unseenTx).delivery)
        assertEquals("approved", rpState(unseenTx, wait = 5))
        assertTrue(app.pendingRequests().isEmpty())
        assertTrue(app.outbox().isEmpty())
        assertTrue(device.ui.asked.isEmpty(), "no request needed verification")
        app.close()
    }

    /** The app's network stack with a switch that drops every answer (no connection). */
    class OfflineAnswers(private val inner: HttpClient) : HttpClient {
        @Volatile var offline = false

        override suspend fun send(request: HttpRequest): HttpResponse {
            if (offline && request.url.substringBefore('?').endsWith("/answer")) throw HttpException.Connect("offline (test)")
            return inner.send(request)
        }
    }

    @Test
    fun queuedAnswerIsDeliveredFromTheOutbox() = runBlocking {
        val http = OfflineAnswers(UrlConnectionHttpClient())
        val device = Device(http = http)
        val (user, accountId) = activate(device, "outbox")
        val (tx, _) = Rp.push(user, ""","number_matching":"off"""")
        receiveAll(device.authenticator, listOf(tx))

        http.offline = true
        val controller = PushController(device.authenticator)
        val result = controller.approve(controller.cards().single { it.txId == tx })
        assertTrue(result is ActionResult.Approved && result.queued, "$result")
        assertEquals("pending", rpState(tx))
        val entry = device.authenticator.outbox().single()
        assertEquals(tx, entry.txId)
        assertEquals(accountId, entry.accountId)
        assertEquals(Decision.APPROVE, entry.decision)
        assertEquals(OutboxState.Waiting, entry.state)
        // Still offline at the next start: the user hears it is waiting.
        assertEquals(
            listOf(OutboxNotice(accountId, tx, "Your approval will be sent when the connection is back")),
            controller.deliverOutbox(),
        )

        // Back online, in a restarted app: sent without asking again.
        http.offline = false
        val restarted = device.open()
        assertEquals(emptyList<OutboxNotice>(), PushController(restarted).deliverOutbox())
        assertEquals("approved", rpState(tx, wait = 5))
        assertTrue(restarted.outbox().isEmpty())
        assertTrue(restarted.pendingRequests().isEmpty())
    }

    @Test
    fun twoProcessesAnswerOnOneStorage() = runBlocking {
        // Several accounts, two requests each: each child approves one request of
        // every account, in the same order, so both write each account's record at
        // about the same time. (The server allows 3 pending pushes per user.)
        val device = Device()
        val accounts = (1..ACCOUNTS).map { activate(device, "twoproc") }
        val txs = accounts.map { (user, accountId) ->
            List(2) { accountId to Rp.push(user, ""","number_matching":"off","timeout_secs":120""").first }
        }
        receiveAll(device.authenticator, txs.flatten().map { it.second })

        val control = java.nio.file.Files.createTempDirectory("countersign-twoproc").toFile()
        val children = (0..1).map { n ->
            val work = txs.map { it[n] }.joinToString(",") { (account, tx) -> "$account:$tx" }
            val command = listOf(javaBinary()) + jnaProperties() +
                listOf("-cp", childClasspath(), TwoProcessChild::class.java.name, device.dir.path, control.path, "child$n", work)
            val builder = ProcessBuilder(command)
                .redirectOutput(File(control, "child$n.out"))
                .redirectError(File(control, "child$n.err"))
            // The key goes by environment, not on the command line.
            builder.environment()["COUNTERSIGN_TEST_STORAGE_KEY"] = hex(device.storageKey.encoded)
            builder.start()
        }
        fun report(n: Int) = "child$n stdout:\n" + File(control, "child$n.out").readText() +
            "\nchild$n stderr:\n" + File(control, "child$n.err").readText()

        try {
            // Both open their Authenticator, then start together.
            val deadline = System.nanoTime() + 60_000_000_000
            while (!(0..1).all { File(control, "child$it.ready").exists() }) {
                (0..1).forEach { n -> check(children[n].isAlive) { "child$n died early\n${report(n)}" } }
                check(System.nanoTime() < deadline) { "children not ready\n${report(0)}\n${report(1)}" }
                Thread.sleep(20)
            }
            File(control, "go").createNewFile()
            (0..1).forEach { n ->
                assertTrue(children[n].waitFor(90, TimeUnit.SECONDS), "child$n hangs\n${report(n)}")
                assertEquals(0, children[n].exitValue(), report(n))
            }
        } finally {
            children.forEach { if (it.isAlive) it.destroyForcibly() }
        }
        // They really ran at the same time (else this tested nothing).
        val (a, b) = (0..1).map { n -> File(control, "child$n.span").readText().trim().split(' ').map(String::toLong) }
        assertTrue(a[0] < b[1] && b[0] < a[1], "the children's approvals did not overlap: $a $b")

        // Neither decision was lost: the server has them all, and the storage,
        // reopened, has no request pending and nothing in the outbox.
        for ((_, tx) in txs.flatten()) assertEquals("approved", rpState(tx, wait = 5), tx)
        val reopened = device.open()
        assertEquals(emptyList<String>(), reopened.pendingRequests().map { it.txId })
        assertEquals(emptyList<String>(), reopened.outbox().map { it.txId })
        // The accounts still work: a new request is received and approved.
        val (user, accountId) = accounts.first()
        val (tx, _) = Rp.push(user, ""","number_matching":"off"""")
        receiveAll(reopened, listOf(tx))
        assertEquals(Delivery.DELIVERED, reopened.approve(accountId, tx).delivery)
        assertEquals("approved", rpState(tx, wait = 5))
    }

    private companion object {
        const val ACCOUNTS = 5

        fun javaBinary(): String = File(System.getProperty("java.home"), "bin/java").path

        /** The runner's JNA settings (where libcountersign_ffi is); never `jna.loaded`. */
        fun jnaProperties(): List<String> =
            listOf("jna.library.path", "jna.boot.library.path", "jna.nosys", "jna.nounpack", "jna.tmpdir")
                .mapNotNull { name -> System.getProperty(name)?.let { "-D$name=$it" } }

        /**
         * The test classes and their libraries. The JUnit console launcher loads
         * them from its own class loader, so `java.class.path` alone holds only the
         * launcher: add where each needed class came from.
         */
        fun childClasspath(): String {
            val fromClasses = listOf(
                TwoProcessChild::class.java, Unit::class.java, kotlinx.coroutines.Job::class.java,
                com.sun.jna.Native::class.java,
            ).mapNotNull { it.protectionDomain?.codeSource?.location?.toURI()?.let(::File)?.path }
            val launcher = System.getProperty("java.class.path").split(File.pathSeparator)
            return (fromClasses + launcher).filter { it.isNotEmpty() }.distinct().joinToString(File.pathSeparator)
        }
    }
}

/**
 * A child process of [RestartTests.twoProcessesAnswerOnOneStorage]: opens an
 * Authenticator on the shared storage directory, says it is ready, waits for the
 * go file, then approves its requests. Exits 0 when every approval was delivered.
 *
 * Arguments: storage directory, control directory, name, `account:tx,...`.
 */
object TwoProcessChild {
    @JvmStatic
    fun main(args: Array<String>) {
        try {
            val (dir, control, name, work) = args
            val key = javax.crypto.spec.SecretKeySpec(unhex(System.getenv("COUNTERSIGN_TEST_STORAGE_KEY")), "AES")
            val device = Device(dir = File(dir), storageKey = key)
            val authenticator = device.authenticator
            File(control, "$name.ready").createNewFile()
            val go = File(control, "go")
            val deadline = System.nanoTime() + 60_000_000_000
            while (!go.exists()) {
                check(System.nanoTime() < deadline) { "no go" }
                Thread.sleep(2)
            }
            val started = System.currentTimeMillis()
            runBlocking {
                for (item in work.split(',')) {
                    val (accountId, tx) = item.split(':')
                    val outcome = authenticator.approve(accountId, tx)
                    check(outcome.delivery == Delivery.DELIVERED) { "$tx: ${outcome.delivery}" }
                    println("$name approved $tx at ${System.currentTimeMillis()}")
                }
            }
            File(control, "$name.span").writeText("$started ${System.currentTimeMillis()}")
            System.out.flush()
            exitProcess(0)
        } catch (e: Throwable) {
            e.printStackTrace()
            System.err.flush()
            exitProcess(1)
        }
    }
}
