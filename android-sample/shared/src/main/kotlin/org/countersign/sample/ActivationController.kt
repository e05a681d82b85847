// Activation from a scanned QR code or a deep link, with the checks the app makes
// before handing the text to the core.
package org.countersign.sample

import org.countersign.AccountInfo
import org.countersign.ActivationOptions
import org.countersign.Authenticator
import org.countersign.CountersignException

/** What a scanned text is. */
sealed class Scanned {
    /** A Countersign activation offer. */
    data class Activation(val uri: String) : Scanned()
    /** A plain TOTP/HOTP account. */
    data class Otpauth(val uri: String) : Scanned()
    /** Not ours. */
    data class Unknown(val text: String) : Scanned()
}

/** Sorts a scanned QR / deep link; the core parses and validates it strictly. */
fun classify(text: String): Scanned {
    val t = text.trim()
    return when {
        t.startsWith("countersign://", ignoreCase = true) -> Scanned.Activation(t)
        t.startsWith("otpauth://", ignoreCase = true) -> Scanned.Otpauth(t)
        else -> Scanned.Unknown(t)
    }
}

/** Activates or imports what was scanned. */
class ActivationController(private val authenticator: Authenticator) {
    /** Adds the account; [pin] / [biometric] protect its approvals. */
    suspend fun add(text: String, pin: String? = null, biometric: Boolean = false): Result<AccountInfo> = try {
        when (val scanned = classify(text)) {
            is Scanned.Activation -> Result.success(authenticator.activateUri(scanned.uri, ActivationOptions(pin, biometric)))
            is Scanned.Otpauth -> Result.success(authenticator.importOtpauth(scanned.uri))
            is Scanned.Unknown -> Result.failure(CountersignException.InvalidInput("QR code"))
        }
    } catch (e: CountersignException) {
        Result.failure(e)
    }

    /** Activates from a code typed with the server address. */
    suspend fun addByCode(serverUrl: String, code: String, pin: String? = null): Result<AccountInfo> = try {
        Result.success(authenticator.activateCode(serverUrl.trim(), code.filter { !it.isWhitespace() }, null, ActivationOptions(pin, false)))
    } catch (e: CountersignException) {
        Result.failure(e)
    }
}
