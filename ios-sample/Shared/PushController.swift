// What the app does with a push: APNs payload -> notification card; the Approve /
// Deny notification actions; every failure mapped to what the UI shows (worded
// from the error's case and data, never from its log description). Answers
// that could not be sent wait in the core's outbox; deliverOutbox sends them when
// the app starts.
import Countersign
import Foundation

/// A notification (and the approval screen) for one request.
public struct RequestCard: Equatable, Sendable {
    /// Local account id.
    public let accountId: String
    /// Transaction id.
    public let txId: String
    /// Notification title.
    public let title: String
    /// Notification text (payment, free text, origin).
    public let body: String
    /// Numbers to pick from, or nil.
    public let pickChoices: [String]?
    /// Digits to type, or nil.
    public let typeDigits: Int?
    /// Whether Approve may run straight from the notification (no number, no PIN).
    public let approveFromNotification: Bool
    /// When the request expires (server clock).
    public let expiresAt: Date
    /// QR login with reverse matching: the number to show in large digits,
    /// which the user types on the sign-in page; nil otherwise.
    public var showNumber: String? = nil
}

/// The end of an action, as the UI shows it.
public enum ActionResult: Equatable, Sendable {
    /// Approved; `queued`: the network failed, the answer is saved and sent later.
    case approved(pushOtp: String, queued: Bool)
    /// Denied; `queued` as for `approved`.
    case denied(queued: Bool)
    /// The user may fix it and retry.
    case retry(String)
    /// The request cannot be answered any more.
    case gone(String)
    /// The account was wiped: go to activation.
    case accountWiped(String)
    /// Show and log; nothing else to do.
    case failed(String)

    /// What the UI says.
    public var message: String {
        switch self {
        // Queued: the decision stands, so the user must not be asked again.
        case .approved(_, let queued):
            return queued ? "Approved. No connection: the answer will be sent automatically" : "Approved"
        case .denied(let queued):
            return queued ? "Denied. No connection: the answer will be sent automatically" : "Denied"
        case .retry(let m), .gone(let m), .accountWiped(let m), .failed(let m):
            return m
        }
    }
}

/// What the UI calls an input the core rejected.
public func inputName(_ field: InputField) -> String {
    switch field {
    case .activationUri, .qrCode: return "scanned code"
    case .activationCode: return "activation code"
    case .serverUrl: return "server address"
    case .serverKeyFingerprint: return "server fingerprint"
    case .pin: return "PIN"
    case .pinAlreadySet: return "PIN: one is already set"
    case .verificationNotSetUp: return "verification settings: set up a PIN or biometrics first"
    case .number: return "number"
    case .otpauthUri, .hotpCounter: return "account code"
    case .loginQr: return "scanned sign-in code"
    case .account: return "account: choose which one signs in"
    case .pushData, .pushRegistration, .deviceSettings, .httpClient, .other: return "app setup"
    }
}

/// Maps the core's typed errors to what the UI does.
public func actionResult(_ error: Error) -> ActionResult {
    guard let e = error as? CountersignError else { return .failed("Something went wrong") }
    switch e {
    case .VerificationCancelled: return .retry("Verification cancelled")
    case .VerificationFailed: return .retry("Verification failed")
    case .WrongPin(let left): return .retry("Wrong PIN: \(left) attempts left")
    case .InvalidInput(let field): return .retry("Check the \(inputName(field))")
    // The prompt failed (a bug, a lost window); nothing was sent.
    case .HookFailed: return .retry("Could not verify: try again")
    case .RequestExpired: return .gone("This request has expired")
    case .AlreadyAnswered: return .gone("This request was already answered")
    case .RequestNotFound: return .gone("This request is no longer pending")
    case .Tampered: return .gone("This request failed a security check and was ignored")
    case .PinLocked: return .accountWiped("Too many wrong PINs: the account was removed")
    case .DeviceDeregistered: return .accountWiped("This device was removed by the server")
    case .ServerRejected(let serverCode):
        return serverCode == "wrong_number"
            ? .retry("That number does not match the sign-in page")
            : .failed("The server refused the answer (\(serverCode))")
    case .Network: return .failed("No connection: try again")
    case .AwaitingApproval: return .retry("Approve this phone on your old phone")
    case .TransferDenied: return .accountWiped("Your old phone did not approve this phone")
    default: return .failed("Something went wrong")
    }
}

/// Drives push requests. Sendable: its one property is the (thread-safe)
/// authenticator.
public final class PushController: Sendable {
    private let authenticator: Authenticator

    /// Uses `authenticator`.
    public init(_ authenticator: Authenticator) { self.authenticator = authenticator }

