// UserVerifier over the app's prompts: the app shows a PIN pad or runs
// LocalAuthentication (App/BiometricPresenter.swift); tests script the answers.
import Countersign
import Foundation

/// How a biometric prompt ended.
public enum BiometricResult: Sendable {
    /// The user passed.
    case succeeded
    /// The user (or the system) dismissed the prompt.
    case cancelled
    /// Not recognised, or locked out.
    case failed
}

/// The prompts a `PromptVerifier` shows. Each call shows one and waits.
public protocol PromptPresenter: AnyObject, Sendable {
    /// The PIN the user typed, or nil if cancelled.
    func askPin(title: String, subtitle: String) async -> String?
    /// Runs the biometric check.
    func askBiometric(title: String, subtitle: String) async -> BiometricResult
}

/// Shows no prompt: every PIN or biometric request is cancelled. For work without
/// UI (a Notification Service Extension, a Deny action in a background launch),
/// which needs no verification.
public final class NoPrompts: PromptPresenter {
    /// Makes one.
    public init() {}
    /// Cancelled.
    public func askPin(title: String, subtitle: String) async -> String? { nil }
    /// Cancelled.
    public func askBiometric(title: String, subtitle: String) async -> BiometricResult { .cancelled }
}

/// Serialises prompts: one on screen at a time.
actor PromptQueue {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if !busy {
            busy = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty {
            busy = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}

/// `UserVerifier` for the core: words the prompt from the request. If it threw,
/// the core would fail the call with `CountersignError.HookFailed` and send nothing.
public final class PromptVerifier: UserVerifier, Sendable {
    private let presenter: PromptPresenter
    private let queue = PromptQueue()

    /// Uses `presenter` for the prompts.
    public init(_ presenter: PromptPresenter) { self.presenter = presenter }

    /// Shows one prompt (after any other on screen) and reports what the user did.
    public func verify(prompt: VerificationPrompt) async -> VerificationOutcome {
        await queue.acquire()
        let outcome: VerificationOutcome
        switch prompt.kind {
        case .pin:
            if let pin = await presenter.askPin(title: prompt.reason, subtitle: prompt.accountLabel) {
                outcome = .verified(pin: pin)
            } else {
                outcome = .cancelled
            }
        case .biometric:
            switch await presenter.askBiometric(title: prompt.reason, subtitle: prompt.accountLabel) {
            case .succeeded: outcome = .verified(pin: nil)
            case .cancelled: outcome = .cancelled
            case .failed: outcome = .failed
            }
        }
        await queue.release()
        return outcome
    }
}
