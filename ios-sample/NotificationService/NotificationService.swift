// The Notification Service Extension: iOS runs it for every alert push with
// `mutable-content` (what the server sends), in its own process, with about 30
// seconds to rewrite the alert. It opens an Authenticator over the app's storage
// (the shared Keychain access group, and the lock file in the App Group that makes
// compare-and-put atomic across the app and this process), fetches and opens the
// challenge, and shows its context. The server's category offers Approve and Deny;
// the extension switches to Deny-only when a number must be matched in the app.
import Countersign
import CountersignSampleKit
import UserNotifications

final class NotificationService: UNNotificationServiceExtension {
    /// The running rewrite, cancelled when iOS's time runs out.
    private var work: Task<Void, Never>?
    /// Delivers the generic alert if time runs out first.
    private var fallback: (() -> Void)?

    override func didReceive(
        _ request: UNNotificationRequest, withContentHandler contentHandler: @escaping (UNNotificationContent) -> Void
    ) {
        guard let content = request.content.mutableCopy() as? UNMutableNotificationContent else {
            contentHandler(request.content)
            return
        }
        let once = DeliverOnce(contentHandler)
        fallback = { once.deliver(request.content) }
        let userInfo = request.content.userInfo
        work = Task {
            guard let authenticator = try? openAuthenticator(verifier: PromptVerifier(NoPrompts()), vault: SecureEnclaveVault())
            else { return once.deliver(request.content) }
            let text = await NotificationHandler(authenticator).rewrite(userInfo: userInfo)
            content.title = text.title
            content.body = text.body
            content.categoryIdentifier = text.category
            content.interruptionLevel = .timeSensitive
            var info = content.userInfo
            for (key, value) in text.userInfo { info[key] = value }
            content.userInfo = info
            once.deliver(content)
        }
    }

    override func serviceExtensionTimeWillExpire() {
        work?.cancel()
        fallback?()
    }
}

/// Calls the content handler once, whichever of the rewrite and the timeout comes first.
/// `@unchecked`: UIKit's handler is not `Sendable`; it is only touched under `lock`.
private final class DeliverOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var handler: ((UNNotificationContent) -> Void)?

    init(_ handler: @escaping (UNNotificationContent) -> Void) { self.handler = handler }

    func deliver(_ content: UNNotificationContent) {
        let handler = lock.withLock { () -> ((UNNotificationContent) -> Void)? in
            defer { self.handler = nil }
            return self.handler
        }
        handler?(content)
    }
}
