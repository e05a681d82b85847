// Platform glue: P-256 keys in the Secure Enclave, addressed by alias (the Keychain
// application tag). User-verification keys need the current biometric set: a new
// enrolment invalidates them (.biometryCurrentSet).
import Countersign
import Foundation
import LocalAuthentication
import Security

final class SecureEnclaveVault: KeyVault, @unchecked Sendable {
    /// The LAContext the last successful biometric prompt used, so a key use right
    /// after it does not prompt again (set by BiometricPresenter).
    var authenticatedContext: LAContext?

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
        if status == errSecItemNotFound { throw KeyVaultError.NotFound }
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
        guard let access = SecAccessControlCreateWithFlags(nil, kSecAttrAccessibleWhenUnlockedThisDeviceOnly, flags, nil) else {
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
