// Kotlin tests of the generated bindings on the JVM (JNA), against a live
// countersign-server on loopback, using the Android sample's shared hooks.
package org.countersign.tests

import java.security.Signature
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull
import org.countersign.AccountKind
import org.countersign.ChallengeKind
import org.countersign.ActivationOptions
import org.countersign.CountersignException
import org.countersign.DenyReason
import org.countersign.HttpClient
import org.countersign.HttpRequest
import org.countersign.HttpResponse
import org.countersign.KeyPurpose
import org.countersign.KeySpec
import org.countersign.NumberMatching
import org.countersign.P256
import org.countersign.StorageException
import org.countersign.Verification
import org.countersign.awaitPending
import org.countersign.needsNumber
import org.countersign.pendingRequestsFlow
import org.countersign.sample.ActionResult
import org.countersign.sample.ActivationController
import org.countersign.sample.BiometricResult
import org.countersign.sample.InMemoryP256KeyStore
import org.countersign.sample.JcaKeyVault
import org.countersign.sample.PushController
import org.countersign.sample.classify
import org.countersign.sample.Scanned
import org.countersign.InputField
import org.countersign.UrlConnectionHttpClient
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class BindingTests {
    private suspend fun deviceId(device: Device, accountId: String): String = deviceId(device.authenticator, accountId)

    @Test
    fun activation() = runBlocking {
        val device = Device()
        val user = Rp.newUser("activation")
        val account = device.authenticator.activateUri(Rp.enroll(user), ActivationOptions(null, false))
        val kind = account.kind as AccountKind.Push
        assertEquals("$user@example.com", account.label)
        assertEquals(Rp.url, kind.serverUrl.trimEnd('/'))
        assertTrue(Rp.get("/v1/rp/users/$user/devices").contains(kind.deviceId), "the server lists the device")
        assertEquals(listOf(account), device.authenticator.accounts())
        // An offer is single use.
        val again = Device()
        val offer = Rp.enroll(Rp.newUser("activation"))
        again.authenticator.activateUri(offer, ActivationOptions(null, false))
        assertThrows(CountersignException::class.java) {
            runBlocking { Device().authenticator.activateUri(offer, ActivationOptions(null, false)) }
        }
        Unit
    }

    @Test
    fun pushApproveWithNumberMatching() = runBlocking {
        val device = Device()
        val (user, accountId) = activate(device, "approve")
        val (tx, number) = Rp.push(user, ""","number_matching":"type","digits":2,"context":{"ip":"192.0.2.7","location":"Berlin, DE"}""")
        assertNotNull(number)
        val request = device.authenticator.awaitPending(10.seconds).single { it.txId == tx }
        assertEquals(NumberMatching.Type(2u), request.numberMatching)
        assertTrue(request.needsNumber)
        assertEquals("192.0.2.7", request.ip)
        assertEquals("Binding Tests", request.rp)
        // A number of the wrong shape is refused locally, before anything is signed.
        assertThrows(CountersignException.InvalidInput::class.java) {
            runBlocking { device.authenticator.approve(accountId, tx, "123") }
        }
        val outcome = device.authenticator.approve(accountId, tx, number)
        assertEquals(Verification.NONE, outcome.verification)
        val status = Rp.status(tx, wait = 5)
        assertEquals("approved", jsonString(status, "state"), status)
        // The push OTP the phone sent is the one the login form can check.
        // Only for its own login: with that tx id.
        val validated = Rp.post("/v1/rp/validate", """{"user":"$user","passcode":"${outcome.pushOtp}","tx_id":"$tx"}""")
        assertEquals("accepted", jsonString(validated, "result"), validated)
        // Answered requests cannot be answered again.
        assertThrows(CountersignException::class.java) {
            runBlocking { device.authenticator.approve(accountId, tx, number) }
        }
        Unit
    }

    @Test
    fun denyNotMe() = runBlocking {
        val device = Device()
        val (user, accountId) = activate(device, "deny")
        val (tx, _) = Rp.push(user, ""","number_matching":"off"""")
        // As the FCM service does: the push data names the device and the transaction.
        val controller = PushController(device.authenticator)
        val card = controller.onPush(mapOf("device_id" to deviceId(device, accountId), "tx_id" to tx))
        assertTrue(card.approveFromNotification)
        assertEquals("Sign in to Binding Tests?", card.title)
        assertEquals(ActionResult.Denied(), controller.deny(card, notMe = true))
        val status = Rp.status(tx, wait = 5)
        assertEquals("denied", jsonString(status, "state"), status)
        assertEquals("not_me", jsonString(status, "deny_reason"), status)
        assertTrue(device.ui.asked.isEmpty(), "deny needs no verification")
    }

    /** Three denied pushes pause pushes for the user; "it was me" on the phone resumes them. */
    @Test
    fun itWasMeResumesSuppressedPushes() = runBlocking {
        val device = Device()
        val (user, accountId) = activate(device, "resume")
        repeat(3) {
            val (tx, _) = Rp.push(user, ""","number_matching":"off"""")
            receiveAll(device.authenticator, listOf(tx))
            device.authenticator.deny(accountId, tx, DenyReason.MISTAKE)
        }
        val (refused, body) = Rp.call("POST", "/v1/rp/push", """{"user":"$user"}""")
        assertEquals(429, refused, body)
        assertEquals("suppressed", jsonString(body, "code"), body)
        device.authenticator.resumePushes(accountId)
        val (tx, _) = Rp.push(user, ""","number_matching":"off"""")
        receiveAll(device.authenticator, listOf(tx))
        assertEquals(listOf(tx), device.authenticator.pendingRequests().map { it.txId })
    }

    @Test
    fun pinStepUpThroughKotlinVerifier() = runBlocking {
        val device = Device()
        val (user, accountId) = activate(device, "pin", pin = "246810")
        assertTrue(device.authenticator.account(accountId).pinSet)
        val (tx, _) = Rp.push(user, ""","number_matching":"off","verification":"pin"""")
        val request = device.authenticator.awaitPending(10.seconds).single { it.txId == tx }
        assertEquals(Verification.PIN, request.verification)
        val controller = PushController(device.authenticator)
        val card = controller.card(request)
        assertFalse(card.approveFromNotification, "a PIN request opens the app")

        device.ui.pins.add(null)
        assertEquals(ActionResult.Retry("Verification cancelled"), controller.approve(card))
        device.ui.pins.add("111111")
        val wrong = assertThrows(CountersignException.WrongPin::class.java) {
            runBlocking { device.authenticator.approve(accountId, tx) }
        }
        assertTrue(wrong.attemptsLeft > 0u)
        assertEquals(1u, device.authenticator.account(accountId).pinFailures)
        device.ui.pins.add("246810")
        val approved = controller.approve(card)
        assertTrue(approved is ActionResult.Approved, "$approved")
        assertEquals(0u, device.authenticator.account(accountId).pinFailures, "a right PIN resets the count")
        assertEquals(3, device.ui.asked.size)
        assertTrue(device.ui.asked.all { it.startsWith("pin:") })
        assertEquals("approved", jsonString(Rp.status(tx, wait = 5), "state"))
    }

    @Test
    fun kotlinSecureStorage() = runBlocking {
        val device = Device()
        val s = device.storage
        assertNull(s.get("a/1"))
        s.put("a/1", byteArrayOf(1, 2, 3))
        s.put("a/2", ByteArray(0))
        s.put("b/1", "x".toByteArray())
        s.put("a/1", byteArrayOf(9))
        assertArrayEquals(byteArrayOf(9), s.get("a/1"))
        assertEquals(setOf("a/1", "a/2"), s.list("a/").toSet())
        s.delete("a/1")
        s.delete("a/1")
        assertNull(s.get("a/1"))
        assertThrows(StorageException::class.java) { s.put("", byteArrayOf()) }

        // compareAndPut: null expects no value; a mismatch changes nothing.
        assertFalse(s.compareAndPut("c/1", byteArrayOf(1), byteArrayOf(2)))
        assertNull(s.get("c/1"))
        assertTrue(s.compareAndPut("c/1", null, byteArrayOf(1)))
        assertFalse(s.compareAndPut("c/1", null, byteArrayOf(2)))
        assertFalse(s.compareAndPut("c/1", byteArrayOf(9), byteArrayOf(2)))
        assertFalse(s.compareAndPut("c/1", byteArrayOf(1, 0), byteArrayOf(2)))
        assertArrayEquals(byteArrayOf(1), s.get("c/1"))
        assertTrue(s.compareAndPut("c/1", byteArrayOf(1), byteArrayOf(3)))
        assertArrayEquals(byteArrayOf(3), s.get("c/1"))
        assertThrows(StorageException::class.java) { s.compareAndPut("", null, byteArrayOf()) }
        // The lock file is no key.
        assertTrue(java.io.File(device.dir, "lock").exists())
        assertEquals(setOf("a/2", "b/1", "c/1"), s.list("").toSet())

        // Threads on two instances over one directory (two FileChannel locks in one
        // JVM would throw): every increment by compare-and-swap survives.
        val other = org.countersign.sample.EncryptedFileStorage(device.dir) { device.storageKey }
        val threads = (0 until 4).map { i ->
            Thread {
                val store = if (i % 2 == 0) s else other
                repeat(25) {
                    while (true) {
                        val old = store.get("counter")
                        val next = (old?.let { String(it).toInt() } ?: 0) + 1
                        if (store.compareAndPut("counter", old, next.toString().toByteArray())) break
                    }
                }
            }.apply { start() }
        }
        threads.forEach { it.join() }
        assertEquals("100", String(s.get("counter")!!))

        // The core keeps its accounts in it: they survive an app restart, encrypted.
        val (_, accountId) = activate(device, "storage")
        val reopened = device.open()
        assertEquals(listOf(accountId), reopened.accounts().map { it.id })
        val files = device.dir.listFiles()!!.filter { it.name.endsWith(".blob") }
        assertTrue(files.isNotEmpty())
        assertTrue(files.none { String(it.readBytes(), Charsets.ISO_8859_1).contains("storage-") }, "records are encrypted")
        // A blob moved under another name does not decrypt (the name is the AAD).
        val first = files.first()
        first.copyTo(java.io.File(device.dir, "7a7a.blob"), overwrite = true)
        assertThrows(StorageException.Corrupt::class.java) { s.get("zz") }
        Unit
    }

    @Test
    fun jcaKeyVaultSignsAndAgreesThroughTheTrait() = runBlocking {
        // The vault on its own: raw signatures verify with Java, ECDH agrees with Java.
        val store = InMemoryP256KeyStore()
        val vault = JcaKeyVault(store)
        val pub = vault.createKey("s", KeySpec(KeyPurpose.SIGNING, false))
        val raw = vault.sign("s", "hello".toByteArray())
        assertEquals(64, raw.size)
        val verifier = Signature.getInstance("SHA256withECDSA")
        verifier.initVerify(P256.publicKey(pub))
        verifier.update("hello".toByteArray())
        assertTrue(verifier.verify(P256.rawToDer(raw)))
        assertThrows(org.countersign.KeyVaultException.WrongPurpose::class.java) { vault.ecdh("s", pub) }
        assertThrows(org.countersign.KeyVaultException.NotFound::class.java) { vault.sign("none", byteArrayOf()) }

        // Through the core: Dp signs every device request, the biometric key does ECDH.
        val device = Device(vault = vault)
        val (user, accountId) = activate(device, "vault")
        val signsAfterActivation = vault.signCount
        assertTrue(signsAfterActivation > 0, "activation signed with the Kotlin vault")
        device.authenticator.enableBiometric(accountId)
        assertTrue(device.authenticator.account(accountId).biometricEnabled)
        assertTrue(store.userVerificationBound.isNotEmpty(), "the biometric key is bound to user verification")

        val (tx, _) = Rp.push(user, ""","number_matching":"off","verification":"biometric"""")
        val request = device.authenticator.awaitPending(10.seconds).single { it.txId == tx }
        assertEquals(Verification.BIOMETRIC, request.verification)
        val ecdhBefore = vault.ecdhCount
        device.ui.biometrics.add(BiometricResult.FAILED)
        assertThrows(CountersignException.VerificationFailed::class.java) {
            runBlocking { device.authenticator.approve(accountId, tx) }
        }
        device.ui.biometrics.add(BiometricResult.SUCCEEDED)
        val outcome = device.authenticator.approve(accountId, tx)
        assertEquals(Verification.BIOMETRIC, outcome.verification)
        assertTrue(vault.ecdhCount > ecdhBefore, "the approval unwrapped its key by ECDH in the Kotlin vault")
        assertTrue(vault.signCount > signsAfterActivation)
        assertEquals("approved", jsonString(Rp.status(tx, wait = 5), "state"))
        assertTrue(device.ui.asked.any { it.startsWith("biometric:") })
    }

    @Test
    fun totpEqualsTheCore() = runBlocking {
        // RFC 6238 appendix B (SHA-1, 8 digits) through an injected Kotlin clock.
        val clock = FixedClock(59u)
        val device = Device(clock = clock)
        val a = device.authenticator
        val account = a.importOtpauth("otpauth://totp/RFC:6238?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=8&issuer=RFC")
        val vectors = mapOf(59uL to "94287082", 1111111109uL to "07081804", 1234567890uL to "89005924", 20000000000uL to "65353130")
        for ((time, code) in vectors) {
            clock.now = time
            assertEquals(code, a.otp(account.id).code, "t=$time")
        }
        // And equal to an independent Kotlin TOTP at the current time.
        val now = System.currentTimeMillis() / 1000
        clock.now = now.toULong()
        val otp = a.otp(account.id)
        assertEquals(kotlinTotp("12345678901234567890".toByteArray(), now / 30, 8), otp.code)
        assertEquals((30 - now % 30).seconds, otp.timeLeft)

        // A push account's TOTP (system clock) is accepted by the server.
        val phone = Device()
        val (user, accountId) = activate(phone, "totp")
        val code = phone.authenticator.otp(accountId).code
        val validated = Rp.post("/v1/rp/validate", """{"user":"$user","passcode":"$code"}""")
        assertEquals("accepted", jsonString(validated, "result"), validated)
    }

    private fun kotlinTotp(key: ByteArray, counter: Long, digits: Int): String {
        val mac = Mac.getInstance("HmacSHA1")
        mac.init(SecretKeySpec(key, "HmacSHA1"))
        val h = mac.doFinal(java.nio.ByteBuffer.allocate(8).putLong(counter).array())
        val o = h[h.size - 1].toInt() and 0xf
        val bin = ((h[o].toInt() and 0x7f) shl 24) or ((h[o + 1].toInt() and 0xff) shl 16) or
            ((h[o + 2].toInt() and 0xff) shl 8) or (h[o + 3].toInt() and 0xff)
        var mod = 1
        repeat(digits) { mod *= 10 }
        return (bin % mod).toString().padStart(digits, '0')
    }

    @Test
    fun expiredChallengeIsATypedException() = runBlocking {
        val device = Device(clockSkew = Duration.ZERO)
        val (user, accountId) = activate(device, "expired")
        // 5 s: long enough to arrive on a loaded machine, short enough to wait out.
        val (tx, _) = Rp.push(user, ""","number_matching":"off","timeout_secs":5""")
        val request = device.authenticator.awaitPending(10.seconds).single { it.txId == tx }
        Thread.sleep((request.timeLeft + 2.seconds).inWholeMilliseconds)
        assertThrows(CountersignException.RequestExpired::class.java) {
            runBlocking { device.authenticator.approve(accountId, tx) }
        }
        assertEquals("expired", jsonString(Rp.status(tx), "state"))
        Unit
    }

    /** The app's own HTTP stack, with a switch that corrupts challenge signatures. */
    class TamperingHttpClient(private val inner: HttpClient) : HttpClient {
        @Volatile var tamper = false
        @Volatile var lastChallenge: ByteArray? = null

        override suspend fun send(request: HttpRequest): HttpResponse {
            val response = inner.send(request)
            val path = java.net.URI(request.url).path
            if (!Regex("/v1/device/challenges/[^/]+").matches(path) || response.status.toInt() != 200) return response
            lastChallenge = response.body
            if (!tamper) return response
            val text = String(response.body, Charsets.UTF_8)
            val at = text.indexOf("\"sig\":\"") + 7
            check(at > 7) { "no signature in the envelope" }
            val flipped = if (text[at] == 'A') 'B' else 'A'
            return response.copy(body = (text.substring(0, at) + flipped + text.substring(at + 1)).toByteArray())
        }
    }

    @Test
    fun tamperedChallengeIsATypedException() = runBlocking {
        val http = TamperingHttpClient(UrlConnectionHttpClient())
        val device = Device(http = http)
        val (user, accountId) = activate(device, "tampered")
        val push = mapOf("device_id" to deviceId(device, accountId))

        http.tamper = true
        val (tx, _) = Rp.push(user, ""","number_matching":"off"""")
        assertThrows(CountersignException.Tampered::class.java) {
            runBlocking { device.authenticator.handlePush(push + ("tx_id" to tx)) }
        }
        assertTrue(device.authenticator.pendingRequests().isEmpty(), "nothing is shown")

        // The genuine envelope opens; the same bytes with a flipped ciphertext bit do not.
        http.tamper = false
        val request = device.authenticator.handlePush(push + ("tx_id" to tx))
        assertEquals(tx, request.txId)
        val envelope = String(http.lastChallenge!!, Charsets.UTF_8)
        val at = envelope.indexOf("\"payload\":\"") + 11
        val forged = envelope.substring(0, at) + (if (envelope[at] == 'e') 'f' else 'e') + envelope.substring(at + 1)
        assertThrows(CountersignException.Tampered::class.java) {
            runBlocking { device.authenticator.receiveChallenge(accountId, forged.toByteArray()) }
        }
        // The real request is still answerable.
        device.authenticator.deny(accountId, tx, DenyReason.MISTAKE)
        assertEquals("denied", jsonString(Rp.status(tx, wait = 5), "state"))
    }

    /** The app's own HTTP stack, counting the long-poll requests. */
    class CountingHttpClient(private val inner: HttpClient) : HttpClient {
        val polls = java.util.concurrent.atomic.AtomicInteger()

        override suspend fun send(request: HttpRequest): HttpResponse {
            if (request.url.contains("/v1/device/challenges?")) polls.incrementAndGet()
            return inner.send(request)
        }
    }

    /** Issue 13: a request list goes empty after an answer (and the flow does not spin meanwhile). */
    @Test
    fun aRequestListGoesEmptyAfterAnAnswer() = runBlocking {
        val http = CountingHttpClient(UrlConnectionHttpClient())
        val device = Device(http = http)
        val (user, accountId) = activate(device, "flow")
        val seen = Channel<List<String>>(Channel.UNLIMITED)
        val collector = launch {
            device.authenticator.pendingRequestsFlow(wait = 25.seconds).collect { list -> seen.send(list.map { it.txId }) }
        }
        assertEquals(emptyList<String>(), withTimeout(5_000) { seen.receive() }, "the stored list first")
        val (tx, _) = Rp.push(user, ""","number_matching":"off"""")
        assertEquals(listOf(tx), withTimeout(10_000) { seen.receive() })
        // Held and unchanged: the flow waits on the server instead of spinning.
        val before = http.polls.get()
        delay(2_000)
        val polled = http.polls.get() - before
        assertTrue(polled <= 1, "$polled poll requests in 2 s while the request waits")
        val started = System.nanoTime()
        device.authenticator.approve(accountId, tx)
        assertEquals(emptyList<String>(), withTimeout(10_000) { seen.receive() }, "the answered request leaves the list")
        val seconds = (System.nanoTime() - started) / 1e9
        assertTrue(seconds < 10, "emptied after ${seconds}s")
        assertNull(withTimeoutOrNull(1_000) { seen.receive() }, "an unchanged list is not emitted again")
        collector.cancelAndJoin()
    }

    @Test
    fun longPollIsCancelledWithTheCoroutine() = runBlocking {
        val device = Device()
        activate(device, "cancel")
        val started = System.nanoTime()
        val result = withTimeoutOrNull(700) { device.authenticator.awaitPending(25.seconds) }
        val seconds = (System.nanoTime() - started) / 1e9
        assertNull(result)
        assertTrue(seconds < 5, "the Rust long-poll stopped with the coroutine (${seconds}s)")
        // The handle itself.
        val handle = org.countersign.CancelHandle()
        handle.cancel()
        assertThrows(CountersignException.Cancelled::class.java) {
            runBlocking { device.authenticator.pending(25.seconds, handle) }
        }
        Unit
    }

    @Test
    fun qrLoginScannedAndApprovedWithReverseNumber() = runBlocking<Unit> {
        val device = Device()
        val (user, accountId) = activate(device, "qrlogin")
        val created = Rp.post(
            "/v1/rp/logins",
            """{"user":"$user","number_matching":"show","context":{"location":"Berlin, DE","ip":"198.51.100.7"}}""",
        )
        val uri = jsonString(created, "uri") ?: error("no uri in $created")
        val handle = jsonString(created, "browser_handle") ?: error("no handle")
        val id = jsonString(created, "login_id") ?: error("no id")
        val push = PushController(device.authenticator)
        // The sample routes a scanned sign-in QR to the push controller.
        val scanned = classify(uri) as Scanned.Login
        val card = push.onLoginQr(scanned.uri)
        assertEquals(accountId, card.accountId)
        assertTrue(card.body.contains("Berlin, DE"), card.body)
        val shown = card.showNumber ?: error("no number to show")
        assertEquals(6, shown.length)
        assertEquals("scanned", jsonString(Rp.page("GET", "/v1/logins/$id", handle).second, "state"))
        assertTrue(push.approve(card, null) is ActionResult.Approved)
        val (_, waiting) = Rp.page("GET", "/v1/logins/$id?wait=5", handle)
        assertEquals("number_required", jsonString(waiting, "state"), waiting)
        val (status, done) = Rp.page("POST", "/v1/logins/$id/number", handle, """{"number":"$shown"}""")
        assertEquals(200, status, done)
        assertEquals("approved", jsonString(done, "state"), done)
        assertEquals(user, jsonString(done, "user"))
        // A wrong browser handle learns nothing: 404, like an unknown login.
        assertEquals(404, Rp.page("GET", "/v1/logins/$id", "AAAAAAAAAAAAAAAAAAAAAA").first)
        // A garbled QR is a typed input error.
        val bad = assertThrows(CountersignException.InvalidInput::class.java) {
            runBlocking { device.authenticator.scanLoginQr("countersign://login?v=1", null) }
        }
        assertEquals(InputField.LOGIN_QR, bad.field)
    }

    @Test
    fun transferToANewPhoneApprovedByTheOldOne() = runBlocking<Unit> {
        val old = Device()
        val (user, oldAccount) = activate(old, "transfer")
        val offer = old.authenticator.startTransfer(oldAccount, true)
        assertTrue(offer.offerUri.startsWith("countersign://activate?"), offer.offerUri)
        val new = Device()
        // The new phone waits, unlisted, for the old phone's approval.
        assertThrows(CountersignException.AwaitingApproval::class.java) {
            runBlocking { new.authenticator.activateUri(offer.offerUri, ActivationOptions(null, false)) }
        }
        assertTrue(new.authenticator.accounts().isEmpty())
        assertTrue(new.authenticator.hasPendingActivations())
        assertTrue(new.authenticator.confirmPendingActivations().isEmpty())
        // The old phone shows the transfer request like any request.
        val request = old.authenticator.awaitPending(10.seconds).single { it.kind == ChallengeKind.TRANSFER }
        val push = PushController(old.authenticator)
        val card = push.card(request)
        assertEquals("Move your Binding Tests account to a new phone?", card.title)
        assertTrue(card.body.contains("to a new phone"), card.body)
        val before = old.authenticator.account(oldAccount)
        assertTrue(push.approve(card, null) is ActionResult.Approved)
        val activated = new.authenticator.confirmPendingActivations()
        assertEquals(1, activated.size)
        // The same label and issuer as on the old phone.
        assertEquals(before.label, activated.single().label)
        assertTrue(before.label.startsWith(user), before.label)
        assertEquals(before.issuer, activated.single().issuer)
        // remove_old: the old phone is removed; its next call (if the
        // approval's own follow-up did not already) wipes the account.
        if (old.authenticator.accounts().isNotEmpty()) {
            assertThrows(CountersignException.DeviceDeregistered::class.java) {
                runBlocking { old.authenticator.pending(Duration.ZERO, null) }
            }
        }
        assertTrue(old.authenticator.accounts().isEmpty())
    }
}
