// Platform glue: P-256 keys in the Secure Enclave, addressed by alias (the Keychain
// application tag), and AES-256-GCM sealing keys in the Keychain. User-verification
// keys need the current biometric set: a new enrolment invalidates them
// (.biometryCurrentSet).
//
// Sealing (the OTP seed): the Secure Enclave has no AES. Two choices were open: a
// random AES-256 key kept as a Keychain item and used through CryptoKit AES.GCM,
// or Secure Enclave ECIES (SecKeyCreateEncryptedData with
// .eciesEncryptionCofactorVariableIVX963SHA256AESGCM). This uses the Keychain AES
// key, because the KeyVault contract seals with caller-supplied associated data
// (the core binds each blob to its account and purpose) and SecKey ECIES takes
// none; and because every OTP code then costs no Secure Enclave round trip. The
// price, said plainly: the AES key is protected by the Keychain (encrypted under
// the device's Secure Enclave-held class keys, this device only, never in
// backups) and is in the app's memory while a seal or open runs, whereas an ECIES
// private key would never leave the Enclave. The blob is CryptoKit's `combined`
// form: nonce (12 bytes) || ciphertext || tag (16 bytes), a fresh random nonce
// per seal.
//
// Accessibility: the KEM keys and the sealing keys are readable after the first
// unlock (kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly), so the notification
// service extension can open challenges (and the seed) while the phone is locked;
// the signing keys and the biometric key are usable only while it is unlocked.
import Countersign
import CryptoKit
import Foundation
import LocalAuthentication
import os
import Security

final class SecureEnclaveVault: KeyVault, Sendable {
    /// The LAContext the last successful biometric prompt used, so a key use right
    /// after it does not prompt again (set by BiometricPresenter). Behind a lock:
    /// the core calls the vault from any thread. LAContext is not Sendable, hence
    /// the unchecked accessors; it is only handed to Keychain queries.
    private let context = OSAllocatedUnfairLock<LAContext?>(uncheckedState: nil)

    var authenticatedContext: LAContext? {
        get { context.withLockUnchecked { $0 } }
        set { context.withLockUnchecked { $0 = newValue } }
    }

    private let sealingService = "org.countersign.vault.seal"

    private func tag(_ alias: String) -> Data { Data("org.countersign.vault.\(alias)".utf8) }

    private func query(_ alias: String) -> [String: Any] {
        var q: [String: Any] = [
            kSecClass as String: kSecClassKey,
            kSecAttrApplicationTag as String: tag(alias),
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
            kSecReturnRef as String: true,
        ]
        if let ctx = authenticatedContext { q[kSecUseAuthenticationContext as String] = ctx }
        return q
    }

    private func privateKey(_ alias: String) throws -> SecKey {
        var out: CFTypeRef?
        let status = SecItemCopyMatching(query(alias) as CFDictionary, &out)
        if status == errSecItemNotFound {
            // A sealing key under this alias serves the other purpose.
            if try sealingKeyData(alias) != nil { throw KeyVaultError.WrongPurpose }
            throw KeyVaultError.NotFound
        }
        guard status == errSecSuccess, let key = out else { throw KeyVaultError.Platform(detail: "keychain \(status)") }
        return key as! SecKey // swiftlint:disable:this force_cast (CF type)
    }

    private func sec1(_ key: SecKey) throws -> Data {
        guard let pub = SecKeyCopyPublicKey(key),
            let data = SecKeyCopyExternalRepresentation(pub, nil) as Data?  // 04 || x || y
        else { throw KeyVaultError.Platform(detail: "no public key") }
        return data
    }

    private func purposeLabel(_ p: KeyPurpose) -> String { p == .signing ? "sign" : "agree" }

    func createKey(alias: String, spec: KeySpec) throws -> Data {
        try deleteKey(alias: alias)
        var flags: SecAccessControlCreateFlags = [.privateKeyUsage]
        if spec.userVerification { flags.insert(.biometryCurrentSet) }
        // KEM keys open challenges in the notification extension, also while locked.
        let accessible = spec.purpose == .keyAgreement && !spec.userVerification
            ? kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
            : kSecAttrAccessibleWhenUnlockedThisDeviceOnly
        guard let access = SecAccessControlCreateWithFlags(nil, accessible, flags, nil) else {
            throw KeyVaultError.Platform(detail: "access control")
        }
        let attributes: [String: Any] = [
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
            kSecAttrKeySizeInBits as String: 256,
            kSecAttrTokenID as String: kSecAttrTokenIDSecureEnclave,
            kSecAttrLabel as String: purposeLabel(spec.purpose),
            kSecPrivateKeyAttrs as String: [
                kSecAttrIsPermanent as String: true,
                kSecAttrApplicationTag as String: tag(alias),
                kSecAttrAccessControl as String: access,
            ],
        ]
        var error: Unmanaged<CFError>?
        guard let key = SecKeyCreateRandomKey(attributes as CFDictionary, &error) else {
            throw KeyVaultError.Platform(detail: "create: \(error?.takeRetainedValue().localizedDescription ?? "?")")
        }
        return try sec1(key)
    }

