//! The protocol error type and the single place where crypto errors are mapped.

use crate::crypto::CryptoError;

/// Everything that can go wrong while building, signing, sealing, parsing or
/// verifying a protocol v1 message.
///
/// Messages name fields and limits, never field values: errors may be logged, and
/// a value could be a secret or attacker-chosen text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The message is for a protocol version this build does not speak: update the app or server.
    #[error("unsupported protocol version {found} (supported: {supported})")]
    UnsupportedVersion {
        /// The version found in the message.
        found: u64,
        /// The version this build supports.
        supported: u64,
    },
    /// The whole input is larger than any valid message of its kind.
    #[error("{what} is {len} bytes, more than the maximum {max}")]
    MessageTooLarge {
        /// What was being parsed.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The maximum accepted length.
        max: usize,
    },
    /// The input is not valid JSON for this message type (syntax error, unknown or
    /// missing field, wrong type). The position helps debugging; the input itself is not quoted.
    #[error("invalid JSON in {what} at line {line}, column {column}")]
    InvalidJson {
        /// What was being parsed.
        what: &'static str,
        /// 1-based line of the error (0 if unknown).
        line: usize,
        /// 1-based column of the error (0 if unknown).
        column: usize,
    },
    /// A field is present but its value is not allowed (wrong charset, range or combination).
    #[error("malformed field {field}")]
    Malformed {
        /// The field name as it appears on the wire.
        field: &'static str,
    },
    /// A field, string or array is longer than its bound.
    #[error("field {field} is too long (max {max})")]
    TooLong {
        /// The field name as it appears on the wire.
        field: &'static str,
        /// The maximum length (bytes for strings, items for arrays).
        max: usize,
    },
    /// A field is shorter than its lower bound.
    #[error("field {field} is too short (min {min})")]
    TooShort {
        /// The field name as it appears on the wire.
        field: &'static str,
        /// The minimum length.
        min: usize,
    },
    /// A field is not valid base64url (no padding, canonical) or has the wrong decoded length.
    #[error("bad encoding in field {field}")]
    BadEncoding {
        /// The field name as it appears on the wire.
        field: &'static str,
    },
    /// A public key in a field is not a valid P-256 point.
    #[error("invalid public key in field {field}")]
    InvalidKey {
        /// The field name as it appears on the wire.
        field: &'static str,
    },
    /// The signature does not verify (or is malformed): the message was tampered with
    /// or signed for another purpose.
    #[error("signature does not verify")]
    BadSignature,
    /// The message's key id is not the key the verifier expected for this sender.
    #[error("message is signed by an unknown key")]
    UnknownKey,
    /// The server key does not match the fingerprint pinned from the activation offer.
    #[error("server key does not match the pinned fingerprint")]
    PinMismatch,
    /// The message was signed for a different purpose (for example an approval that
    /// needed user verification signed with the possession key).
    #[error("message signed for the wrong purpose")]
    WrongPurpose,
    /// The message's validity window has ended.
    #[error("expired at {expires} (now {now})")]
    Expired {
        /// Expiry, unix seconds.
        expires: u64,
        /// The verifier's time, unix seconds.
        now: u64,
    },
    /// The message is dated in the future beyond the allowed clock skew.
    #[error("not valid before {not_before} (now {now})")]
    NotYetValid {
        /// Earliest acceptable time, unix seconds.
        not_before: u64,
        /// The verifier's time, unix seconds.
        now: u64,
    },
    /// Decryption failed: wrong key, wrong associated data or tampered ciphertext.
    #[error("decryption failed (wrong key or tampered data)")]
    Decrypt,
    /// Two parts of a message (or a message and its context) that must agree do not,
    /// e.g. the sealed header and the decrypted challenge name different transactions.
    #[error("binding check failed: {what}")]
    Binding {
        /// What did not match.
        what: &'static str,
    },
    /// An activation offer URI is not acceptable.
    #[error("invalid activation URI: {reason}")]
    InvalidUri {
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A typed activation code is not acceptable.
    #[error("invalid activation code: {reason}")]
    InvalidCode {
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The operating system's random generator failed.
    #[error("random generator failure")]
    Rng,
    /// Any other cryptographic failure (should not happen with validated inputs).
    #[error("cryptographic failure: {0}")]
    Crypto(CryptoError),
}

/// What an application should do about an error; used to map onto the FFI error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad signature, decryption failure, binding mismatch, unknown key or pin mismatch:
    /// treat as an attack, show nothing, report.
    Tampered,
    /// Expired or not yet valid: ask for a new request (check the clock if repeated).
    Expired,
    /// Unknown protocol version: update.
    Unsupported,
    /// Syntactically or semantically invalid input (bad QR, bad code, bad JSON).
    Invalid,
    /// Local failure (RNG, crypto).
    Internal,
}

impl ProtocolError {
    /// Classifies the error for user-facing handling.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::BadSignature
            | Self::UnknownKey
            | Self::PinMismatch
            | Self::WrongPurpose
            | Self::Decrypt
            | Self::Binding { .. } => ErrorClass::Tampered,
            Self::Expired { .. } | Self::NotYetValid { .. } => ErrorClass::Expired,
            Self::UnsupportedVersion { .. } => ErrorClass::Unsupported,
            Self::MessageTooLarge { .. }
            | Self::InvalidJson { .. }
            | Self::Malformed { .. }
            | Self::TooLong { .. }
            | Self::TooShort { .. }
            | Self::BadEncoding { .. }
            | Self::InvalidKey { .. }
            | Self::InvalidUri { .. }
            | Self::InvalidCode { .. } => ErrorClass::Invalid,
            Self::Rng | Self::Crypto(_) => ErrorClass::Internal,
        }
    }

    /// Wraps a serde_json error without its message (which can quote input text).
    pub(crate) fn json(what: &'static str, e: &serde_json::Error) -> Self {
        Self::InvalidJson {
            what,
            line: e.line(),
            column: e.column(),
        }
    }
}

/// The one mapping from crypto errors. Call sites that know which field a key or
/// signature came from map `InvalidKey` / `InvalidSignature` themselves first.
impl From<CryptoError> for ProtocolError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::InvalidSignature | CryptoError::BadSignature => Self::BadSignature,
            CryptoError::Decrypt => Self::Decrypt,
            CryptoError::Rng => Self::Rng,
            CryptoError::InvalidKey => Self::InvalidKey { field: "key" },
            other => Self::Crypto(other),
        }
    }
}

/// Result alias for protocol operations.
pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;
