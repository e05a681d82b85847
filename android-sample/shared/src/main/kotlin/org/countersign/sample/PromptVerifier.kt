// UserVerifier over the app's prompt UI: the Android glue shows a PIN pad or a
// BiometricPrompt (with a CryptoObject); tests script the answers.
package org.countersign.sample

import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock
import org.countersign.UserVerifier
import org.countersign.VerificationKind
import org.countersign.VerificationOutcome
import org.countersign.VerificationPrompt

/** What a biometric prompt ended with. */
enum class BiometricResult {
    /** The user passed. */
    SUCCEEDED,
    /** The user (or the system) dismissed the prompt. */
    CANCELLED,
    /** Not recognised, or locked out. */
    FAILED,
}

/** The screens a [PromptVerifier] drives. Each call shows one prompt and waits. */
interface PromptUi {
    /** Shows the PIN pad; the PIN typed, or null when the user cancelled. */
    suspend fun askPin(title: String, subtitle: String): String?
    /** Shows the biometric prompt. */
    suspend fun askBiometric(title: String, subtitle: String): BiometricResult
}

/**
 * [UserVerifier] that shows one prompt at a time (the core may ask for several
 * accounts at once) and words it from the request. If the UI throws, the core
 * turns it into `CountersignException.HookFailed` and sends nothing.
 */
class PromptVerifier(private val ui: PromptUi) : UserVerifier {
    private val oneAtATime = Mutex()

    override suspend fun verify(prompt: VerificationPrompt): VerificationOutcome = oneAtATime.withLock {
        val title = prompt.reason
        val subtitle = prompt.accountLabel
        when (prompt.kind) {
            VerificationKind.PIN -> when (val pin = ui.askPin(title, subtitle)) {
                null -> VerificationOutcome.Cancelled
                else -> VerificationOutcome.Verified(pin)
            }
            VerificationKind.BIOMETRIC -> when (ui.askBiometric(title, subtitle)) {
                BiometricResult.SUCCEEDED -> VerificationOutcome.Verified(null)
                BiometricResult.CANCELLED -> VerificationOutcome.Cancelled
                BiometricResult.FAILED -> VerificationOutcome.Failed
            }
        }
    }
}
