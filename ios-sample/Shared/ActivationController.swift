// Activation from a scanned QR code (or a universal/deep link), and the OTP list.
import Countersign
import Foundation

/// What a scanned text is.
public enum Scanned: Equatable, Sendable {
    /// A Countersign activation offer.
    case activation(String)
    /// A QR login from a sign-in page (`PushController.onLoginQr`).
    case login(String)
    /// A plain TOTP/HOTP account.
    case otpauth(String)
    /// Not ours.
    case unknown(String)
}

/// Sorts a scanned QR / deep link; the core parses it strictly.
public func classify(_ text: String) -> Scanned {
    let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
    let lower = t.lowercased()
    if lower.hasPrefix("countersign://login?") { return .login(t) }
    if lower.hasPrefix("countersign://") { return .activation(t) }
    if lower.hasPrefix("otpauth://") { return .otpauth(t) }
    return .unknown(t)
}

/// Adds accounts from scanned codes. Sendable: its one property is the
/// (thread-safe) authenticator.
public final class ActivationController: Sendable {
    private let authenticator: Authenticator

    /// Uses `authenticator`.
    public init(_ authenticator: Authenticator) { self.authenticator = authenticator }

    /// Activates or imports `text`; `pin` / `biometric` protect approvals. Throws
    /// a `CountersignError`: `InvalidInput(field: .qrCode)` for a text that is
    /// neither an activation offer nor an `otpauth://` URI (a QR login goes to
    /// `PushController.onLoginQr`).
    public func add(_ text: String, pin: String? = nil, biometric: Bool = false) async throws -> AccountInfo {
        switch classify(text) {
        case .activation(let uri):
            return try await authenticator.activateUri(
                uri: uri, options: ActivationOptions(pin: pin, biometric: biometric))
        case .otpauth(let uri):
            return try await authenticator.importOtpauth(uri: uri)
        case .unknown, .login:
            throw CountersignError.InvalidInput(field: .qrCode)
        }
    }
}

/// One row of the OTP screen.
public struct OtpRow: Equatable, Sendable {
    /// Local account id.
    public let accountId: String
    /// "Issuer: label".
    public let title: String
    /// The code, grouped for reading.
    public let code: String
    /// Time before the code changes; nil for HOTP (tap for the next code).
    public let timeLeft: Duration?
}

/// Groups a code for reading: "123456" -> "123 456".
public func groupCode(_ code: String) -> String {
    let c = Array(code)
    switch c.count {
    case 6: return String(c[0..<3]) + " " + String(c[3...])
    case 8: return String(c[0..<4]) + " " + String(c[4...])
    default: return code
    }
}

/// The OTP screen's rows. HOTP codes advance only on `next`. `@unchecked`:
/// the HOTP cache is guarded by `lock` (`Mutex` needs iOS 18).
public final class OtpListModel: @unchecked Sendable {
    private let authenticator: Authenticator
    private var hotp: [String: OtpRow] = [:]
    private let lock = NSLock()

    /// Uses `authenticator`.
    public init(_ authenticator: Authenticator) { self.authenticator = authenticator }

    private func read(_ account: AccountInfo) async -> OtpRow? {
        guard let otp = try? await authenticator.otp(accountId: account.id) else { return nil }
        let row = OtpRow(
            accountId: account.id,
            title: [account.issuer, account.label].compactMap { $0 }.joined(separator: ": "),
            code: groupCode(otp.code), timeLeft: otp.timeLeft)
        if otp.timeLeft == nil { lock.withLock { hotp[account.id] = row } }
        return row
    }

    /// Rows for every account, none while storage fails (refresh each second while visible).
    public func rows() async -> [OtpRow] {
        let accounts = (try? await authenticator.accounts()) ?? []
        var rows: [OtpRow] = []
        for account in accounts {
            if let row = lock.withLock({ hotp[account.id] }) {
                rows.append(row)
            } else if let row = await read(account) {
                rows.append(row)
            }
        }
        return rows
    }

    /// The next HOTP code (the user tapped the row).
    public func next(_ accountId: String) async -> OtpRow? {
        _ = lock.withLock { hotp.removeValue(forKey: accountId) }
        guard let account = try? await authenticator.account(accountId: accountId) else { return nil }
        return await read(account)
    }
}
