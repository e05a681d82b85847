// Platform glue: QR / deep-link activation, the approval screen (number matching,
// PIN or biometrics through the verifier) and the OTP screen. All decisions are in
// the shared controllers; this file only shows them.
package org.countersign.sample.app

import android.content.Intent
import android.os.Bundle
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.TextView
import androidx.appcompat.app.AlertDialog
import androidx.appcompat.app.AppCompatActivity
import androidx.lifecycle.lifecycleScope
import com.journeyapps.barcodescanner.ScanContract
import com.journeyapps.barcodescanner.ScanOptions
import java.lang.ref.WeakReference
import kotlinx.coroutines.delay
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import org.countersign.CountersignException
import org.countersign.pendingRequestsFlow
import org.countersign.sample.ActionResult
import org.countersign.sample.RequestCard
import org.countersign.sample.Scanned
import org.countersign.sample.actionResult
import org.countersign.sample.classify
import org.countersign.sample.message

/** The one screen: codes, activation and approvals. */
class MainActivity : AppCompatActivity() {
    private val app get() = application as CountersignApp
    private lateinit var codes: TextView
    private lateinit var status: TextView

    private val scanner = registerForActivityResult(ScanContract()) { result ->
        result.contents?.let(::scanned)
    }

    /** A scanned QR or deep link: a sign-in page's QR login, or an account to add. */
    private fun scanned(text: String) {
        val login = classify(text) as? Scanned.Login ?: return activate(text)
        lifecycleScope.launch {
            try {
                showApproval(app.push.onLoginQr(login.uri))
            } catch (e: CountersignException) {
                status.text = actionResult(e).message
            }
        }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        status = TextView(this)
        codes = TextView(this).apply { textSize = 22f }
        val scan = Button(this).apply {
            text = getString(R.string.scan)
            setOnClickListener { scanner.launch(ScanOptions().setDesiredBarcodeFormats(ScanOptions.QR_CODE).setBeepEnabled(false)) }
        }
        setContentView(LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            setPadding(48, 48, 48, 48)
            addView(scan); addView(status); addView(codes)
        })
        handle(intent)
        // The OTP screen: refresh every second while visible.
        lifecycleScope.launch {
            while (isActive) {
                codes.text = app.otp.rows().joinToString("\n\n") { r ->
                    "${r.title}\n${r.code}" + (r.timeLeft?.let { "  (${it.inWholeSeconds} s)" } ?: "  (tap for next)")
                }
                delay(1000)
            }
        }
        // Without FCM (no google-services.json) the app long-polls while open.
        lifecycleScope.launch {
            app.authenticator.pendingRequestsFlow().collect { requests ->
                // Requests answered elsewhere or expired leave the list (an empty
                // list included): close their dialogs; show only the new ones.
                val listed = requests.map { it.txId }.toSet()
                approvals.filterKeys { it !in listed }.values.forEach { it.dismiss() }
                requests.map(app.push::card).filter { it.txId !in approvals }.forEach(::showApproval)
            }
        }
    }

    override fun onResume() {
        super.onResume()
        app.foreground = WeakReference(this)
    }

    override fun onNewIntent(intent: Intent) {
        super.onNewIntent(intent)
        handle(intent)
    }

    private fun handle(intent: Intent?) {
        intent ?: return
        intent.data?.takeIf { it.scheme == "countersign" }?.let { scanned(it.toString()) }
        if (intent.action == ACTION_APPROVE) {
            val tx = intent.getStringExtra(EXTRA_TX)
            lifecycleScope.launch { app.push.cards().firstOrNull { it.txId == tx }?.let(::showApproval) }
        }
    }

    private fun activate(text: String) {
        val pin = EditText(this).apply { hint = "App PIN (6+ digits)"; inputType = android.text.InputType.TYPE_CLASS_NUMBER }
        AlertDialog.Builder(this)
            .setTitle("Add account")
            .setView(pin)
            .setPositiveButton("Add") { _, _ ->
                lifecycleScope.launch {
                    status.text = try {
                        "Added ${app.activation.add(text, pin = pin.text.toString().ifEmpty { null }).label}"
                    } catch (e: CountersignException) {
                        actionResult(e).message
                    }
                }
            }
            .setNegativeButton("Cancel", null)
            .show()
    }

    /** The open approval dialogs, by tx id. */
    private val approvals = mutableMapOf<String, AlertDialog>()

    private fun showApproval(card: RequestCard) {
        approvals.remove(card.txId)?.dismiss()
        val number = EditText(this).apply { hint = "Number shown on the sign-in page" }
        // Reverse matching (QR login): the user types this number on the sign-in page.
        val message = card.showNumber?.let { "${card.body}\n\nType $it on the sign-in page" } ?: card.body
        val builder = AlertDialog.Builder(this).setTitle(card.title).setMessage(message)
        when {
            card.pickChoices != null -> builder.setItems(card.pickChoices!!.toTypedArray()) { _, i -> answer(card, card.pickChoices!![i]) }
            card.typeDigits != null -> builder.setView(number).setPositiveButton("Approve") { _, _ -> answer(card, number.text.toString()) }
            else -> builder.setPositiveButton("Approve") { _, _ -> answer(card, null) }
        }
        builder.setNegativeButton("It wasn't me") { _, _ -> lifecycleScope.launch { show(app.push.deny(card, notMe = true)) } }
            .setNeutralButton("Mistake") { _, _ -> lifecycleScope.launch { show(app.push.deny(card, notMe = false)) } }
            .setOnDismissListener { dialog -> if (approvals[card.txId] === dialog) approvals.remove(card.txId) }
        approvals[card.txId] = builder.show()
    }

    private fun answer(card: RequestCard, number: String?) {
        lifecycleScope.launch {
            val result = app.push.approve(card, number)
            show(result)
            if (result is ActionResult.Retry) showApproval(card)
        }
    }

    private fun show(result: ActionResult) {
        // A queued answer says it will be sent: the user is not asked again.
        status.text = result.message
    }
}
