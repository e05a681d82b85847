// The hand-written Kotlin facade over the uniffi-generated bindings (same package).
//
// The generated `Authenticator` already exposes `suspend` functions for everything that
// talks to the server. This file adds what Kotlin callers expect on top:
// structured-concurrency cancellation of long-polls, a Flow of pending requests, the
// errors' stable codes, and the P-256 encodings a platform KeyVault needs (DER <-> raw
// r||s, SEC1 public keys). Times are typed: spans are kotlin.time.Duration, instants
// java.time.Instant.
package org.countersign

import java.math.BigInteger
import java.security.AlgorithmParameters
import java.security.KeyFactory
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import java.security.spec.ECParameterSpec
import java.security.spec.ECPoint
import java.security.spec.ECPublicKeySpec
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.isActive
import kotlinx.coroutines.Job
import kotlinx.coroutines.job
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds

/** Entry points with Kotlin defaults. */
object Countersign {
    /**
     * Opens the authenticator. [keyVault] null uses the core's software vault inside
     * [storage]. [http] defaults to [UrlConnectionHttpClient], the platform's network
     * stack (the only choice on Android, whose native library has no client of its
     * own); null uses the library's built-in reqwest client where it has one
     * (desktop JVM builds).
     */
    fun open(
        platform: Platform,
        storage: SecureStorage,
        verifier: UserVerifier,
        keyVault: KeyVault? = null,
        http: HttpClient? = UrlConnectionHttpClient(),
        clock: Clock? = null,
        logger: Logger? = null,
        deviceName: String? = null,
        push: PushRegistration = PushRegistration.None,
    ): Authenticator = Authenticator(
        AuthenticatorConfig(platform = platform, deviceName = deviceName, push = push),
        storage, verifier, keyVault, http, clock, logger,
    )
}

/**
 * The stable, machine-readable code of this error, in snake_case (`wrong_pin`,
 * `request_not_found`, `invalid_input`, `server_rejected`, …): for logs, analytics
 * and `when` branches. The data stays on the subclass ([CountersignException.WrongPin.attemptsLeft],
 * [CountersignException.InvalidInput.field], [CountersignException.ServerRejected.serverCode]).
 * The exception's `message` is for logs only: never show it to users.
 */
val CountersignException.code: String
    get() = errorCode()

/**
 * Long-polls every server for pending requests (up to [wait], whole seconds).
 * Cancelling the calling coroutine cancels the Rust-side wait through a
 * [CancelHandle] at once.
 */
suspend fun Authenticator.awaitPending(wait: Duration = 30.seconds): List<PendingRequest> {
    val handle = CancelHandle()
    val job: Job = currentCoroutineContext().job
    val registration = job.invokeOnCompletion { cause -> if (cause != null) handle.cancel() }
    try {
        return pending(wait, handle)
    } catch (e: CountersignException.Cancelled) {
        throw CancellationException("pending() cancelled").apply { initCause(e) }
    } finally {
        registration.dispose()
        handle.close()
    }
}

/**
 * The pending requests of every account while collected, for a list UI to show
 * as it is. First the stored list ([Authenticator.pendingRequests], no network),
 * then, after each long-poll (up to [wait]), the new list whenever its
 * requests (account and tx ids) differ from the last one emitted — INCLUDING the
 * empty list, so a request answered here, on another device or in another
 * process, or one that expired, leaves the UI. An unchanged list is not emitted
 * again. While requests wait for the user each poll waits on the server too
 * (it names the requests it holds), so the loop does not spin. Network errors
 * are retried after [retryDelay]; other errors end the flow. Stops when the
 * collector is cancelled.
 */
fun Authenticator.pendingRequestsFlow(wait: Duration = 30.seconds, retryDelay: Duration = 5.seconds): Flow<List<PendingRequest>> = flow {
    var requests = pendingRequests()
    var last: Set<Pair<String, String>>? = null
    while (true) {
        val ids = requests.map { it.accountId to it.txId }.toSet()
        if (ids != last) {
            last = ids
            emit(requests)
        }
        if (!currentCoroutineContext().isActive) break
        requests = try {
            awaitPending(wait)
        } catch (e: CountersignException.Network) {
            kotlinx.coroutines.delay(retryDelay)
            continue
        }
    }
}

