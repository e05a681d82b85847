// What the app does with a push: turn the FCM data into a notification model,
// and carry out the Approve / Deny actions, mapping every failure to a message
// (worded here from the error's type and data, never from its log message).
// Answers that could not be sent wait in the core's outbox; deliverOutbox sends
// them when the app starts.
package org.countersign.sample

import java.time.Instant
import org.countersign.Authenticator
import org.countersign.ChallengeKind
import org.countersign.CountersignException
import org.countersign.Decision
import org.countersign.Delivery
import org.countersign.DenyReason
import org.countersign.InputField
import org.countersign.NumberMatching
import org.countersign.OutboxState
import org.countersign.PendingRequest
import org.countersign.Verification

/** A notification (and the approval screen) for one request. */
data class RequestCard(
    /** Local account id. */
    val accountId: String,
    /** Transaction id. */
    val txId: String,
    /** Notification title. */
    val title: String,
    /** Notification text (payment, free text, origin). */
    val body: String,
    /** Number matching: null (none), the choices to offer, or how many digits to type. */
    val pickChoices: List<String>?,
    /** Digits to type (number matching), or null. */
    val typeDigits: Int?,
    /** Whether the Approve action can run from the notification (no number, no PIN). */
    val approveFromNotification: Boolean,
    /** When the request expires (server clock). */
    val expiresAt: Instant,
    /** QR login with reverse matching: the number to show, typed on the sign-in page; else null. */
    val showNumber: String? = null,
)

/** The end of an action, as the UI shows it. */
sealed class ActionResult {
    /**
     * Approved; [pushOtp] may be shown for login forms that ask for a code.
     * [queued]: the network failed; the answer is saved and sent later.
     */
    data class Approved(val pushOtp: String, val queued: Boolean = false) : ActionResult()
    /** Denied; [queued] as for [Approved]. */
    data class Denied(val queued: Boolean = false) : ActionResult()
    /** The user must fix something and may retry (wrong PIN, wrong number, cancelled). */
    data class Retry(val message: String) : ActionResult()
    /** The request cannot be answered any more; dismiss it. */
    data class Gone(val message: String) : ActionResult()
    /** The account was wiped (deregistered, PIN locked): go to activation. */
    data class AccountWiped(val message: String) : ActionResult()
    /** Show and log; nothing else to do. */
    data class Failed(val message: String) : ActionResult()
}

/** What the UI says about a result. */
val ActionResult.message: String
    get() = when (this) {
        // Queued: the decision stands, so the user must not be asked again.
        is ActionResult.Approved -> if (queued) "Approved. No connection: the answer will be sent automatically" else "Approved"
        is ActionResult.Denied -> if (queued) "Denied. No connection: the answer will be sent automatically" else "Denied"
        is ActionResult.Retry -> message
        is ActionResult.Gone -> message
        is ActionResult.AccountWiped -> message
        is ActionResult.Failed -> message
    }

/** What the UI calls an input the core rejected. */
fun inputName(field: InputField): String = when (field) {
    InputField.ACTIVATION_URI, InputField.QR_CODE -> "scanned code"
    InputField.ACTIVATION_CODE -> "activation code"
    InputField.SERVER_URL -> "server address"
    InputField.SERVER_KEY_FINGERPRINT -> "server fingerprint"
    InputField.PIN -> "PIN"
    InputField.PIN_ALREADY_SET -> "PIN: one is already set"
    InputField.VERIFICATION_NOT_SET_UP -> "verification settings: set up a PIN or biometrics first"
    InputField.NUMBER -> "number"
    InputField.OTPAUTH_URI, InputField.HOTP_COUNTER -> "account code"
    InputField.LOGIN_QR -> "scanned sign-in code"
    InputField.ACCOUNT -> "account: choose which one signs in"
    InputField.PUSH_DATA, InputField.PUSH_REGISTRATION, InputField.DEVICE_SETTINGS,
    InputField.HTTP_CLIENT, InputField.OTHER -> "app setup"
}

/** Maps the core's typed errors to what the UI does. */
fun actionResult(e: CountersignException): ActionResult = when (e) {
    is CountersignException.VerificationCancelled -> ActionResult.Retry("Verification cancelled")
    is CountersignException.VerificationFailed -> ActionResult.Retry("Verification failed")
    is CountersignException.WrongPin -> ActionResult.Retry("Wrong PIN: ${e.attemptsLeft} attempts left")
    is CountersignException.InvalidInput -> ActionResult.Retry("Check the ${inputName(e.field)}")
    // The prompt failed (a bug or a lost activity); nothing was sent.
    is CountersignException.HookFailed -> ActionResult.Retry("Could not verify: try again")
    is CountersignException.RequestExpired -> ActionResult.Gone("This request has expired")
    is CountersignException.AlreadyAnswered -> ActionResult.Gone("This request was already answered")
    is CountersignException.RequestNotFound -> ActionResult.Gone("This request is no longer pending")
    is CountersignException.Tampered -> ActionResult.Gone("This request failed a security check and was ignored")
    is CountersignException.PinLocked -> ActionResult.AccountWiped("Too many wrong PINs: the account was removed")
    is CountersignException.DeviceDeregistered -> ActionResult.AccountWiped("This device was removed by the server")
    is CountersignException.ServerRejected -> when (e.serverCode) {
        "wrong_number" -> ActionResult.Retry("That number does not match the sign-in page")
        else -> ActionResult.Failed("The server refused the answer (${e.serverCode})")
    }
    is CountersignException.Network -> ActionResult.Failed("No connection: try again")
    is CountersignException.AwaitingApproval -> ActionResult.Retry("Approve this phone on your old phone")
    is CountersignException.TransferDenied -> ActionResult.AccountWiped("Your old phone did not approve this phone")
    else -> ActionResult.Failed("Something went wrong")
}

