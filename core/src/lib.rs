//! Countersign core: the device side of the Countersign authenticator and the
//! protocol v1 primitives shared with the server.
//!
//! * [`crypto`]: ECDSA P-256, ECDH P-256, HPKE (RFC 9180), HKDF, HMAC, PBKDF2,
//!   AES-GCM, randomness and constant-time comparison, built on ring and p256.
//! * [`otp`]: HOTP, TOTP, OCRA (RFC 6287) and the challenge-bound push OTP.
//! * [`protocol`]: v1 wire types, signed messages, activation offers and
//!   `otpauth://` URIs.
//! * [`platform`]: the platform hooks (storage, key vault, user verification, HTTP,
//!   clock, logger) and the shipped implementations.
//! * [`authenticator`]: the [`Authenticator`] root object an app holds.
//! * [`client`]: the signed device API calls to a countersign-server.
//! * [`Error`]: the one public error of the authenticator API.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod authenticator;
pub mod client;
pub mod crypto;
pub mod error;
pub mod otp;
pub mod platform;
pub mod protocol;

pub use authenticator::{Authenticator, AuthenticatorConfig, PlatformHooks};
pub use error::{Error, Result};
