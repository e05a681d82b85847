//! The one public error of the authenticator (DESIGN §5), and the single place
//! where every internal error is mapped onto it.
//!
//! Variants are named for what the app should do. Messages never contain secrets,
//! codes, PINs, challenge contents or server-supplied text.

use crate::crypto::CryptoError;
use crate::platform::{HookError, HttpError, KeyVaultError, StorageError};
use crate::protocol::api::ErrorCode;
use crate::protocol::{ErrorClass, ProtocolError};

/// Everything the authenticator API can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No account is activated (or none for this server/device): activate first.
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
    /// The request expired (by the server's clock): ask for a new one.
    #[error("request expired")]
    RequestExpired,
    /// No such pending request (already handled, or never received).
    #[error("request not found")]
    RequestNotFound,
    /// The request was already answered (or is a replay of one that was).
    #[error("request already answered")]
    AlreadyAnswered,
    /// A signature, decryption or binding check failed: possible attack. Show nothing.
    #[error("message failed verification")]
    Tampered,
    /// A protocol version or feature this build does not support: update the app.
    #[error("unsupported version or feature")]
    Unsupported,
    /// Bad input from the user or a scanned code (QR, typed code, otpauth URI, PIN
    /// shape, number); `what` names the input.
    #[error("invalid input: {what}")]
    InvalidInput {
        /// Which input was rejected.
        what: &'static str,
    },
    /// The server could not be reached or timed out: retry later.
    #[error("network error")]
    Network,
    /// The server answered, but not as a Countersign server (a web page, another
    /// service): check the server URL. Only activation reports it, before any
    /// key is trusted.
    #[error("not a Countersign server")]
    NotCountersignServer,
    /// The server refused the request with this error code (e.g. `rate_limited`,
    /// `wrong_number`, `suppressed`).
    #[error("server rejected the request: {code}")]
    ServerRejected {
        /// The server's machine-readable error code.
        code: String,
    },
    /// A transfer's new phone (docs/PROTOCOL.md §14): the activation waits for
    /// the approval on the old device. The account stays unlisted until then;
    /// [`Authenticator::confirm_pending_activations`](crate::Authenticator::confirm_pending_activations)
    /// and the other retry points check again.
    #[error("awaiting approval on the old device")]
    AwaitingApproval,
    /// The old device denied the move to this phone, or did not answer in
    /// time; the waiting account was dropped. Start the transfer again.
    #[error("transfer denied by the old device")]
    TransferDenied,
    /// Local storage or the key vault failed.
    #[error("storage failure")]
    Storage,
    /// A platform hook the app provides (user verifier, clock) failed, e.g. its
    /// implementation threw. Nothing was sent; fix the hook or retry.
    #[error("platform hook failed")]
    HookFailed,
    /// The operation was cancelled through its cancel handle.
    #[error("cancelled")]
    Cancelled,
    /// A bug or an unexpected local failure.
    #[error("internal error")]
    Internal,
}

/// Result alias of the authenticator API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<StorageError> for Error {
    fn from(_: StorageError) -> Self {
        Self::Storage
    }
}

impl From<HookError> for Error {
    fn from(_: HookError) -> Self {
        Self::HookFailed
    }
}

impl From<KeyVaultError> for Error {
    fn from(e: KeyVaultError) -> Self {
        match e {
            KeyVaultError::UserVerificationRequired => Self::VerificationFailed,
            KeyVaultError::KeyInvalidated => Self::VerificationFailed,
            KeyVaultError::NotFound
            | KeyVaultError::WrongPurpose
            | KeyVaultError::OpenFailed
            | KeyVaultError::Platform(_) => Self::Storage,
        }
    }
}

impl From<HttpError> for Error {
    fn from(_: HttpError) -> Self {
        Self::Network
    }
}

impl From<CryptoError> for Error {
    fn from(_: CryptoError) -> Self {
        Self::Internal
    }
}

