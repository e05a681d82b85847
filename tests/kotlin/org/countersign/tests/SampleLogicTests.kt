// The Android sample's shared logic, without a server.
package org.countersign.tests

import java.time.Instant
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.runBlocking
import org.countersign.ChallengeKind
import org.countersign.CountersignException
import org.countersign.InputField
import org.countersign.code
import org.countersign.NumberMatching
import org.countersign.PendingRequest
import org.countersign.P256
import org.countersign.TransactionDetails
import org.countersign.Verification
import org.countersign.sample.ActionResult
import org.countersign.sample.ActivationController
import org.countersign.sample.OtpListModel
import org.countersign.sample.PushController
import org.countersign.sample.Scanned
import org.countersign.sample.actionResult
import org.countersign.sample.classify
import org.countersign.sample.groupCode
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class SampleLogicTests {
    @Test
    fun scannedTextIsClassified() {
        assertEquals(Scanned.Activation("countersign://activate?x=1"), classify(" countersign://activate?x=1\n"))
        assertEquals(Scanned.Otpauth("otpauth://totp/a?secret=JBSWY3DP"), classify("otpauth://totp/a?secret=JBSWY3DP"))
        assertTrue(classify("https://evil.example") is Scanned.Unknown)
        // A sign-in page's QR login is answered, not added as an account.
        assertEquals(Scanned.Login("countersign://login?v=1&id=x"), classify("countersign://login?v=1&id=x"))
    }

    @Test
    fun unknownQrAndBadOtpauthAreRefused() = runBlocking {
        val device = Device()
        val controller = ActivationController(device.authenticator)
        val unknown = assertThrows(CountersignException.InvalidInput::class.java) { runBlocking { controller.add("hello") } }
        assertEquals(InputField.QR_CODE, unknown.field)
        assertEquals("invalid_input", unknown.code)
        val otpauth = assertThrows(CountersignException.InvalidInput::class.java) {
            runBlocking { controller.add("otpauth://totp/x?secret=!!!") }
        }
        assertEquals(InputField.OTPAUTH_URI, otpauth.field)
        val offer = assertThrows(CountersignException.InvalidInput::class.java) {
            runBlocking { controller.add("countersign://activate?nonsense") }
        }
        assertEquals(InputField.ACTIVATION_URI, offer.field)
        assertTrue(device.authenticator.accounts().isEmpty())
    }

    @Test
    fun otpScreenRows() = runBlocking<Unit> {
        val clock = FixedClock(59u)
        val device = Device(clock = clock)
        val a = device.authenticator
        a.importOtpauth("otpauth://totp/ACME:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=8&issuer=ACME")
        val hotp = a.importOtpauth("otpauth://hotp/Bank:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&counter=0&issuer=Bank")
        val model = OtpListModel(a)
        val rows = model.rows().associateBy { it.title }
        assertEquals("9428 7082", rows.getValue("ACME: alice").code)
        assertEquals(1.seconds, rows.getValue("ACME: alice").timeLeft)
        // RFC 4226: counter 0 -> 755224, then 287082; a refresh does not advance HOTP.
        assertEquals("755 224", rows.getValue("Bank: bob").code)
        assertEquals("755 224", model.rows().single { it.accountId == hotp.id }.code)
        assertEquals("287 082", model.next(hotp.id)!!.code)
        assertEquals("12 34", groupCode("12 34"))
    }

    @Test
    fun cardsAndErrorMessages() {
        val request = PendingRequest(
            "acct", "tx", ChallengeKind.TRANSACTION, "Bank", "192.0.2.1", "Paris, FR", null, "Rent",
            TransactionDetails("120.50", "EUR", "ACME Ltd"), Verification.PIN, NumberMatching.Pick(listOf("12", "34", "56")),
            Instant.ofEpochSecond(1), Instant.ofEpochSecond(31), 30.seconds,
        )
        val card = PushController(Device().authenticator).card(request)
        assertEquals(Instant.ofEpochSecond(31), card.expiresAt)
        assertEquals("Confirm payment for Bank?", card.title)
        assertEquals("120.50 EUR to ACME Ltd\nRent\nParis, FR · 192.0.2.1", card.body)
        assertEquals(listOf("12", "34", "56"), card.pickChoices)
        assertFalse(card.approveFromNotification)
        assertEquals(ActionResult.Retry("Wrong PIN: 2 attempts left"), actionResult(CountersignException.WrongPin(2u)))
        assertTrue(actionResult(CountersignException.PinLocked()) is ActionResult.AccountWiped)
        assertTrue(actionResult(CountersignException.Tampered()) is ActionResult.Gone)
        assertEquals(
            ActionResult.Retry("That number does not match the sign-in page"),
            actionResult(CountersignException.ServerRejected("wrong_number")),
        )
        assertEquals(
            ActionResult.Retry("Check the server address"),
            actionResult(CountersignException.InvalidInput(InputField.SERVER_URL)),
        )
    }

    @Test
    fun derSignaturesConvert() {
        // r with the high bit set (a 33-byte DER integer) and a short s.
        val r = ByteArray(32) { 0x80.toByte() }
        val s = ByteArray(32).also { it[31] = 5 }
        val raw = r + s
        val der = P256.rawToDer(raw)
        assertArrayEquals(raw, P256.derToRaw(der))
        assertThrows(IllegalArgumentException::class.java) { P256.derToRaw(der + byteArrayOf(0)) }
        assertThrows(IllegalArgumentException::class.java) { P256.derToRaw(byteArrayOf(0x30, 0x02, 0x02, 0x00)) }
    }
}
