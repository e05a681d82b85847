// Platform glue: app entry, APNs registration, notification actions. Approve needs
// the device unlocked (.authenticationRequired) and Face ID / Touch ID, and leaves
// number matching to the app; Deny runs in the background without unlocking, even
// when iOS launched the app just for it (no UI, ids from the notification).
import Countersign
import CountersignSampleKit
import LocalAuthentication
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
        // Answers saved while offline go out now; say what still waits or was refused.
        Task { [push] in
            self.cards = await push.cards()
            let notices = await push.deliverOutbox()
            if !notices.isEmpty { self.status = notices.map(\.message).joined(separator: "\n") }
        }
    }
}

/// APNs, notification categories and actions. The alert itself is rewritten by
/// the Notification Service Extension (NotificationService/); the actions come
/// here, in the app, which iOS may launch in the background just for them.
final class AppDelegate: NSObject, UIApplicationDelegate, UNUserNotificationCenterDelegate {
    var model: Model?

    func application(_ app: UIApplication, didFinishLaunchingWithOptions options: [UIApplication.LaunchOptionsKey: Any]? = nil) -> Bool {
        let center = UNUserNotificationCenter.current()
        center.delegate = self
        // Approve needs the phone unlocked and then Face ID / Touch ID (asked in
        // perform); Deny runs from the lock screen without opening the app.
        let approve = UNNotificationAction(
            identifier: NotificationIds.approveAction, title: "Approve", options: [.authenticationRequired, .foreground])
        let deny = UNNotificationAction(identifier: NotificationIds.denyAction, title: "Deny", options: [.destructive])
        center.setNotificationCategories([
            UNNotificationCategory(identifier: NotificationIds.requestCategory, actions: [approve, deny], intentIdentifiers: []),
            // A number to match: the app must open (a tap), so only Deny is offered.
            UNNotificationCategory(identifier: NotificationIds.reviewCategory, actions: [deny], intentIdentifiers: []),
        ])
        center.requestAuthorization(options: [.alert, .sound, .timeSensitive]) { granted, _ in
            if granted { DispatchQueue.main.async { app.registerForRemoteNotifications() } }
        }
        return true
    }

    func application(_ app: UIApplication, didRegisterForRemoteNotificationsWithDeviceToken token: Data) {
        let hex = token.map { String(format: "%02x", $0) }.joined()
        Task { try? await model?.authenticator.updatePushToken(push: .apns(token: hex)) }
    }

    /// A push while the app is in the foreground: the extension already opened
    /// it; show it on the screen too.
    func userNotificationCenter(_ center: UNUserNotificationCenter, willPresent notification: UNNotification) async -> UNNotificationPresentationOptions {
        if let model {
            let cards = await model.push.cards()
            await MainActor.run { model.cards = cards }
        }
        return [.banner, .sound]
    }

    func userNotificationCenter(_ center: UNUserNotificationCenter, didReceive response: UNNotificationResponse) async {
        let info = response.notification.request.content.userInfo
        // The app may have been launched just for this: no model, no UI. The core
        // reads the request from the shared storage, or fetches it again.
        let authenticator: Authenticator
        if let model {
            authenticator = model.authenticator
        } else {
            guard let opened = try? openAuthenticator(verifier: PromptVerifier(NoPrompts()), vault: SecureEnclaveVault())
            else { return }
            authenticator = opened
        }
        let vault = model?.vault
        let result = await NotificationHandler(authenticator).perform(action: response.actionIdentifier, userInfo: info) {
            await Self.confirmWithBiometrics(vault: vault)
        }
        if let model {
            let cards = await model.push.cards()
            await MainActor.run { model.cards = cards }
        }
        switch result {
        case nil:
            // The notification was tapped: the app shows the request.
            if let model { await MainActor.run { model.status = "Review the request" } }
        case .denied(queued: false)?, .approved(_, queued: false)?:
            break
        case let other?:
            await notify(other.message)
        }
    }

    /// Face ID / Touch ID before an Approve from a notification (the action's
    /// `.authenticationRequired` only proves the phone was unlocked).
    private static func confirmWithBiometrics(vault: SecureEnclaveVault?) async -> Bool {
        let context = LAContext()
        guard (try? await context.evaluatePolicy(
            .deviceOwnerAuthenticationWithBiometrics, localizedReason: "Approve the sign-in")) == true
        else { return false }
        vault?.authenticatedContext = context
        return true
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
                .onOpenURL { url in Task { await model.scanned(url.absoluteString) } }
        }
    }
}
