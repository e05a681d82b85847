//! The one error type of the crypto module.

/// Why a cryptographic operation failed.
///
/// Deliberately coarse: callers learn *what kind* of input was wrong, never
/// anything that would help an attacker (e.g. which byte of a tag differed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A key was malformed, of the wrong length, not on the curve, or out of range.
    #[error("invalid key")]
    InvalidKey,
    /// A signature was malformed (bad DER, wrong length, r or s out of range).
    #[error("malformed signature")]
    InvalidSignature,
    /// A well-formed signature did not verify.
    #[error("signature did not verify")]
    BadSignature,
    /// AEAD decryption failed (wrong key, nonce, associated data, or tampered ciphertext).
    #[error("decryption failed")]
    Decrypt,
    /// An input or requested output had an unsupported length or count.
    #[error("invalid length")]
    InvalidLength,
    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    Rng,
    /// The requested algorithm or parameter set is not supported.
    #[error("unsupported algorithm or parameter")]
    Unsupported,
}
