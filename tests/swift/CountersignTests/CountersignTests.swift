// Swift tests of the generated bindings on Linux, against a live countersign-server
// on loopback: Swift storage and verifier, the core's software vault.
import Countersign
import CountersignSampleKit
import CountersignTestKit
import Foundation
import XCTest

final class CountersignTests: XCTestCase {
    override func setUp() async throws {
        try Rp.checkConfigured()
    }

    func testActivation() async throws {
        let device = try Device()
        let user = Rp.newUser("activation")
        let offer = try await Rp.enroll(user)
        let account = try await ActivationController(device.authenticator).add(offer)
        XCTAssertEqual(account.label, "\(user)@example.com")
        let deviceId = try await device.deviceId(account.id)
        let devices = try await Rp.get("/v1/rp/users/\(user)/devices")
        XCTAssertTrue(devices.contains(deviceId))
        let accounts = try await device.authenticator.accounts()
        XCTAssertEqual(accounts, [account])
        // Single use.
        let other = try Device()
        do {
            _ = try await other.authenticator.activateUri(uri: offer, options: ActivationOptions(pin: nil, biometric: false))
            XCTFail("a used offer activated again")
        } catch is CountersignError {}
    }

    func testPushApproveWithNumberMatching() async throws {
        let device = try Device()
        let (user, accountId) = try await device.activate("approve")
        let (tx, number) = try await Rp.push(user, #","number_matching":"type","digits":3"#)
        let shown = try XCTUnwrap(number)
        let requests = try await device.authenticator.awaitPending(wait: .seconds(10))
        let request = try XCTUnwrap(requests.first { $0.txId == tx })
        XCTAssertEqual(request.numberMatching, .type(digits: 3))
        XCTAssertTrue(request.needsNumber)
        await assertThrows(.InvalidInput(field: .number)) {
            try await device.authenticator.approve(accountId: accountId, txId: tx, number: "12")
        }
        let outcome = try await device.authenticator.approve(accountId: accountId, txId: tx, number: shown)
        XCTAssertEqual(outcome.verification, Verification.none)
        let status = try await Rp.status(tx, wait: 5)
        XCTAssertEqual(jsonString(status, "state"), "approved", status)
        // Only for its own login: with that tx id.
        let validated = try await Rp.post("/v1/rp/validate", #"{"user":"\#(user)","passcode":"\#(outcome.pushOtp)","tx_id":"\#(tx)"}"#)
        XCTAssertEqual(jsonString(validated, "result"), "accepted", validated)
    }

    func testDenyNotMe() async throws {
        let device = try Device()
        let (user, accountId) = try await device.activate("deny")
        let (tx, _) = try await Rp.push(user, #","number_matching":"off""#)
        let controller = PushController(device.authenticator)
        // As the APNs handler does with the payload's custom keys.
        let card = try await controller.onPush(userInfo: ["device_id": try await device.deviceId(accountId), "tx_id": tx, "aps": [:] as [String: String]])
        XCTAssertTrue(card.approveFromNotification)
        let denied = await controller.deny(card, notMe: true)
        XCTAssertEqual(denied, .denied(queued: false))
        let status = try await Rp.status(tx, wait: 5)
        XCTAssertEqual(jsonString(status, "state"), "denied", status)
        XCTAssertEqual(jsonString(status, "deny_reason"), "not_me", status)
        XCTAssertEqual(device.presenter.askedCount, 0)
    }

    /// Three denied pushes pause pushes for the user; "it was me" on the phone resumes them.
    func testItWasMeResumesSuppressedPushes() async throws {
        let device = try Device()
        let (user, accountId) = try await device.activate("resume")
        for _ in 0..<3 {
            let (tx, _) = try await Rp.push(user, #","number_matching":"off""#)
            try await receiveAll(device.authenticator, [tx])
            _ = try await device.authenticator.deny(accountId: accountId, txId: tx, reason: .mistake)
        }
        let (refused, body) = try await Rp.call("POST", "/v1/rp/push", #"{"user":"\#(user)"}"#)
        XCTAssertEqual(refused, 429, body)
        XCTAssertEqual(errorCode(body), "suppressed", body)
        try await device.authenticator.resumePushes(accountId: accountId)
        let (tx, _) = try await Rp.push(user, #","number_matching":"off""#)
        try await receiveAll(device.authenticator, [tx])
        let pendingTxs = try await device.authenticator.pendingRequests().map { $0.txId }
        XCTAssertEqual(pendingTxs, [tx])
    }

    func testPinStepUpThroughSwiftVerifier() async throws {
        let device = try Device()
        let (user, accountId) = try await device.activate("pin", pin: "975310")
        let (tx, _) = try await Rp.push(user, #","number_matching":"off","verification":"pin""#)
        let requests = try await device.authenticator.awaitPending(wait: .seconds(10))
        let request = try XCTUnwrap(requests.first { $0.txId == tx })
        XCTAssertEqual(request.verification, .pin)
        let controller = PushController(device.authenticator)
        let card = controller.card(request)
        XCTAssertFalse(card.approveFromNotification)
        let cards = await controller.cards()
        XCTAssertEqual(cards.map(\.txId), [tx])

        device.presenter.queuePin(nil)
        let cancelled = await controller.approve(card)
        XCTAssertEqual(cancelled, .retry("Verification cancelled"))
        device.presenter.queuePin("000000")
        do {
            _ = try await device.authenticator.approve(accountId: accountId, txId: tx, number: nil)
            XCTFail("a wrong PIN approved")
        } catch CountersignError.WrongPin(let left) {
            XCTAssertGreaterThan(left, 0)
        }
        let pinFailures = try await device.authenticator.account(accountId: accountId).pinFailures
        XCTAssertEqual(pinFailures, 1)
        device.presenter.queuePin("975310")
        guard case .approved = await controller.approve(card) else { return XCTFail("not approved") }
        let pinFailures2 = try await device.authenticator.account(accountId: accountId).pinFailures
        XCTAssertEqual(pinFailures2, 0, "a right PIN resets the count")
        XCTAssertEqual(device.presenter.askedCount, 3)
        let status = try await Rp.status(tx, wait: 5)
        XCTAssertEqual(jsonString(status, "state"), "approved")
    }

    func testSwiftSecureStorage() async throws {
        let device = try Device()
        let s = device.storage
        XCTAssertNil(try s.get(key: "a/1"))
        try s.put(key: "a/1", value: Data([1, 2, 3]))
        try s.put(key: "a/2", value: Data())
        try s.put(key: "b/1", value: Data("x".utf8))
        try s.put(key: "a/1", value: Data([9]))
        XCTAssertEqual(try s.get(key: "a/1"), Data([9]))
        XCTAssertEqual(Set(try s.list(prefix: "a/")), ["a/1", "a/2"])
        try s.delete(key: "a/1")
        try s.delete(key: "a/1")
        XCTAssertNil(try s.get(key: "a/1"))
        XCTAssertThrowsError(try s.put(key: "", value: Data()))

        // compareAndPut: nil expects no value; a mismatch changes nothing.
        XCTAssertFalse(try s.compareAndPut(key: "c/1", expected: Data([1]), value: Data([2])))
        XCTAssertNil(try s.get(key: "c/1"))
        XCTAssertTrue(try s.compareAndPut(key: "c/1", expected: nil, value: Data([1])))
        XCTAssertFalse(try s.compareAndPut(key: "c/1", expected: nil, value: Data([2])))
        XCTAssertFalse(try s.compareAndPut(key: "c/1", expected: Data([9]), value: Data([2])))
        XCTAssertFalse(try s.compareAndPut(key: "c/1", expected: Data([1, 0]), value: Data([2])))
        XCTAssertEqual(try s.get(key: "c/1"), Data([1]))
        XCTAssertTrue(try s.compareAndPut(key: "c/1", expected: Data([1]), value: Data([3])))
        XCTAssertEqual(try s.get(key: "c/1"), Data([3]))
        XCTAssertThrowsError(try s.compareAndPut(key: "", expected: nil, value: Data()))

        // Files shared by processes: the lock file is no key, and threads on two
        // storages over one directory lose no compare-and-swap increment.
        let directory = try temporaryDirectory("countersign-swift-storage")
        let first = try directoryStorage(directory)
        let second = try directoryStorage(directory)
        try first.put(key: "x/1", value: Data([1]))
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent("lock").path))
        XCTAssertEqual(try first.list(prefix: ""), ["x/1"])
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let store = i % 2 == 0 ? first : second
            for _ in 0..<25 {
                while true {
                    let old = try? store.get(key: "counter")
                    let next = (old.flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0) + 1
                    if (try? store.compareAndPut(key: "counter", expected: old, value: Data("\(next)".utf8))) == true { break }
                }
            }
        }
        XCTAssertEqual(try second.get(key: "counter"), Data("100".utf8))
        // The core's records and software-vault keys live in it and survive a restart.
        let (_, accountId) = try await device.activate("storage")
        let reopened = try Device.open(device.storage, device.presenter)
        let accounts = try await reopened.accounts().map(\.id)
        XCTAssertEqual(accounts, [accountId])
        XCTAssertTrue(try device.backend.allKeys().contains { $0.hasPrefix("vault/") })
        let reopenedCode = try await reopened.otp(accountId: accountId)
        let originalCode = try await device.authenticator.otp(accountId: accountId).code
        XCTAssertEqual(reopenedCode.code, originalCode)
    }

    func testTotpEqualsTheCore() async throws {
        let clock = FixedClock(59)
        let device = try Device(clock: clock)
        let a = device.authenticator
        let account = try await a.importOtpauth(uri: "otpauth://totp/RFC:6238?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=8&issuer=RFC")
        let vectors: [(UInt64, String)] = [(59, "94287082"), (1_111_111_109, "07081804"), (1_234_567_890, "89005924"), (20_000_000_000, "65353130")]
        for (time, code) in vectors {
            clock.set(time)
            let generated = try await a.otp(accountId: account.id).code
            XCTAssertEqual(generated, code, "t=\(time)")
        }
        // A push account's TOTP is accepted by the server.
        let phone = try Device()
        let (user, accountId) = try await phone.activate("totp")
        let code = try await phone.authenticator.otp(accountId: accountId).code
        let validated = try await Rp.post("/v1/rp/validate", #"{"user":"\#(user)","passcode":"\#(code)"}"#)
        XCTAssertEqual(jsonString(validated, "result"), "accepted", validated)
    }

    func testExpiredChallengeThrows() async throws {
        let device = try Device(clockSkew: .zero)
        let (user, accountId) = try await device.activate("expired")
        // 5 s: long enough to arrive on a loaded machine, short enough to wait out.
        let (tx, _) = try await Rp.push(user, #","number_matching":"off","timeout_secs":5"#)
        let requests = try await device.authenticator.awaitPending(wait: .seconds(10))
        let request = try XCTUnwrap(requests.first { $0.txId == tx })
        try await Task.sleep(for: request.timeLeft + .seconds(2))
        await assertThrows(.RequestExpired) {
            try await device.authenticator.approve(accountId: accountId, txId: tx, number: nil)
        }
    }

    /// URLSession-based client that keeps the last challenge envelope.
    final class CapturingClient: HttpClient, @unchecked Sendable {
        let inner = URLSessionHttpClient()
        private let lock = NSLock()
        private var captured: Data?
        var lastChallenge: Data? { lock.withLock { captured } }

        func send(request: HttpRequest) async throws -> HttpResponse {
            let response = try await inner.send(request: request)
            if request.url.contains("/v1/device/challenges/"), !request.url.hasSuffix("/answer"),
                response.status == 200
            {
                lock.withLock { captured = response.body }
            }
            return response
        }
    }

    func testTamperedChallengeThrows() async throws {
        let http = CapturingClient()
        let device = try Device(http: http)
        let (user, accountId) = try await device.activate("tampered")
        let (tx, _) = try await Rp.push(user, #","number_matching":"off""#)
        let request = try await device.authenticator.handlePush(data: ["device_id": try await device.deviceId(accountId), "tx_id": tx])
        XCTAssertEqual(request.txId, tx)
        var envelope = Array(String(decoding: try XCTUnwrap(http.lastChallenge), as: UTF8.self))
        let text = String(envelope)
        let marker = try XCTUnwrap(text.range(of: "\"sig\":\""))
        let at = text.distance(from: text.startIndex, to: marker.upperBound)
        envelope[at] = envelope[at] == "A" ? "B" : "A"
        await assertThrows(.Tampered) {
            try await device.authenticator.receiveChallenge(accountId: accountId, envelopeJson: Data(String(envelope).utf8))
        }
        await assertThrows(.Tampered) {
            try await device.authenticator.receiveChallenge(accountId: accountId, envelopeJson: Data("{}".utf8))
        }
        let delivery = try await device.authenticator.deny(accountId: accountId, txId: tx, reason: .mistake)
        XCTAssertEqual(delivery, .delivered)
    }

    /// Issue 13: a request list goes empty after an answer.
    func testARequestListGoesEmptyAfterAnAnswer() async throws {
        let device = try Device()
        let (user, accountId) = try await device.activate("flow")
        let lists = ListLog()
        let collector = Task {
            for try await requests in device.authenticator.pendingRequestUpdates(wait: .seconds(25)) {
                lists.add(requests.map { $0.txId })
            }
        }
        defer { collector.cancel() }
        var got = try await lists.waitFor(count: 1, seconds: 5)
        XCTAssertEqual(got, [[]], "the stored list first")
        let (tx, _) = try await Rp.push(user, #","number_matching":"off""#)
        got = try await lists.waitFor(count: 2, seconds: 10)
        XCTAssertEqual(got, [[], [tx]])
        let started = Date()
        _ = try await device.authenticator.approve(accountId: accountId, txId: tx, number: nil)
        got = try await lists.waitFor(count: 3, seconds: 10)
        XCTAssertEqual(got, [[], [tx], []], "the answered request leaves the list")
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        // An unchanged list is not yielded again.
        try await Task.sleep(nanoseconds: 1_000_000_000)
        XCTAssertEqual(lists.all.count, 3)
    }

    func testLongPollCancelledWithTheTask() async throws {
        let device = try Device()
        _ = try await device.activate("cancel")
        let started = Date()
        let task = Task { try await device.authenticator.awaitPending(wait: .seconds(25)) }
        try await Task.sleep(nanoseconds: 500_000_000)
        task.cancel()
        do {
            _ = try await task.value
            XCTFail("the long-poll was not cancelled")
        } catch is CancellationError {}
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    }

    func testSampleLogic() async throws {
        XCTAssertEqual(classify(" countersign://activate?x=1\n"), .activation("countersign://activate?x=1"))
        XCTAssertEqual(classify("otpauth://totp/a?secret=JBSWY3DP"), .otpauth("otpauth://totp/a?secret=JBSWY3DP"))
        XCTAssertEqual(classify("https://example.com"), .unknown("https://example.com"))
        XCTAssertEqual(classify("countersign://login?v=1&id=x"), .login("countersign://login?v=1&id=x"))
        XCTAssertEqual(groupCode("123456"), "123 456")
        XCTAssertEqual(groupCode("12345678"), "1234 5678")
        XCTAssertEqual(actionResult(CountersignError.WrongPin(attemptsLeft: 2)), .retry("Wrong PIN: 2 attempts left"))
        XCTAssertEqual(actionResult(CountersignError.PinLocked), .accountWiped("Too many wrong PINs: the account was removed"))

        let clock = FixedClock(59)
        let device = try Device(clock: clock)
        let hotp = try await device.authenticator.importOtpauth(uri: "otpauth://hotp/Bank:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&counter=0&issuer=Bank")
        let model = OtpListModel(device.authenticator)
        let firstRows = await model.rows()
        XCTAssertEqual(firstRows.map(\.code), ["755 224"])
        let secondRows = await model.rows()
        XCTAssertEqual(secondRows.map(\.code), ["755 224"], "an HOTP code advances only on next")
        let nextRow = await model.next(hotp.id)
        XCTAssertEqual(nextRow?.code, "287 082")

        let r = Data(repeating: 0x80, count: 32)
        var s = Data(repeating: 0, count: 32)
        s[31] = 5
        let der = try P256Signature.rawToDer(r + s)
        XCTAssertEqual(try P256Signature.derToRaw(der), r + s)
        XCTAssertThrowsError(try P256Signature.derToRaw(der + Data([0])))
    }

    func testQrLoginScannedAndApprovedWithReverseNumber() async throws {
        let device = try Device()
        let (user, accountId) = try await device.activate("qrlogin")
        let created = try await Rp.post(
            "/v1/rp/logins",
            #"{"user":"\#(user)","number_matching":"show","context":{"location":"Berlin, DE"}}"#)
        let uri = try XCTUnwrap(jsonString(created, "uri"), created)
        let handle = try XCTUnwrap(jsonString(created, "browser_handle"))
        let id = try XCTUnwrap(jsonString(created, "login_id"))
        guard case .login(let scanned) = classify(uri) else { return XCTFail("not classified as a login: \(uri)") }
        let push = PushController(device.authenticator)
        let card = try await push.onLoginQr(scanned)
        XCTAssertEqual(card.accountId, accountId)
        XCTAssertTrue(card.body.contains("Berlin, DE"), card.body)
        let shown = try XCTUnwrap(card.showNumber)
        XCTAssertEqual(shown.count, 6)
        let result = await push.approve(card)
        guard case .approved = result else { return XCTFail("not approved: \(result)") }
        let (_, waiting) = try await Rp.call("GET", "/v1/logins/\(id)?wait=5", bearer: handle)
        XCTAssertEqual(jsonString(waiting, "state"), "number_required", waiting)
        let (status, done) = try await Rp.call("POST", "/v1/logins/\(id)/number", #"{"number":"\#(shown)"}"#, bearer: handle)
        XCTAssertEqual(status, 200, done)
        XCTAssertEqual(jsonString(done, "state"), "approved", done)
        XCTAssertEqual(jsonString(done, "user"), user)
        let (wrongHandle, _) = try await Rp.call("GET", "/v1/logins/\(id)", bearer: "AAAAAAAAAAAAAAAAAAAAAA")
        XCTAssertEqual(wrongHandle, 404, "a wrong handle learns nothing")
        await assertThrows(.InvalidInput(field: .loginQr)) {
            try await device.authenticator.scanLoginQr(uri: "countersign://login?v=1", accountId: nil)
        }
    }

    func testTransferToANewPhoneApprovedByTheOldOne() async throws {
        let old = try Device()
        let (user, oldAccount) = try await old.activate("transfer")
        let offer = try await old.authenticator.startTransfer(accountId: oldAccount, removeOld: true)
        XCTAssertTrue(offer.offerUri.hasPrefix("countersign://activate?"), offer.offerUri)
        let new = try Device()
        // The new phone waits, unlisted, for the old phone's approval.
        await assertThrows(.AwaitingApproval) {
            try await new.authenticator.activateUri(uri: offer.offerUri, options: ActivationOptions(pin: nil, biometric: false))
        }
        let listed = try await new.authenticator.accounts()
        XCTAssertTrue(listed.isEmpty)
        let waiting = try await new.authenticator.hasPendingActivations()
        XCTAssertTrue(waiting)
        let none = try await new.authenticator.confirmPendingActivations()
        XCTAssertTrue(none.isEmpty)
        // The old phone shows the transfer request like any request.
        let requests = try await old.authenticator.awaitPending(wait: .seconds(10))
        let request = try XCTUnwrap(requests.first { $0.kind == .transfer })
        let push = PushController(old.authenticator)
        let card = push.card(request)
        XCTAssertTrue(card.title.contains("to a new phone"), card.title)
        let before = try await old.authenticator.account(accountId: oldAccount)
        let result = await push.approve(card)
        guard case .approved = result else { return XCTFail("not approved: \(result)") }
        let activated = try await new.authenticator.confirmPendingActivations()
        XCTAssertEqual(activated.count, 1)
        // The same label and issuer as on the old phone.
        XCTAssertEqual(activated.first?.label, before.label)
        XCTAssertTrue(before.label.hasPrefix(user), before.label)
        XCTAssertEqual(activated.first?.issuer, before.issuer)
        // removeOld: the old phone is removed; its next call (if the
        // approval's own follow-up did not already) wipes the account.
        let still = try await old.authenticator.accounts()
        if !still.isEmpty {
            await assertThrows(.DeviceDeregistered) {
                try await old.authenticator.awaitPending(wait: .zero)
            }
        }
        let left = try await old.authenticator.accounts()
        XCTAssertTrue(left.isEmpty)
    }
}

/// The lists a pending-request sequence yielded (tx ids), in order.
final class ListLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [[String]] = []

    func add(_ list: [String]) {
        lock.lock()
        items.append(list)
        lock.unlock()
    }

    var all: [[String]] {
        lock.lock()
        defer { lock.unlock() }
        return items
    }

    /// The lists so far, once there are `count` (or `seconds` passed).
    func waitFor(count: Int, seconds: Double) async throws -> [[String]] {
        let deadline = Date().addingTimeInterval(seconds)
        while all.count < count && Date() < deadline {
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        return all
    }
}
