// Platform glue: PIN pad dialog and BiometricPrompt with a CryptoObject.
//
// The CryptoObject wraps a Signature of a gate key that needs a Class 3 biometric
// for every use and is invalidated by a new enrolment. A successful prompt signs a
// nonce with it (proof of a strong biometric, not just a screen tap) and opens the
// UV_WINDOW_SECONDS window in which the account's user-verification-bound Keystore
// key works for the core's ECDH.
package org.countersign.sample.app

import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyPermanentlyInvalidatedException
import android.security.keystore.KeyProperties
import android.text.InputType
import android.widget.EditText
import androidx.appcompat.app.AlertDialog
import androidx.biometric.BiometricManager.Authenticators.BIOMETRIC_STRONG
import androidx.biometric.BiometricPrompt
import androidx.core.content.ContextCompat
import androidx.fragment.app.FragmentActivity
import java.security.KeyPairGenerator
import java.security.KeyStore
import java.security.PrivateKey
import java.security.SecureRandom
import java.security.Signature
import java.security.spec.ECGenParameterSpec
import kotlin.coroutines.resume
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.suspendCancellableCoroutine
import kotlinx.coroutines.withContext
import org.countersign.sample.BiometricResult
import org.countersign.sample.PromptUi

private const val GATE_ALIAS = "countersign.biometric.gate"

/** PIN pad and BiometricPrompt on the foreground [activity] (none: prompts are cancelled). */
class BiometricPromptUi(private val activity: () -> FragmentActivity?) : PromptUi {
    private fun gateKey(): PrivateKey {
        val ks = KeyStore.getInstance("AndroidKeyStore").apply { load(null) }
        (ks.getKey(GATE_ALIAS, null) as? PrivateKey)?.let { return it }
        val generator = KeyPairGenerator.getInstance(KeyProperties.KEY_ALGORITHM_EC, "AndroidKeyStore")
        generator.initialize(
            KeyGenParameterSpec.Builder(GATE_ALIAS, KeyProperties.PURPOSE_SIGN)
                .setAlgorithmParameterSpec(ECGenParameterSpec("secp256r1"))
                .setDigests(KeyProperties.DIGEST_SHA256)
                .setUserAuthenticationRequired(true)
                .setUserAuthenticationParameters(0, KeyProperties.AUTH_BIOMETRIC_STRONG)
                .setInvalidatedByBiometricEnrollment(true)
                .build(),
        )
        return generator.generateKeyPair().private
    }

    private fun gateSignature(): Signature = Signature.getInstance("SHA256withECDSA").apply {
        try {
            initSign(gateKey())
        } catch (e: KeyPermanentlyInvalidatedException) {
            KeyStore.getInstance("AndroidKeyStore").apply { load(null) }.deleteEntry(GATE_ALIAS)
            initSign(gateKey())
        }
    }

    override suspend fun askBiometric(title: String, subtitle: String): BiometricResult = withContext(Dispatchers.Main) {
        val host = activity() ?: return@withContext BiometricResult.CANCELLED
        val crypto = BiometricPrompt.CryptoObject(gateSignature())
        suspendCancellableCoroutine { cont ->
            val prompt = BiometricPrompt(host, ContextCompat.getMainExecutor(host), object : BiometricPrompt.AuthenticationCallback() {
                override fun onAuthenticationSucceeded(result: BiometricPrompt.AuthenticationResult) {
                    val ok = runCatching {
                        val sig = result.cryptoObject?.signature ?: error("no CryptoObject")
                        sig.update(ByteArray(32).also(SecureRandom()::nextBytes))
                        sig.sign()
                    }.isSuccess
                    if (cont.isActive) cont.resume(if (ok) BiometricResult.SUCCEEDED else BiometricResult.FAILED)
                }
                override fun onAuthenticationError(code: Int, message: CharSequence) {
                    val r = if (code == BiometricPrompt.ERROR_USER_CANCELED || code == BiometricPrompt.ERROR_NEGATIVE_BUTTON ||
                        code == BiometricPrompt.ERROR_CANCELED) BiometricResult.CANCELLED else BiometricResult.FAILED
                    if (cont.isActive) cont.resume(r)
                }
            })
            val info = BiometricPrompt.PromptInfo.Builder()
                .setTitle(title)
                .setSubtitle(subtitle)
                .setNegativeButtonText("Cancel")
                .setAllowedAuthenticators(BIOMETRIC_STRONG)
                .build()
            prompt.authenticate(info, crypto)
            cont.invokeOnCancellation { prompt.cancelAuthentication() }
        }
    }

    override suspend fun askPin(title: String, subtitle: String): String? = withContext(Dispatchers.Main) {
        val host = activity() ?: return@withContext null
        suspendCancellableCoroutine { cont ->
            val input = EditText(host).apply {
                inputType = InputType.TYPE_CLASS_NUMBER or InputType.TYPE_NUMBER_VARIATION_PASSWORD
            }
            val dialog = AlertDialog.Builder(host)
                .setTitle(title)
                .setMessage(subtitle)
                .setView(input)
                .setPositiveButton("OK") { _, _ -> if (cont.isActive) cont.resume(input.text.toString()) }
                .setNegativeButton("Cancel") { _, _ -> if (cont.isActive) cont.resume(null) }
                .setOnCancelListener { if (cont.isActive) cont.resume(null) }
                .show()
            cont.invokeOnCancellation { dialog.dismiss() }
        }
    }
}