    /// The card of a request.
    public func card(_ r: PendingRequest) -> RequestCard {
        let title: String
        switch r.kind {
        case .login: title = "Sign in to \(r.rp)?"
        case .transaction: title = "Confirm payment for \(r.rp)?"
        // The text names the new phone: deny if it is not the user's.
        case .transfer: title = "Move your \(r.rp) account to a new phone?"
        }
        var lines: [String] = []
        if let t = r.transaction { lines.append("\(t.amount) \(t.currency) to \(t.payee)") }
        if let text = r.text { lines.append(text) }
        let origin = [r.location, r.ip, r.userAgent].compactMap { $0 }
        if !origin.isEmpty { lines.append(origin.joined(separator: " · ")) }
        var pick: [String]? = nil
        var digits: Int? = nil
        var show: String? = nil
        switch r.numberMatching {
        case .off: break
        case .pick(let choices): pick = choices
        case .type(let d): digits = Int(d)
        case .show(let number): show = number
        }
        return RequestCard(
            accountId: r.accountId, txId: r.txId, title: title,
            body: lines.joined(separator: "\n"), pickChoices: pick, typeDigits: digits,
            approveFromNotification: pick == nil && digits == nil && r.verification == .none,
            expiresAt: r.expiresAt, showNumber: show)
    }

    /// A scanned QR login (`countersign://login?…`) to a card: the core claims
    /// it on its server and returns the request, answered with `approve` /
    /// `deny` like a push. `accountId` picks the account when several are on
    /// that server (else `InvalidInput(field: .account)`).
    public func onLoginQr(_ uri: String, accountId: String? = nil) async throws -> RequestCard {
        card(try await authenticator.scanLoginQr(uri: uri, accountId: accountId))
    }

    /// Cards of the requests already received by any process and still pending
    /// (no network); none while storage fails.
    public func cards() async -> [RequestCard] { ((try? await authenticator.pendingRequests()) ?? []).map(card) }

    /// The APNs payload's custom keys (`device_id`, `tx_id`) to a card. Throws a
    /// `CountersignError` when there is nothing to show (tampered, expired,
    /// already answered, network); its `code` says which.
    public func onPush(userInfo: [AnyHashable: Any]) async throws -> RequestCard {
        var data: [String: String] = [:]
        for (k, v) in userInfo {
            if let k = k as? String, let v = v as? String { data[k] = v }
        }
        return card(try await authenticator.handlePush(data: data))
    }

    /// Approve (the core asks the verifier first when the request needs it).
    public func approve(_ card: RequestCard, number: String? = nil) async -> ActionResult {
        do {
            let outcome = try await authenticator.approve(
                accountId: card.accountId, txId: card.txId,
                number: number?.trimmingCharacters(in: .whitespaces))
            return .approved(pushOtp: outcome.pushOtp, queued: outcome.delivery == .queued)
        } catch {
            return actionResult(error)
        }
    }

    /// Deny: works from the lock screen.
    public func deny(_ card: RequestCard, notMe: Bool) async -> ActionResult {
        await deny(accountId: card.accountId, txId: card.txId, notMe: notMe)
    }

    /// Deny by ids, as a notification action does: needs no UI and no card, and
    /// works in a freshly launched process (the core reads the request from
    /// storage or fetches it again).
    public func deny(accountId: String, txId: String, notMe: Bool) async -> ActionResult {
        do {
            let delivery = try await authenticator.deny(
                accountId: accountId, txId: txId, reason: notMe ? .notMe : .mistake)
            return .denied(queued: delivery == .queued)
        } catch {
            return actionResult(error)
        }
    }

    /// Sends the answers saved while offline; call when the app starts. Returns
    /// what to tell the user: answers still waiting, and answers the server
    /// refused for good (dismissed here, so each is reported once).
    public func deliverOutbox() async -> [OutboxNotice] {
        // A storage failure: nothing to report now; the next start retries.
        guard let left = try? await authenticator.deliverOutbox() else { return [] }
        var notices: [OutboxNotice] = []
        for entry in left {
            let what = entry.decision == .approve ? "approval" : "denial"
            let message: String
            switch entry.state {
            case .waiting:
                message = "Your \(what) will be sent when the connection is back"
            case .refused(let code):
                try? await authenticator.dismissOutboxEntry(accountId: entry.accountId, txId: entry.txId)
                message = code == "expired"
                    ? "Your \(what) arrived too late: the request expired"
                    : "The server refused your \(what) (\(code))"
            }
            notices.append(OutboxNotice(accountId: entry.accountId, txId: entry.txId, message: message))
        }
        return notices
    }
}

/// A saved answer the user should hear about, as the UI words it.
public struct OutboxNotice: Equatable, Sendable {
    /// Local account id.
    public let accountId: String
    /// Transaction id.
    public let txId: String
    /// What to show.
    public let message: String

    /// Makes a notice.
    public init(accountId: String, txId: String, message: String) {
        self.accountId = accountId
        self.txId = txId
        self.message = message
    }
}
