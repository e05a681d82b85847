// A KeyVault on Java security keys: the sign/ECDH/AES-GCM logic shared by the
// Android app (keys in the Android Keystore / StrongBox) and the JVM tests
// (software JCA keys). Only key creation and lookup differ, behind P256KeyStore
// and AesKeyStore.
package org.countersign.sample

import java.security.InvalidKeyException
import java.security.KeyPairGenerator
import java.security.PrivateKey
import java.security.Signature
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import java.util.concurrent.ConcurrentHashMap
import javax.crypto.AEADBadTagException
import javax.crypto.Cipher
import javax.crypto.KeyAgreement
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec
import org.countersign.KeySpec
import org.countersign.KeyVault
import org.countersign.KeyVaultException
import org.countersign.KeyPurpose
import org.countersign.P256

/** A private key handle and what it was created for. */
class StoredKey(val privateKey: PrivateKey, val publicKey: ECPublicKey, val purpose: KeyPurpose)

/** Where P-256 keys are made and kept (Android Keystore in the app, memory in tests). */
interface P256KeyStore {
    /** Creates (replacing) a key. Must honour [KeySpec.userVerification]. */
    fun generate(alias: String, spec: KeySpec): StoredKey
    /** The key, or null. */
    fun load(alias: String): StoredKey?
    /** Deletes the key (no error if absent). */
    fun delete(alias: String)
    /** The JCA provider for Signature/KeyAgreement with these keys (null: default). */
    val provider: String? get() = null
}

/**
 * Where AES-256-GCM sealing keys are made and kept (Android Keystore in the app,
 * memory in tests). The keys must not be exportable on a phone, and the cipher
 * must choose the IV itself (Android: `setRandomizedEncryptionRequired(true)`).
 */
interface AesKeyStore {
    /** Creates (replacing) a 256-bit AES key for GCM. */
    fun generateAes(alias: String): SecretKey
    /** The key, or null. */
    fun loadAes(alias: String): SecretKey?
    /** Deletes the key (no error if absent). */
    fun deleteAes(alias: String)
}

/**
 * Maps platform exceptions to the trait's typed errors. Android's
 * `UserNotAuthenticatedException` and `KeyPermanentlyInvalidatedException` are
 * subclasses of `InvalidKeyException` recognised by name, so this file needs no
 * Android classes.
 */
fun keyVaultError(e: Exception): KeyVaultException = when {
    e is KeyVaultException -> e
    e.javaClass.simpleName == "UserNotAuthenticatedException" -> KeyVaultException.UserVerificationRequired()
    e.javaClass.simpleName == "KeyPermanentlyInvalidatedException" -> KeyVaultException.KeyInvalidated()
    else -> KeyVaultException.Platform("${e.javaClass.simpleName}: ${e.message ?: "keystore failure"}")
}

/**
 * [KeyVault] over a [P256KeyStore] and an [AesKeyStore] (by default the same
 * object): signatures as raw r||s, ECDH x-coordinates, sealed blobs as
 * `iv (12 bytes) || ciphertext || tag (16 bytes)`. One alias names one key of
 * either kind: creating a key deletes any other key with that alias.
 */