/** Whether approving needs a number from the user (typed or picked). */
val PendingRequest.needsNumber: Boolean
    // `Show`: the user types the phone's number on the page, not here.
    get() = numberMatching is NumberMatching.Pick || numberMatching is NumberMatching.Type

/**
 * P-256 encodings between Java's security APIs (Android Keystore, JCA) and the
 * byte formats of the [KeyVault] trait.
 */
object P256 {
    private val params: ECParameterSpec by lazy {
        AlgorithmParameters.getInstance("EC").run {
            init(ECGenParameterSpec("secp256r1"))
            getParameterSpec(ECParameterSpec::class.java)
        }
    }

    /** 65-byte uncompressed SEC1 point (`04 || x || y`) of a public key. */
    fun sec1(key: ECPublicKey): ByteArray {
        val out = ByteArray(65)
        out[0] = 4
        unsigned32(key.w.affineX).copyInto(out, 1)
        unsigned32(key.w.affineY).copyInto(out, 33)
        return out
    }

    /** A Java public key from a 65-byte uncompressed SEC1 point. */
    fun publicKey(sec1: ByteArray): ECPublicKey {
        require(sec1.size == 65 && sec1[0] == 4.toByte()) { "expected a 65-byte uncompressed P-256 point" }
        val x = BigInteger(1, sec1.copyOfRange(1, 33))
        val y = BigInteger(1, sec1.copyOfRange(33, 65))
        return KeyFactory.getInstance("EC").generatePublic(ECPublicKeySpec(ECPoint(x, y), params)) as ECPublicKey
    }

    /** ECDSA DER (`SEQUENCE { INTEGER r, INTEGER s }`, what Java returns) to raw `r || s`. */
    fun derToRaw(der: ByteArray): ByteArray {
        var i = 0
        fun byte(): Int = (der.getOrNull(i++) ?: throw IllegalArgumentException("truncated DER signature")).toInt() and 0xff
        fun length(): Int {
            val first = byte()
            return when {
                first < 0x80 -> first
                first == 0x81 -> byte()
                else -> throw IllegalArgumentException("bad DER length")
            }
        }
        require(byte() == 0x30) { "not a DER sequence" }
        val total = length()
        require(total == der.size - i) { "bad DER sequence length" }
        val out = ByteArray(64)
        for (part in 0 until 2) {
            require(byte() == 0x02) { "not a DER integer" }
            val len = length()
            require(len in 1..33 && i + len <= der.size) { "bad DER integer" }
            val value = der.copyOfRange(i, i + len)
            i += len
            unsigned32(BigInteger(1, value)).copyInto(out, part * 32)
        }
        require(i == der.size) { "trailing bytes after DER signature" }
        return out
    }

    /** Raw `r || s` to ECDSA DER (for verifying with Java's `Signature`). */
    fun rawToDer(raw: ByteArray): ByteArray {
        require(raw.size == 64) { "expected 64 bytes" }
        fun integer(bytes: ByteArray): ByteArray {
            val v = BigInteger(1, bytes).toByteArray() // minimal, with a sign byte when needed
            return byteArrayOf(0x02, v.size.toByte()) + v
        }
        val body = integer(raw.copyOfRange(0, 32)) + integer(raw.copyOfRange(32, 64))
        return byteArrayOf(0x30, body.size.toByte()) + body
    }

    private fun unsigned32(v: BigInteger): ByteArray {
        val bytes = v.toByteArray()
        return when {
            bytes.size == 32 -> bytes
            bytes.size == 33 && bytes[0] == 0.toByte() -> bytes.copyOfRange(1, 33)
            bytes.size < 32 -> ByteArray(32 - bytes.size) + bytes
            else -> throw IllegalArgumentException("value does not fit in 32 bytes")
        }
    }
}
