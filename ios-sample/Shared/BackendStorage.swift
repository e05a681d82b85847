// SecureStorage over a key-value backend: the Keychain in the app
// (kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly, see App/KeychainBackend.swift),
// memory or files in tests and previews. Key checks, error mapping and the
// lock that makes compareAndPut atomic live here.
import Countersign
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the blobs live. Each call is one atomic operation.
public protocol KeyValueBackend: AnyObject, Sendable {
    /// The value, or nil.
    func read(_ key: String) throws -> Data?
    /// Stores (replacing) atomically.
    func write(_ key: String, _ value: Data) throws
    /// Removes (no error if absent).
    func remove(_ key: String) throws
    /// Every key.
    func allKeys() throws -> [String]
}

/// A failure of the backend (a Keychain OSStatus, an I/O error).
public struct BackendError: Error, Equatable {
    /// What failed.
    public let detail: String
    /// Makes an error.
    public init(_ detail: String) { self.detail = detail }
}

/// Serialises writes: an NSLock for this process's threads (one per lock file,
/// or per backend without one), then `flock` on the lock file for other
/// processes (the app and its Notification Service Extension).
final class StoreLock: @unchecked Sendable {
    private static let registryLock = NSLock()
    private static var registry: [String: NSLock] = [:]

    private let threads: NSLock
    private let path: String?

    /// `path`: the lock file, or nil for one process only; `name` keys the
    /// in-process lock when there is no file.
    init(path: String?, name: String) {
        self.path = path
        threads = StoreLock.registryLock.withLock {
            let key = path ?? name
            if let lock = StoreLock.registry[key] { return lock }
            let lock = NSLock()
            StoreLock.registry[key] = lock
            return lock
        }
    }

    /// Runs `body` holding both locks.
    func withLock<T>(_ body: () throws -> T) throws -> T {
        threads.lock()
        defer { threads.unlock() }
        guard let path else { return try body() }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StorageError.Io(detail: "lock file: errno \(errno)") }
        // Closing the descriptor releases the flock.
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw StorageError.Io(detail: "flock: errno \(errno)") }
        }
        return try body()
    }
}

/// Whether `a` equals `b`, in a time that depends on the lengths only (the
/// values may be secrets).
func constantTimeEqual(_ a: Data, _ b: Data) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for (x, y) in zip(a, b) { difference |= x ^ y }
    return difference == 0
}

/// `SecureStorage` for the core over a `KeyValueBackend`. Reads go straight to
/// the backend; `put`, `delete` and `compareAndPut` hold the store's lock, so
/// a compare-and-put is atomic against every thread and, with a lock file,
/// every process sharing the backend.
public final class BackendStorage: SecureStorage, @unchecked Sendable {
    private let backend: KeyValueBackend
    private let lock: StoreLock

    /// Wraps `backend`. Processes that share it (an app and its extension on
    /// a shared Keychain group) pass the same `lockFile`, in a directory they
    /// share (the app group container); it must not be one of the backend's keys.
    public init(_ backend: KeyValueBackend, lockFile: URL? = nil) {
        self.backend = backend
        lock = StoreLock(path: lockFile?.standardizedFileURL.path, name: "backend-\(ObjectIdentifier(backend))")
    }

    private func checked(_ key: String) throws -> String {
        guard !key.isEmpty, key.utf8.count <= 120,
            key.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value <= 0x7e })
        else { throw StorageError.Io(detail: "invalid storage key") }
        return key
    }

    private func mapped<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as StorageError {
            throw e
        } catch let e as BackendError {
            throw StorageError.Io(detail: "\(what): \(e.detail)")
        } catch {
            throw StorageError.Io(detail: "\(what) failed")
        }
    }

    /// The value under `key`, or nil.
    public func get(key: String) throws -> Data? {
        let key = try checked(key)
        return try mapped("read") { try backend.read(key) }
    }

    /// Stores `value` under `key`.
    public func put(key: String, value: Data) throws {
        let key = try checked(key)
        try mapped("write") { try lock.withLock { try backend.write(key, value) } }
    }

    /// Removes `key` (no error if absent).
    public func delete(key: String) throws {
        let key = try checked(key)
        try mapped("delete") { try lock.withLock { try backend.remove(key) } }
    }

    /// Every key starting with `prefix`.
    public func list(prefix: String) throws -> [String] {
        try mapped("list") { try backend.allKeys().filter { $0.hasPrefix(prefix) } }
    }

    /// Stores `value` only if the stored value equals `expected` (nil: none).
    public func compareAndPut(key: String, expected: Data?, value: Data) throws -> Bool {
        let key = try checked(key)
        return try mapped("compare-and-put") {
            try lock.withLock {
                let current = try backend.read(key)
                let same: Bool
                switch (expected, current) {
                case (nil, nil): same = true
                case let (expected?, current?): same = constantTimeEqual(expected, current)
                default: same = false
                }
                if same { try backend.write(key, value) }
                return same
            }
        }
    }
}

/// An in-memory backend (tests, previews).
public final class MemoryBackend: KeyValueBackend, @unchecked Sendable {
    private var values: [String: Data] = [:]
    private let lock = NSLock()

    /// An empty store.
    public init() {}

    /// The value, or nil.
    public func read(_ key: String) throws -> Data? { lock.withLock { values[key] } }
    /// Stores (replacing).
    public func write(_ key: String, _ value: Data) throws { lock.withLock { values[key] = value } }
    /// Removes (no error if absent).
    public func remove(_ key: String) throws { _ = lock.withLock { values.removeValue(forKey: key) } }
    /// Every key.
    public func allKeys() throws -> [String] { lock.withLock { Array(values.keys) } }
}
