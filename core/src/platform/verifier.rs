//! User verification (PIN pad or biometric prompt), provided by the app.

use std::fmt;

use zeroize::Zeroizing;

use super::HookError;

/// What to ask the user for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationKind {
    /// The app PIN. The answer must carry the PIN itself: without hardware the core
    /// derives the key that unwraps the user-verification key from it.
    Pin,
    /// Biometrics (with the platform's own passcode fallback). The real check is
    /// the platform's: the key the core then uses is bound to user verification.
    Biometric,
}

/// A request to verify the user, with the reason to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationPrompt {
    /// PIN or biometric.
    pub kind: VerificationKind,
    /// Why, in a sentence for the prompt ("Approve sign-in to Example VPN").
    pub reason: String,
    /// The account concerned ("alice@example.com"), to show with the reason.
    pub account_label: String,
}

/// What happened.
pub enum VerificationOutcome {
    /// The user passed (biometric) or entered a PIN (`pin` set; the core checks it).
    Verified {
        /// The PIN the user typed, for [`VerificationKind::Pin`].
        pin: Option<Zeroizing<String>>,
    },
    /// The user cancelled the prompt.
    Cancelled,
    /// The platform check failed (biometric not recognised, locked out).
    Failed,
}

impl fmt::Debug for VerificationOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Verified { pin } => f
                .debug_struct("Verified")
                .field("pin", &pin.as_ref().map(|_| "<redacted>"))
                .finish(),
            Self::Cancelled => f.write_str("Cancelled"),
            Self::Failed => f.write_str("Failed"),
        }
    }
}

/// Asks the user for a PIN or biometrics.
///
/// Threading: may be called from any thread and from several accounts at once; the
/// app should queue prompts (one on screen at a time). The core never holds a lock
/// while awaiting it, so the UI may take as long as the user needs; the app cancels
/// by returning [`VerificationOutcome::Cancelled`]. It may call back into the core
/// (no lock is held). A failure of the prompt itself is a [`HookError`]: the
/// approval then fails with [`Error::HookFailed`](crate::Error::HookFailed) and
/// nothing is sent.
#[async_trait::async_trait]
pub trait UserVerifier: Send + Sync {
    /// Shows the prompt and reports the outcome.
    async fn verify(&self, prompt: VerificationPrompt) -> Result<VerificationOutcome, HookError>;
}
