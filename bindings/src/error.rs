//! The one error of the FFI (`CountersignException` in Kotlin, `CountersignError`
//! in Swift), mapped from the core's error in one place.

/// Everything an `Authenticator` call can fail with. Each variant says what the app
/// should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum CountersignError {
    /// No account is activated: activate first.
    #[error("not activated")]
    NotActivated,
    /// The server removed this device; the account was wiped locally. Re-activate.
    #[error("device deregistered; account wiped")]
    DeviceDeregistered,
    /// No such account on this device.
    #[error("account not found")]
    AccountNotFound,
    /// The user cancelled the PIN or biometric prompt. Nothing was sent.
    #[error("verification cancelled")]
    VerificationCancelled,
    /// The biometric check failed, or no usable verification method is set up.
    #[error("verification failed")]
    VerificationFailed,
    /// The PIN was wrong; `attempts_left` more tries before the account is wiped.
    #[error("wrong PIN ({attempts_left} attempts left)")]
    WrongPin {
        /// Tries left before the account is wiped.
        attempts_left: u32,
    },
    /// Too many wrong PINs: the account was wiped. Re-activate.
    #[error("PIN locked; account wiped")]
    PinLocked,
    /// The request expired: ask the relying party for a new one.
    #[error("request expired")]
    RequestExpired,
    /// No such pending request (already handled, or never received).
    #[error("request not found")]
    RequestNotFound,
    /// The request was already answered.
    #[error("request already answered")]
    AlreadyAnswered,
    /// A signature, decryption or binding check failed: possible attack. Show nothing.
    #[error("message failed verification")]
    Tampered,
    /// A protocol version or feature this build does not support: update the app.
    #[error("unsupported version or feature")]
    Unsupported,
    /// Bad input from the user or a scanned code; `what` names the input.
    #[error("invalid input: {what}")]
    InvalidInput {
        /// Which input was rejected ("activation URI", "number", "PIN", …).
        what: String,
    },
    /// The server could not be reached or timed out: retry later.
    #[error("network error")]
    Network,
    /// The server answered, but not as a Countersign server: check the server URL.
    #[error("not a Countersign server")]
    NotCountersignServer,
    /// The server refused the request with this machine-readable code
    /// (`rate_limited`, `wrong_number`, `suppressed`, …).
    #[error("server rejected the request: {code}")]
    ServerRejected {
        /// The server's error code.
        code: String,
    },
    /// Local storage or the key vault failed.
    #[error("storage failure")]
    Storage,
    /// A hook the app provides (`UserVerifier`, `Clock`) threw or failed.
    /// Nothing was sent.
    #[error("platform hook failed")]
    HookFailed,
    /// The call was cancelled through its `CancelHandle`.
    #[error("cancelled")]
    Cancelled,
    /// A bug or an unexpected local failure.
    #[error("internal error")]
    Internal,
}

impl From<countersign_core::Error> for CountersignError {
    fn from(e: countersign_core::Error) -> Self {
        use countersign_core::Error as E;
        match e {
            E::NotActivated => Self::NotActivated,
            E::DeviceDeregistered => Self::DeviceDeregistered,
            E::AccountNotFound => Self::AccountNotFound,
            E::VerificationCancelled => Self::VerificationCancelled,
            E::VerificationFailed => Self::VerificationFailed,
            E::WrongPin { attempts_left } => Self::WrongPin { attempts_left },
            E::PinLocked => Self::PinLocked,
            E::RequestExpired => Self::RequestExpired,
            E::RequestNotFound => Self::RequestNotFound,
            E::AlreadyAnswered => Self::AlreadyAnswered,
            E::Tampered => Self::Tampered,
            E::Unsupported => Self::Unsupported,
            E::InvalidInput { what } => Self::InvalidInput {
                what: what.to_owned(),
            },
            E::Network => Self::Network,
            E::NotCountersignServer => Self::NotCountersignServer,
            E::ServerRejected { code } => Self::ServerRejected { code },
            E::Storage => Self::Storage,
            E::HookFailed => Self::HookFailed,
            E::Cancelled => Self::Cancelled,
            E::Internal => Self::Internal,
        }
    }
}

/// Result of the exported API.
pub type Result<T, E = CountersignError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_with_fields() {
        assert_eq!(
            CountersignError::from(countersign_core::Error::WrongPin { attempts_left: 3 }),
            CountersignError::WrongPin { attempts_left: 3 }
        );
        assert_eq!(
            CountersignError::from(countersign_core::Error::InvalidInput { what: "PIN" }),
            CountersignError::InvalidInput { what: "PIN".into() }
        );
    }
}
