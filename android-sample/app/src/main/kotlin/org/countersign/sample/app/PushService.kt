// Platform glue: FCM wakes the core; the request becomes a notification with
// Approve (opens the app: number matching / verification happen there) and Deny
// (runs from the lock screen, no unlock).
package org.countersign.sample.app

import android.app.PendingIntent
import android.content.Context
import android.content.Intent
import androidx.core.app.NotificationCompat
import androidx.core.app.NotificationManagerCompat
import com.google.firebase.messaging.FirebaseMessagingService
import com.google.firebase.messaging.RemoteMessage
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.countersign.CountersignException
import org.countersign.PushRegistration
import org.countersign.sample.RequestCard

/** Receives FCM messages and token changes. */
class PushService : FirebaseMessagingService() {
    private val app get() = application as CountersignApp

    override fun onMessageReceived(message: RemoteMessage) {
        // FCM gives ~10 s here; handle_push fetches and opens the sealed challenge.
        val card = try {
            runBlocking { app.push.onPush(message.data) }
        } catch (e: CountersignException) {
            return // nothing to show: tampered, expired, answered elsewhere, offline
        }
        showRequest(this, card)
    }

    override fun onNewToken(token: String) {
        app.scope.launch { runCatching { app.authenticator.updatePushToken(PushRegistration.Fcm(token)) } }
    }
}

/** The notification id of a request (its tx id's hash). */
fun notificationId(card: RequestCard) = card.txId.hashCode()

/** Posts a plain notification (a queued answer, a refused one) under [tag]'s id. */
fun showNotice(context: Context, tag: String, text: String) {
    val notification = NotificationCompat.Builder(context, CHANNEL_REQUESTS)
        .setSmallIcon(android.R.drawable.ic_lock_lock)
        .setContentTitle(context.getString(R.string.app_name))
        .setContentText(text)
        .setAutoCancel(true)
        .build()
    runCatching { NotificationManagerCompat.from(context).notify(tag.hashCode(), notification) }
}

/** Posts the notification of a request, with Approve and Deny actions. */
fun showRequest(context: Context, card: RequestCard) {
    val flags = PendingIntent.FLAG_UPDATE_CURRENT or PendingIntent.FLAG_IMMUTABLE
    val open = Intent(context, MainActivity::class.java)
        .putExtra(EXTRA_ACCOUNT, card.accountId).putExtra(EXTRA_TX, card.txId)
        .addFlags(Intent.FLAG_ACTIVITY_NEW_TASK or Intent.FLAG_ACTIVITY_SINGLE_TOP)
    val approve = PendingIntent.getActivity(context, notificationId(card), open.setAction(ACTION_APPROVE), flags)
    val deny = PendingIntent.getBroadcast(
        context, notificationId(card),
        Intent(context, DenyReceiver::class.java).putExtra(EXTRA_ACCOUNT, card.accountId).putExtra(EXTRA_TX, card.txId),
        flags,
    )
    val notification = NotificationCompat.Builder(context, CHANNEL_REQUESTS)
        .setSmallIcon(android.R.drawable.ic_lock_lock)
        .setContentTitle(card.title)
        .setContentText(card.body)
        .setStyle(NotificationCompat.BigTextStyle().bigText(card.body))
        .setCategory(NotificationCompat.CATEGORY_CALL)
        .setPriority(NotificationCompat.PRIORITY_HIGH)
        .setTimeoutAfter(java.time.Duration.between(java.time.Instant.now(), card.expiresAt).toMillis().coerceAtLeast(1000))
        .setContentIntent(approve)
        // Approve opens the app (after unlock): the number and any PIN/biometric are asked there.
        .addAction(0, context.getString(R.string.approve), approve)
        .addAction(0, context.getString(R.string.deny), deny)
        .setAutoCancel(true)
        .build()
    runCatching { NotificationManagerCompat.from(context).notify(notificationId(card), notification) }
}
