// Platform glue: the notification's Deny action. Signed with the possession key,
// no user verification: works without unlocking the phone, and without any UI in
// a process Android has just started for this broadcast (the core reads the
// request from storage, or fetches it again).
package org.countersign.sample.app

import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent
import androidx.core.app.NotificationManagerCompat
import kotlinx.coroutines.launch
import org.countersign.sample.ActionResult
import org.countersign.sample.message

/** Intent extra: the local account id. */
const val EXTRA_ACCOUNT = "account_id"
/** Intent extra: the transaction id. */
const val EXTRA_TX = "tx_id"
/** Intent action of the notification's Approve button. */
const val ACTION_APPROVE = "org.countersign.sample.APPROVE"

/** Denies ("it wasn't me") straight from the notification. */
class DenyReceiver : BroadcastReceiver() {
    override fun onReceive(context: Context, intent: Intent) {
        val app = context.applicationContext as CountersignApp
        val account = intent.getStringExtra(EXTRA_ACCOUNT) ?: return
        val tx = intent.getStringExtra(EXTRA_TX) ?: return
        val pending = goAsync()
        app.scope.launch {
            try {
                // By ids: no card is needed, so this works right after process death.
                val result = app.push.deny(account, tx, notMe = true)
                NotificationManagerCompat.from(context).cancel(tx.hashCode())
                // Queued: tell the user it will be sent; failures are shown too.
                if (result != ActionResult.Denied()) showNotice(context, tx, result.message)
            } finally {
                pending.finish()
            }
        }
    }
}
