// A KeyVault on Java security keys: the sign/ECDH logic shared by the Android app
// (keys in the Android Keystore / StrongBox) and the JVM tests (software JCA keys).
// Only key creation and lookup differ, behind P256KeyStore.
package org.countersign.sample

import java.security.InvalidKeyException
import java.security.KeyPairGenerator
import java.security.PrivateKey
import java.security.Signature
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import java.util.concurrent.ConcurrentHashMap
import javax.crypto.KeyAgreement
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

/** [KeyVault] over a [P256KeyStore]: signatures as raw r||s, ECDH x-coordinates. */
class JcaKeyVault(private val store: P256KeyStore) : KeyVault {
    /** How many signatures and key agreements went through this vault (tests check it). */
    @Volatile var signCount = 0; private set
    @Volatile var ecdhCount = 0; private set

    private fun key(alias: String, purpose: KeyPurpose): StoredKey {
        val key = store.load(alias) ?: throw KeyVaultException.NotFound()
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
        P256.sec1(store.generate(alias, spec).publicKey)
    }

    override fun publicKey(alias: String): ByteArray? = guarded {
        store.load(alias)?.let { P256.sec1(it.publicKey) }
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

    override fun deleteKey(alias: String) = guarded { store.delete(alias) }
}

/**
 * Software P-256 keys in memory (JCA `KeyPairGenerator("EC")`, secp256r1): the JVM
 * tests' store, and what the app falls back to nowhere (phones use the Keystore).
 * It cannot enforce user verification; it records the flag.
 */
class InMemoryP256KeyStore : P256KeyStore {
    private val keys = ConcurrentHashMap<String, StoredKey>()
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

    /** Every alias held (tests). */
    fun aliases(): Set<String> = keys.keys.toSet()
}