class JcaKeyVault(
    private val store: P256KeyStore,
    private val sealing: AesKeyStore = requireNotNull(store as? AesKeyStore) { "pass an AesKeyStore" },
) : KeyVault {
    /** How many signatures, key agreements, seals and opens went through this vault (tests check it). */
    @Volatile var signCount = 0; private set
    @Volatile var ecdhCount = 0; private set
    @Volatile var sealCount = 0; private set
    @Volatile var openCount = 0; private set

    private fun aesKey(alias: String): SecretKey = sealing.loadAes(alias)
        ?: throw if (store.load(alias) != null) KeyVaultException.WrongPurpose() else KeyVaultException.NotFound()

    private fun cipher(): Cipher = store.provider?.let { Cipher.getInstance(AES_GCM, it) } ?: Cipher.getInstance(AES_GCM)

    private fun key(alias: String, purpose: KeyPurpose): StoredKey {
        val key = store.load(alias)
            ?: throw if (sealing.loadAes(alias) != null) KeyVaultException.WrongPurpose() else KeyVaultException.NotFound()
        if (key.purpose != purpose) throw KeyVaultException.WrongPurpose()
        return key
    }

    private inline fun <T> guarded(block: () -> T): T = try {
        block()
    } catch (e: KeyVaultException) {
        throw e
    } catch (e: Exception) {
        throw keyVaultError(e)
    }

    override fun createKey(alias: String, spec: KeySpec): ByteArray = guarded {
        sealing.deleteAes(alias)
        P256.sec1(store.generate(alias, spec).publicKey)
    }

    override fun publicKey(alias: String): ByteArray? = guarded {
        store.load(alias)?.let { P256.sec1(it.publicKey) }
            ?: if (sealing.loadAes(alias) != null) throw KeyVaultException.WrongPurpose() else null
    }

    override fun sign(alias: String, message: ByteArray): ByteArray = guarded {
        val key = key(alias, KeyPurpose.SIGNING)
        val signature = store.provider?.let { Signature.getInstance("SHA256withECDSA", it) }
            ?: Signature.getInstance("SHA256withECDSA")
        signature.initSign(key.privateKey)
        signature.update(message)
        val raw = P256.derToRaw(signature.sign())
        signCount++
        raw
    }

    override fun ecdh(alias: String, peer: ByteArray): ByteArray = guarded {
        val key = key(alias, KeyPurpose.KEY_AGREEMENT)
        val agreement = store.provider?.let { KeyAgreement.getInstance("ECDH", it) }
            ?: KeyAgreement.getInstance("ECDH")
        agreement.init(key.privateKey)
        agreement.doPhase(P256.publicKey(peer), true)
        val secret = agreement.generateSecret()
        if (secret.size != 32) throw KeyVaultException.Platform("unexpected ECDH output length")
        ecdhCount++
        secret
    }

    override fun deleteKey(alias: String) = guarded {
        store.delete(alias)
        sealing.deleteAes(alias)
    }

    override fun createSealingKey(alias: String) = guarded {
        store.delete(alias)
        sealing.generateAes(alias)
        Unit
    }

    override fun seal(alias: String, aad: ByteArray, plaintext: ByteArray): ByteArray = guarded {
        val cipher = cipher()
        // No IV passed: the cipher picks a fresh random one (the Keystore insists).
        cipher.init(Cipher.ENCRYPT_MODE, aesKey(alias))
        cipher.updateAAD(aad)
        val sealed = cipher.doFinal(plaintext)
        val iv = cipher.iv
        if (iv == null || iv.size != IV_BYTES) throw KeyVaultException.Platform("unexpected GCM IV length")
        sealCount++
        iv + sealed
    }

    override fun openSealed(alias: String, aad: ByteArray, blob: ByteArray): ByteArray = guarded {
        val key = aesKey(alias)
        if (blob.size < IV_BYTES + TAG_BYTES) throw KeyVaultException.OpenFailed()
        val cipher = cipher()
        cipher.init(Cipher.DECRYPT_MODE, key, GCMParameterSpec(TAG_BYTES * 8, blob, 0, IV_BYTES))
        cipher.updateAAD(aad)
        val plain = try {
            cipher.doFinal(blob, IV_BYTES, blob.size - IV_BYTES)
        } catch (e: AEADBadTagException) {
            throw KeyVaultException.OpenFailed()
        }
        openCount++
        plain
    }

    private companion object {
        const val AES_GCM = "AES/GCM/NoPadding"
        const val IV_BYTES = 12
        const val TAG_BYTES = 16
    }
}

/**
 * Software P-256 and AES keys in memory (JCA `KeyPairGenerator("EC")`, secp256r1;
 * `KeyGenerator("AES")`, 256 bits): the JVM tests' store, and what the app falls
 * back to nowhere (phones use the Keystore). It cannot enforce user
 * verification; it records the flag.
 */
class InMemoryP256KeyStore : P256KeyStore, AesKeyStore {
    private val keys = ConcurrentHashMap<String, StoredKey>()
    private val aesKeys = ConcurrentHashMap<String, SecretKey>()
    /** Aliases created with user verification required. */
    val userVerificationBound: MutableSet<String> = ConcurrentHashMap.newKeySet()

    override fun generate(alias: String, spec: KeySpec): StoredKey {
        val generator = KeyPairGenerator.getInstance("EC")
        generator.initialize(ECGenParameterSpec("secp256r1"))
        val pair = generator.generateKeyPair()
        val key = StoredKey(pair.private, pair.public as? ECPublicKey ?: throw InvalidKeyException("not an EC key"), spec.purpose)
        keys[alias] = key
        if (spec.userVerification) userVerificationBound.add(alias) else userVerificationBound.remove(alias)
        return key
    }

    override fun load(alias: String): StoredKey? = keys[alias]

    override fun delete(alias: String) {
        keys.remove(alias)
        userVerificationBound.remove(alias)
    }

    override fun generateAes(alias: String): SecretKey {
        val key = KeyGenerator.getInstance("AES").apply { init(256) }.generateKey()
        aesKeys[alias] = key
        return key
    }

    override fun loadAes(alias: String): SecretKey? = aesKeys[alias]

    override fun deleteAes(alias: String) {
        aesKeys.remove(alias)
    }

    /** Every alias held, of either kind (tests). */
    fun aliases(): Set<String> = keys.keys.toSet() + aesKeys.keys
}
