//! uniffi bindings of the Countersign core: a thin layer of wrappers and bridges.
//!
//! * [`authenticator::Authenticator`]: the root object the app holds.
//! * [`platform`]: the app's hooks as foreign traits (`SecureStorage`, `KeyVault`,
//!   `UserVerifier`, `HttpClient`, `Clock`, `Logger`) and their bridges to the core.
//! * [`types`]: the core's records and enums as uniffi remote types, the views
//!   whose shape differs, and typed times ([`types::TimeSpan`], `SystemTime`).
//! * [`diagnostics`]: [`ping`] (the FFI's per-call cost) and [`core_version`].
//! * [`error::CountersignError`]: the one error, mapped from the core's in one
//!   place, with a stable code per variant and typed data ([`error::InputField`]).
//!
//! No `unwrap`/`expect`/panics on these paths; uniffi also catches panics at the
//! boundary (the release profile keeps `panic = "unwind"` for that).
#![deny(missing_docs)]

uniffi::setup_scaffolding!("countersign");

pub mod authenticator;
pub mod diagnostics;
pub mod error;
pub mod platform;
pub mod types;

pub use authenticator::{Authenticator, CancelHandle};
pub use diagnostics::{core_version, ping};
pub use error::{CountersignError, InputField};
pub use types::TimeSpan;
