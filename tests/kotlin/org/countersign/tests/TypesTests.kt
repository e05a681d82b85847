// Issue 13, "Idiomatic types and errors": times arrive as kotlin.time.Duration and
// java.time.Instant, and errors reach the caller as typed exceptions with a stable
// code and typed data (never a sentence to parse).
package org.countersign.tests

import java.time.Instant
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds
import kotlin.time.toKotlinDuration
import kotlinx.coroutines.runBlocking
import org.countersign.ActivationOptions
import org.countersign.CountersignException
import org.countersign.DenyReason
import org.countersign.InputField
import org.countersign.awaitPending
import org.countersign.code
import org.countersign.sample.ActivationController
import org.countersign.sample.PushController
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class TypesTests {
    /** |a - b| as a Kotlin duration. */
    private fun distance(a: Instant, b: Instant): Duration =
        java.time.Duration.between(a, b).abs().toKotlinDuration()

    @Test
    fun pendingRequestTimesAreTyped() = runBlocking {
        val device = Device()
        val (user, _) = activate(device, "types-times")
        val (tx, _) = Rp.push(user, ""","number_matching":"off","timeout_secs":90""")
        val request = device.authenticator.awaitPending(10.seconds).single { it.txId == tx }
        val now = Instant.now()
        // The declared types are the point: these lines compile only with typed fields.
        val issuedAt: Instant = request.issuedAt
        val expiresAt: Instant = request.expiresAt
        val timeLeft: Duration = request.timeLeft
        assertTrue(distance(issuedAt, now) < 10.seconds, "issued at $issuedAt, now $now")
        assertEquals(90.seconds, java.time.Duration.between(issuedAt, expiresAt).toKotlinDuration(), "the challenge lifetime")
        assertTrue(distance(expiresAt, now.plusSeconds(90)) < 10.seconds, "expires at $expiresAt, now $now")
        assertTrue(timeLeft in 80.seconds..90.seconds, "time left $timeLeft")
        // The sample's card carries the instant on.
        assertEquals(expiresAt, PushController(device.authenticator).card(request).expiresAt)
    }

    @Test
    fun otpTimeLeftIsADuration() = runBlocking<Unit> {
        val clock = FixedClock(59u)
        val a = Device(clock = clock).authenticator
        val totp = a.importOtpauth("otpauth://totp/T:t?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=T")
        val hotp = a.importOtpauth("otpauth://hotp/H:h?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&counter=0&issuer=H")
        val left: Duration? = a.otp(totp.id).timeLeft
        assertEquals(1.seconds, left)
        clock.now = 60u
        assertEquals(30.seconds, a.otp(totp.id).timeLeft)
        assertEquals(null, a.otp(hotp.id).timeLeft, "HOTP codes do not expire")
    }

    @Test
    fun aRequestListGoesEmptyAfterAnAnswer() = runBlocking {
        val device = Device()
        val (user, accountId) = activate(device, "types-empty")
        val (tx, _) = Rp.push(user, ""","number_matching":"off"""")
        receiveAll(device.authenticator, listOf(tx))
        assertEquals(listOf(tx), device.authenticator.pendingRequests().map { it.txId })
        device.authenticator.deny(accountId, tx, DenyReason.MISTAKE)
        assertEquals(emptyList<String>(), device.authenticator.pendingRequests().map { it.txId })
        assertEquals(emptyList<String>(), device.authenticator.awaitPending(Duration.ZERO).map { it.txId })
    }

    @Test
    fun unknownRequestIsATypedErrorWithACode() = runBlocking {
        val device = Device()
        val (_, accountId) = activate(device, "types-unknown")
        val e = assertThrows(CountersignException::class.java) {
            runBlocking { device.authenticator.approve(accountId, "no-such-tx-${System.nanoTime()}") }
        }
        assertTrue(e is CountersignException.RequestNotFound, "$e")
        assertEquals("request_not_found", e.code)
    }

    @Test
    fun wrongPinCarriesAttemptsLeft() = runBlocking {
        val device = Device()
        val (user, accountId) = activate(device, "types-pin", pin = "246810")
        val (tx, _) = Rp.push(user, ""","number_matching":"off","verification":"pin"""")
        receiveAll(device.authenticator, listOf(tx))
        device.ui.pins.add("111111")
        val first = assertThrows(CountersignException.WrongPin::class.java) {
            runBlocking { device.authenticator.approve(accountId, tx) }
        }
        assertEquals("wrong_pin", first.code)
        assertTrue(first.attemptsLeft > 0u, "${first.attemptsLeft}")
        device.ui.pins.add("222222")
        val second = assertThrows(CountersignException.WrongPin::class.java) {
            runBlocking { device.authenticator.approve(accountId, tx) }
        }
        assertEquals(first.attemptsLeft - 1u, second.attemptsLeft)
        assertEquals(2u, device.authenticator.account(accountId).pinFailures)
    }

    @Test
    fun invalidInputNamesATypedField() = runBlocking {
        val a = Device().authenticator
        val uri = assertThrows(CountersignException.InvalidInput::class.java) {
            runBlocking { a.activateUri("https://not-an-offer.example", ActivationOptions(null, false)) }
        }
        assertEquals(InputField.ACTIVATION_URI, uri.field)
        assertEquals("invalid_input", uri.code)
        // Checked by the bindings themselves (not the core).
        val fingerprint = assertThrows(CountersignException.InvalidInput::class.java) {
            runBlocking { a.activateCode(Rp.url, "04HMA-SW9MN-D0ZW0-H48SM-8NB6C", byteArrayOf(1, 2, 3), ActivationOptions(null, false)) }
        }
        assertEquals(InputField.SERVER_KEY_FINGERPRINT, fingerprint.field)
        // Thrown by the sample's handlers (no Result to unwrap).
        val push = assertThrows(CountersignException.InvalidInput::class.java) {
            runBlocking { PushController(a).onPush(mapOf("tx_id" to "t")) }
        }
        assertEquals(InputField.PUSH_DATA, push.field)
        val scanned = assertThrows(CountersignException::class.java) {
            runBlocking { ActivationController(a).add("hello") }
        }
        assertEquals("invalid_input", scanned.code)
        assertEquals(InputField.QR_CODE, (scanned as CountersignException.InvalidInput).field)
    }
}
