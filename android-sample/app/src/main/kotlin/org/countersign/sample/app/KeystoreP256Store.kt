// Platform glue: P-256 and AES-256-GCM keys in the Android Keystore, in StrongBox
// where present. The sign/ECDH/seal logic is the shared JcaKeyVault (tested on
// the JVM).
package org.countersign.sample.app

import android.content.Context
import android.content.pm.PackageManager
import android.os.Build
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import android.security.keystore.StrongBoxUnavailableException
import java.security.KeyPairGenerator
import java.security.KeyStore
import java.security.PrivateKey
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import org.countersign.KeyPurpose
import org.countersign.KeySpec
import org.countersign.sample.AesKeyStore
import org.countersign.sample.P256KeyStore
import org.countersign.sample.StoredKey

/**
 * Seconds a user-verification-bound key stays usable after a strong biometric
 * (the BiometricPrompt with its CryptoObject, see BiometricPromptUi).
 */
const val UV_WINDOW_SECONDS = 15

class KeystoreP256Store(context: Context) : P256KeyStore, AesKeyStore {
    private val keyStore = KeyStore.getInstance("AndroidKeyStore").apply { load(null) }
    private val hasStrongBox = Build.VERSION.SDK_INT >= 28 &&
        context.packageManager.hasSystemFeature(PackageManager.FEATURE_STRONGBOX_KEYSTORE)

    override val provider: String? get() = null // Keystore keys route to their provider by themselves.

    override fun generate(alias: String, spec: KeySpec): StoredKey {
        val purposes = when (spec.purpose) {
            KeyPurpose.SIGNING -> KeyProperties.PURPOSE_SIGN or KeyProperties.PURPOSE_VERIFY
            KeyPurpose.KEY_AGREEMENT -> {
                check(Build.VERSION.SDK_INT >= 31) { "Keystore ECDH needs Android 12" }
                KeyProperties.PURPOSE_AGREE_KEY
            }
        }
        fun build(strongBox: Boolean): KeyGenParameterSpec {
            val b = KeyGenParameterSpec.Builder(alias, purposes)
                .setAlgorithmParameterSpec(ECGenParameterSpec("secp256r1"))
                .setDigests(KeyProperties.DIGEST_SHA256)
            if (spec.userVerification) {
                b.setUserAuthenticationRequired(true)
                // A new fingerprint or face invalidates the key: the core then reports
                // VerificationFailed and the user re-enables biometrics with the PIN.
                b.setInvalidatedByBiometricEnrollment(true)
                if (Build.VERSION.SDK_INT >= 30) {
                    b.setUserAuthenticationParameters(UV_WINDOW_SECONDS, KeyProperties.AUTH_BIOMETRIC_STRONG)
                } else {
                    @Suppress("DEPRECATION")
                    b.setUserAuthenticationValidityDurationSeconds(UV_WINDOW_SECONDS)
                }
            }
            if (strongBox) b.setIsStrongBoxBacked(true)
            return b.build()
        }
        val generator = KeyPairGenerator.getInstance(KeyProperties.KEY_ALGORITHM_EC, "AndroidKeyStore")
        val pair = try {
            generator.initialize(build(hasStrongBox))
            generator.generateKeyPair()
        } catch (e: StrongBoxUnavailableException) {
            generator.initialize(build(false))
            generator.generateKeyPair()
        }
        return StoredKey(pair.private, pair.public as ECPublicKey, spec.purpose)
    }

    override fun load(alias: String): StoredKey? {
        // A SecretKeyEntry (a sealing key) is not a P-256 key: null here.
        val entry = keyStore.getEntry(alias, null) as? KeyStore.PrivateKeyEntry ?: return null
        val purpose = if (isAgreementKey(entry.privateKey)) KeyPurpose.KEY_AGREEMENT else KeyPurpose.SIGNING
        return StoredKey(entry.privateKey, entry.certificate.publicKey as ECPublicKey, purpose)
    }

    private fun isAgreementKey(key: PrivateKey): Boolean {
        val info = java.security.KeyFactory.getInstance(key.algorithm, "AndroidKeyStore")
            .getKeySpec(key, android.security.keystore.KeyInfo::class.java)
        return info.purposes and KeyProperties.PURPOSE_AGREE_KEY != 0
    }

    override fun delete(alias: String) {
        if (keyStore.containsAlias(alias)) keyStore.deleteEntry(alias)
    }

    /**
     * A non-exportable AES-256 key for GCM (the OTP seed's sealing key). Not bound
     * to user verification: a push must open while the phone is locked. Randomized
     * encryption is required, so every seal gets a fresh IV from the cipher.
     */
    override fun generateAes(alias: String): SecretKey {
        fun build(strongBox: Boolean): KeyGenParameterSpec {
            val b = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
                .setKeySize(256)
                .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
                .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
                .setRandomizedEncryptionRequired(true)
            if (strongBox) b.setIsStrongBoxBacked(true)
            return b.build()
        }
        val generator = KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, "AndroidKeyStore")
        return try {
            generator.init(build(hasStrongBox))
            generator.generateKey()
        } catch (e: StrongBoxUnavailableException) {
            generator.init(build(false))
            generator.generateKey()
        }
    }

    override fun loadAes(alias: String): SecretKey? =
        (keyStore.getEntry(alias, null) as? KeyStore.SecretKeyEntry)?.secretKey

    // One alias namespace in the Keystore: deleting either kind deletes the entry.
    override fun deleteAes(alias: String) = delete(alias)
}
