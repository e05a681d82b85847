// Every private key in the vault (issue 13), through the Kotlin bindings: a
// JCA-based KeyVault (the Android sample's JcaKeyVault on in-memory JCA keys)
// holds the possession key Dp, the user-verification key Du, the biometric key
// and the KEM keys, plus the AES key sealing the OTP seed. The vault is wrapped
// in a recorder that checks every value handed to the core: public keys of its
// own keys, signatures that verify, 32-byte ECDH outputs, sealed blobs and the
// plaintexts the core sealed. No private key byte ever crosses into the core,
// and none lands in the app's storage.
package org.countersign.tests

import java.math.BigInteger
import java.security.Signature
import java.security.interfaces.ECPrivateKey
import java.util.Base64
import java.util.Collections
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.runBlocking
import org.countersign.KeySpec
import org.countersign.KeyPurpose
import org.countersign.KeyVault
import org.countersign.KeyVaultException
import org.countersign.P256
import org.countersign.Verification
import org.countersign.awaitPending
import org.countersign.sample.BiometricResult
import org.countersign.sample.InMemoryP256KeyStore
import org.countersign.sample.JcaKeyVault
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

/**
 * A [KeyVault] recording every value it returns to the core, checking each as it
 * goes: a 65-byte public key of one of its keys, a 64-byte signature that
 * verifies with the signing key's public key, a 32-byte ECDH output, a sealed
 * blob, or a plaintext the core sealed before. It also keeps every private key
 * and AES key it ever created (deleted ones too), for the leak checks.
 */
class RecordingVault(private val store: InMemoryP256KeyStore) : KeyVault {
    private val inner = JcaKeyVault(store)
    /** Every value returned to the core, with the method that returned it. */
    val returned: MutableList<Pair<String, ByteArray>> = Collections.synchronizedList(mutableListOf())
    /** Every private scalar `s` ever created, by alias. */
    val scalars: MutableMap<String, BigInteger> = Collections.synchronizedMap(mutableMapOf())
    /** Every AES key ever created, by alias. */
    val aesKeys: MutableMap<String, ByteArray> = Collections.synchronizedMap(mutableMapOf())
    /** Every plaintext the core sealed. */
    val sealed: MutableList<ByteArray> = Collections.synchronizedList(mutableListOf())
    /** The specs keys were created with, by alias. */
    val specs: MutableMap<String, KeySpec> = Collections.synchronizedMap(mutableMapOf())
    @Volatile var signCount = 0; private set
    @Volatile var ecdhCount = 0; private set
    @Volatile var openCount = 0; private set

    private fun publicOf(alias: String): ByteArray = P256.sec1(store.load(alias)!!.publicKey)

    private fun give(method: String, value: ByteArray): ByteArray {
        returned.add(method to value.copyOf())
        return value
    }

    override fun createKey(alias: String, spec: KeySpec): ByteArray {
        val public = inner.createKey(alias, spec)
        val key = store.load(alias)!!
        scalars[alias] = (key.privateKey as ECPrivateKey).s
        specs[alias] = spec
        check(public.size == 65 && public[0] == 4.toByte()) { "createKey: not a SEC1 public key" }
        check(public.contentEquals(publicOf(alias))) { "createKey: not the new key's public key" }
        return give("createKey", public)
    }

    override fun publicKey(alias: String): ByteArray? {
        val public = inner.publicKey(alias) ?: return null
        check(public.size == 65 && public.contentEquals(publicOf(alias))) { "publicKey: not the key's public key" }
        return give("publicKey", public)
    }

    override fun sign(alias: String, message: ByteArray): ByteArray {
        val raw = inner.sign(alias, message)
        check(raw.size == 64) { "sign: not a raw r||s signature" }
        val verifier = Signature.getInstance("SHA256withECDSA")
        verifier.initVerify(store.load(alias)!!.publicKey)
        verifier.update(message)
        check(verifier.verify(P256.rawToDer(raw))) { "sign: the signature does not verify" }
        signCount++
        return give("sign", raw)
    }

    override fun ecdh(alias: String, peer: ByteArray): ByteArray {
        val shared = inner.ecdh(alias, peer)
        check(shared.size == 32) { "ecdh: not a 32-byte shared secret" }
        ecdhCount++
        return give("ecdh", shared)
    }

    override fun deleteKey(alias: String) = inner.deleteKey(alias)

    override fun createSealingKey(alias: String) {
        inner.createSealingKey(alias)
        aesKeys[alias] = store.loadAes(alias)!!.encoded
    }

