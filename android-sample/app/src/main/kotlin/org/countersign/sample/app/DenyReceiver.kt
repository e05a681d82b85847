// Platform glue: the notification's Deny action. Signed with the possession key,
// no user verification: works without unlocking the phone.
package org.countersign.sample.app

import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent
import androidx.core.app.NotificationManagerCompat
import kotlinx.coroutines.launch

const val EXTRA_ACCOUNT = "account_id"
const val EXTRA_TX = "tx_id"
const val ACTION_APPROVE = "org.countersign.sample.APPROVE"

class DenyReceiver : BroadcastReceiver() {
    override fun onReceive(context: Context, intent: Intent) {
        val app = context.applicationContext as CountersignApp
        val account = intent.getStringExtra(EXTRA_ACCOUNT) ?: return
        val tx = intent.getStringExtra(EXTRA_TX) ?: return
        val pending = goAsync()
        app.scope.launch {
            try {
                val card = app.push.cards().firstOrNull { it.accountId == account && it.txId == tx }
                if (card != null) app.push.deny(card, notMe = true)
                NotificationManagerCompat.from(context).cancel(tx.hashCode())
            } finally {
                pending.finish()
            }
        }
    }
}
