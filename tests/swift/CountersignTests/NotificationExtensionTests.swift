// The Notification Service Extension's logic in a second OS process on the app's
// storage: it opens the challenge, rewrites the alert with its context and files
// a Deny; the app process then sees the request answered.
import Countersign
import CountersignSampleKit
import CountersignTestKit
import Foundation
import XCTest

final class NotificationExtensionTests: XCTestCase {
    override func setUp() async throws { try Rp.checkConfigured() }

    /// The harness executable, built next to this test bundle by
    /// `swift build --product NotificationExtensionHarness` (the xtask does it).
    private func harness() throws -> URL {
        let tests = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let url = URL(fileURLWithPath: tests).deletingLastPathComponent()
            .appendingPathComponent("NotificationExtensionHarness")
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            XCTFail("\(url.path) missing: run the tests with `cargo xtask bindings --test-swift`")
            throw CountersignError.Internal
        }
        return url
    }

    func testExtensionProcessOpensTheChallengeAndDenies() async throws {
        #if !os(Linux)
        throw XCTSkip("finds its second process through /proc: Linux only")
        #else
        let directory = try temporaryDirectory("countersign-swift-nse")
        let device = try Device(directory: directory)
        let (user, accountId) = try await device.activate("nse")
        let deviceId = try await device.deviceId(accountId)
        let context = #","number_matching":"off","context":{"ip":"203.0.113.7","location":"Ghent, BE","user_agent":"Firefox on Linux"}"#
        let (tx, _) = try await Rp.push(user, context)
        // The app process has not seen the push: only the extension fetches it.
        let pendingTxs = try await device.authenticator.pendingRequests().map(\.txId)
        XCTAssertEqual(pendingTxs, [])

        let process = Process()
        process.executableURL = try harness()
        process.arguments = [directory.path, deviceId, tx]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read before waiting, so a full pipe cannot block the child.
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "harness failed:\n\(output)\n\(errors)")

        let lines = output.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
        XCTAssertEqual(lines.count, 2, output)
        let rewrite = try XCTUnwrap(lines.first { $0["step"] as? String == "rewrite" }, output)
        XCTAssertEqual(rewrite["opened"] as? Bool, true, output)
        // The alert names the RP and carries the page's context, which no push
        // service saw: it came from the opened challenge.
        let title = try XCTUnwrap(rewrite["title"] as? String)
        XCTAssertTrue(title.hasPrefix("Sign in to "), title)
        let body = try XCTUnwrap(rewrite["body"] as? String)
        for part in ["203.0.113.7", "Ghent, BE", "Firefox on Linux"] {
            XCTAssertTrue(body.contains(part), "\(part) missing from \(body)")
        }
        XCTAssertEqual(rewrite["category"] as? String, NotificationIds.requestCategory)
        XCTAssertEqual((rewrite["user_info"] as? [String: String])?[NotificationIds.accountKey], accountId)
        let deny = try XCTUnwrap(lines.first { $0["step"] as? String == "deny" }, output)
        XCTAssertEqual(deny["result"] as? String, "\(ActionResult.denied(queued: false))")

        // The app process sees it answered: the server has the denial, nothing is
        // pending or queued on the shared storage, and the app cannot approve it.
        let state = try await rpState(tx, wait: 5)
        XCTAssertEqual(state, "denied")
        let pending = try await device.authenticator.pendingRequests()
        XCTAssertEqual(pending, [])
        let outbox = try await device.authenticator.outbox()
        XCTAssertEqual(outbox, [])
        do {
            _ = try await device.authenticator.approve(accountId: accountId, txId: tx, number: nil)
            XCTFail("approved a request the extension denied")
        } catch let e as CountersignError {
            XCTAssertTrue([.AlreadyAnswered, .RequestNotFound].contains(e), "\(e)")
        }
        #endif
    }

    /// A number-matching request offers Deny only: Approve needs the app.
    func testNumberMatchingSwitchesToTheReviewCategory() async throws {
        let device = try Device()
        let (user, accountId) = try await device.activate("nse-match")
        let (tx, number) = try await Rp.push(user, #","number_matching":"type""#)
        XCTAssertNotNil(number)
        let handler = NotificationHandler(device.authenticator)
        let payload: [AnyHashable: Any] = ["device_id": try await device.deviceId(accountId), "tx_id": tx]
        let text = await handler.rewrite(userInfo: payload)
        XCTAssertTrue(text.opened)
        XCTAssertEqual(text.category, NotificationIds.reviewCategory)
        var info = payload
        for (key, value) in text.userInfo { info[key] = value }
        let approve = await handler.perform(action: NotificationIds.approveAction, userInfo: info) {
            XCTFail("asked for Face ID although the number must be matched in the app")
            return true
        }
        XCTAssertEqual(approve, .retry("Match the number shown on the sign-in page"))
        let state = try await rpState(tx)
        XCTAssertEqual(state, "pending")
        // A tampered push (unknown tx) rewrites to a plain alert with no actions.
        let bogus = await handler.rewrite(userInfo: ["device_id": payload["device_id"] as? String ?? "", "tx_id": "tx-does-not-exist"])
        XCTAssertFalse(bogus.opened)
        XCTAssertEqual(bogus.userInfo, [:])
    }
}
