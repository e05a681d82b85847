// Platform glue: one Authenticator for the process, built from the Android hooks.
package org.countersign.sample.app

import android.app.Application
import android.app.NotificationChannel
import android.app.NotificationManager
import androidx.fragment.app.FragmentActivity
import java.io.File
import java.lang.ref.WeakReference
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import org.countersign.Authenticator
import org.countersign.Countersign
import org.countersign.Platform
import org.countersign.sample.ActivationController
import org.countersign.sample.EncryptedFileStorage
import org.countersign.sample.JcaKeyVault
import org.countersign.sample.OtpListModel
import org.countersign.sample.PromptVerifier
import org.countersign.sample.PushController

/** The notification channel of requests and notices. */
const val CHANNEL_REQUESTS = "requests"

/**
 * The process's Authenticator and controllers. A second process (a push service
 * with `android:process`) would build its own over the same storage directory.
 */
class CountersignApp : Application() {
    /** The foreground activity, for prompts (none: prompts are cancelled). */
    var foreground: WeakReference<FragmentActivity> = WeakReference(null)
    /** Background work that outlives an activity (notification actions, outbox). */
    val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)

    /** The core, over storage shared by every process of the app. */
    val authenticator: Authenticator by lazy {
        Countersign.open(
            platform = Platform.ANDROID,
            storage = EncryptedFileStorage(File(noBackupFilesDir, "countersign"), KeystoreStorageKey()),
            verifier = PromptVerifier(BiometricPromptUi { foreground.get() }),
            keyVault = JcaKeyVault(KeystoreP256Store(this)),
            // http: the library's default, UrlConnectionHttpClient on the app's
            // network stack (the network security config applies).
            deviceName = android.os.Build.MODEL,
        )
    }
    /** Push requests and their actions. */
    val push by lazy { PushController(authenticator) }
    /** QR / deep-link activation. */
    val activation by lazy { ActivationController(authenticator) }
    /** The OTP screen. */
    val otp by lazy { OtpListModel(authenticator) }

    override fun onCreate() {
        super.onCreate()
        getSystemService(NotificationManager::class.java).createNotificationChannel(
            NotificationChannel(CHANNEL_REQUESTS, getString(R.string.channel_requests), NotificationManager.IMPORTANCE_HIGH),
        )
        // Answers saved while offline (by any process) go out now; tell the user
        // about those still waiting or refused.
        scope.launch {
            push.deliverOutbox().forEach { showNotice(this@CountersignApp, it.txId, it.message) }
        }
    }
}
