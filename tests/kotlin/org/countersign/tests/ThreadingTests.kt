// The library never runs storage or vault work on the caller's thread: an app
// calling from its main thread only suspends while the library's worker threads
// do the I/O and the key work.
package org.countersign.tests

import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.Executors
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.runBlocking
import org.countersign.Authenticator
import org.countersign.AuthenticatorConfig
import org.countersign.DenyReason
import org.countersign.Platform
import org.countersign.PushRegistration
import org.countersign.SecureStorage
import org.countersign.awaitPending
import org.countersign.sample.ActivationController
import org.countersign.sample.EncryptedFileStorage
import org.countersign.sample.PromptVerifier
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

/** A [SecureStorage] that records the name of the thread of every call. */
class ThreadRecordingStorage(private val inner: SecureStorage) : SecureStorage {
    /** Thread names, one per call. */
    val threads = ConcurrentLinkedQueue<String>()

    private fun <T> recorded(call: () -> T): T {
        threads.add(Thread.currentThread().name)
        return call()
    }

    override fun get(key: String) = recorded { inner.get(key) }
    override fun put(key: String, value: ByteArray) = recorded { inner.put(key, value) }
    override fun delete(key: String) = recorded { inner.delete(key) }
    override fun list(prefix: String) = recorded { inner.list(prefix) }
    override fun compareAndPut(key: String, expected: ByteArray?, value: ByteArray) =
        recorded { inner.compareAndPut(key, expected, value) }
}

class ThreadingTests {
    @Test
    fun storageAndVaultWorkNeverRunOnTheCallersThread() {
        val device = Device()
        val storage = ThreadRecordingStorage(EncryptedFileStorage(device.dir) { device.storageKey })
        // No KeyVault: the software vault keeps its keys in this storage, so every
        // key operation shows up here too.
        val authenticator = Authenticator(
            AuthenticatorConfig(Platform.DESKTOP, "kotlin-test", PushRegistration.None, null, null),
            storage, PromptVerifier(device.ui), null, null, null, null,
        )
        storage.threads.clear()  // the constructor lists storage once, on the caller's thread
        val mainThread = Executors.newSingleThreadExecutor { Thread(it, "app-main") }
        runBlocking(mainThread.asCoroutineDispatcher()) {
            val user = Rp.newUser("threads")
            val account = ActivationController(authenticator).add(Rp.enroll(user))
            val (tx, _) = Rp.push(user, ""","number_matching":"off"""")
            assertEquals(listOf(tx), authenticator.awaitPending(10.seconds).map { it.txId })
            assertEquals(listOf(tx), authenticator.pendingRequests().map { it.txId })
            authenticator.deny(account.id, tx, DenyReason.MISTAKE)
            assertEquals("denied", rpState(tx, wait = 5))
            assertEquals(listOf(account.id), authenticator.accounts().map { it.id })
            assertTrue(authenticator.outbox().isEmpty())
            authenticator.kemKeyIds(account.id)
        }
        mainThread.shutdown()
        val threads = storage.threads.toList()
        assertTrue(threads.size > 10, "the calls used storage: ${threads.size}")
        assertTrue("app-main" !in threads, "storage ran on the caller's thread")
        // (JNA names the worker threads it attaches "Thread-N", so only the
        // caller's thread can be recognised by name.)
    }
}
