// What the app does with a push: APNs payload -> notification card; the Approve /
// Deny notification actions; every failure mapped to what the UI shows.
import Countersign
import Foundation

/// A notification (and the approval screen) for one request.
public struct RequestCard: Equatable, Sendable {
    public let accountId: String
    public let txId: String
    public let title: String
    public let body: String
    /// Numbers to pick from, or nil.
    public let pickChoices: [String]?
    /// Digits to type, or nil.
    public let typeDigits: Int?
    /// Whether Approve may run straight from the notification (no number, no PIN).
    public let approveFromNotification: Bool
    public let expiresAt: UInt64
}

/// The end of an action, as the UI shows it.
public enum ActionResult: Equatable, Sendable {
    case approved(pushOtp: String)
    case denied
    /// The user may fix it and retry.
    case retry(String)
    /// The request cannot be answered any more.
    case gone(String)
    /// The account was wiped: go to activation.
    case accountWiped(String)
    case failed(String)
}

/// Maps the core's typed errors to what the UI does.
public func actionResult(_ error: Error) -> ActionResult {
    guard let e = error as? CountersignError else { return .failed("Something went wrong") }
    switch e {
    case .VerificationCancelled: return .retry("Verification cancelled")
    case .VerificationFailed: return .retry("Verification failed")
    case .WrongPin(let left): return .retry("Wrong PIN: \(left) attempts left")
    case .InvalidInput(let what): return .retry("Check the \(what)")
    case .RequestExpired: return .gone("This request has expired")
    case .AlreadyAnswered: return .gone("This request was already answered")
    case .RequestNotFound: return .gone("This request is no longer pending")
    case .Tampered: return .gone("This request failed a security check and was ignored")
    case .PinLocked: return .accountWiped("Too many wrong PINs: the account was removed")
    case .DeviceDeregistered: return .accountWiped("This device was removed by the server")
    case .ServerRejected(let code):
        return code == "wrong_number"
            ? .retry("That number does not match the sign-in page")
            : .failed("The server refused the answer (\(code))")
    case .Network: return .failed("No connection: try again")
    default: return .failed("Something went wrong")
    }
}

/// Drives push requests.
public final class PushController: @unchecked Sendable {
    private let authenticator: Authenticator

    /// Uses `authenticator`.
    public init(_ authenticator: Authenticator) { self.authenticator = authenticator }

    /// The card of a request.
    public func card(_ r: PendingRequest) -> RequestCard {
        let title: String
        switch r.kind {
        case .login: title = "Sign in to \(r.rp)?"
        case .transaction: title = "Confirm payment for \(r.rp)?"
        }
        var lines: [String] = []
        if let t = r.transaction { lines.append("\(t.amount) \(t.currency) to \(t.payee)") }
        if let text = r.text { lines.append(text) }
        let origin = [r.location, r.ip, r.userAgent].compactMap { $0 }
        if !origin.isEmpty { lines.append(origin.joined(separator: " · ")) }
        var pick: [String]? = nil
        var digits: Int? = nil
        switch r.numberMatching {
        case .off: break
        case .pick(let choices): pick = choices
        case .type(let d): digits = Int(d)
        }
        return RequestCard(
            accountId: r.accountId, txId: r.txId, title: title,
            body: lines.joined(separator: "\n"), pickChoices: pick, typeDigits: digits,
            approveFromNotification: pick == nil && digits == nil && r.verification == .none,
            expiresAt: r.expiresAt)
    }

    /// Cards of the requests already received and still pending (no network).
    public func cards() -> [RequestCard] { authenticator.pendingRequests().map(card) }

    /// The APNs payload's custom keys (`device_id`, `tx_id`) to a card.
    public func onPush(userInfo: [AnyHashable: Any]) async -> Result<RequestCard, Error> {
        var data: [String: String] = [:]
        for (k, v) in userInfo {
            if let k = k as? String, let v = v as? String { data[k] = v }
        }
        do {
            return .success(card(try await authenticator.handlePush(data: data)))
        } catch {
            return .failure(error)
        }
    }

    /// Approve (the core asks the verifier first when the request needs it).
    public func approve(_ card: RequestCard, number: String? = nil) async -> ActionResult {
        do {
            let outcome = try await authenticator.approve(
                accountId: card.accountId, txId: card.txId,
                number: number?.trimmingCharacters(in: .whitespaces))
            return .approved(pushOtp: outcome.pushOtp)
        } catch {
            return actionResult(error)
        }
    }

    /// Deny: works from the lock screen.
    public func deny(_ card: RequestCard, notMe: Bool) async -> ActionResult {
        do {
            try await authenticator.deny(
                accountId: card.accountId, txId: card.txId, reason: notMe ? .notMe : .mistake)
            return .denied
        } catch {
            return actionResult(error)
        }
    }
}