    override fun seal(alias: String, aad: ByteArray, plaintext: ByteArray): ByteArray {
        sealed.add(plaintext.copyOf())
        val blob = inner.seal(alias, aad, plaintext)
        check(blob.size == 12 + plaintext.size + 16) { "seal: not iv || ciphertext || tag" }
        return give("seal", blob)
    }

    override fun openSealed(alias: String, aad: ByteArray, blob: ByteArray): ByteArray {
        val plain = inner.openSealed(alias, aad, blob)
        check(sealed.any { it.contentEquals(plain) }) { "open: returned something the core never sealed" }
        openCount++
        return give("open", plain)
    }
}

class VaultTests {
    /** The unsigned 32-byte big-endian form of a scalar. */
    private fun bytes32(s: BigInteger): ByteArray {
        val b = s.toByteArray()
        return when {
            b.size == 32 -> b
            b.size > 32 -> b.copyOfRange(b.size - 32, b.size)
            else -> ByteArray(32 - b.size) + b
        }
    }

    private fun ByteArray.contains(needle: ByteArray): Boolean {
        if (needle.isEmpty() || needle.size > size) return false
        outer@ for (i in 0..size - needle.size) {
            for (j in needle.indices) if (this[i + j] != needle[j]) continue@outer
            return true
        }
        return false
    }

    /** Raw, hex, upper-case hex, base64url and base64 forms of a secret. */
    private fun forms(secret: ByteArray): List<ByteArray> = listOf(
        secret,
        hex(secret).toByteArray(),
        hex(secret).uppercase().toByteArray(),
        Base64.getUrlEncoder().withoutPadding().encodeToString(secret).toByteArray(),
        Base64.getEncoder().encodeToString(secret).toByteArray(),
    )

    /** Fails if any private scalar or AES key of [vault] is in [haystack], in any form. */
    private fun assertNoKeyIn(vault: RecordingVault, haystack: ByteArray, where: String) {
        for ((alias, s) in vault.scalars) {
            for (form in forms(bytes32(s))) assertFalse(haystack.contains(form), "$where holds the private key of $alias")
        }
        for ((alias, key) in vault.aesKeys) {
            for (form in forms(key)) assertFalse(haystack.contains(form), "$where holds the AES key of $alias")
        }
    }