/// Protocol errors on messages **from the server** (challenges, activation
/// results): anything that does not verify or parse is treated as tampering.
pub(crate) fn from_server(e: ProtocolError) -> Error {
    match e.class() {
        ErrorClass::Expired => Error::RequestExpired,
        ErrorClass::Unsupported => Error::Unsupported,
        ErrorClass::Internal => Error::Internal,
        ErrorClass::Tampered | ErrorClass::Invalid => Error::Tampered,
    }
}

/// Protocol errors on **user input** (scanned QR, typed code, entered number).
pub(crate) fn from_input(what: &'static str) -> impl Fn(ProtocolError) -> Error {
    move |e| match e.class() {
        ErrorClass::Unsupported => Error::Unsupported,
        ErrorClass::Internal => Error::Internal,
        ErrorClass::Tampered => Error::Tampered,
        ErrorClass::Expired => Error::RequestExpired,
        ErrorClass::Invalid => Error::InvalidInput { what },
    }
}

/// Protocol errors while **building** our own messages: a local bug.
pub(crate) fn internal(_: ProtocolError) -> Error {
    Error::Internal
}

/// Maps a server error code (the `error.code` of a device API error body). The
/// code is an enum, so a hostile server cannot put arbitrary text into the app's
/// error messages; a code this build does not know is `unknown`.
pub(crate) fn from_server_code(status: u16, code: ErrorCode) -> Error {
    match code {
        ErrorCode::DeviceRemoved => Error::DeviceDeregistered,
        ErrorCode::Expired => Error::RequestExpired,
        ErrorCode::AlreadyAnswered => Error::AlreadyAnswered,
        ErrorCode::NotFound if status == 404 => Error::RequestNotFound,
        ErrorCode::Unsupported => Error::Unsupported,
        // The challenge needs a PIN or biometric approval that was not given.
        ErrorCode::VerificationRequired => Error::VerificationFailed,
        ErrorCode::TransferDenied => Error::TransferDenied,
        other => Error::ServerRejected {
            code: other.as_str().to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_codes_map_to_actions() {
        assert_eq!(
            from_server_code(410, ErrorCode::DeviceRemoved),
            Error::DeviceDeregistered
        );
        assert_eq!(
            from_server_code(410, ErrorCode::Expired),
            Error::RequestExpired
        );
        assert_eq!(
            from_server_code(409, ErrorCode::AlreadyAnswered),
            Error::AlreadyAnswered
        );
        assert_eq!(
            from_server_code(404, ErrorCode::NotFound),
            Error::RequestNotFound
        );
        assert_eq!(
            from_server_code(403, ErrorCode::WrongNumber),
            Error::ServerRejected {
                code: "wrong_number".into()
            }
        );
        assert_eq!(
            from_server_code(410, ErrorCode::TransferDenied),
            Error::TransferDenied
        );
        assert_eq!(
            from_server_code(400, ErrorCode::Unknown),
            Error::ServerRejected {
                code: "unknown".into()
            }
        );
    }

    #[test]
    fn protocol_errors_from_server_are_tampering() {
        assert_eq!(from_server(ProtocolError::BadSignature), Error::Tampered);
        assert_eq!(from_server(ProtocolError::Decrypt), Error::Tampered);
        assert_eq!(
            from_server(ProtocolError::Malformed { field: "x" }),
            Error::Tampered
        );
        assert_eq!(
            from_server(ProtocolError::Expired { expires: 1, now: 2 }),
            Error::RequestExpired
        );
        assert_eq!(
            from_server(ProtocolError::UnsupportedVersion {
                found: 2,
                supported: 1
            }),
            Error::Unsupported
        );
        assert_eq!(
            from_input("code")(ProtocolError::InvalidCode { reason: "x" }),
            Error::InvalidInput { what: "code" }
        );
    }

    #[test]
    fn messages_carry_no_details() {
        let e: Error = StorageError::Io("read: /home/alice/secret".into()).into();
        assert_eq!(e.to_string(), "storage failure");
    }
}
