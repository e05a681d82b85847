// Failures and restarts: a verifier that throws, answers after process death, an
// answer queued while offline, and two OS processes answering on one storage.
import Countersign
import CountersignSampleKit
import CountersignTestKit
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// What a crashing PIN pad throws: a plain Swift error, not a `HookError`.
struct PinPadCrashed: Error {}

/// A verifier whose prompt always fails.
final class CrashingVerifier: UserVerifier, @unchecked Sendable {
    func verify(prompt: VerificationPrompt) async throws -> VerificationOutcome {
        throw PinPadCrashed()
    }
}

/// The app's network stack with a switch that drops every answer (no connection).
final class OfflineAnswers: HttpClient, @unchecked Sendable {
    private let inner = URLSessionHttpClient()
    private let lock = NSLock()
    private var isOffline = false
    var offline: Bool {
        get { lock.withLock { isOffline } }
        set { lock.withLock { isOffline = newValue } }
    }

    func send(request: HttpRequest) async throws -> HttpResponse {
        let path = request.url.split(separator: "?").first.map(String.init) ?? request.url
        if offline && path.hasSuffix("/answer") { throw HttpError.Connect(detail: "offline (test)") }
        return try await inner.send(request: request)
    }
}

final class RestartTests: XCTestCase {
    /// Set in a child process of `testTwoProcessesAnswerOnOneStorage`.
    static let childSpec = ProcessInfo.processInfo.environment["COUNTERSIGN_TEST_CHILD"]

    override func setUp() async throws {
        try Rp.checkConfigured()
    }

