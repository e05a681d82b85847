// Issue 13, "Idiomatic types and errors": times arrive as `Duration` and `Date`,
// and errors reach the caller as thrown `CountersignError`s with a stable code
// and typed data (never a sentence to parse).
import Countersign
import CountersignSampleKit
import Foundation
import XCTest

final class TypesTests: XCTestCase {
    override func setUp() async throws {
        try Rp.checkConfigured()
    }

    /// The thrown error as a `CountersignError` (fails the test otherwise).
    private func thrown<T>(
        _ body: () async throws -> T, file: StaticString = #filePath, line: UInt = #line
    ) async -> CountersignError? {
        do {
            _ = try await body()
            XCTFail("nothing was thrown", file: file, line: line)
        } catch let e as CountersignError {
            return e
        } catch {
            XCTFail("not a CountersignError: \(error)", file: file, line: line)
        }
        return nil
    }

    func testPendingRequestTimesAreTyped() async throws {
        let device = try Device()
        let (user, _) = try await device.activate("types-times")
        let (tx, _) = try await Rp.push(user, #","number_matching":"off","timeout_secs":90"#)
        let requests = try await device.authenticator.awaitPending(wait: .seconds(10))
        let request = try XCTUnwrap(requests.first { $0.txId == tx })
        let now = Date()
        // The declared types are the point: these lines compile only with typed fields.
        let issuedAt: Date = request.issuedAt
        let expiresAt: Date = request.expiresAt
        let timeLeft: Duration = request.timeLeft
        XCTAssertLessThan(abs(issuedAt.timeIntervalSince(now)), 10, "issued at \(issuedAt), now \(now)")
        XCTAssertEqual(expiresAt.timeIntervalSince(issuedAt), 90, "the challenge lifetime")
        XCTAssertLessThan(abs(expiresAt.timeIntervalSince(now.addingTimeInterval(90))), 10)
        XCTAssertTrue((Duration.seconds(80)...Duration.seconds(90)).contains(timeLeft), "time left \(timeLeft)")
        // The sample's card carries the date on.
        XCTAssertEqual(PushController(device.authenticator).card(request).expiresAt, expiresAt)
    }

    func testOtpTimeLeftIsADuration() async throws {
        let clock = FixedClock(59)
        let device = try Device(clock: clock)
        let a = device.authenticator
        let totp = try await a.importOtpauth(uri: "otpauth://totp/T:t?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=T")
        let hotp = try await a.importOtpauth(uri: "otpauth://hotp/H:h?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&counter=0&issuer=H")
        let left: Duration? = try await a.otp(accountId: totp.id).timeLeft
        XCTAssertEqual(left, .seconds(1))
        clock.set(60)
        let timeLeft = try await a.otp(accountId: totp.id).timeLeft
        XCTAssertEqual(timeLeft, .seconds(30))
        let timeLeft2 = try await a.otp(accountId: hotp.id).timeLeft
        XCTAssertNil(timeLeft2, "HOTP codes do not expire")
    }

    func testARequestListGoesEmptyAfterAnAnswer() async throws {
        let device = try Device()
        let (user, accountId) = try await device.activate("types-empty")
        let (tx, _) = try await Rp.push(user, #","number_matching":"off""#)
        try await receiveAll(device.authenticator, [tx])
        let pendingTxs = try await device.authenticator.pendingRequests().map(\.txId)
        XCTAssertEqual(pendingTxs, [tx])
        _ = try await device.authenticator.deny(accountId: accountId, txId: tx, reason: .mistake)
        let pendingTxs2 = try await device.authenticator.pendingRequests().map(\.txId)
        XCTAssertEqual(pendingTxs2, [])
        let polled = try await device.authenticator.awaitPending(wait: .zero)
        XCTAssertEqual(polled.map(\.txId), [])
    }

    func testUnknownRequestIsATypedErrorWithACode() async throws {
        let device = try Device()
        let (_, accountId) = try await device.activate("types-unknown")
        let e = await thrown {
            try await device.authenticator.approve(accountId: accountId, txId: "no-such-tx-\(UUID().uuidString)", number: nil)
        }
        XCTAssertEqual(e, .RequestNotFound)
        XCTAssertEqual(e?.code, "request_not_found")
    }

    func testWrongPinCarriesAttemptsLeft() async throws {
        let device = try Device()
        let (user, accountId) = try await device.activate("types-pin", pin: "975310")
        let (tx, _) = try await Rp.push(user, #","number_matching":"off","verification":"pin""#)
        try await receiveAll(device.authenticator, [tx])
        device.presenter.queuePin("111111")
        let first = await thrown {
            try await device.authenticator.approve(accountId: accountId, txId: tx, number: nil)
        }
        XCTAssertEqual(first?.code, "wrong_pin")
        guard case .WrongPin(let firstLeft) = first else { return XCTFail("\(String(describing: first))") }
        XCTAssertGreaterThan(firstLeft, 0)
        device.presenter.queuePin("222222")
        let second = await thrown {
            try await device.authenticator.approve(accountId: accountId, txId: tx, number: nil)
        }
        XCTAssertEqual(second, .WrongPin(attemptsLeft: firstLeft - 1))
        let pinFailures = try await device.authenticator.account(accountId: accountId).pinFailures
        XCTAssertEqual(pinFailures, 2)
    }

    func testInvalidInputNamesATypedField() async throws {
        let device = try Device()
        let a = device.authenticator
        let uri = await thrown {
            try await a.activateUri(uri: "https://not-an-offer.example", options: ActivationOptions(pin: nil, biometric: false))
        }
        XCTAssertEqual(uri, .InvalidInput(field: .activationUri))
        XCTAssertEqual(uri?.code, "invalid_input")
        // Checked by the bindings themselves (not the core).
        let fingerprint = await thrown {
            try await a.activateCode(
                serverUrl: Rp.url, code: "04HMA-SW9MN-D0ZW0-H48SM-8NB6C",
                serverKeyFingerprint: Data([1, 2, 3]), options: ActivationOptions(pin: nil, biometric: false))
        }
        XCTAssertEqual(fingerprint, .InvalidInput(field: .serverKeyFingerprint))
        // Thrown by the sample's handlers (no Result to unwrap).
        let push = await thrown { try await PushController(a).onPush(userInfo: ["tx_id": "t"]) }
        XCTAssertEqual(push, .InvalidInput(field: .pushData))
        let scanned = await thrown { try await ActivationController(a).add("hello") }
        XCTAssertEqual(scanned, .InvalidInput(field: .qrCode))
        XCTAssertEqual(scanned?.code, "invalid_input")
    }

    func testErrorsAreSendable() async throws {
        // Compiles only if the generated error, records and the durations are Sendable.
        let error: any Sendable = CountersignError.WrongPin(attemptsLeft: 1)
        let task = Task { () -> (CountersignError, Duration) in
            (CountersignError.ServerRejected(serverCode: "wrong_number"), .seconds(3))
        }
        let (e, d) = await task.value
        XCTAssertEqual(e.code, "server_rejected")
        XCTAssertEqual(d, .seconds(3))
        XCTAssertEqual((error as? CountersignError)?.code, "wrong_pin")
    }
}
