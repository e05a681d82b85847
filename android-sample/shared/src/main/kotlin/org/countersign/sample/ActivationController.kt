// Activation from a scanned QR code or a deep link, with the checks the app makes
// before handing the text to the core.
package org.countersign.sample

import org.countersign.AccountInfo
import org.countersign.ActivationOptions
import org.countersign.Authenticator
import org.countersign.CountersignException
import org.countersign.InputField

/** What a scanned text is. */
sealed class Scanned {
    /** A Countersign activation offer. */
    data class Activation(val uri: String) : Scanned()
    /** A QR login from a sign-in page ([PushController.onLoginQr]). */
    data class Login(val uri: String) : Scanned()
    /** A plain TOTP/HOTP account. */
    data class Otpauth(val uri: String) : Scanned()
    /** Not ours. */
    data class Unknown(val text: String) : Scanned()
}

/** Sorts a scanned QR / deep link; the core parses and validates it strictly. */
fun classify(text: String): Scanned {
    val t = text.trim()
    return when {
        t.startsWith("countersign://login?", ignoreCase = true) -> Scanned.Login(t)
        t.startsWith("countersign://", ignoreCase = true) -> Scanned.Activation(t)
        t.startsWith("otpauth://", ignoreCase = true) -> Scanned.Otpauth(t)
        else -> Scanned.Unknown(t)
    }
}

/** Activates or imports what was scanned. */
class ActivationController(private val authenticator: Authenticator) {
    /**
     * Adds the account; [pin] / [biometric] protect its approvals.
     *
     * @throws CountersignException when it cannot be added: `InvalidInput(QR_CODE)`
     *   for a text that is neither an activation offer nor an `otpauth://` URI.
     */
    @Throws(CountersignException::class)
    suspend fun add(text: String, pin: String? = null, biometric: Boolean = false): AccountInfo =
        when (val scanned = classify(text)) {
            is Scanned.Activation -> authenticator.activateUri(scanned.uri, ActivationOptions(pin, biometric))
            is Scanned.Otpauth -> authenticator.importOtpauth(scanned.uri)
            // A QR login is answered, not added: PushController.onLoginQr.
            is Scanned.Unknown, is Scanned.Login -> throw CountersignException.InvalidInput(InputField.QR_CODE)
        }

    /**
     * Activates from a code typed with the server address.
     *
     * @throws CountersignException when it cannot be added.
     */
    @Throws(CountersignException::class)
    suspend fun addByCode(serverUrl: String, code: String, pin: String? = null): AccountInfo =
        authenticator.activateCode(serverUrl.trim(), code.filter { !it.isWhitespace() }, null, ActivationOptions(pin, false))
}
