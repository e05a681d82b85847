// Test support: the relying-party API of the test server, a scripted prompt UI,
// and authenticators built from the sample's shared Kotlin hooks.
package org.countersign.tests

import java.io.File
import java.net.URI
import java.net.http.HttpClient as JdkHttpClient
import java.net.http.HttpRequest as JdkRequest
import java.net.http.HttpResponse as JdkResponse
import java.nio.file.Files
import java.time.Duration
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.atomic.AtomicInteger
import javax.crypto.KeyGenerator
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.runBlocking
import org.countersign.AccountKind
import org.countersign.Authenticator
import org.countersign.awaitPending
import org.countersign.AuthenticatorConfig
import org.countersign.Clock
import org.countersign.HttpClient
import org.countersign.KeyVault
import org.countersign.Platform
import org.countersign.PushRegistration
import org.countersign.UserVerifier
import org.countersign.sample.ActivationController
import org.countersign.sample.BiometricResult
import org.countersign.sample.EncryptedFileStorage
import org.countersign.sample.PromptUi
import org.countersign.sample.PromptVerifier

/** The test server's RP API (URL and API key from the environment xtask sets). */
object Rp {
    val url: String = System.getenv("COUNTERSIGN_SERVER_URL")
        ?: error("COUNTERSIGN_SERVER_URL is not set: run through `cargo xtask bindings --test`")
    private val apiKey: String = System.getenv("COUNTERSIGN_RP_API_KEY")
        ?: error("COUNTERSIGN_RP_API_KEY is not set")
    private val http = JdkHttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build()
    private val users = AtomicInteger()

    /** A fresh user name per test (the server throttles pushes per user). */
    fun newUser(prefix: String): String = "$prefix-${ProcessHandle.current().pid()}-${users.incrementAndGet()}"

    fun call(method: String, path: String, json: String? = null, bearer: String = apiKey): Pair<Int, String> {
        val builder = JdkRequest.newBuilder(URI.create(url + path))
            .header("Authorization", "Bearer $bearer")
            .timeout(Duration.ofSeconds(30))
        if (json != null) builder.header("Content-Type", "application/json")
        builder.method(method, json?.let { JdkRequest.BodyPublishers.ofString(it) } ?: JdkRequest.BodyPublishers.noBody())
        val response = http.send(builder.build(), JdkResponse.BodyHandlers.ofString())
        return response.statusCode() to response.body()
    }

    fun post(path: String, json: String): String {
        val (status, body) = call("POST", path, json)
        check(status in 200..299) { "POST $path -> $status $body" }
        return body
    }

    fun get(path: String): String {
        val (status, body) = call("GET", path)
        check(status in 200..299) { "GET $path -> $status $body" }
        return body
    }

    /** A new activation offer URI for [user]. */
    fun enroll(user: String): String =
        jsonString(post("/v1/rp/enrollments", """{"user":"$user","label":"$user@example.com"}"""), "offer_uri")
            ?: error("no offer_uri")

    /** Starts a push; returns (tx_id, number shown on the login page or null). */
    fun push(user: String, extra: String = ""): Pair<String, String?> {
        val body = post("/v1/rp/push", """{"user":"$user"$extra}""")
        return (jsonString(body, "tx_id") ?: error("no tx_id in $body")) to jsonString(body, "number")
    }

    /** The login page's call of a QR login, with its browser [handle]. */
    fun page(method: String, path: String, handle: String, json: String? = null): Pair<Int, String> =
        call(method, path, json, bearer = handle)

    /** The challenge's status JSON, after waiting up to [wait] s for an answer. */
    fun status(tx: String, wait: Int = 0): String = get("/v1/rp/challenges/$tx?wait=$wait")
}

/** `"field": "value"` (or null) from a flat JSON text. */
fun jsonString(json: String, field: String): String? {
    val match = Regex("\"" + Regex.escape(field) + "\"\\s*:\\s*(null|\"((?:[^\"\\\\]|\\\\.)*)\")").find(json) ?: return null
    return match.groups[2]?.value?.replace("\\/", "/")?.replace("\\\"", "\"")
}