/** A saved answer the user should hear about, as the UI words it. */
data class OutboxNotice(
    /** Local account id. */
    val accountId: String,
    /** Transaction id. */
    val txId: String,
    /** What to show. */
    val message: String,
)

/** Drives push requests: FCM data in, cards out, actions carried out. */
class PushController(private val authenticator: Authenticator) {
    /** Builds the card of a received request. */
    fun card(request: PendingRequest): RequestCard {
        val title = when (request.kind) {
            ChallengeKind.LOGIN -> "Sign in to ${request.rp}?"
            ChallengeKind.TRANSACTION -> "Confirm payment for ${request.rp}?"
            // The text names the new phone: deny if it is not the user's.
            ChallengeKind.TRANSFER -> "Move your ${request.rp} account to a new phone?"
        }
        val lines = buildList {
            request.transaction?.let { add("${it.amount} ${it.currency} to ${it.payee}") }
            request.text?.let { add(it) }
            listOfNotNull(request.location, request.ip, request.userAgent).takeIf { it.isNotEmpty() }
                ?.let { add(it.joinToString(" · ")) }
        }
        val matching = request.numberMatching
        return RequestCard(
            accountId = request.accountId,
            txId = request.txId,
            title = title,
            body = lines.joinToString("\n"),
            pickChoices = (matching as? NumberMatching.Pick)?.choices,
            typeDigits = (matching as? NumberMatching.Type)?.digits?.toInt(),
            approveFromNotification = matching is NumberMatching.Off && request.verification == Verification.NONE,
            expiresAt = request.expiresAt,
            showNumber = (matching as? NumberMatching.Show)?.number,
        )
    }

    /**
     * A scanned QR login (`countersign://login?…`) to a card: the core claims it on
     * its server and returns the request, answered with [approve] / [deny] like a
     * push. [accountId] picks the account when several are on that server.
     *
     * @throws CountersignException `InvalidInput(ACCOUNT)` when several accounts are
     *   on that server and none was picked; `AlreadyAnswered` when another device
     *   scanned it first; `RequestExpired` for an old QR.
     */
    @Throws(CountersignException::class)
    suspend fun onLoginQr(uri: String, accountId: String? = null): RequestCard =
        card(authenticator.scanLoginQr(uri, accountId))

    /**
     * FCM / APNs data (`device_id`, `tx_id`) to a card.
     *
     * @throws CountersignException when there is nothing to show (tampered, expired,
     *   already answered, network); its `code` says which.
     */
    @Throws(CountersignException::class)
    suspend fun onPush(data: Map<String, String>): RequestCard = card(authenticator.handlePush(data))

    /** Cards for every request already received, by any process (no network); none if storage fails. */
    suspend fun cards(): List<RequestCard> = try {
        authenticator.pendingRequests().map(::card)
    } catch (e: CountersignException) {
        emptyList()
    }

    /** Approve: the core asks the UserVerifier first when the request needs it. */
    suspend fun approve(card: RequestCard, number: String? = null): ActionResult = try {
        val outcome = authenticator.approve(card.accountId, card.txId, number?.trim())
        ActionResult.Approved(outcome.pushOtp, queued = outcome.delivery == Delivery.QUEUED)
    } catch (e: CountersignException) {
        actionResult(e)
    }

    /** Deny: works from the lock screen, no verification. */
    suspend fun deny(card: RequestCard, notMe: Boolean): ActionResult = deny(card.accountId, card.txId, notMe)

    /**
     * Deny by ids, as a notification action does: needs no UI and no card, and
     * works in a freshly started process (the core reads the request from
     * storage or fetches it again).
     */
    suspend fun deny(accountId: String, txId: String, notMe: Boolean): ActionResult = try {
        val delivery = authenticator.deny(accountId, txId, if (notMe) DenyReason.NOT_ME else DenyReason.MISTAKE)
        ActionResult.Denied(queued = delivery == Delivery.QUEUED)
    } catch (e: CountersignException) {
        actionResult(e)
    }

    /**
     * Sends the answers saved while offline; call when the app starts. Returns
     * what to tell the user: answers still waiting, and answers the server refused
     * for good (dismissed here, so each is reported once).
     */
    suspend fun deliverOutbox(): List<OutboxNotice> {
        val left = try {
            authenticator.deliverOutbox()
        } catch (e: CountersignException) {
            return emptyList() // storage failed: nothing to report now; the next start retries
        }
        return left.map { entry ->
            val what = if (entry.decision == Decision.APPROVE) "approval" else "denial"
            val message = when (val state = entry.state) {
                is OutboxState.Waiting -> "Your $what will be sent when the connection is back"
                is OutboxState.Refused -> {
                    runCatching { authenticator.dismissOutboxEntry(entry.accountId, entry.txId) }
                    if (state.code == "expired") "Your $what arrived too late: the request expired"
                    else "The server refused your $what (${state.code})"
                }
            }
            OutboxNotice(entry.accountId, entry.txId, message)
        }
    }
}
