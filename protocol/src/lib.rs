//! Countersign protocol v1: everything the device core and the server share.
//!
//! * [`crypto`]: ECDSA P-256, ECDH P-256, HPKE (RFC 9180), HKDF, HMAC, PBKDF2,
//!   AES-GCM, randomness and constant-time comparison, built on ring and p256.
//! * [`otp`]: HOTP, TOTP, OCRA (RFC 6287) and the challenge-bound push OTP.
//! * The wire types, each defined once and used by both sides (below).
//!
//! Every message that matters is a [`SignedMessage`]: the exact payload bytes, a key
//! id and an ECDSA P-256 signature over `label || 0x00 || payload`, with one label per
//! [`Purpose`]. Payloads are strict JSON (unknown fields and versions rejected, every
//! field bounded) and are parsed only after their signature verifies.
//!
//! * [`activation`]: offer URI and typed code, the device's request, the server's result.
//! * [`challenge`]: the push challenge, sealed with HPKE to the device's KEM key and signed by S.
//! * [`answer`]: the device's signed approve/deny answer.
//! * [`request`]: signatures over device HTTP requests.
//! * [`api`]: the device API's JSON bodies and the error codes of both HTTP APIs.
//! * [`offline`]: the signed payload of an offline QR challenge.
//! * [`login`]: the QR login URI and the device's claim of it.
//!
//! The exact formats, labels and test vectors are in `docs/PROTOCOL.md`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod crypto;
pub mod otp;

pub mod activation;
pub mod answer;
pub mod api;
pub mod challenge;
pub mod encoding;
pub mod error;
pub mod limits;
pub mod login;
pub mod offline;
pub mod otpauth;
pub mod otpauth_migration;
pub mod request;
pub mod sealed;
pub mod signed;
#[cfg(test)]
mod tests;

pub use activation::{
    ActivationGrant, ActivationOffer, ActivationRequest, ActivationResult, DeviceInfo,
    OfferCredentials, OfferId, OfferSecret, OtpAlgorithm, OtpParams, Platform, PushRegistration,
    ServerKeyPin, ServerUrl, VerificationPolicy,
};
pub use answer::{Answer, AnswerExpectation, Approval, Decision, DenyReason};
pub use challenge::{
    Challenge, ChallengeContext, ChallengeHeader, ChallengeKind, DeviceBinding, NumberMatching,
    OpenedChallenge, SealedChallenge, TransactionDetails, challenge_hash,
};
pub use error::{ErrorClass, ProtocolError};
pub use request::{RequestHeaders, sign_request, sign_request_with_nonce, verify_request};
pub use sealed::{Ephemeral, SealedBox};
pub use signed::{DeterministicSigner, MessageSigner, Purpose, SignedMessage};

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const VERSION: u64 = 1;

/// User verification before an approval is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verification {
    /// One tap; the answer is signed with the possession key Dp.
    None,
    /// The app PIN; the answer is signed with the user-verification key Du.
    Pin,
    /// Biometrics (with the platform's PIN/passcode fallback); signed with Du.
    Biometric,
}
