// What the app does with a push: turn the FCM data into a notification model,
// and carry out the Approve / Deny actions, mapping every failure to a message.
package org.countersign.sample

import org.countersign.Authenticator
import org.countersign.ChallengeKind
import org.countersign.CountersignException
import org.countersign.DenyReason
import org.countersign.NumberMatching
import org.countersign.PendingRequest
import org.countersign.Verification

/** A notification (and the approval screen) for one request. */
data class RequestCard(
    val accountId: String,
    val txId: String,
    val title: String,
    val body: String,
    /** Number matching: null (none), the choices to offer, or how many digits to type. */
    val pickChoices: List<String>?,
    val typeDigits: Int?,
    /** Whether the Approve action can run from the notification (no number, no PIN). */
    val approveFromNotification: Boolean,
    val expiresAt: ULong,
)

/** The end of an action, as the UI shows it. */
sealed class ActionResult {
    /** Approved; [pushOtp] may be shown for login forms that ask for a code. */
    data class Approved(val pushOtp: String) : ActionResult()
    /** Denied. */
    object Denied : ActionResult()
    /** The user must fix something and may retry (wrong PIN, wrong number, cancelled). */
    data class Retry(val message: String) : ActionResult()
    /** The request cannot be answered any more; dismiss it. */
    data class Gone(val message: String) : ActionResult()
    /** The account was wiped (deregistered, PIN locked): go to activation. */
    data class AccountWiped(val message: String) : ActionResult()
    /** Show and log; nothing else to do. */
    data class Failed(val message: String) : ActionResult()
}

/** Maps the core's typed errors to what the UI does. */
fun actionResult(e: CountersignException): ActionResult = when (e) {
    is CountersignException.VerificationCancelled -> ActionResult.Retry("Verification cancelled")
    is CountersignException.VerificationFailed -> ActionResult.Retry("Verification failed")
    is CountersignException.WrongPin -> ActionResult.Retry("Wrong PIN: ${e.attemptsLeft} attempts left")
    is CountersignException.InvalidInput -> ActionResult.Retry("Check the ${e.what}")
    is CountersignException.RequestExpired -> ActionResult.Gone("This request has expired")
    is CountersignException.AlreadyAnswered -> ActionResult.Gone("This request was already answered")
    is CountersignException.RequestNotFound -> ActionResult.Gone("This request is no longer pending")
    is CountersignException.Tampered -> ActionResult.Gone("This request failed a security check and was ignored")
    is CountersignException.PinLocked -> ActionResult.AccountWiped("Too many wrong PINs: the account was removed")
    is CountersignException.DeviceDeregistered -> ActionResult.AccountWiped("This device was removed by the server")
    is CountersignException.ServerRejected -> when (e.code) {
        "wrong_number" -> ActionResult.Retry("That number does not match the sign-in page")
        else -> ActionResult.Failed("The server refused the answer (${e.code})")
    }
    is CountersignException.Network -> ActionResult.Failed("No connection: try again")
    else -> ActionResult.Failed("Something went wrong")
}

/** Drives push requests: FCM data in, cards out, actions carried out. */
class PushController(private val authenticator: Authenticator) {
    /** Builds the card of a received request. */
    fun card(request: PendingRequest): RequestCard {
        val title = when (request.kind) {
            ChallengeKind.LOGIN -> "Sign in to ${request.rp}?"
            ChallengeKind.TRANSACTION -> "Confirm payment for ${request.rp}?"
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
        )
    }

    /** FCM / APNs data (`device_id`, `tx_id`) to a card; null when it must not be shown. */
    suspend fun onPush(data: Map<String, String>): Result<RequestCard> = try {
        Result.success(card(authenticator.handlePush(data)))
    } catch (e: CountersignException) {
        Result.failure(e)
    }

    /** Cards for every request already received (no network). */
    fun cards(): List<RequestCard> = authenticator.pendingRequests().map(::card)

    /** Approve: the core asks the UserVerifier first when the request needs it. */
    suspend fun approve(card: RequestCard, number: String? = null): ActionResult = try {
        val outcome = authenticator.approve(card.accountId, card.txId, number?.trim())
        ActionResult.Approved(outcome.pushOtp)
    } catch (e: CountersignException) {
        actionResult(e)
    }

    /** Deny: works from the lock screen, no verification. */
    suspend fun deny(card: RequestCard, notMe: Boolean): ActionResult = try {
        authenticator.deny(card.accountId, card.txId, if (notMe) DenyReason.NOT_ME else DenyReason.MISTAKE)
        ActionResult.Denied
    } catch (e: CountersignException) {
        actionResult(e)
    }
}
