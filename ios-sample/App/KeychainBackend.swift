// Platform glue: the storage backend on the Keychain, this device only, readable
// after first unlock (the notification handler runs while the phone is locked).
import CountersignSampleKit
import Foundation
import Security

final class KeychainBackend: KeyValueBackend, @unchecked Sendable {
    private let service = "org.countersign.storage"

    private func base(_ key: String? = nil) -> [String: Any] {
        var q: [String: Any] = [kSecClass as String: kSecClassGenericPassword, kSecAttrService as String: service]
        if let key { q[kSecAttrAccount as String] = key }
        return q
    }

    func read(_ key: String) throws -> Data? {
        var q = base(key)
        q[kSecReturnData as String] = true
        var out: CFTypeRef?
        let status = SecItemCopyMatching(q as CFDictionary, &out)
        if status == errSecItemNotFound { return nil }
        guard status == errSecSuccess else { throw BackendError("keychain read \(status)") }
        return out as? Data
    }

    func write(_ key: String, _ value: Data) throws {
        // SecItemUpdate replaces the value in one step (atomic for the core's contract).
        let attrs: [String: Any] = [kSecValueData as String: value]
        var status = SecItemUpdate(base(key) as CFDictionary, attrs as CFDictionary)
        if status == errSecItemNotFound {
            var q = base(key)
            q[kSecValueData as String] = value
            q[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
            status = SecItemAdd(q as CFDictionary, nil)
        }
        guard status == errSecSuccess else { throw BackendError("keychain write \(status)") }
    }

    func remove(_ key: String) throws {
        let status = SecItemDelete(base(key) as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else { throw BackendError("keychain delete \(status)") }
    }

    func allKeys() throws -> [String] {
        var q = base()
        q[kSecReturnAttributes as String] = true
        q[kSecMatchLimit as String] = kSecMatchLimitAll
        var out: CFTypeRef?
        let status = SecItemCopyMatching(q as CFDictionary, &out)
        if status == errSecItemNotFound { return [] }
        guard status == errSecSuccess, let items = out as? [[String: Any]] else { throw BackendError("keychain list \(status)") }
        return items.compactMap { $0[kSecAttrAccount as String] as? String }
    }
}
