// Test support: the RP API of the test server, a scripted presenter, a fixed clock.
import Countersign
import CountersignSampleKit
import CountersignTestKit
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

enum Rp {
    static let url: String = ProcessInfo.processInfo.environment["COUNTERSIGN_SERVER_URL"] ?? ""
    static let apiKey: String = ProcessInfo.processInfo.environment["COUNTERSIGN_RP_API_KEY"] ?? ""
    private static let counter = Counter()

    static func checkConfigured() throws {
        // Fail (never skip) when run without the server xtask starts.
        if url.isEmpty || apiKey.isEmpty {
            XCTFail("COUNTERSIGN_SERVER_URL / COUNTERSIGN_RP_API_KEY not set: run `cargo xtask bindings --test`")
            throw CountersignError.Internal
        }
    }

    static func newUser(_ prefix: String) -> String {
        "\(prefix)-swift-\(ProcessInfo.processInfo.processIdentifier)-\(counter.next())"
    }

    static func call(
        _ method: String, _ path: String, _ json: String? = nil, bearer: String? = nil
    ) async throws -> (Int, String) {
        var r = URLRequest(url: URL(string: url + path)!)
        r.httpMethod = method
        r.timeoutInterval = 30
        r.setValue("Bearer \(bearer ?? apiKey)", forHTTPHeaderField: "Authorization")
        if let json {
            r.setValue("application/json", forHTTPHeaderField: "Content-Type")
            r.httpBody = Data(json.utf8)
        }
        let request = r
        return try await withCheckedThrowingContinuation { c in
            URLSession.shared.dataTask(with: request) { data, response, error in
                if let error { c.resume(throwing: error); return }
                let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                c.resume(returning: (status, String(decoding: data ?? Data(), as: UTF8.self)))
            }.resume()
        }
    }

    static func post(_ path: String, _ json: String) async throws -> String {
        let (status, body) = try await call("POST", path, json)
        XCTAssert((200..<300).contains(status), "POST \(path) -> \(status) \(body)")
        return body
    }

    static func get(_ path: String) async throws -> String {
        let (status, body) = try await call("GET", path)
        XCTAssert((200..<300).contains(status), "GET \(path) -> \(status) \(body)")
        return body
    }

