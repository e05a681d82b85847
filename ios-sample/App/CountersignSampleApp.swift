// Platform glue: app entry, APNs registration, notification actions. Approve needs
// the device unlocked (.authenticationRequired) and opens the app when a number or
// verification is needed; Deny runs in the background without unlocking.
import Countersign
import CountersignSampleKit
import SwiftUI
import UserNotifications

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
            authenticator = try Countersign.open(
                platform: .ios, storage: BackendStorage(KeychainBackend()), verifier: verifier,
                keyVault: vault, http: URLSessionHttpClient(), deviceName: UIDevice.current.name)
        } catch {
            fatalError("cannot open the authenticator: \(error)")  // storage unavailable: nothing to show
        }
        push = PushController(authenticator)
        activation = ActivationController(authenticator)
        otp = OtpListModel(authenticator)
        cards = push.cards()
    }
}

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
        guard case .success(let card) = await model.push.onPush(userInfo: userInfo) else { return .failed }
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
        guard let model, let tx = response.notification.request.content.userInfo["tx_id"] as? String,
            let card = await MainActor.run(body: { model.cards.first { $0.txId == tx } })
        else { return }
        switch response.actionIdentifier {
        case "deny":
            _ = await model.push.deny(card, notMe: true)
        default:
            // Approve: the app is in the foreground; the approval sheet takes over.
            await MainActor.run { model.status = "Review the request" }
        }
    }
}

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
