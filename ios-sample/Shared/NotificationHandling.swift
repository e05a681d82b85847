// The logic of the Notification Service Extension and of the notification actions,
// free of UIKit so it runs (and is tested) on Linux. The extension is a second
// process on the app's storage (App Group lock file, shared Keychain group): it
// opens its own Authenticator, fetches and opens the challenge the push announces,
// and rewrites the generic alert with the challenge's context. The actions run
// wherever iOS delivers them (the app, possibly launched just for it): Deny needs
// nothing; Approve needs Face ID / Touch ID first.
import Countersign
import Foundation

/// Identifiers shared by the server's APNs payload, the extension and the app.
public enum NotificationIds {
    /// The category the server sets on every alert: Approve and Deny actions.
    public static let requestCategory = "COUNTERSIGN_REQUEST"
    /// The category the extension switches to when the request needs the app
    /// (a number to match): Deny only; a tap opens the app.
    public static let reviewCategory = "COUNTERSIGN_REQUEST_REVIEW"
    /// Approve: registered with `.authenticationRequired` and `.foreground`.
    public static let approveAction = "COUNTERSIGN_APPROVE"
    /// Deny: registered with `.destructive`; runs from the lock screen.
    public static let denyAction = "COUNTERSIGN_DENY"
    /// User-info key of the local account id (added by the extension).
    public static let accountKey = "account_id"
    /// User-info key of the transaction id (sent by the server).
    public static let txKey = "tx_id"
}

/// The alert the extension shows instead of the generic one.
public struct NotificationText: Equatable, Sendable {
    /// Title: who asks, and for what.
    public let title: String
    /// Body: payment, free text, origin; or why the request could not be shown.
    public let body: String
    /// The category (which actions the alert offers).
    public let category: String
    /// User-info entries to add, so an action needs no second fetch.
    public let userInfo: [String: String]
    /// Whether a challenge was opened (false: the generic alert stays, and the app
    /// shows the request when opened).
    public let opened: Bool

    /// Makes a text.
    public init(title: String, body: String, category: String, userInfo: [String: String], opened: Bool) {
        self.title = title
        self.body = body
        self.category = category
        self.userInfo = userInfo
        self.opened = opened
    }
}

/// Extension and action logic over one process's Authenticator.
public final class NotificationHandler: Sendable {
    private let push: PushController
    private let authenticator: Authenticator

    /// Uses `authenticator` (each process opens its own over the shared storage).
    public init(_ authenticator: Authenticator) {
        self.authenticator = authenticator
        push = PushController(authenticator)
    }

    /// Fetches and opens the challenge `userInfo` announces and returns the alert
    /// to show. Never throws: on a failure the alert keeps the generic title and
    /// says in one line why, and no action is offered but Deny (a tampered
    /// challenge offers none).
    public func rewrite(userInfo: [AnyHashable: Any]) async -> NotificationText {
        do {
            let card = try await push.onPush(userInfo: userInfo)
            let needsApp = card.pickChoices != nil || card.typeDigits != nil
            return NotificationText(
                title: card.title, body: card.body,
                category: needsApp ? NotificationIds.reviewCategory : NotificationIds.requestCategory,
                userInfo: [NotificationIds.accountKey: card.accountId, NotificationIds.txKey: card.txId],
                opened: true)
        } catch {
            let result = actionResult(error)
            // A tampered or stale request gets no actions at all.
            let category: String
            switch result {
            case .gone: category = ""
            default: category = NotificationIds.reviewCategory
            }
            return NotificationText(
                title: "Sign-in request", body: result.message, category: category, userInfo: [:], opened: false)
        }
    }

    /// Runs the notification action `identifier` for the alert's `userInfo`.
    ///
    /// Deny needs no UI and works in a freshly launched process. Approve first
    /// asks `confirmUser` (the app's Face ID / Touch ID check); a request that
    /// needs more (a number, the app PIN) is left for the app's approval screen
    /// and reported as `.retry`. Anything else (the default tap) returns nil.
    public func perform(
        action identifier: String, userInfo: [AnyHashable: Any], confirmUser: @Sendable () async -> Bool
    ) async -> ActionResult? {
        guard let tx = userInfo[NotificationIds.txKey] as? String else {
            return .gone("This request is no longer available")
        }
        // The extension added the account; without it (the extension timed out)
        // find the request among those stored, fetching it if needed.
        let account: String
        if let known = userInfo[NotificationIds.accountKey] as? String {
            account = known
        } else {
            guard let card = try? await push.onPush(userInfo: userInfo) else {
                return .gone("This request is no longer available")
            }
            account = card.accountId
        }
        switch identifier {
        case NotificationIds.denyAction:
            return await push.deny(accountId: account, txId: tx, notMe: true)
        case NotificationIds.approveAction:
            guard let request = try? await authenticator.pendingRequests().first(where: { $0.txId == tx }) else {
                return .gone("This request is no longer pending")
            }
            let card = push.card(request)
            guard card.pickChoices == nil, card.typeDigits == nil else {
                return .retry("Match the number shown on the sign-in page")
            }
            guard await confirmUser() else { return .retry("Verification cancelled") }
            return await push.approve(card)
        default:
            return nil
        }
    }
}