    static func enroll(_ user: String) async throws -> String {
        let body = try await post("/v1/rp/enrollments", #"{"user":"\#(user)","label":"\#(user)@example.com"}"#)
        return try XCTUnwrap(jsonString(body, "offer_uri"))
    }

    static func push(_ user: String, _ extra: String = "") async throws -> (tx: String, number: String?) {
        let body = try await post("/v1/rp/push", #"{"user":"\#(user)"\#(extra)}"#)
        return (try XCTUnwrap(jsonString(body, "tx_id"), body), jsonString(body, "number"))
    }

    static func status(_ tx: String, wait: Int = 0) async throws -> String {
        try await get("/v1/rp/challenges/\(tx)?wait=\(wait)")
    }
}

final class Counter: @unchecked Sendable {
    private var n = 0
    private let lock = NSLock()
    func next() -> Int { lock.withLock { n += 1; return n } }
}

/// `"field":"value"` from a flat JSON object (nil for null or missing).
func jsonString(_ json: String, _ field: String) -> String? {
    guard let data = json.data(using: .utf8),
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { return nil }
    return object[field] as? String
}

/// The `error.code` of an error body `{"error":{"code":…}}`, if any.
func errorCode(_ json: String) -> String? {
    guard let data = json.data(using: .utf8),
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
        let error = object["error"] as? [String: Any]
    else { return nil }
    return error["code"] as? String
}

/// Answers prompts from queues; records what was asked.
final class ScriptedPresenter: PromptPresenter, @unchecked Sendable {
    private let lock = NSLock()
    private var pins: [String?] = []
    private var biometrics: [BiometricResult] = []
    private(set) var asked: [String] = []

    func queuePin(_ pin: String?) { lock.withLock { pins.append(pin) } }
    func queueBiometric(_ r: BiometricResult) { lock.withLock { biometrics.append(r) } }
    var askedCount: Int { lock.withLock { asked.count } }

    func askPin(title: String, subtitle: String) async -> String? {
        lock.withLock {
            asked.append("pin:\(title)")
            return pins.isEmpty ? nil : pins.removeFirst()
        }
    }

    func askBiometric(title: String, subtitle: String) async -> BiometricResult {
        lock.withLock {
            asked.append("biometric:\(title)")
            return biometrics.isEmpty ? .cancelled : biometrics.removeFirst()
        }
    }
}

final class FixedClock: Clock, @unchecked Sendable {
    private let lock = NSLock()
    private var value: UInt64
    init(_ now: UInt64) { value = now }
    func set(_ now: UInt64) { lock.withLock { value = now } }
    func now() -> Date { Date(timeIntervalSince1970: TimeInterval(lock.withLock { value })) }
}

/// A fresh temporary directory.
func temporaryDirectory(_ prefix: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}


/// A device: Swift storage, Swift verifier, the core's software vault.
final class Device: @unchecked Sendable {
    let backend: KeyValueBackend
    let presenter = ScriptedPresenter()
    let storage: BackendStorage
    let authenticator: Authenticator
    /// The storage directory (nil: in memory).
    let directory: URL?
    private let http: HttpClient?

    /// In memory, or in `directory` (shared with other processes) when given.
    init(http: HttpClient? = nil, clock: Clock? = nil, clockSkew: Duration? = nil, directory: URL? = nil) throws {
        self.directory = directory
        self.http = http
        if let directory {
            let files = try DirectoryBackend(directory)
            backend = files
            storage = BackendStorage(files, lockFile: directory.appendingPathComponent("lock"))
        } else {
            backend = MemoryBackend()
            storage = BackendStorage(backend)
        }
        authenticator = try Device.open(storage, presenter, http, clock, clockSkew)
    }

    static func open(
        _ storage: BackendStorage, _ presenter: ScriptedPresenter, _ http: HttpClient? = nil,
        _ clock: Clock? = nil, _ skew: Duration? = nil, verifier: UserVerifier? = nil
    ) throws -> Authenticator {
        try Authenticator(
            config: AuthenticatorConfig(
                platform: .desktop, deviceName: "swift-test", push: .none, pinMaxAttempts: nil,
                clockSkew: skew),
            storage: storage, verifier: verifier ?? PromptVerifier(presenter), keyVault: nil, http: http,
            clock: clock, logger: nil)
    }

    /// A new Authenticator on the same storage (an app restart; with a
    /// directory, over new storage objects, as a new process has).
    func reopen(verifier: UserVerifier? = nil) throws -> Authenticator {
        let storage = try directory.map(directoryStorage) ?? self.storage
        return try Device.open(storage, presenter, http, verifier: verifier)
    }

    func activate(_ prefix: String, pin: String? = nil) async throws -> (user: String, accountId: String) {
        try await activate(with: authenticator, prefix, pin: pin)
    }

    /// Activates `authenticator` for a new user.
    func activate(with authenticator: Authenticator, _ prefix: String, pin: String? = nil) async throws -> (user: String, accountId: String) {
        let user = Rp.newUser(prefix)
        let account = try await ActivationController(authenticator).add(try await Rp.enroll(user), pin: pin)
        return (user, account.id)
    }

    func deviceId(_ accountId: String) async throws -> String {
        guard case .push(_, _, let deviceId) = try await authenticator.account(accountId: accountId).kind else {
            throw CountersignError.Internal
        }
        return deviceId
    }
}

/// The `state` of a challenge on the server (`pending`, `approved`, `denied`, `expired`).
func rpState(_ tx: String, wait: Int = 0) async throws -> String? {
    jsonString(try await Rp.status(tx, wait: wait), "state")
}

/// Receives pushes until every tx of `txs` is stored on `authenticator`.
func receiveAll(_ authenticator: Authenticator, _ txs: [String], seconds: Double = 30) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while !Set(try await authenticator.pendingRequests().map(\.txId)).isSuperset(of: txs) {
        guard Date() < deadline else {
            XCTFail("requests not received: \(txs)")
            throw CountersignError.RequestNotFound
        }
        _ = try await authenticator.awaitPending(wait: .seconds(5))
    }
}

/// Expects `body` to throw `expected`.
func assertThrows<T>(
    _ expected: CountersignError, _ body: () async throws -> T, file: StaticString = #filePath, line: UInt = #line
) async {
    do {
        _ = try await body()
        XCTFail("expected \(expected)", file: file, line: line)
    } catch let e as CountersignError {
        XCTAssertEqual(e, expected, file: file, line: line)
    } catch {
        XCTFail("expected \(expected), got \(error)", file: file, line: line)
    }
}
