// SecureStorage as AES-GCM encrypted files, one per key, written atomically
// (temp file + fsync + rename). Shared by the Android app (the AES key lives in the
// Android Keystore and never leaves it) and the JVM tests (a generated key).
package org.countersign.sample

import java.io.File
import java.io.FileOutputStream
import java.security.SecureRandom
import javax.crypto.Cipher
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec
import org.countersign.SecureStorage
import org.countersign.StorageException

/** Supplies the AES key (Android: a non-exportable Keystore key; tests: in memory). */
fun interface StorageKeyProvider {
    /** The AES-256 key for the storage files. */
    fun key(): SecretKey
}

/** [SecureStorage] in [dir]: `<hex(key)>.blob` files, AES-GCM with the key name as AAD. */
class EncryptedFileStorage(private val dir: File, private val keys: StorageKeyProvider) : SecureStorage {
    private val random = SecureRandom()

    init {
        dir.mkdirs()
        // Leftovers of writes interrupted by a crash: the old file is still intact.
        dir.listFiles { f -> f.name.endsWith(".tmp") }?.forEach { it.delete() }
    }

    private fun fileFor(key: String): File {
        if (key.isEmpty() || key.length > 120 || key.any { it < ' ' || it > '~' }) {
            throw StorageException.Io("invalid storage key")
        }
        val hex = key.toByteArray(Charsets.US_ASCII).joinToString("") { "%02x".format(it) }
        return File(dir, "$hex.blob")
    }

    private fun nameOf(file: File): String? {
        val hex = file.name.removeSuffix(".blob")
        if (hex.length % 2 != 0) return null
        return runCatching {
            String(ByteArray(hex.length / 2) { hex.substring(2 * it, 2 * it + 2).toInt(16).toByte() }, Charsets.US_ASCII)
        }.getOrNull()
    }

    private inline fun <T> io(what: String, block: () -> T): T = try {
        block()
    } catch (e: StorageException) {
        throw e
    } catch (e: javax.crypto.AEADBadTagException) {
        throw StorageException.Corrupt()
    } catch (e: Exception) {
        throw StorageException.Io("$what: ${e.javaClass.simpleName}")
    }

    override fun get(key: String): ByteArray? = io("read") {
        val file = fileFor(key)
        if (!file.exists()) return@io null
        val data = file.readBytes()
        if (data.size < 12 + 16) throw StorageException.Corrupt()
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.DECRYPT_MODE, keys.key(), GCMParameterSpec(128, data, 0, 12))
        cipher.updateAAD(key.toByteArray(Charsets.US_ASCII))
        cipher.doFinal(data, 12, data.size - 12)
    }

    override fun put(key: String, value: ByteArray) = io("write") {
        val file = fileFor(key)
        val nonce = ByteArray(12).also(random::nextBytes)
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.ENCRYPT_MODE, keys.key(), GCMParameterSpec(128, nonce))
        cipher.updateAAD(key.toByteArray(Charsets.US_ASCII))
        val sealed = nonce + cipher.doFinal(value)
        val tmp = File(dir, file.name + ".tmp")
        FileOutputStream(tmp).use { out ->
            out.write(sealed)
            out.fd.sync()
        }
        if (!tmp.renameTo(file)) {
            tmp.delete()
            throw StorageException.Io("rename failed")
        }
    }

    override fun delete(key: String) = io("delete") {
        val file = fileFor(key)
        if (file.exists() && !file.delete()) throw StorageException.Io("delete failed")
    }

    override fun list(prefix: String): List<String> = io("list") {
        (dir.listFiles { f -> f.name.endsWith(".blob") } ?: emptyArray())
            .mapNotNull(::nameOf)
            .filter { it.startsWith(prefix) }
    }
}
