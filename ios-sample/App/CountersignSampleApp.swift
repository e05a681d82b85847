// Platform glue: app entry, APNs registration, notification actions. Approve needs
// the device unlocked (.authenticationRequired) and opens the app when a number or
// verification is needed; Deny runs in the background without unlocking, even
// when iOS launched the app just for it (no UI, ids from the notification).
import Countersign
import CountersignSampleKit
import SwiftUI
import UserNotifications

/// The app's state: the authenticator, controllers, cards on screen and a status line.
@MainActor
final class Model: ObservableObject {
    let prompts = PromptState()
    let vault = SecureEnclaveVault()
    let authenticator: Authenticator
    let push: PushController
    let activation: ActivationController
    let otp: OtpListModel
    @Published var cards: [RequestCard] = []
    @Published var status = ""

    init() {
        let verifier = PromptVerifier(BiometricPresenter(state: prompts, vault: vault))
        do {
            authenticator = try openAuthenticator(verifier: verifier, vault: vault)
        } catch {
            fatalError("cannot open the authenticator: \(error)")  // storage unavailable: nothing to show
        }
        push = PushController(authenticator)
        activation = ActivationController(authenticator)
        otp = OtpListModel(authenticator)
        cards = push.cards()
        // Answers saved while offline go out now; say what still waits or was refused.
        Task { [push] in
            let notices = await push.deliverOutbox()
            if !notices.isEmpty { self.status = notices.map(\.message).joined(separator: "\n") }
        }
    }
}

/// Answers no prompt: for work without UI (a Deny action needs no verification).
final class NoPrompts: PromptPresenter, @unchecked Sendable {
    func askPin(title: String, subtitle: String) async -> String? { nil }
    func askBiometric(title: String, subtitle: String) async -> BiometricResult { .cancelled }
}

/// APNs, notification categories and actions.
final class AppDelegate: NSObject, UIApplicationDelegate, UNUserNotificationCenterDelegate {
    var model: Model?

    func application(_ app: UIApplication, didFinishLaunchingWithOptions options: [UIApplication.LaunchOptionsKey: Any]? = nil) -> Bool {
        let center = UNUserNotificationCenter.current()
        center.delegate = self
        let approve = UNNotificationAction(identifier: "approve", title: "Approve", options: [.authenticationRequired, .foreground])
        let deny = UNNotificationAction(identifier: "deny", title: "Deny", options: [.destructive])
        center.setNotificationCategories([UNNotificationCategory(identifier: "countersign.request", actions: [approve, deny], intentIdentifiers: [])])
        center.requestAuthorization(options: [.alert, .sound]) { granted, _ in
            if granted { DispatchQueue.main.async { app.registerForRemoteNotifications() } }
        }
        return true
    }

    func application(_ app: UIApplication, didRegisterForRemoteNotificationsWithDeviceToken token: Data) {
        let hex = token.map { String(format: "%02x", $0) }.joined()
        Task { try? await model?.authenticator.updatePushToken(push: .apns(token: hex)) }
    }

    /// A silent / background push: fetch and open the challenge, show a local notification.
    func application(_ app: UIApplication, didReceiveRemoteNotification userInfo: [AnyHashable: Any]) async -> UIBackgroundFetchResult {
        guard let model else { return .noData }
        let card: RequestCard
        do {
            card = try await model.push.onPush(userInfo: userInfo)
        } catch {
            return .failed  // nothing to show: tampered, expired, answered elsewhere, offline
        }
        let content = UNMutableNotificationContent()
        content.title = card.title
        content.body = card.body
        content.categoryIdentifier = "countersign.request"
        content.interruptionLevel = .timeSensitive
        content.userInfo = ["account_id": card.accountId, "tx_id": card.txId]
        try? await UNUserNotificationCenter.current().add(UNNotificationRequest(identifier: card.txId, content: content, trigger: nil))
        await MainActor.run { model.cards.append(card) }
        return .newData
    }

    func userNotificationCenter(_ center: UNUserNotificationCenter, didReceive response: UNNotificationResponse) async {
        let info = response.notification.request.content.userInfo
        guard let account = info["account_id"] as? String, let tx = info["tx_id"] as? String else { return }
        switch response.actionIdentifier {
        case "deny":
            // The app may have been launched just for this: no model, no UI. The
            // core reads the request from storage, or fetches it again.
            let push: PushController
            if let model {
                push = model.push
            } else {
                guard let authenticator = try? openAuthenticator(verifier: PromptVerifier(NoPrompts()), vault: SecureEnclaveVault())
                else { return }
                push = PushController(authenticator)
            }
            let result = await push.deny(accountId: account, txId: tx, notMe: true)
            if result != .denied(queued: false) { await notify(result.message) }
            if let model { await MainActor.run { model.cards.removeAll { $0.txId == tx } } }
        default:
            // Approve: the app is in the foreground; the approval sheet takes over.
            if let model { await MainActor.run { model.status = "Review the request" } }
        }
    }

    /// A plain local notification (a queued or failed answer).
    private func notify(_ text: String) async {
        let content = UNMutableNotificationContent()
        content.title = "Countersign"
        content.body = text
        try? await UNUserNotificationCenter.current().add(UNNotificationRequest(identifier: UUID().uuidString, content: content, trigger: nil))
    }
}

/// The app.
@main
struct CountersignSampleApp: App {
    @UIApplicationDelegateAdaptor(AppDelegate.self) private var delegate
    @StateObject private var model = Model()

    var body: some Scene {
        WindowGroup {
            ContentView()
                .environmentObject(model)
                .environmentObject(model.prompts)
                .onAppear { delegate.model = model }
                .onOpenURL { url in Task { await model.add(url.absoluteString) } }
        }
    }
}
