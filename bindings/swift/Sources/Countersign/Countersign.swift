// The hand-written async facade over the uniffi-generated bindings (compiled into
// the same `Countersign` module as `Generated/countersign.swift`).
//
// The generated `Authenticator` already has `async throws` methods for everything
// that talks to the server. This adds Swift-concurrency cancellation of long-polls,
// an AsyncSequence of pending requests, the errors' stable codes, and the ECDSA
// encoding a Secure Enclave KeyVault needs (Apple returns X9.62 DER; the KeyVault
// trait wants raw r||s). Times are typed: spans are `Duration`, instants `Date`.
// The generated records and enums are `Sendable` (uniffi emits the conformance
// under Swift 6), the generated objects `@unchecked Sendable` (Rust guards them).
import Foundation

/// Entry points with Swift defaults.
public enum Countersign: Sendable {
    /// Opens the authenticator. A nil `keyVault` uses the core's software vault
    /// inside `storage`; a nil `http` uses the built-in client.
    public static func open(
        platform: Platform,
        storage: SecureStorage,
        verifier: UserVerifier,
        keyVault: KeyVault? = nil,
        http: HttpClient? = nil,
        clock: Clock? = nil,
        logger: Logger? = nil,
        deviceName: String? = nil,
        push: PushRegistration = .none
    ) throws -> Authenticator {
        try Authenticator(
            config: AuthenticatorConfig(
                platform: platform, deviceName: deviceName, push: push,
                pinMaxAttempts: nil, clockSkew: nil),
            storage: storage, verifier: verifier, keyVault: keyVault, http: http,
            clock: clock, logger: logger)
    }
}

extension CountersignError {
    /// The stable, machine-readable code of this error, in snake_case
    /// (`wrong_pin`, `request_not_found`, `invalid_input`, `server_rejected`, …):
    /// for logs, analytics and `switch`es. The data stays on the case
    /// (`WrongPin(attemptsLeft:)`, `InvalidInput(field:)`,
    /// `ServerRejected(serverCode:)`). The description is for logs only: never
    /// show it to users.
    public var code: String { errorCode() }
}

extension Authenticator {
    /// Long-polls every server for pending requests (up to `wait`, whole
    /// seconds). Cancelling the calling task cancels the Rust-side wait at once
    /// (`CancellationError`).
    public func awaitPending(wait: Duration = .seconds(30)) async throws -> [PendingRequest] {
        let handle = CancelHandle()
        return try await withTaskCancellationHandler {
            do {
                return try await pending(wait: wait, cancel: handle)
            } catch CountersignError.Cancelled {
                throw CancellationError()
            }
        } onCancel: {
            handle.cancel()
        }
    }

    /// The pending requests of every account while iterated, for a list UI to
    /// show as it is. First the stored list (`pendingRequests()`, no network),
    /// then, after each long-poll (up to `wait`), the new list whenever its
    /// requests (account and tx ids) differ from the last one yielded —
    /// INCLUDING the empty list, so a request answered here, on another device
    /// or in another process, or one that expired, leaves the UI. An unchanged
    /// list is not yielded again. While requests wait for the user each poll
    /// waits on the server too (it names the requests it holds), so the loop
    /// does not spin. Network errors are retried after `retryDelay`; other
    /// errors end the sequence. Stops when the iterating task is cancelled.
    public func pendingRequestUpdates(wait: Duration = .seconds(30), retryDelay: Duration = .seconds(5))
        -> AsyncThrowingStream<[PendingRequest], Error>
    {
        AsyncThrowingStream { continuation in
            let task = Task {
                var requests: [PendingRequest]
                do {
                    requests = try await self.pendingRequests()
                } catch {
                    continuation.finish(throwing: error)
                    return
                }
                var last: Set<String>? = nil
                while true {
                    let ids = Set(requests.map { "\($0.accountId) \($0.txId)" })
                    if ids != last {
                        last = ids
                        continuation.yield(requests)
                    }
                    if Task.isCancelled { break }
                    do {
                        requests = try await self.awaitPending(wait: wait)
                    } catch CountersignError.Network {
                        try? await Task.sleep(for: retryDelay)
                    } catch is CancellationError {
                        break
                    } catch {
                        continuation.finish(throwing: error)
                        return
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

extension PendingRequest {
    /// Whether approving needs a number from the user (typed or picked).
    public var needsNumber: Bool {
        switch numberMatching {
        case .pick, .type: return true
        // `show`: the user types the phone's number on the page, not here.
        case .off, .show: return false
        }
    }
}

/// ECDSA P-256 signature encodings.
public enum P256Signature: Sendable {
    /// Errors converting a signature.
    public enum EncodingError: Error, Equatable, Sendable {
        /// Not a well-formed DER `SEQUENCE { INTEGER r, INTEGER s }`.
        case malformedDer
        /// Not 64 bytes.
        case badLength
    }

    /// X9.62 / DER (what `SecKeyCreateSignature` returns) to raw `r || s`.
    public static func derToRaw(_ der: Data) throws -> Data {
        let bytes = [UInt8](der)
        var i = 0
        func byte() throws -> Int {
            guard i < bytes.count else { throw EncodingError.malformedDer }
            defer { i += 1 }
            return Int(bytes[i])
        }
        func length() throws -> Int {
            let first = try byte()
            if first < 0x80 { return first }
            if first == 0x81 { return try byte() }
            throw EncodingError.malformedDer
        }
        guard try byte() == 0x30 else { throw EncodingError.malformedDer }
        guard try length() == bytes.count - i else { throw EncodingError.malformedDer }
        var out = [UInt8]()
        for _ in 0..<2 {
            guard try byte() == 0x02 else { throw EncodingError.malformedDer }
            let len = try length()
            guard len >= 1, len <= 33, i + len <= bytes.count else { throw EncodingError.malformedDer }
            var value = Array(bytes[i..<(i + len)])
            i += len
            while value.count > 32, value.first == 0 { value.removeFirst() }
            guard value.count <= 32 else { throw EncodingError.malformedDer }
            out += [UInt8](repeating: 0, count: 32 - value.count) + value
        }
        guard i == bytes.count else { throw EncodingError.malformedDer }
        return Data(out)
    }

    /// Raw `r || s` to DER (to verify with `SecKeyVerifySignature`).
    public static func rawToDer(_ raw: Data) throws -> Data {
        guard raw.count == 64 else { throw EncodingError.badLength }
        let bytes = [UInt8](raw)
        func integer(_ part: ArraySlice<UInt8>) -> [UInt8] {
            var v = Array(part.drop(while: { $0 == 0 }))
            if v.isEmpty { v = [0] }
            if v[0] & 0x80 != 0 { v.insert(0, at: 0) }
            return [0x02, UInt8(v.count)] + v
        }
        let body = integer(bytes[0..<32]) + integer(bytes[32..<64])
        return Data([0x30, UInt8(body.count)] + body)
    }
}
