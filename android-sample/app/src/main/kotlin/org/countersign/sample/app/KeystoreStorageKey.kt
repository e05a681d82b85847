// Platform glue: the AES key of EncryptedFileStorage, non-exportable in the Keystore.
package org.countersign.sample.app

import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import java.security.KeyStore
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import org.countersign.sample.StorageKeyProvider

/** The storage AES key under [alias] in the Android Keystore, created on first use. */
class KeystoreStorageKey(private val alias: String = "countersign.storage") : StorageKeyProvider {
    private val keyStore = KeyStore.getInstance("AndroidKeyStore").apply { load(null) }

    @Synchronized
    override fun key(): SecretKey {
        (keyStore.getKey(alias, null) as? SecretKey)?.let { return it }
        val generator = KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, "AndroidKeyStore")
        generator.init(
            KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
                .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
                .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
                .setKeySize(256)
                // Storage is read by the FCM service before the user unlocks.
                .setUnlockedDeviceRequired(false)
                .build(),
        )
        return generator.generateKey()
    }
}
