// The OTP screen's model: one row per account, the code grouped for reading, and
// a countdown.
package org.countersign.sample

import org.countersign.AccountKind
import org.countersign.Authenticator
import org.countersign.CountersignException
import kotlin.time.Duration

/** One row of the OTP screen. */
data class OtpRow(
    /** Local account id. */
    val accountId: String,
    /** "Issuer: label". */
    val title: String,
    /** The code, grouped for reading. */
    val code: String,
    /** Time before the code changes; null for HOTP (tap for the next code). */
    val timeLeft: Duration?,
    /** Whether it is a push account (its TOTP is the fallback code). */
    val isPush: Boolean,
)

/** Groups a code for reading: "123456" -> "123 456", "12345678" -> "1234 5678". */
fun groupCode(code: String): String = when (code.length) {
    6 -> code.substring(0, 3) + " " + code.substring(3)
    8 -> code.substring(0, 4) + " " + code.substring(4)
    else -> code
}

/**
 * Builds the OTP screen rows. TOTP codes are read on every refresh; an HOTP code
 * advances the counter, so it is read once and then only when the user taps [next].
 */
class OtpListModel(private val authenticator: Authenticator) {
    private val hotpCodes = java.util.concurrent.ConcurrentHashMap<String, OtpRow>()

    private suspend fun read(accountId: String): OtpRow? {
        val account = authenticator.account(accountId)
        val otp = authenticator.otp(accountId)
        val row = OtpRow(
            accountId = account.id,
            title = listOfNotNull(account.issuer, account.label).joinToString(": "),
            code = groupCode(otp.code),
            timeLeft = otp.timeLeft,
            isPush = account.kind is AccountKind.Push,
        )
        if (otp.timeLeft == null) hotpCodes[accountId] = row
        return row
    }

    /** Rows for every account (none while storage fails); refresh once a second while visible. */
    suspend fun rows(): List<OtpRow> {
        val accounts = try {
            authenticator.accounts()
        } catch (e: CountersignException) {
            return emptyList()
        }
        return accounts.mapNotNull { account ->
            hotpCodes[account.id] ?: try {
                read(account.id)
            } catch (e: CountersignException) {
                null
            }
        }
    }

    /** The next HOTP code of an account (the user tapped it). */
    suspend fun next(accountId: String): OtpRow? {
        hotpCodes.remove(accountId)
        return try {
            read(accountId)
        } catch (e: CountersignException) {
            null
        }
    }
}
