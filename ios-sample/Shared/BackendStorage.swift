// SecureStorage over a key-value backend: the Keychain in the app
// (kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly, see App/KeychainBackend.swift),
// memory in tests and previews. Key checks and error mapping live here.
import Countersign
import Foundation

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

/// `SecureStorage` for the core over a `KeyValueBackend`.
public final class BackendStorage: SecureStorage, @unchecked Sendable {
    private let backend: KeyValueBackend

    /// Wraps `backend`.
    public init(_ backend: KeyValueBackend) { self.backend = backend }

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

    public func get(key: String) throws -> Data? {
        let key = try checked(key)
        return try mapped("read") { try backend.read(key) }
    }

    public func put(key: String, value: Data) throws {
        let key = try checked(key)
        try mapped("write") { try backend.write(key, value) }
    }

    public func delete(key: String) throws {
        let key = try checked(key)
        try mapped("delete") { try backend.remove(key) }
    }

    public func list(prefix: String) throws -> [String] {
        try mapped("list") { try backend.allKeys().filter { $0.hasPrefix(prefix) } }
    }
}

/// An in-memory backend (tests, previews).
public final class MemoryBackend: KeyValueBackend, @unchecked Sendable {
    private var values: [String: Data] = [:]
    private let lock = NSLock()

    /// An empty store.
    public init() {}

    public func read(_ key: String) throws -> Data? { lock.withLock { values[key] } }
    public func write(_ key: String, _ value: Data) throws { lock.withLock { values[key] = value } }
    public func remove(_ key: String) throws { _ = lock.withLock { values.removeValue(forKey: key) } }
    public func allKeys() throws -> [String] { lock.withLock { Array(values.keys) } }
}
