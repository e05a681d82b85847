//! Countersign core: the device side of the Countersign authenticator.
//!
//! The protocol it speaks (crypto, OTP and every wire type) is the
//! `countersign-protocol` crate, shared with the server and re-exported here as
//! [`crypto`], [`otp`] and [`protocol`].
//! * [`platform`]: the platform hooks (storage, key vault, user verification, HTTP,
//!   clock, logger) and the shipped implementations.
//! * [`authenticator`]: the [`Authenticator`] root object an app holds.
//! * [`client`]: the signed device API calls to a countersign-server.
//! * [`Error`]: the one public error of the authenticator API.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod authenticator;
pub mod client;
pub mod error;
pub mod platform;

pub use countersign_protocol as protocol;
pub use countersign_protocol::{crypto, otp};

pub use authenticator::{Authenticator, AuthenticatorConfig, PlatformHooks};
pub use error::{Error, Result};