    func testThrowingVerifierIsATypedError() async throws {
        let device = try Device()
        let (user, accountId) = try await device.activate("hook", pin: "975310")
        let (tx, _) = try await Rp.push(user, #","number_matching":"off","verification":"pin""#)
        try await receiveAll(device.authenticator, [tx])

        // Another instance on the same storage, with the crashing verifier.
        let crashing = try device.reopen(verifier: CrashingVerifier())
        await assertThrows(.HookFailed) {
            try await crashing.approve(accountId: accountId, txId: tx, number: nil)
        }
        // The sample maps it to a retry; nothing was sent, nothing counted.
        let controller = PushController(crashing)
        let cards = await controller.cards()
        let card = try XCTUnwrap(cards.first { $0.txId == tx })
        let result = await controller.approve(card)
        XCTAssertEqual(result, .retry("Could not verify: try again"))
        let state = try await rpState(tx)
        XCTAssertEqual(state, "pending")
        let pinFailures = try await device.authenticator.account(accountId: accountId).pinFailures
        XCTAssertEqual(pinFailures, 0, "a crash is no wrong PIN")
        let pendingTxs = try await device.authenticator.pendingRequests().map(\.txId)
        XCTAssertEqual(pendingTxs, [tx])
        let outbox = try await device.authenticator.outbox()
        XCTAssertEqual(outbox, [])

        // A working verifier then approves it.
        device.presenter.queuePin("975310")
        let outcome = try await device.authenticator.approve(accountId: accountId, txId: tx, number: nil)
        XCTAssertEqual(outcome.verification, .pin)
        XCTAssertEqual(outcome.delivery, .delivered)
        let approved = try await rpState(tx, wait: 5)
        XCTAssertEqual(approved, "approved")
    }

    func testApproveAndDenyAfterProcessDeath() async throws {
        let device = try Device(directory: try temporaryDirectory("countersign-swift-restart"))
        var app: Authenticator? = try device.reopen()
        let (user, accountId) = try await device.activate(with: app!, "restart")
        let push = ["device_id": try await device.deviceId(accountId)]

        // Received by the push handler, then the process dies.
        let (approveTx, _) = try await Rp.push(user, #","number_matching":"off""#)
        let received = try await app!.handlePush(data: push.merging(["tx_id": approveTx]) { $1 })
        XCTAssertEqual(received.txId, approveTx)
        app = nil

        // The restarted app finds the request in storage and approves it.
        app = try device.reopen()
        let stored = try await app!.pendingRequests()
        XCTAssertEqual(stored.map(\.txId), [approveTx])
        let outcome = try await app!.approve(accountId: accountId, txId: approveTx, number: nil)
        XCTAssertEqual(outcome.delivery, .delivered)
        var state = try await rpState(approveTx, wait: 5)
        XCTAssertEqual(state, "approved")

        // Received by long-poll, then the process dies.
        let (denyTx, _) = try await Rp.push(user, #","number_matching":"off""#)
        try await receiveAll(app!, [denyTx])
        // Started now, never received: "not me" below locks new pushes to the user.
        let (unseenTx, _) = try await Rp.push(user, #","number_matching":"off""#)
        app = nil

        // The notification's Deny action in a fresh process: ids only, no UI.
        app = try device.reopen()
        let denied = await PushController(app!).deny(accountId: accountId, txId: denyTx, notMe: true)
        XCTAssertEqual(denied, .denied(queued: false))
        let status = try await Rp.status(denyTx, wait: 5)
        XCTAssertEqual(jsonString(status, "state"), "denied", status)
        XCTAssertEqual(jsonString(status, "deny_reason"), "not_me", status)

        // A request this device never received is fetched again by its ids.
        app = try device.reopen()
        let unseen = try await app!.approve(accountId: accountId, txId: unseenTx, number: nil)
        XCTAssertEqual(unseen.delivery, .delivered)
        state = try await rpState(unseenTx, wait: 5)
        XCTAssertEqual(state, "approved")
        let pendingAfter = try await app!.pendingRequests()
        XCTAssertEqual(pendingAfter, [])
        let outboxAfter = try await app!.outbox()
        XCTAssertEqual(outboxAfter, [])
        XCTAssertEqual(device.presenter.askedCount, 0, "no request needed verification")
    }

    func testQueuedAnswerIsDeliveredFromTheOutbox() async throws {
        let http = OfflineAnswers()
        let device = try Device(http: http)
        let (user, accountId) = try await device.activate("outbox")
        let (tx, _) = try await Rp.push(user, #","number_matching":"off""#)
        try await receiveAll(device.authenticator, [tx])

        http.offline = true
        let controller = PushController(device.authenticator)
        let cards = await controller.cards()
        let card = try XCTUnwrap(cards.first { $0.txId == tx })
        guard case .approved(_, queued: true) = await controller.approve(card) else {
            return XCTFail("not queued")
        }
        var state = try await rpState(tx)
        XCTAssertEqual(state, "pending")
        let queued = try await device.authenticator.outbox()
        XCTAssertEqual(
            queued,
            [OutboxEntry(accountId: accountId, txId: tx, decision: .approve, expiresAt: card.expiresAt, state: .waiting)])
        // Still offline at the next start: the user hears it is waiting.
        let waiting = await controller.deliverOutbox()
        XCTAssertEqual(waiting, [OutboxNotice(accountId: accountId, txId: tx, message: "Your approval will be sent when the connection is back")])

        // Back online, in a restarted app: sent without asking again.
        http.offline = false
        let restarted = try device.reopen()
        let notices = await PushController(restarted).deliverOutbox()
        XCTAssertEqual(notices, [])
        state = try await rpState(tx, wait: 5)
        XCTAssertEqual(state, "approved")
        let outbox = try await restarted.outbox()
        XCTAssertEqual(outbox, [])
        let pending = try await restarted.pendingRequests()
        XCTAssertEqual(pending, [])
    }

    /// Two OS processes (this test executable, started again in child mode) on one
    /// storage directory approve different requests of the same accounts at once.
    func testTwoProcessesAnswerOnOneStorage() async throws {
        if let spec = Self.childSpec { return try await runChild(spec) }
        #if !os(Linux)
        throw XCTSkip("starts the test executable itself: Linux only")
        #else
        // Several accounts, two requests each: each child approves one request of
        // every account, in the same order, so both write each account's record
        // at about the same time. (The server allows 3 pending pushes per user.)
        let directory = try temporaryDirectory("countersign-swift-twoproc")
        let device = try Device(directory: directory)
        var accounts: [(user: String, accountId: String)] = []
        for _ in 0..<5 { accounts.append(try await device.activate("twoproc")) }
        var work: [[(account: String, tx: String)]] = [[], []]
        for (user, accountId) in accounts {
            for n in 0..<2 {
                let (tx, _) = try await Rp.push(user, #","number_matching":"off","timeout_secs":120"#)
                work[n].append((accountId, tx))
            }
        }
        let allTxs = work.flatMap { $0.map(\.tx) }
        try await receiveAll(device.authenticator, allTxs)

        let control = try temporaryDirectory("countersign-swift-control")
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var children: [Process] = []
        for n in 0..<2 {
            let name = "child\(n)"
            let items = work[n].map { "\($0.account):\($0.tx)" }.joined(separator: ",")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = ["CountersignTests.RestartTests/testTwoProcessesAnswerOnOneStorage"]
            var environment = ProcessInfo.processInfo.environment
            environment["COUNTERSIGN_TEST_CHILD"] = [directory.path, control.path, name, items].joined(separator: "|")
            process.environment = environment
            func output(_ suffix: String) throws -> FileHandle {
                let path = control.appendingPathComponent("\(name).\(suffix)").path
                XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: nil))
                return try XCTUnwrap(FileHandle(forWritingAtPath: path))
            }
            process.standardOutput = try output("out")
            process.standardError = try output("err")
            try process.run()
            children.append(process)
        }
        func report(_ n: Int) -> String {
            ["out", "err"].map { suffix in
                let text = (try? String(contentsOf: control.appendingPathComponent("child\(n).\(suffix)"), encoding: .utf8)) ?? ""
                return "child\(n) std\(suffix):\n\(text.suffix(4000))"
            }.joined(separator: "\n")
        }
        defer { for child in children where child.isRunning { child.terminate() } }

        // Both open their Authenticator, then start together.
        let fm = FileManager.default
        var deadline = Date().addingTimeInterval(60)
        while !(0..<2).allSatisfy({ fm.fileExists(atPath: control.appendingPathComponent("child\($0).ready").path) }) {
            for n in 0..<2 where !children[n].isRunning {
                return XCTFail("child\(n) ended early (\(children[n].terminationStatus))\n\(report(n))")
            }
            guard Date() < deadline else { return XCTFail("children not ready\n\(report(0))\n\(report(1))") }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        XCTAssertTrue(fm.createFile(atPath: control.appendingPathComponent("go").path, contents: nil))
        deadline = Date().addingTimeInterval(90)
        while children.contains(where: \.isRunning) {
            guard Date() < deadline else { return XCTFail("a child hangs\n\(report(0))\n\(report(1))") }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        for n in 0..<2 where children[n].terminationStatus != 0 {
            return XCTFail("child\(n) exited with \(children[n].terminationStatus)\n\(report(n))")
        }
        // They really ran at the same time (else this tested nothing).
        let spans = try (0..<2).map { n in
            try String(contentsOf: control.appendingPathComponent("child\(n).span"), encoding: .utf8)
                .split(separator: " ").compactMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        XCTAssertTrue(spans[0][0] < spans[1][1] && spans[1][0] < spans[0][1], "the children's approvals did not overlap: \(spans)")

        // Neither decision was lost: the server has them all, and the storage,
        // reopened, has no request pending and nothing in the outbox.
        for tx in allTxs {
            let state = try await rpState(tx, wait: 5)
            XCTAssertEqual(state, "approved", tx)
        }
        let reopened = try device.reopen()
        let pendingTxs = try await reopened.pendingRequests().map(\.txId)
        XCTAssertEqual(pendingTxs, [])
        let outbox = try await reopened.outbox().map(\.txId)
        XCTAssertEqual(outbox, [])
        // The accounts still work: a new request is received and approved.
        let (user, accountId) = accounts[0]
        let (tx, _) = try await Rp.push(user, #","number_matching":"off""#)
        try await receiveAll(reopened, [tx])
        let outcome = try await reopened.approve(accountId: accountId, txId: tx, number: nil)
        XCTAssertEqual(outcome.delivery, .delivered)
        let state = try await rpState(tx, wait: 5)
        XCTAssertEqual(state, "approved")
        #endif
    }

    /// The child: opens an Authenticator on the shared directory, says it is
    /// ready, waits for the go file, then approves its requests
    /// (`directory|control|name|account:tx,...`). Any failure fails the child's
    /// test run, so it exits non-zero.
    private func runChild(_ spec: String) async throws {
        let parts = spec.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4 else { return XCTFail("bad child spec \(spec)") }
        let control = URL(fileURLWithPath: parts[1])
        let name = parts[2]
        let authenticator = try Device.open(try directoryStorage(URL(fileURLWithPath: parts[0])), ScriptedPresenter())
        XCTAssertTrue(FileManager.default.createFile(atPath: control.appendingPathComponent("\(name).ready").path, contents: nil))
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: control.appendingPathComponent("go").path) {
            guard Date() < deadline else { return XCTFail("no go") }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        func millis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
        let started = millis()
        for item in parts[3].split(separator: ",") {
            let ids = item.split(separator: ":").map(String.init)
            let outcome = try await authenticator.approve(accountId: ids[0], txId: ids[1], number: nil)
            XCTAssertEqual(outcome.delivery, .delivered, ids[1])
            print("\(name) approved \(ids[1]) at \(millis())")
        }
        try "\(started) \(millis())".write(
            to: control.appendingPathComponent("\(name).span"), atomically: true, encoding: .utf8)
    }
}