    func publicKey(alias: String) throws -> Data? {
        do { return try sec1(try privateKey(alias)) } catch KeyVaultError.NotFound { return nil }
    }

    func sign(alias: String, message: Data) throws -> Data {
        var error: Unmanaged<CFError>?
        guard let der = SecKeyCreateSignature(try privateKey(alias), .ecdsaSignatureMessageX962SHA256, message as CFData, &error) as Data? else {
            throw mapped(error)
        }
        return try P256Signature.derToRaw(der)
    }

    func ecdh(alias: String, peer: Data) throws -> Data {
        let attrs: [String: Any] = [kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom, kSecAttrKeyClass as String: kSecAttrKeyClassPublic]
        guard let peerKey = SecKeyCreateWithData(peer as CFData, attrs as CFDictionary, nil) else {
            throw KeyVaultError.Platform(detail: "bad peer key")
        }
        var error: Unmanaged<CFError>?
        guard let secret = SecKeyCopyKeyExchangeResult(try privateKey(alias), .ecdhKeyExchangeStandard, peerKey, [:] as CFDictionary, &error) as Data? else {
            throw mapped(error)
        }
        return secret
    }

    func deleteKey(alias: String) throws {
        let q: [String: Any] = [kSecClass as String: kSecClassKey, kSecAttrApplicationTag as String: tag(alias)]
        let status = SecItemDelete(q as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else { throw KeyVaultError.Platform(detail: "delete \(status)") }
        try deleteSealingKey(alias)
    }

    // MARK: Sealing keys (Keychain AES-256, CryptoKit AES.GCM)

    private func sealingQuery(_ alias: String) -> [String: Any] {
        [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: sealingService,
            kSecAttrAccount as String: alias,
        ]
    }

    private func sealingKeyData(_ alias: String) throws -> Data? {
        var q = sealingQuery(alias)
        q[kSecReturnData as String] = true
        var out: CFTypeRef?
        let status = SecItemCopyMatching(q as CFDictionary, &out)
        if status == errSecItemNotFound { return nil }
        guard status == errSecSuccess, let data = out as? Data, data.count == 32 else {
            throw KeyVaultError.Platform(detail: "keychain sealing key \(status)")
        }
        return data
    }

    private func deleteSealingKey(_ alias: String) throws {
        let status = SecItemDelete(sealingQuery(alias) as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw KeyVaultError.Platform(detail: "delete sealing key \(status)")
        }
    }

    private func sealingKey(_ alias: String) throws -> SymmetricKey {
        guard let data = try sealingKeyData(alias) else {
            // A Secure Enclave key under this alias serves the other purpose.
            var out: CFTypeRef?
            let status = SecItemCopyMatching(query(alias) as CFDictionary, &out)
            throw status == errSecSuccess ? KeyVaultError.WrongPurpose : KeyVaultError.NotFound
        }
        return SymmetricKey(data: data)
    }

    func createSealingKey(alias: String) throws {
        try deleteKey(alias: alias)
        let key = SymmetricKey(size: .bits256)
        var q = sealingQuery(alias)
        q[kSecValueData as String] = key.withUnsafeBytes { Data($0) }
        q[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        let status = SecItemAdd(q as CFDictionary, nil)
        guard status == errSecSuccess else { throw KeyVaultError.Platform(detail: "create sealing key \(status)") }
    }

    func seal(alias: String, aad: Data, plaintext: Data) throws -> Data {
        let key = try sealingKey(alias)
        do {
            // A fresh random nonce; `combined` is nonce || ciphertext || tag.
            guard let blob = try AES.GCM.seal(plaintext, using: key, authenticating: aad).combined else {
                throw KeyVaultError.Platform(detail: "seal: no combined form")
            }
            return blob
        } catch let e as KeyVaultError {
            throw e
        } catch {
            throw KeyVaultError.Platform(detail: "seal: \(error)")
        }
    }

    func openSealed(alias: String, aad: Data, blob: Data) throws -> Data {
        let key = try sealingKey(alias)
        let box: AES.GCM.SealedBox
        do {
            box = try AES.GCM.SealedBox(combined: blob)
        } catch {
            throw KeyVaultError.OpenFailed
        }
        do {
            return try AES.GCM.open(box, using: key, authenticating: aad)
        } catch CryptoKitError.authenticationFailure {
            throw KeyVaultError.OpenFailed
        } catch {
            throw KeyVaultError.Platform(detail: "open: \(error)")
        }
    }

    private func mapped(_ error: Unmanaged<CFError>?) -> KeyVaultError {
        let e = error?.takeRetainedValue()
        let code = e.map { CFErrorGetCode($0) } ?? 0
        if code == Int(errSecUserCanceled) || code == Int(errSecAuthFailed) || code == Int(errSecInteractionNotAllowed) {
            return .UserVerificationRequired
        }
        return .Platform(detail: "secure enclave \(code)")
    }
}
