// Platform glue: LocalAuthentication for biometrics, a SwiftUI sheet for the PIN.
import CountersignSampleKit
import LocalAuthentication
import SwiftUI

@MainActor
final class PromptState: ObservableObject {
    @Published var pinRequest: (title: String, subtitle: String)?
    private var pinContinuation: CheckedContinuation<String?, Never>?

    func askPin(title: String, subtitle: String) async -> String? {
        await withCheckedContinuation { c in
            pinContinuation = c
            pinRequest = (title, subtitle)
        }
    }

    func finishPin(_ pin: String?) {
        pinRequest = nil
        pinContinuation?.resume(returning: pin)
        pinContinuation = nil
    }
}

final class BiometricPresenter: PromptPresenter, @unchecked Sendable {
    private let state: PromptState
    private let vault: SecureEnclaveVault

    init(state: PromptState, vault: SecureEnclaveVault) {
        self.state = state
        self.vault = vault
    }

    func askPin(title: String, subtitle: String) async -> String? {
        await state.askPin(title: title, subtitle: subtitle)
    }

    func askBiometric(title: String, subtitle: String) async -> BiometricResult {
        let context = LAContext()
        context.localizedCancelTitle = "Cancel"
        // Reuse this authentication for the Secure Enclave key use that follows.
        context.touchIDAuthenticationAllowableReuseDuration = 10
        do {
            let ok = try await context.evaluatePolicy(.deviceOwnerAuthenticationWithBiometrics, localizedReason: "\(title)\n\(subtitle)")
            if ok { vault.authenticatedContext = context }
            return ok ? .succeeded : .failed
        } catch let e as LAError where e.code == .userCancel || e.code == .appCancel || e.code == .systemCancel {
            return .cancelled
        } catch {
            return .failed
        }
    }
}