    @Test
    fun aJcaVaultHoldsEveryPrivateKeyAndNoneCrossesIntoTheCore() = runBlocking {
        val store = InMemoryP256KeyStore()
        val vault = RecordingVault(store)
        val device = Device(vault = vault)
        val auth = device.authenticator

        // Activate (no PIN yet), then set one: nothing to unwrap, no prompt.
        val (user, id) = activate(device, "vault-all")
        auth.setPin(id, "135790")
        assertTrue(auth.account(id).pinSet)
        assertTrue(device.ui.asked.isEmpty())

        // An approval that needs the PIN: the challenge opens through the vault's
        // ECDH, the PIN opens its wrap, and Du signs in the vault.
        val (tx, _) = Rp.push(user, ""","number_matching":"off","verification":"pin"""")
        val ecdhBefore = vault.ecdhCount
        val request = auth.awaitPending(10.seconds).single { it.txId == tx }
        assertTrue(vault.ecdhCount > ecdhBefore, "the challenge opened through the trait's ECDH")
        val signsBefore = vault.signCount
        device.ui.pins.add("135790")
        val outcome = auth.approve(id, request.txId)
        assertEquals(Verification.PIN, outcome.verification)
        assertEquals("approved", rpState(tx, wait = 5))
        assertTrue(vault.signCount > signsBefore, "Du signed in the vault")

        // A code from the sealed seed, accepted by the server.
        val opensBefore = vault.openCount
        val code = auth.otp(id).code
        assertTrue(vault.openCount > opensBefore, "the seed opened through the vault")
        val validated = Rp.post("/v1/rp/validate", """{"user":"$user","passcode":"$code"}""")
        assertEquals("accepted", jsonString(validated, "result"), validated)

        // The keys held: exactly Dp, Du, the seed's key and KEM keys.
        fun held() = store.aliases()
        val kem = held().filter { it.startsWith("cs.$id.kem.") }
        assertTrue(kem.isNotEmpty())
        assertEquals(setOf("cs.$id.dp", "cs.$id.du", "cs.$id.seed") + kem, held())
        assertEquals(KeySpec(KeyPurpose.SIGNING, false), vault.specs["cs.$id.du"], "Du serves PIN and biometrics")
        assertEquals(KeySpec(KeyPurpose.SIGNING, false), vault.specs["cs.$id.dp"])
        kem.forEach { assertEquals(KeySpec(KeyPurpose.KEY_AGREEMENT, false), vault.specs[it]) }
        assertThrows(KeyVaultException.WrongPurpose::class.java) { vault.publicKey("cs.$id.seed") }

        // Biometrics: a UV-bound key-agreement key joins them; an approval with it.
        device.ui.pins.add("135790")
        auth.enableBiometric(id)
        assertEquals(KeySpec(KeyPurpose.KEY_AGREEMENT, true), vault.specs["cs.$id.bio"])
        assertTrue(store.userVerificationBound.contains("cs.$id.bio"))
        val (tx2, _) = Rp.push(user, ""","number_matching":"off","verification":"biometric"""")
        receiveAll(auth, listOf(tx2))
        device.ui.biometrics.add(BiometricResult.SUCCEEDED)
        assertEquals(Verification.BIOMETRIC, auth.approve(id, tx2).verification)
        assertEquals("approved", rpState(tx2, wait = 5))
        val kemNow = held().filter { it.startsWith("cs.$id.kem.") }
        assertEquals(setOf("cs.$id.dp", "cs.$id.du", "cs.$id.seed", "cs.$id.bio") + kemNow, held())

        // What the vault returned: public keys, signatures, ECDH outputs, blobs
        // and the plaintexts the core sealed; no private key in any of them.
        val methods = vault.returned.map { it.first }.toSet()
        assertTrue(methods.containsAll(setOf("createKey", "sign", "ecdh", "seal", "open")), "$methods")
        for ((method, value) in vault.returned) {
            when (method) {
                "createKey", "publicKey" -> assertEquals(65, value.size)
                "sign" -> assertEquals(64, value.size)
                "ecdh" -> assertEquals(32, value.size)
                "seal", "open" -> {}
                else -> error("unexpected $method")
            }
            assertNoKeyIn(vault, value, "a value $method returned")
        }

        // The app's storage, decrypted: no private key, no AES key, no seed in
        // the clear, and no core-held vault slots (the core's software vault is
        // not in use).
        val keys = device.storage.list("")
        assertTrue(keys.isNotEmpty())
        assertTrue(keys.none { it.startsWith("vault/") }, "$keys")
        for (key in keys) {
            val value = device.storage.get(key)!!
            assertNoKeyIn(vault, value, "storage $key")
            for (plain in vault.sealed) {
                for (form in forms(plain)) assertFalse(value.contains(form), "storage $key holds a sealed secret in the clear")
            }
        }
        val record = String(device.storage.get("acct/$id")!!)
        assertTrue(record.contains("\"vault_alias\":\"cs.$id.du\""), record)
        assertTrue(record.contains("\"sealed_seed\""), record)
        assertFalse(record.contains("\"plain\""), record)
        assertFalse(record.contains("\"seed\""), record)

        // Removing the account deletes every key it had.
        auth.removeAccount(id)
        assertTrue(held().none { it.startsWith("cs.$id.") }, "${held()}")
    }

    @Test
    fun sealedBlobsOpenOnlyWithTheirKeyAndAad() {
        val store = InMemoryP256KeyStore()
        val vault = JcaKeyVault(store)
        vault.createSealingKey("s")
        val blob = vault.seal("s", "aad".toByteArray(), "seed".toByteArray())
        assertEquals(12 + 4 + 16, blob.size)
        assertFalse(blob.contentEquals(vault.seal("s", "aad".toByteArray(), "seed".toByteArray())), "a fresh IV each time")
        assertArrayEquals("seed".toByteArray(), vault.openSealed("s", "aad".toByteArray(), blob))
        assertThrows(KeyVaultException.OpenFailed::class.java) { vault.openSealed("s", "AAD".toByteArray(), blob) }
        val tampered = blob.copyOf().also { it[14] = (it[14].toInt() xor 1).toByte() }
        assertThrows(KeyVaultException.OpenFailed::class.java) { vault.openSealed("s", "aad".toByteArray(), tampered) }
        assertThrows(KeyVaultException.OpenFailed::class.java) { vault.openSealed("s", "aad".toByteArray(), blob.copyOf(10)) }
        assertThrows(KeyVaultException.NotFound::class.java) { vault.seal("none", byteArrayOf(), byteArrayOf()) }
        // One alias, one key: a P-256 key under it replaces the sealing key.
        vault.createKey("s", KeySpec(KeyPurpose.SIGNING, false))
        assertThrows(KeyVaultException.WrongPurpose::class.java) { vault.seal("s", byteArrayOf(), byteArrayOf()) }
        vault.createSealingKey("s")
        assertThrows(KeyVaultException.WrongPurpose::class.java) { vault.sign("s", byteArrayOf()) }
        assertThrows(KeyVaultException.WrongPurpose::class.java) { vault.publicKey("s") }
        vault.deleteKey("s")
        assertEquals(emptySet<String>(), store.aliases())
    }
}