/** A prompt UI whose answers the test queues; records what was asked. */
class ScriptedUi : PromptUi {
    /** PINs to answer with (null: the user cancels). */
    val pins: MutableList<String?> = java.util.Collections.synchronizedList(mutableListOf())
    val biometrics = ConcurrentLinkedQueue<BiometricResult>()
    val asked = ConcurrentLinkedQueue<String>()

    override suspend fun askPin(title: String, subtitle: String): String? {
        asked.add("pin:$title")
        synchronized(pins) {
            check(pins.isNotEmpty()) { "unexpected PIN prompt: $title" }
            return pins.removeAt(0)
        }
    }

    override suspend fun askBiometric(title: String, subtitle: String): BiometricResult {
        asked.add("biometric:$title")
        return biometrics.poll() ?: error("unexpected biometric prompt: $title")
    }
}

/** A fixed clock for known-answer OTPs; [now] is in unix seconds. */
class FixedClock(@Volatile var now: ULong) : Clock {
    override fun now(): java.time.Instant = java.time.Instant.ofEpochSecond(now.toLong())
}

/** One device: its storage folder and key, prompt script and authenticator. */
class Device(
    val vault: KeyVault? = null,
    val http: HttpClient? = null,
    val clock: Clock? = null,
    val clockSkew: kotlin.time.Duration? = null,
    val dir: File = Files.createTempDirectory("countersign-kotlin").toFile(),
    val storageKey: javax.crypto.SecretKey = KeyGenerator.getInstance("AES").apply { init(256) }.generateKey(),
) {
    val ui = ScriptedUi()
    val storage = EncryptedFileStorage(dir) { storageKey }
    /** The device's first authenticator (opened on first use). */
    val authenticator: Authenticator by lazy { open() }

    /**
     * A new Authenticator over the same storage directory: an app restart, or
     * another process. Its own [EncryptedFileStorage] instance, as a new process has.
     */
    fun open(verifier: UserVerifier = PromptVerifier(ui)): Authenticator = Authenticator(
        AuthenticatorConfig(Platform.DESKTOP, "kotlin-test", PushRegistration.None, null, clockSkew),
        EncryptedFileStorage(dir) { storageKey }, verifier, vault, http, clock, null,
    )
}

/** Activates [authenticator] for a new user; returns (user, local account id). */
fun activate(authenticator: Authenticator, prefix: String, pin: String? = null): Pair<String, String> = runBlocking {
    val user = Rp.newUser(prefix)
    val account = ActivationController(authenticator).add(Rp.enroll(user), pin = pin)
    user to account.id
}

/** Activates [device] for a new user through the shared ActivationController. */
fun activate(device: Device, prefix: String, pin: String? = null): Pair<String, String> =
    activate(device.authenticator, prefix, pin)

/** The server's device id of a push account (what push data names). */
suspend fun deviceId(authenticator: Authenticator, accountId: String): String =
    (authenticator.account(accountId).kind as AccountKind.Push).deviceId

/** The `state` of a challenge on the server (`pending`, `approved`, `denied`, `expired`). */
fun rpState(tx: String, wait: Int = 0): String? = jsonString(Rp.status(tx, wait), "state")

/** Receives pushes until every tx of [txs] is stored on [authenticator] (or fails after [seconds]). */
fun receiveAll(authenticator: Authenticator, txs: Collection<String>, seconds: Long = 30) = runBlocking {
    val deadline = System.nanoTime() + seconds * 1_000_000_000
    while (!authenticator.pendingRequests().map { it.txId }.containsAll(txs)) {
        check(System.nanoTime() < deadline) { "requests not received: ${txs - authenticator.pendingRequests().map { it.txId }.toSet()}" }
        authenticator.awaitPending(5.seconds)
    }
}

/** Lower-case hex. */
fun hex(bytes: ByteArray): String = bytes.joinToString("") { "%02x".format(it) }

/** Bytes of a hex string. */
fun unhex(text: String): ByteArray = ByteArray(text.length / 2) { text.substring(2 * it, 2 * it + 2).toInt(16).toByte() }
