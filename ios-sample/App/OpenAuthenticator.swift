// Platform glue shared by the app and its Notification Service Extension (both
// targets compile this file): how either process opens the Authenticator.
import Countersign
import CountersignSampleKit
import Foundation
import UIKit

/// The App Group both targets are entitled to (project.yml).
let appGroup = "group.org.countersign.sample"

/// Opens an Authenticator on the app's storage. Every process (the app, a
/// Notification Service Extension) opens its own over the same Keychain items:
/// the core keeps nothing in memory, and the lock file in the App Group makes
/// compare-and-put atomic across them. Without the App Group entitlement that
/// is impossible, so opening fails rather than risk a lost update.
func openAuthenticator(verifier: UserVerifier, vault: KeyVault) throws -> Authenticator {
    guard let group = FileManager.default.containerURL(forSecurityApplicationGroupIdentifier: appGroup) else {
        throw StorageError.Io(detail: "App Group \(appGroup) missing: add it to the app and the extension")
    }
    return try Countersign.open(
        platform: .ios,
        storage: BackendStorage(KeychainBackend(), lockFile: group.appendingPathComponent("countersign.lock")),
        verifier: verifier, keyVault: vault, http: URLSessionHttpClient(), deviceName: UIDevice.current.name)
}
