// A second process standing in for the iOS Notification Service Extension in the
// Swift tests: it opens its own Authenticator over the app's storage directory,
// rewrites the alert for the push it is given (fetching and opening the challenge)
// and then runs the notification's Deny action, as the extension and the action
// handler do on a phone. It prints one JSON object per step on stdout.
//
// usage: NotificationExtensionHarness <storage directory> <device_id> <tx_id>
import Countersign
import CountersignSampleKit
import CountersignTestKit
import Foundation

/// Prints `object` as one line of JSON.
func emit(_ object: [String: Any]) {
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
    print(String(decoding: data, as: UTF8.self))
}

/// Rewrites the alert for `txId`, then denies it; the exit status (a function,
/// not top-level code, so the payload never crosses out of the main actor).
func run(directory: String, deviceId: String, txId: String) async -> Int32 {
    do {
        let storage = try directoryStorage(URL(fileURLWithPath: directory))
        let authenticator = try Countersign.open(
            platform: .desktop, storage: storage, verifier: PromptVerifier(NoPrompts()))
        let handler = NotificationHandler(authenticator)
        // The APNs payload's custom keys, as the server sends them.
        let userInfo: [AnyHashable: Any] = [
            "aps": ["alert": ["loc-key": "COUNTERSIGN_SIGN_IN_REQUEST"], "category": NotificationIds.requestCategory],
            "device_id": deviceId, NotificationIds.txKey: txId,
        ]
        let text = await handler.rewrite(userInfo: userInfo)
        emit(["step": "rewrite", "title": text.title, "body": text.body, "category": text.category,
              "opened": text.opened, "user_info": text.userInfo])
        // The Deny action arrives with the user info the extension added.
        var actionInfo = userInfo
        for (key, value) in text.userInfo { actionInfo[key] = value }
        let result = await handler.perform(action: NotificationIds.denyAction, userInfo: actionInfo) { false }
        emit(["step": "deny", "result": result.map { "\($0)" } ?? "none"])
        return result == .denied(queued: false) ? 0 : 1
    } catch {
        FileHandle.standardError.write(Data("harness failed: \(error)\n".utf8))
        return 1
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 4 else {
    FileHandle.standardError.write(Data("usage: NotificationExtensionHarness <dir> <device_id> <tx_id>\n".utf8))
    exit(2)
}
exit(await run(directory: arguments[1], deviceId: arguments[2], txId: arguments[3]))
