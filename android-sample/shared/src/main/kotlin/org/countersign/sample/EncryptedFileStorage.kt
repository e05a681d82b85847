// SecureStorage as AES-GCM encrypted files, one per key, written atomically
// (temp file + fsync + rename). Shared by the Android app (the AES key lives in the
// Android Keystore and never leaves it) and the JVM tests (a generated key).
//
// Several processes may open the same directory (an Android push service in its
// own process, the JVM tests' child processes): every write holds an in-JVM lock
// and a FileChannel lock on the directory's `lock` file, so compareAndPut is one
// atomic step for all of them.
package org.countersign.sample

import java.io.File
import java.io.FileOutputStream
import java.io.RandomAccessFile
import java.security.MessageDigest
import java.security.SecureRandom
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.locks.ReentrantLock
import javax.crypto.Cipher
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec
import kotlin.concurrent.withLock
import org.countersign.SecureStorage
import org.countersign.StorageException

/** Supplies the AES key (Android: a non-exportable Keystore key; tests: in memory). */
fun interface StorageKeyProvider {
    /** The AES-256 key for the storage files. */
    fun key(): SecretKey
}

/**
 * [SecureStorage] in [dir]: `<hex(key)>.blob` files, AES-GCM with the key name as AAD.
 * Writes (`put`, `delete`, `compareAndPut`) are serialised across threads and
 * processes by the `lock` file in [dir]; reads need no lock (a rename is atomic).
 */
class EncryptedFileStorage(private val dir: File, private val keys: StorageKeyProvider) : SecureStorage {
    private val random = SecureRandom()
    private val lockFile = File(dir, LOCK_FILE)
    // FileChannel.lock is per JVM (a second lock from the same JVM throws
    // OverlappingFileLockException), so threads queue on this lock first.
    private val jvmLock: ReentrantLock

    init {
        dir.mkdirs()
        jvmLock = jvmLocks.computeIfAbsent(dir.canonicalPath) { ReentrantLock() }
        // Leftovers of writes interrupted by a crash: the old file is still intact.
        // Under the lock: another process's write in progress has its temp file too.
        locked { dir.listFiles { f -> f.name.endsWith(".tmp") }?.forEach { it.delete() } }
    }

    private companion object {
        /** The lock file's name (not a `.blob`, so never listed). */
        const val LOCK_FILE = "lock"

        /** One lock per directory for every instance in this JVM. */
        val jvmLocks = ConcurrentHashMap<String, ReentrantLock>()
    }

    /** Runs [block] holding the in-JVM lock and the cross-process file lock. */
    private fun <T> locked(block: () -> T): T = jvmLock.withLock {
        RandomAccessFile(lockFile, "rw").use { file ->
            file.channel.lock().use { block() }
        }
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

    private fun read(key: String): ByteArray? {
        val file = fileFor(key)
        if (!file.exists()) return null
        val data = try {
            file.readBytes()
        } catch (e: java.io.FileNotFoundException) {
            return null // deleted since the check
        }
        if (data.size < 12 + 16) throw StorageException.Corrupt()
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.DECRYPT_MODE, keys.key(), GCMParameterSpec(128, data, 0, 12))
        cipher.updateAAD(key.toByteArray(Charsets.US_ASCII))
        return cipher.doFinal(data, 12, data.size - 12)
    }

    private fun write(key: String, value: ByteArray) {
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

    override fun get(key: String): ByteArray? = io("read") { read(key) }

    override fun put(key: String, value: ByteArray) = io("write") {
        fileFor(key) // reject a bad key before taking the lock
        locked { write(key, value) }
    }

    override fun delete(key: String) = io("delete") {
        val file = fileFor(key)
        locked { if (file.exists() && !file.delete()) throw StorageException.Io("delete failed") }
    }

    override fun list(prefix: String): List<String> = io("list") {
        (dir.listFiles { f -> f.name.endsWith(".blob") } ?: emptyArray())
            .mapNotNull(::nameOf)
            .filter { it.startsWith(prefix) }
    }

    override fun compareAndPut(key: String, expected: ByteArray?, value: ByteArray): Boolean = io("compare-and-put") {
        fileFor(key)
        locked {
            val current = read(key)
            // Constant time: the values may be secrets.
            val same = when {
                expected == null -> current == null
                current == null -> false
                else -> MessageDigest.isEqual(current, expected)
            }
            current?.fill(0)
            if (same) write(key, value)
            same
        }
    }
}
